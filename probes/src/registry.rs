//! The probes this build can run: the list in `lib.rs` (one
//! `probe_registry!` line per probe) and the look-ups on it.

use serde_json::Value;

use crate::context::ProbeContext;
use crate::error::ProbeError;
use crate::probe::{ProbeDescriptor, ProbeName};
use crate::result::ProbeResult;
use crate::PROBES;

/// Declares each probe's module and lists its descriptor, so that one line
/// adds a probe.
macro_rules! probe_registry {
    ($($module:ident :: $probe:ident),+ $(,)?) => {
        $(pub mod $module;)+

        static PROBES: &[$crate::probe::ProbeDescriptor] =
            &[$($crate::probe::describe::<$module::$probe>()),+];
    };
}

/// Every probe's declaration, in execution order.
pub fn all() -> &'static [ProbeDescriptor] {
    PROBES
}

/// Every probe's name, in execution order.
pub fn names_in_order() -> impl Iterator<Item = ProbeName> {
    PROBES.iter().map(|d| d.name)
}

/// `inventory, steal, ...` for messages.
pub fn names() -> String {
    names_in_order()
        .map(ProbeName::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn lookup(name: &str) -> Option<ProbeName> {
    names_in_order().find(|p| p.as_str() == name)
}

pub(crate) fn position(name: ProbeName) -> usize {
    PROBES
        .iter()
        .position(|d| d.name == name)
        .unwrap_or(PROBES.len())
}

pub(crate) fn descriptor(name: ProbeName) -> &'static ProbeDescriptor {
    // A ProbeName comes from a registered probe's `Probe::NAME` (or parsing,
    // which only yields registered names); the test below checks that every
    // declared name is listed.
    PROBES
        .iter()
        .find(|d| d.name == name)
        .unwrap_or_else(|| panic!("probe `{name}` is declared but not listed in registry.rs"))
}

/// Runs probe `name` with JSON parameters (from a CLI, a plan or an agent
/// request); unknown or ill-typed parameters are `InvalidParam`.
pub fn run(name: ProbeName, params: &Value, ctx: &ProbeContext) -> Result<ProbeResult, ProbeError> {
    name.descriptor().run(params, ctx)
}

/// Checks parameters without running anything.
pub fn validate(name: ProbeName, params: &Value) -> Result<(), ProbeError> {
    name.descriptor().validate(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_is_rejected_with_the_list() {
        for p in names_in_order() {
            assert_eq!(p.as_str().parse::<ProbeName>(), Ok(p));
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(json, format!("\"{p}\""), "serialised as today's string");
            assert_eq!(serde_json::from_str::<ProbeName>(&json).unwrap(), p);
        }
        let e = "bogus".parse::<ProbeName>().unwrap_err();
        assert!(e.contains("available: inventory"), "{e}");
        assert!(serde_json::from_str::<ProbeName>("\"bogus\"").is_err());
    }

    #[test]
    fn names_are_unique_and_order_by_execution() {
        let texts: std::collections::BTreeSet<&str> =
            names_in_order().map(|p| p.as_str()).collect();
        assert_eq!(texts.len(), names_in_order().count(), "names are unique");
        // Execution order, not the alphabet: steal runs before fsync.
        assert!(crate::steal::NAME < crate::fsync::NAME);
    }

    #[test]
    fn dispatch_rejects_unknown_parameters() {
        let ctx = ProbeContext::local();
        let inventory = crate::inventory::NAME;
        let e = run(inventory, &serde_json::json!({"bogus": 1}), &ctx).unwrap_err();
        assert!(e.to_string().contains("unknown field `bogus`"), "{e}");
        assert!(run(inventory, &Value::Null, &ctx).is_ok());
    }
}
