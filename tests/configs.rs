//! Every shipped plan and profile parses and validates, so the examples in
//! configs/ never rot.

use std::path::Path;

use infraqual::coordinator::plan::Plan;
use infraqual_probes::Profile;

#[test]
fn every_example_plan_validates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/plans");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        seen += 1;
        let text = std::fs::read_to_string(&path).unwrap();
        // The plan names secrets that live beside it on a real deployment;
        // make stand-ins so validation reaches everything else.
        let base = tempfile::tempdir().unwrap();
        let raw: toml::Value = toml::from_str(&text).unwrap();
        for agent in raw["agents"].as_array().unwrap() {
            for key in ["token_file", "ca_file"] {
                if let Some(rel) = agent.get(key).and_then(|v| v.as_str()) {
                    let p = base.path().join(rel);
                    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                    std::fs::write(&p, "0123456789abcdef0123456789abcdef").unwrap();
                }
            }
        }
        let plan = Plan::parse(&text, &path.display().to_string(), base.path())
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!plan.agents.is_empty());
        assert!(!plan.probes.is_empty(), "{} runs no probe", path.display());
    }
    assert!(seen >= 2, "example plans found: {seen}");
}

#[test]
fn every_profile_parses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/profiles");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let profile = Profile::load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(!profile.checks.is_empty(), "{}", path.display());
    }
}
