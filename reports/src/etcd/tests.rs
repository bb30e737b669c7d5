use infraqual_probes::rtt::Kind;
use infraqual_probes::{LatencyHistogram, ProbeResult, Profile, Status};

use super::*;
use crate::bundle::NodeRecord;
use crate::test_runs::{node, run};

const MS: u64 = 1_000_000;

fn constant(ns: u64) -> LatencyHistogram {
    let mut h = LatencyHistogram::new();
    for _ in 0..100 {
        h.record(ns);
    }
    h
}

fn fsync_result(name: &str, hist: &LatencyHistogram, mode: &str) -> ProbeResult {
    let mut r = ProbeResult::new(infraqual_probes::fsync::NAME, name);
    r.param("mode", mode);
    r.metric("fdatasync", hist, "ns").unwrap();
    r
}

fn rtt_result(name: &str, to: &[(&str, LatencyHistogram)]) -> ProbeResult {
    let mut r = ProbeResult::new(infraqual_probes::rtt::NAME, name);
    for (peer, h) in to {
        r.metric(&format!("{name}->{peer}/native/tcp_rr"), h, "ns")
            .unwrap();
    }
    r
}

/// Nodes with constant fdatasync (ms) and constant round trips (ms) per
/// pair, measured from the first node of each pair.
fn constant_run(sync_ms: &[(&str, u64)], rtt_ms: &[(&str, &str, u64)]) -> RunRecord {
    let nodes: Vec<NodeRecord> = sync_ms
        .iter()
        .map(|(n, s)| {
            let to: Vec<(&str, LatencyHistogram)> = rtt_ms
                .iter()
                .filter(|(a, _, _)| a == n)
                .map(|(_, b, r)| (*b, constant(r * MS)))
                .collect();
            let mut results = vec![fsync_result(n, &constant(s * MS), "etcd-wal")];
            if !to.is_empty() {
                results.push(rtt_result(n, &to));
            }
            node(n, &[], results)
        })
        .collect();
    run("etcd", nodes)
}

fn close(got: u64, want_ms: u64) -> bool {
    let want = (want_ms * MS) as f64;
    (got as f64 - want).abs() <= want * 0.002
}

fn leader<'a>(p: &'a Placement, name: &str) -> &'a LeaderPrediction {
    p.leaders.iter().find(|l| l.leader == name).unwrap()
}

