//! Pod Security Standards levels and versions, with the exact spellings Pod
//! Security Admission accepts in namespace labels (`restricted`, `v1.25`,
//! `latest`).

use std::fmt;
use std::str::FromStr;

use crate::PolicyError;

/// The newest Pod Security Standards minor version this build knows.
/// `latest` resolves to it.
pub const LATEST_MINOR: u16 = 37;

/// A Pod Security Standards level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Unrestricted.
    Privileged,
    /// Prevents known privilege escalations.
    Baseline,
    /// Heavily restricted, current pod hardening best practice.
    Restricted,
}

/// A Pod Security Standards version: `latest` or `v1.N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// The newest version this build knows ([`LATEST_MINOR`]).
    Latest,
    /// `v1.N`, by minor number. Versions newer than this build are
    /// evaluated as [`Version::Latest`], as Pod Security Admission does.
    Minor(u16),
}

/// A level at a version, as written in `--pod-security restricted:v1.30`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LevelVersion {
    /// The level.
    pub level: Level,
    /// The version.
    pub version: Version,
}

impl Level {
    /// The label value for this level.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Privileged => "privileged",
            Level::Baseline => "baseline",
            Level::Restricted => "restricted",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Level {
    type Err = PolicyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "privileged" => Ok(Level::Privileged),
            "baseline" => Ok(Level::Baseline),
            "restricted" => Ok(Level::Restricted),
            _ => Err(PolicyError::InvalidLevel {
                what: "level",
                value: s.to_owned(),
                hint: "expected privileged, baseline or restricted",
            }),
        }
    }
}

impl Version {
    /// The minor version this resolves to (`latest` -> [`LATEST_MINOR`];
    /// a version newer than this build is treated as latest).
    pub fn minor(self) -> u16 {
        match self {
            Version::Latest => LATEST_MINOR,
            Version::Minor(m) => m.min(LATEST_MINOR),
        }
    }

    /// True when this version is at least `v1.minor`.
    pub fn at_least(self, minor: u16) -> bool {
        self.minor() >= minor
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Version::Latest => f.write_str("latest"),
            Version::Minor(m) => write!(f, "v1.{m}"),
        }
    }
}

impl FromStr for Version {
    type Err = PolicyError;

    /// Accepts `latest` and `v1.N` (N without leading zeros), like Pod
    /// Security Admission's `ParseVersion`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || PolicyError::InvalidLevel {
            what: "version",
            value: s.to_owned(),
            hint: "expected latest or v1.N (for example v1.30)",
        };
        if s == "latest" {
            return Ok(Version::Latest);
        }
        let minor = s.strip_prefix("v1.").ok_or_else(bad)?;
        if minor.is_empty()
            || !minor.bytes().all(|b| b.is_ascii_digit())
            || (minor.len() > 1 && minor.starts_with('0'))
        {
            return Err(bad());
        }
        minor.parse::<u16>().map(Version::Minor).map_err(|_| bad())
    }
}

impl fmt::Display for LevelVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.level, self.version)
    }
}

impl FromStr for LevelVersion {
    type Err = PolicyError;

    /// `LEVEL` or `LEVEL:VERSION`; the version defaults to `latest`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (level, version) = match s.split_once(':') {
            Some((l, v)) => (l.parse()?, v.parse()?),
            None => (s.parse()?, Version::Latest),
        };
        Ok(LevelVersion { level, version })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_psa_spellings() {
        assert_eq!("v1.25".parse::<Version>().ok(), Some(Version::Minor(25)));
        assert_eq!("latest".parse::<Version>().ok(), Some(Version::Latest));
        for bad in ["1.25", "v1.", "v1.025", "v2.1", "v1.x", ""] {
            assert!(bad.parse::<Version>().is_err(), "{bad} must be refused");
        }
        let lv: LevelVersion = "baseline:v1.3".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(lv.level, Level::Baseline);
        assert_eq!(lv.version.minor(), 3);
        assert_eq!(Version::Minor(99).minor(), LATEST_MINOR);
    }
}
