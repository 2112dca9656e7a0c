# Mirrors CI. `make test` is what CI runs (through .ci/run).
CARGO ?= cargo

.PHONY: test test-deps fmt lint bench fuzz run image manifests

## Install what the end-to-end tests talk to, then run every test.
test: test-deps
	$(CARGO) test --workspace --all-targets

## rsyslog, nginx, buildah (Debian packages), the Python SDKs and real Helm
## (tests/requirements.txt), cargo-cyclonedx.
test-deps:
	scripts/install-test-deps

fmt:
	$(CARGO) fmt --all -- --check

lint:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

bench:
	$(CARGO) bench --workspace

## The embedded default: generated certificates, built-in policies.
run:
	$(CARGO) run --release -- webhook

## The container image, with buildah (no daemon): localhost/tollgate:dev.
## IMAGE_MODE=--online builds from the Containerfile (needs the base images'
## registries); --offline assembles the same layout from this machine's files;
## the default tries online, then offline.
IMAGE ?= localhost/tollgate:dev
IMAGE_MODE ?=
image:
	scripts/build-image --image $(IMAGE) $(IMAGE_MODE)

## deploy/tollgate.yaml: the chart rendered by real Helm with default values.
manifests:
	scripts/render-manifests
