//! The running kernel's release (`uname -r`) and the version in it, for the
//! few decisions that depend on it and for reports.

use std::fmt;

/// `major.minor` of a kernel release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
}

impl Version {
    pub const fn new(major: u32, minor: u32) -> Version {
        Version { major, minor }
    }

    /// The version at the start of a release string: `6.18.44-fc-v1045`
    /// is 6.18.
    pub fn parse(release: &str) -> Option<Version> {
        let mut parts = release.trim().split(['.', '-', '+']);
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some(Version { major, minor })
    }

    /// The running kernel's version; `None` when its release does not say.
    pub fn running() -> Option<Version> {
        Version::parse(&running())
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// The running kernel's release string, or "unknown".
pub fn running() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_distribution_release_strings() {
        assert_eq!(
            Version::parse("6.18.44-fc-v1045"),
            Some(Version::new(6, 18))
        );
        assert_eq!(
            Version::parse("5.15.0-119-generic\n"),
            Some(Version::new(5, 15))
        );
        assert_eq!(Version::parse("5.4.0"), Some(Version::new(5, 4)));
        assert_eq!(Version::parse("6.1-rc2"), Some(Version::new(6, 1)));
        assert_eq!(Version::parse("unknown"), None);
        assert!(Version::new(5, 10) < Version::new(5, 11));
        assert!(Version::new(4, 19) < Version::new(5, 4));
        assert_eq!(Version::new(6, 1).to_string(), "6.1");
    }

    #[test]
    fn the_running_kernel_has_a_version() {
        assert!(Version::running().is_some(), "{}", running());
    }
}