/// `r` predicted with a measured request time of a constant 2 ms (200 puts).
fn predict_with_2ms_request_time(r: &RunRecord) -> Prediction {
    let lines: String = (0..200).map(|_| format!("{}\n", 2 * MS)).collect();
    let request = RequestTime::parse(&lines, std::path::Path::new("rt.txt")).unwrap();
    predict_with_request_time(
        r,
        None,
        &Profile::default(),
        Options::default(),
        Some(&request),
    )
    .unwrap()
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn constant_delays_commit_at_leader_sync_or_fastest_follower() {
    let r = constant_run(
        &[("a", 1), ("b", 2), ("c", 5)],
        &[("a", "b", 10), ("a", "c", 1), ("b", "c", 3)],
    );
    let p = predict(&r, None, &Profile::default(), Options::default()).unwrap();
    assert_eq!(p.placements.len(), 1);
    let pl = p.best();
    // a leads: max(1, min(10 + 2, 1 + 5)) = 6; b: max(2, min(10 + 1, 3 + 5))
    // = 8; c: max(5, min(1 + 1, 3 + 2)) = 5.
    assert!(close(leader(pl, "a").p50_ns, 6), "{pl:?}");
    assert!(close(leader(pl, "b").p99_ns, 8), "{pl:?}");
    assert!(close(leader(pl, "c").p50_ns, 5), "{pl:?}");
    assert_eq!(pl.best_leader().leader, "c");
}

#[test]
fn five_members_wait_for_the_second_fastest_follower() {
    let sync = [("l", 1), ("f1", 1), ("f2", 1), ("f3", 1), ("f4", 1)];
    let mut rtt: Vec<(&str, &str, u64)> = vec![
        ("l", "f1", 1),
        ("l", "f2", 3),
        ("l", "f3", 5),
        ("l", "f4", 7),
    ];
    for (a, b) in [
        ("f1", "f2"),
        ("f1", "f3"),
        ("f1", "f4"),
        ("f2", "f3"),
        ("f2", "f4"),
        ("f3", "f4"),
    ] {
        rtt.push((a, b, 20));
    }
    let r = constant_run(&sync, &rtt);
    let members = names(&["l", "f1", "f2", "f3", "f4"]);
    let p = predict(&r, Some(&members), &Profile::default(), Options::default()).unwrap();
    // Quorum 3: the leader and two followers, f1 (2 ms) and f2 (4 ms).
    assert!(close(leader(p.best(), "l").p50_ns, 4), "{:?}", p.best());
    assert_eq!(model::quorum(5), 3);
    assert_eq!(model::quorum(3), 2);
}

#[test]
fn a_slow_follower_barely_matters_but_a_slow_leader_does() {
    let r = constant_run(
        &[("fast1", 1), ("fast2", 1), ("slow", 12)],
        &[
            ("fast1", "fast2", 1),
            ("fast1", "slow", 1),
            ("fast2", "slow", 1),
        ],
    );
    let p = predict(&r, None, &Profile::default(), Options::default()).unwrap();
    let pl = p.best();
    assert!(close(leader(pl, "fast1").p99_ns, 2), "{pl:?}");
    assert!(close(leader(pl, "slow").p50_ns, 12), "{pl:?}");
    assert_ne!(pl.best_leader().leader, "slow");
}

#[test]
fn monte_carlo_takes_the_faster_of_two_random_followers() {
    // Each follower answers in 1 ms or 3 ms with even odds: the faster of
    // two is 1 ms with probability 3/4, so p50 = 1 ms and p99 = 3 ms.
    let mut either = LatencyHistogram::new();
    for _ in 0..50 {
        either.record(MS / 2);
        either.record(5 * MS / 2);
    }
    let zero = constant(1_000);
    let half = constant(MS / 2);
    let nodes = vec![
        node(
            "l",
            &[],
            vec![
                fsync_result("l", &zero, "etcd-wal"),
                rtt_result("l", &[("x", half.clone()), ("y", half)]),
            ],
        ),
        node(
            "x",
            &[],
            vec![
                fsync_result("x", &either, "etcd-wal"),
                rtt_result("x", &[("y", constant(50 * MS))]),
            ],
        ),
        node("y", &[], vec![fsync_result("y", &either, "etcd-wal")]),
    ];
    let r = run("mc", nodes);
    let p = predict(
        &r,
        Some(&names(&["l", "x", "y"])),
        &Profile::default(),
        Options::default(),
    )
    .unwrap();
    let l = leader(p.best(), "l");
    assert!(close(l.p50_ns, 1), "{l:?}");
    assert!(close(l.p99_ns, 3), "{l:?}");
    let again = predict(
        &r,
        Some(&names(&["l", "x", "y"])),
        &Profile::default(),
        Options::default(),
    )
    .unwrap();
    assert_eq!(p, again, "a fixed seed gives the same figures");
}

#[test]
fn etcd_wal_mode_is_preferred_and_udp_serves_without_tcp() {
    let mut r = constant_run(&[("a", 1), ("b", 1), ("c", 1)], &[]);
    for n in &mut r.nodes {
        n.results
            .push(fsync_result(&n.name, &constant(30 * MS), "fio-etcd"));
    }
    let mut u = ProbeResult::new(infraqual_probes::rtt::NAME, "a");
    for (a, b) in [("a", "b"), ("a", "c"), ("b", "c")] {
        u.metric(&format!("{a}->{b}/native/udp"), &constant(2 * MS), "ns")
            .unwrap();
    }
    r.nodes[0].results.push(u);
    let p = predict(&r, None, &Profile::default(), Options::default()).unwrap();
    assert!(close(p.best().best_leader().p50_ns, 3), "{:?}", p.best());
    assert!(p.rtt_source.contains(crate::regions::kind_label(Kind::Udp)));
    assert!(p.member_sync.iter().all(|s| s.mode == "etcd-wal"));
}

#[test]
fn a_paced_fsync_is_read_sync_by_sync_without_back_fill() {
    // A paced run back-fills what a stalled fixed-rate sender would have
    // synced (fdatasync); a put pays only the sync it rides on, as etcd's
    // own histogram counts (fdatasync_each).
    let mut r = constant_run(&[("a", 1), ("b", 1), ("c", 1)], &[("a", "b", 2)]);
    r.nodes[1]
        .results
        .push(rtt_result("b", &[("c", constant(2 * MS))]));
    r.nodes[0]
        .results
        .push(rtt_result("a", &[("c", constant(2 * MS))]));
    for n in &mut r.nodes {
        let paced = &mut n.results[0];
        paced.metric("fdatasync", &constant(40 * MS), "ns").unwrap();
        paced.metric("fdatasync_each", &constant(MS), "ns").unwrap();
    }
    let p = predict(&r, None, &Profile::default(), Options::default()).unwrap();
    assert!(close(p.best().best_leader().p50_ns, 3), "{:?}", p.best());
    assert!(p.member_sync.iter().all(|s| close(s.p99_ns, 1)));
}

#[test]
fn five_member_placements_are_added_where_there_are_five_nodes() {
    let sync = [("a", 1), ("b", 1), ("c", 1), ("d", 1), ("e", 1)];
    let mut rtt = Vec::new();
    let n = ["a", "b", "c", "d", "e"];
    for i in 0..5 {
        for j in i + 1..5 {
            rtt.push((n[i], n[j], 1));
        }
    }
    let r = constant_run(&sync, &rtt);
    let p = predict(
        &r,
        None,
        &Profile::default(),
        Options {
            samples: 500,
            ..Options::default()
        },
    )
    .unwrap();
    let sizes: Vec<usize> = p.placements.iter().map(|p| p.members.len()).collect();
    assert_eq!(sizes.iter().filter(|&&s| s == 3).count(), 10);
    assert_eq!(sizes.iter().filter(|&&s| s == 5).count(), 1);
}

#[test]
fn verdicts_judge_member_fsync_and_commit_p99() {
    let r = constant_run(
        &[("a", 1), ("b", 1), ("c", 12)],
        &[("a", "b", 60), ("a", "c", 60), ("b", "c", 60)],
    );
    let p = predict(&r, None, &Profile::default(), Options::default()).unwrap();
    let status = |check: &str, subject: &str| {
        p.verdicts
            .iter()
            .find(|v| v.verdict.check == check && v.subject.starts_with(subject))
            .map(|v| v.verdict.status)
    };
    assert_eq!(status(WAL_FSYNC_CHECK, "a"), Some(Status::Pass));
    assert_eq!(status(WAL_FSYNC_CHECK, "c"), Some(Status::Fail));
    // 60 ms + 1 ms: above the 50 ms warning, below the 100 ms failure.
    assert_eq!(status(COMMIT_CHECK, "a,b,c"), Some(Status::Warn));
    assert_eq!(p.flags.heartbeat_interval_ms, 100);
    assert_eq!(p.flags.election_timeout_ms, 1000);
}

#[test]
fn timing_flags_follow_the_slowest_round_trip() {
    let r = constant_run(
        &[("a", 1), ("b", 1), ("c", 1)],
        &[("a", "b", 1), ("a", "c", 150), ("b", "c", 2)],
    );
    let p = predict(&r, None, &Profile::default(), Options::default()).unwrap();
    assert_eq!(p.flags.slowest_pair, ("a".to_string(), "c".to_string()));
    assert_eq!(p.flags.heartbeat_interval_ms, 151);
    assert_eq!(p.flags.election_timeout_ms, 1510);
    let text = text::render(&p);
    assert!(text.contains("--heartbeat-interval=151"), "{text}");
    assert!(text.contains("tuning guide"), "{text}");
}

#[test]
fn bad_input_names_what_is_missing() {
    let full = constant_run(
        &[("a", 1), ("b", 1), ("c", 1)],
        &[("a", "b", 1), ("a", "c", 1), ("b", "c", 1)],
    );
    let err = |r: &RunRecord, m: Option<&[&str]>| {
        let m = m.map(names);
        predict(r, m.as_deref(), &Profile::default(), Options::default()).unwrap_err()
    };
    assert!(
        matches!(err(&full, Some(&["a", "b", "zz"])), EtcdInputError::UnknownMember { name, .. } if name == "zz")
    );
    assert!(matches!(
        err(&full, Some(&["a", "b"])),
        EtcdInputError::TooFewNodes { .. }
    ));
    assert!(matches!(
        err(&full, Some(&["a", "b", "a"])),
        EtcdInputError::DuplicateMember { .. }
    ));

    let mut no_rtt = full.clone();
    for n in &mut no_rtt.nodes {
        n.results.retain(|r| r.probe != infraqual_probes::rtt::NAME);
    }
    assert_eq!(err(&no_rtt, None), EtcdInputError::NoRtt);
    let mut no_fsync = full.clone();
    for n in &mut no_fsync.nodes {
        n.results
            .retain(|r| r.probe != infraqual_probes::fsync::NAME);
    }
    assert_eq!(err(&no_fsync, None), EtcdInputError::NoFsync);

    let two = constant_run(&[("a", 1), ("b", 1)], &[("a", "b", 1)]);
    let e = err(&two, None);
    assert!(e.to_string().contains("at least 3 members"), "{e}");

    let gap = constant_run(
        &[("a", 1), ("b", 1), ("c", 1)],
        &[("a", "b", 1), ("a", "c", 1)],
    );
    assert_eq!(
        err(&gap, None),
        EtcdInputError::NoPairRtt {
            a: "b".into(),
            b: "c".into()
        }
    );
}

#[test]
fn the_report_section_shows_the_best_placement() {
    let r = constant_run(
        &[("a", 1), ("b", 2), ("c", 5)],
        &[("a", "b", 10), ("a", "c", 1), ("b", "c", 3)],
    );
    let mut h = String::new();
    html::section(&r, &Profile::default(), &mut h);
    assert!(h.contains("etcd cluster prediction"), "{h}");
    assert!(h.contains("leader <strong>c</strong>"), "{h}");
    assert!(h.contains("--heartbeat-interval=100"), "{h}");

    let mut without_rtt = r.clone();
    for n in &mut without_rtt.nodes {
        n.results.retain(|r| r.probe != infraqual_probes::rtt::NAME);
    }
    let mut none = String::new();
    html::section(&without_rtt, &Profile::default(), &mut none);
    assert!(none.is_empty());
}

#[test]
fn compare_summarises_each_runs_best_placement() {
    let fast = constant_run(
        &[("a", 1), ("b", 1), ("c", 1)],
        &[("a", "b", 1), ("a", "c", 1), ("b", "c", 1)],
    );
    let slow = constant_run(
        &[("a", 9), ("b", 9), ("c", 9)],
        &[("a", "b", 1), ("a", "c", 1), ("b", "c", 1)],
    );
    let opts = crate::compare::CompareOptions::new("fast", "slow");
    let c = crate::compare::compare(&fast, &slow, &opts);
    let lines: Vec<&String> = c.summary.iter().filter(|l| l.starts_with("etcd")).collect();
    assert_eq!(lines.len(), 2, "{:?}", c.summary);
    assert!(lines[0].contains("in fast:"), "{lines:?}");
    // max(9, 1 + 9) = 10 ms.
    assert!(lines[1].contains("p50 10.0 ms"), "{lines:?}");
}

#[test]
fn measured_request_time_adds_to_every_commit() {
    let r = constant_run(
        &[("a", 1), ("b", 2), ("c", 5)],
        &[("a", "b", 10), ("a", "c", 1), ("b", "c", 3)],
    );
    let p = predict_with_2ms_request_time(&r);
    // The commits of constant_delays_commit_at_leader_sync_or_fastest_follower
    // (a 6, b 8, c 5 ms), each plus the 2 ms request time; b's backend
    // commit (2 x 2 ms) stalls 4 / 104 of its puts, the 1 % slowest by at
    // least 4 ms x (1 - 0.01 x 104 / 4).
    let pl = p.best();
    assert!(close(leader(pl, "a").p50_ns, 8), "{pl:?}");
    assert!(close(leader(pl, "b").p50_ns, 10), "{pl:?}");
    let b99 = leader(pl, "b").p99_ns as f64 / MS as f64;
    assert!((b99 - 12.96).abs() < 0.3, "{pl:?}");
    assert!(close(leader(pl, "c").p50_ns, 7), "{pl:?}");
    let t = p.request_time.as_ref().unwrap();
    assert_eq!(t.puts, 200);
    assert!(text::render(&p).contains("plus etcd's own request time, one draw per put"));
    let without = predict(&r, None, &Profile::default(), Options::default()).unwrap();
    assert_eq!(without.request_time, None);
}

#[test]
fn the_leaders_backend_commit_stalls_a_share_of_the_puts() {
    use crate::compare::sampler::{Distribution, SplitMix64};
    // A 10 ms leader sync: each backend commit takes 20 ms, once every
    // 120 ms, so a sixth of the applies wait, uniformly up to 20 ms.
    let sync = Distribution::of(&constant(10 * MS)).unwrap();
    let mut rng = SplitMix64::new(7);
    let n = 60_000;
    let waits: Vec<u64> = (0..n)
        .map(|_| model::draw_backend_stall(model::BackendStall::FromSyncs(&sync), &mut rng))
        .collect();
    let stalled = waits.iter().filter(|w| **w > 0).count() as f64 / n as f64;
    assert!((stalled - 1.0 / 6.0).abs() < 0.01, "{stalled}");
    // (a recorded 10 ms reads back within the histogram's precision)
    assert!(waits.iter().all(|w| *w <= 20_100_000));
    let mean = waits.iter().sum::<u64>() as f64 / n as f64 / MS as f64;
    // A sixth of the puts wait 10 ms on average.
    assert!((mean - 10.0 / 6.0).abs() < 0.1, "{mean}");
}

#[test]
fn a_measured_apply_wait_is_drawn_as_it_is() {
    use crate::compare::sampler::{Distribution, SplitMix64};
    // 90 applies that did not wait and 10 that waited 25 ms.
    let mut h = LatencyHistogram::new();
    for i in 0..100 {
        h.record(if i < 10 { 25 * MS } else { 1 });
    }
    let waits = Distribution::of(&h).unwrap();
    let mut rng = SplitMix64::new(7);
    let n = 60_000;
    let drawn: Vec<u64> = (0..n)
        .map(|_| model::draw_backend_stall(model::BackendStall::Measured(&waits), &mut rng))
        .collect();
    let stalled = drawn.iter().filter(|w| **w > MS).count() as f64 / n as f64;
    assert!((stalled - 0.1).abs() < 0.01, "{stalled}");
    assert!(drawn.iter().all(|w| *w <= 25_100_000));
}

#[test]
fn the_prediction_draws_the_leaders_recorded_apply_waits() {
    let mut r = constant_run(
        &[("a", 1), ("b", 2), ("c", 5)],
        &[("a", "b", 10), ("a", "c", 1), ("b", "c", 3)],
    );
    // b's etcd-wal run also timed its backend: commits of 40 ms, and 5 of
    // its 100 applies waited 30 ms for one.
    let mut waits = LatencyHistogram::new();
    for i in 0..100 {
        waits.record(if i < 5 { 30 * MS } else { 1 });
    }
    for n in r.nodes.iter_mut().filter(|n| n.name == "b") {
        for res in n.results.iter_mut() {
            if res.probe == infraqual_probes::fsync::NAME {
                res.metric("backend_commit", &constant(40 * MS), "ns")
                    .unwrap();
                res.metric("backend_apply_wait", &waits, "ns").unwrap();
                // Timed for one client sending its puts in turn.
                res.params
                    .insert("sequential".into(), serde_json::Value::Bool(true));
            }
        }
    }
    let p = predict_with_2ms_request_time(&r);
    let pl = p.best();
    // b leads: commit 8 + 2 ms request time; 5 % of its puts wait 30 ms
    // more, so its p99 is 40 ms (the commit's 40 ms is not the wait), and
    // its p50 stays at 10.
    assert!(close(leader(pl, "b").p99_ns, 40), "{pl:?}");
    assert!(close(leader(pl, "b").p50_ns, 10), "{pl:?}");
    // a's run has no apply waits: two of its 1 ms syncs, as before.
    assert!(close(leader(pl, "a").p50_ns, 8), "{pl:?}");
    let b = p.member_sync.iter().find(|s| s.node == "b").unwrap();
    let commits = b.backend_commit.as_ref().unwrap();
    assert_eq!(commits.commits, 100);
    assert!(close(commits.p99_ns, 40), "{commits:?}");
    assert!(close(commits.apply_wait_p99_ns.unwrap(), 30), "{commits:?}");
    assert!(p.member_sync.iter().any(|s| s.backend_commit.is_none()));
    assert!(commits.sequential, "the waits' client shape is carried");
    let text = text::render(&p);
    assert!(text.contains("ms (one client in turn)"), "{text}");
    let json = serde_json::to_value(&p).unwrap();
    let b = json["member_sync"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["node"] == "b")
        .unwrap();
    assert_eq!(b["backend_commit"]["sequential"], true);
}
