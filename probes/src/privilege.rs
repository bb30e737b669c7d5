//! Capability checks. Probes that need privileges say which capability is
//! missing; tests that need them fail with that message unless
//! INFRAQUAL_SKIP_PRIVILEGED=1, in which case they are skipped and say so.

/// Linux capability bit numbers (include/uapi/linux/capability.h).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Capability {
    NetAdmin = 12,
    SysAdmin = 21,
    SysNice = 23,
}

impl Capability {
    pub fn name(self) -> &'static str {
        match self {
            Capability::NetAdmin => "CAP_NET_ADMIN",
            Capability::SysAdmin => "CAP_SYS_ADMIN",
            Capability::SysNice => "CAP_SYS_NICE",
        }
    }
}

/// Whether this process has `cap` in its effective set.
pub fn has(cap: Capability) -> bool {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|bits| bits & (1u64 << cap as u32) != 0)
}

pub const SKIP_ENV: &str = "INFRAQUAL_SKIP_PRIVILEGED";

/// For tests: Ok(true) to go on, Ok(false) to skip (the skip is printed), or
/// a panic naming the missing capability.
pub fn test_requires(caps: &[Capability], test: &str) -> bool {
    let missing: Vec<&str> = caps
        .iter()
        .filter(|c| !has(**c))
        .map(|c| c.name())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let what = missing.join(" and ");
    if std::env::var(SKIP_ENV).is_ok_and(|v| v == "1") {
        eprintln!("SKIPPED {test}: needs {what} ({SKIP_ENV}=1 is set)");
        return false;
    }
    panic!("{test} needs {what}: run as root, or set {SKIP_ENV}=1 to skip privileged tests");
}

/// `require_caps!(NetAdmin, SysAdmin)` at the top of a test: returns early
/// (skipped) or panics with the missing capability.
#[macro_export]
macro_rules! require_caps {
    ($($cap:ident),+) => {
        if !$crate::privilege::test_requires(
            &[$($crate::privilege::Capability::$cap),+],
            module_path!(),
        ) {
            return;
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(unsafe_code)]
    fn root_in_ci_has_net_admin_or_the_check_says_no() {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let uid = unsafe { libc::geteuid() };
        if uid == 0 {
            // Root without CAP_NET_ADMIN exists (unprivileged containers), so
            // only check consistency with the raw mask.
            let status = std::fs::read_to_string("/proc/self/status").unwrap();
            let eff = status.lines().find(|l| l.starts_with("CapEff:")).unwrap();
            let bits = u64::from_str_radix(eff.split_whitespace().nth(1).unwrap(), 16).unwrap();
            assert_eq!(has(Capability::NetAdmin), bits & (1 << 12) != 0);
        }
    }
}
