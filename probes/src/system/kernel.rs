//! Kernel release parsing and comparison.

/// (major, minor) from a release string such as `6.18.44-fc-v657`.
pub fn parse_release(release: &str) -> Option<(u32, u32)> {
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// The running kernel's release (`uname -r`).
pub fn release() -> Option<String> {
    super::read_trimmed("/proc/sys/kernel/osrelease")
}

pub fn at_least(release: &str, major: u32, minor: u32) -> bool {
    parse_release(release).is_some_and(|v| v >= (major, minor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_compare_numerically() {
        assert_eq!(parse_release("6.18.44-fc-v657"), Some((6, 18)));
        assert_eq!(parse_release("5.4.0-150-generic"), Some((5, 4)));
        assert!(at_least("5.13.0", 5, 13));
        assert!(at_least("6.1", 5, 13));
        assert!(!at_least("5.10.0-21-amd64", 5, 13));
        assert!(!at_least("garbage", 5, 13));
    }
}
