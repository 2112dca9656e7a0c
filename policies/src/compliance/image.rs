//! Container image references, parsed the way container runtimes resolve
//! them (the `distribution/reference` grammar): `nginx` is
//! `docker.io/library/nginx`, `org/app` is `docker.io/org/app`, and the
//! first path component is a registry host when it contains `.` or `:`, is
//! `localhost`, or has upper-case letters.

/// A parsed image reference.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageRef {
    /// The registry host (and port), lower-cased: `ghcr.io`, `docker.io`.
    pub registry: String,
    /// The full repository without tag or digest:
    /// `docker.io/library/nginx`, `ghcr.io/acme/app`.
    pub repository: String,
    /// The tag, `""` when there is none.
    pub tag: String,
    /// The digest (`sha256:...`), `""` when there is none or it is not a
    /// well-formed digest.
    pub digest: String,
}

/// Docker Hub's canonical host and its aliases.
const DOCKER_HUB: &str = "docker.io";
const DOCKER_HUB_ALIASES: [&str; 2] = ["index.docker.io", "registry-1.docker.io"];

/// Parses an image reference. Never fails: a malformed reference yields
/// what can be read of it (and fails the rules that need more).
pub fn parse(image: &str) -> ImageRef {
    let image = image.trim();
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, if valid_digest(d) { d } else { "" }),
        None => (image, ""),
    };
    // A tag is after the last ':' that follows the last '/' (a ':' before
    // it belongs to a registry port).
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    let (path, tag) = match name.get(last_slash..).and_then(|last| last.rfind(':')) {
        Some(i) => {
            let cut = last_slash + i;
            (
                name.get(..cut).unwrap_or(name),
                name.get(cut + 1..).unwrap_or(""),
            )
        }
        None => (name, ""),
    };
    let (registry, remote) = match path.split_once('/') {
        Some((first, rest)) if is_host(first) => (first.to_ascii_lowercase(), rest.to_owned()),
        _ => (DOCKER_HUB.to_owned(), path.to_owned()),
    };
    let registry = if DOCKER_HUB_ALIASES.contains(&registry.as_str()) {
        DOCKER_HUB.to_owned()
    } else {
        registry
    };
    let remote = if registry == DOCKER_HUB && !remote.contains('/') {
        format!("library/{remote}")
    } else {
        remote
    };
    ImageRef {
        repository: format!("{registry}/{remote}"),
        registry,
        tag: tag.to_owned(),
        digest: digest.to_owned(),
    }
}

fn is_host(component: &str) -> bool {
    component.contains(['.', ':'])
        || component == "localhost"
        || component.chars().any(|c| c.is_ascii_uppercase())
}

/// `algorithm:hex`, the hex part at least 32 characters.
fn valid_digest(digest: &str) -> bool {
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return false;
    };
    !algorithm.is_empty()
        && algorithm
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+._-".contains(c))
        && hex.len() >= 32
        && hex.chars().all(|c| c.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_tag_digest(image: &str) -> (String, String, String) {
        let r = parse(image);
        (r.repository, r.tag, r.digest)
    }

    #[test]
    fn docker_hub_references_are_normalised() {
        let d = |r: &str, t: &str| (r.to_owned(), t.to_owned(), String::new());
        assert_eq!(repo_tag_digest("nginx"), d("docker.io/library/nginx", ""));
        assert_eq!(
            repo_tag_digest("nginx:1.25"),
            d("docker.io/library/nginx", "1.25")
        );
        assert_eq!(repo_tag_digest("org/app:2"), d("docker.io/org/app", "2"));
        assert_eq!(
            repo_tag_digest("index.docker.io/nginx"),
            d("docker.io/library/nginx", "")
        );
        assert_eq!(
            repo_tag_digest("docker.io/org/app"),
            d("docker.io/org/app", "")
        );
    }

    #[test]
    fn registries_ports_tags_and_digests() {
        let sha = "sha256:".to_owned() + &"a".repeat(64);
        let r = parse(&format!("GHCR.io/Acme/app:1.0@{sha}"));
        assert_eq!(r.registry, "ghcr.io");
        assert_eq!(r.repository, "ghcr.io/Acme/app");
        assert_eq!(r.tag, "1.0");
        assert_eq!(r.digest, sha);
        let r = parse("localhost:5000/app");
        assert_eq!(
            (r.repository.as_str(), r.tag.as_str()),
            ("localhost:5000/app", "")
        );
        let r = parse("registry.example.com:5000/team/app:v2");
        assert_eq!(r.registry, "registry.example.com:5000");
        assert_eq!(r.tag, "v2");
        assert_eq!(parse("app@sha256:abc").digest, "", "too short");
        assert_eq!(parse("localhost/app").registry, "localhost");
        assert_eq!(parse("").repository, "docker.io/library/");
    }
}
