//! Image references as Docker and containerd write them, normalized so that `busybox`,
//! `library/busybox:latest` and `docker.io/library/busybox:latest` name one image.

use std::fmt;

/// Why a text is not an image reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid image reference {reference:?}: {why}")]
pub struct ImageRefError {
    pub reference: String,
    pub why: &'static str,
}

/// A normalized reference: `domain/path[:tag][@digest]`, with `latest` when neither is given.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageRef {
    pub domain: String,
    pub path: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl ImageRef {
    pub fn parse(reference: &str) -> Result<ImageRef, ImageRefError> {
        let error = |why| ImageRefError { reference: reference.to_owned(), why };
        if reference.is_empty() || reference.len() > 512 || reference.chars().any(|c| c.is_whitespace()) {
            return Err(error("must be 1 to 512 characters without spaces"));
        }
        let (name, digest) = match reference.split_once('@') {
            Some((name, digest)) => {
                if !digest.starts_with("sha256:") {
                    return Err(error("only sha256 digests are supported"));
                }
                if sha256_hex(digest).is_none() {
                    return Err(error("a sha256 digest has 64 lowercase hex digits"));
                }
                (name, Some(digest.to_owned()))
            }
            None => (reference, None),
        };
        let last_slash = name.rfind('/').map_or(0, |i| i + 1);
        let (repository, tag) = match name[last_slash..].rfind(':') {
            Some(i) => (&name[..last_slash + i], Some(name[last_slash + i + 1..].to_owned())),
            None => (name, None),
        };
        if let Some(tag) = &tag {
            let valid = !tag.is_empty()
                && tag.len() <= 128
                && tag.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
                && !tag.starts_with(['.', '-']);
            if !valid {
                return Err(error("a tag is 1 to 128 letters, digits, '_', '.' or '-'"));
            }
        }
        let (domain, path) = match repository.split_once('/') {
            Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
                (first.to_owned(), rest.to_owned())
            }
            _ => ("docker.io".to_owned(), repository.to_owned()),
        };
        let path =
            if domain == "docker.io" && !path.contains('/') { format!("library/{path}") } else { path };
        let path_ok = !path.is_empty()
            && path.split('/').all(|part| {
                !part.is_empty()
                    && part
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
                    && part.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            });
        if !path_ok {
            return Err(error(
                "a repository is lowercase letters, digits, '.', '_' and '-' in '/'-separated parts",
            ));
        }
        let tag = if tag.is_none() && digest.is_none() { Some("latest".to_owned()) } else { tag };
        Ok(ImageRef { domain, path, tag, digest })
    }

    /// `domain/path`, without tag or digest.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.path)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// Whether `text` names a whole image (`busybox:1.36`, `ghcr.io/a/b`) rather than only a tag
/// (`latest`), as OCI layouts' `ref.name` annotations may.
pub fn is_full_reference(text: &str) -> bool {
    text.contains(['/', ':', '@'])
}

/// The 64 lowercase hex digits of a `sha256:` digest, or `None` if it is not one.
pub fn sha256_hex(digest: &str) -> Option<&str> {
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))).then_some(hex)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_like_docker() {
        let cases = [
            ("busybox", "docker.io/library/busybox:latest"),
            ("busybox:1.36", "docker.io/library/busybox:1.36"),
            ("library/busybox", "docker.io/library/busybox:latest"),
            ("docker.io/library/busybox:latest", "docker.io/library/busybox:latest"),
            ("bitnami/redis:7.2", "docker.io/bitnami/redis:7.2"),
            ("ghcr.io/home/app", "ghcr.io/home/app:latest"),
            ("localhost:5000/app:v1", "localhost:5000/app:v1"),
            ("registry.lan:5000/team/app", "registry.lan:5000/team/app:latest"),
            (
                "busybox@sha256:8dba1a417169a3be5d214f2714d93badd9d0ca7d645e916f43188a1bc05d6f87",
                "docker.io/library/busybox@sha256:8dba1a417169a3be5d214f2714d93badd9d0ca7d645e916f43188a1bc05d6f87",
            ),
        ];
        for (text, want) in cases {
            let r = ImageRef::parse(text).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(r.to_string(), want, "{text}");
        }
    }

    #[test]
    fn refuses_what_docker_refuses() {
        for bad in [
            "",
            "Busybox",
            "busybox:",
            "a b",
            "busybox@sha256:123",
            "busybox@md5:00",
            "-x/y",
            "x//y",
            "busybox:-1",
        ] {
            assert!(ImageRef::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tells_tags_from_names() {
        assert!(!is_full_reference("latest"));
        assert!(is_full_reference("busybox:latest"));
        assert!(is_full_reference("docker.io/library/busybox"));
    }
}
