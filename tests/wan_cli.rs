//! Bad input to rtt's pipelining: a rate the pipeline window cannot carry
//! exits 2 with one line naming the flag, or the plan's file, line and
//! column and the key.

mod common;

use common::assert_one_line_error;

#[test]
fn a_rate_too_high_for_the_pipeline_names_the_flag() {
    let r = common::run(&[
        "probe",
        "rtt",
        "--target",
        "a=127.0.0.1:9@native",
        "--rate",
        "1000",
        "--pipeline",
        "4",
    ]);
    assert_one_line_error(&r, "--rate: 1000/s is too high for pipeline = 4");
}

#[test]
fn a_rate_too_high_for_the_pipeline_names_the_plan_key() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.toml");
    std::fs::write(
        &plan,
        "name = \"wan\"\n\
         [[agents]]\nname = \"a\"\nurl = \"http://127.0.0.1:1\"\n\
         [[agents]]\nname = \"b\"\nurl = \"http://127.0.0.1:2\"\n\
         [probes.rtt]\npipeline = 8\nrate = 200\n",
    )
    .unwrap();
    let r = common::run(&["run", plan.to_str().unwrap()]);
    assert_one_line_error(
        &r,
        "plan.toml:8:1: invalid parameter rate: 200/s is too high",
    );
}
