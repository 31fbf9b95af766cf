//! Platforms (`linux/arm64`, `linux/arm/v7`) and which image platforms a board can run.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Platform {
    pub os: String,
    /// As OCI and `kubernetes.io/arch` name it: `amd64`, `arm64`, `arm`.
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Platform {
        Platform {
            os: os.to_owned(),
            architecture: architecture.to_owned(),
            variant: variant.map(str::to_owned),
        }
    }

    /// The platform this binary was built for (the board's, for the agent).
    pub fn of_this_build() -> Platform {
        let (architecture, variant) = if cfg!(target_arch = "x86_64") {
            ("amd64", None)
        } else if cfg!(target_arch = "aarch64") {
            ("arm64", Some("v8"))
        } else if cfg!(all(target_arch = "arm", target_feature = "v7")) {
            ("arm", Some("v7"))
        } else if cfg!(target_arch = "arm") {
            ("arm", Some("v6"))
        } else {
            (std::env::consts::ARCH, None)
        };
        Platform::new("linux", architecture, variant)
    }

    /// How well this (board) platform runs an image built for `image`: `None` if it cannot,
    /// lower is better. An exact variant beats an older compatible one (a v7 board runs v6
    /// and v5 images); an image without a variant is taken as the family's baseline.
    pub fn preference(&self, image: &Platform) -> Option<u32> {
        if image.os != self.os || image.architecture != self.architecture {
            return None;
        }
        let level = |v: Option<&str>| v.and_then(|v| v.strip_prefix('v')).and_then(|n| n.parse::<u32>().ok());
        match (level(self.variant.as_deref()), level(image.variant.as_deref())) {
            (_, None) => Some(50),
            (Some(board), Some(image)) if image <= board => Some(board - image),
            (None, Some(_)) => None,
            _ => None,
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boards_choose_the_closest_image() {
        let pi2 = Platform::new("linux", "arm", Some("v7"));
        let cases = [
            (Platform::new("linux", "arm", Some("v7")), Some(0)),
            (Platform::new("linux", "arm", Some("v6")), Some(1)),
            (Platform::new("linux", "arm", Some("v8")), None),
            (Platform::new("linux", "arm", None), Some(50)),
            (Platform::new("linux", "arm64", None), None),
            (Platform::new("windows", "arm", Some("v7")), None),
        ];
        for (image, want) in cases {
            assert_eq!(pi2.preference(&image), want, "{image}");
        }
        let pi4 = Platform::new("linux", "arm64", Some("v8"));
        assert_eq!(pi4.preference(&Platform::new("linux", "arm64", None)), Some(50));
        assert_eq!(pi4.preference(&Platform::new("linux", "arm64", Some("v8"))), Some(0));
        assert_eq!(Platform::new("linux", "arm64", Some("v8")).to_string(), "linux/arm64/v8");
    }

    #[test]
    fn this_build_is_known() {
        let p = Platform::of_this_build();
        assert_eq!(p.os, "linux");
        assert!(["amd64", "arm64", "arm"].contains(&p.architecture.as_str()), "{p}");
    }
}
