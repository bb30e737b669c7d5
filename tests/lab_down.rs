//! `infraqual lab down` without --id: removes the lab when there is exactly
//! one, and says what to pass when there are none or several.

mod common;

use std::path::PathBuf;

use common::{assert_one_line_error, run};
use infraqual::lab::{self, LabGuard, LabSpec};
use infraqual_probes::require_caps;
use infraqual_probes::system::netns;

#[test]
fn without_id_none_or_several_labs_name_what_to_pass() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().to_str().unwrap();
    let r = run(&["lab", "down", "--state-dir", base]);
    assert_one_line_error(&r, "no lab under");
    // Two recorded labs (state files only: nothing to tear down is reached).
    for id in ["aaa111", "bbb222"] {
        std::fs::create_dir(tmp.path().join(id)).unwrap();
        std::fs::write(tmp.path().join(id).join("state.json"), "{}").unwrap();
    }
    let r = run(&["lab", "down", "--state-dir", base]);
    assert_one_line_error(&r, "2 labs under");
    assert!(
        r.stderr.contains("--id") && r.stderr.contains("aaa111") && r.stderr.contains("bbb222"),
        "{}",
        r.stderr
    );
    assert!(
        tmp.path().join("aaa111/state.json").is_file(),
        "nothing removed"
    );
}

#[test]
fn without_id_the_only_lab_is_removed() {
    require_caps!(NetAdmin, SysAdmin);
    let tmp = tempfile::tempdir().unwrap();
    let spec = LabSpec {
        nodes: 2,
        regions: Vec::new(),
        fault: None,
        base: tmp.path().to_path_buf(),
        agents: false,
        exe: PathBuf::from(env!("CARGO_BIN_EXE_infraqual")),
        echo_port: 7074,
    };
    // The guard removes the lab if the command under test does not.
    let up = LabGuard(lab::up(&spec).unwrap());
    let id = up.state.id.clone();
    let r = run(&["lab", "down", "--state-dir", tmp.path().to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains(&format!("lab {id}: removed")),
        "{}",
        r.stdout
    );
    let left = netns::names_with_prefix(&netns::prefix(&id));
    assert!(left.is_empty(), "namespaces left: {left:?}");
    assert!(lab::state::list(tmp.path()).is_empty());
    drop(up);
}
