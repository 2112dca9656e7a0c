# Image provenance: images come from an allowed registry, and are pinned.
#
# input.images holds every image reference of the pod, parsed by the host
# the way container runtimes resolve it ("nginx" is repository
# "docker.io/library/nginx"): {registry, repository, tag, digest}, with ""
# for a missing (or malformed) tag or digest.

package tollgate.compliance

import rego.v1

# An allowed entry is a registry host, optionally with a path prefix
# ("ghcr.io/acme"); it matches that repository and everything under it,
# which is what testing "<repository>/" against "<entry>/" does.
violation contains v if {
	input.rules["image-registry"]
	some list, cs in pod_containers
	some i, c in cs
	ref := input.images[c.image]
	not strings.any_prefix_match(concat("", [ref.repository, "/"]), input.params.allowedRegistryPrefixes)
	v := {
		"rule": "image-registry",
		"path": concat("", [container_path(list, i), ".image"]),
		"container": c.name,
		"msg": sprintf(
			"container %q uses image %q (repository %s), which is not in an allowed registry; use an image from %s, or add its registry to compliance.parameters.allowedRegistries once approved",
			[c.name, c.image, ref.repository, listing(input.params.allowedRegistries)],
		),
	}
}

violation contains v if {
	input.rules["image-pinned"]
	input.params.requireDigest
	some list, cs in pod_containers
	some i, c in cs
	input.images[c.image].digest == ""
	v := {
		"rule": "image-pinned",
		"path": concat("", [container_path(list, i), ".image"]),
		"container": c.name,
		"msg": sprintf(
			"container %q uses image %q, which has no digest; pin it as image@sha256:<digest> (compliance.parameters.requireDigest is on)",
			[c.name, c.image],
		),
	}
}

violation contains v if {
	input.rules["image-pinned"]
	not input.params.requireDigest
	some list, cs in pod_containers
	some i, c in cs
	ref := input.images[c.image]
	ref.digest == ""
	ref.tag in {"", "latest"}
	v := {
		"rule": "image-pinned",
		"path": concat("", [container_path(list, i), ".image"]),
		"container": c.name,
		"msg": sprintf(
			"container %q uses image %q, which is not pinned: %s; pin a digest (image@sha256:<digest>) or a version tag",
			[c.name, c.image, unpinned[ref.tag]],
		),
	}
}

unpinned := {
	"": "without a tag it means :latest, which moves",
	"latest": ":latest moves",
}
