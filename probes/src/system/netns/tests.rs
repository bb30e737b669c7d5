use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicU32, Ordering};

use super::*;

static TEST_COUNTER: AtomicU32 = AtomicU32::new(0);

/// An owner id unique to one test in one process (`<pid>t<n>`).
fn unique_id() -> String {
    let n = TEST_COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{:x}t{n}", std::process::id())
}

fn inode_of(path: impl AsRef<Path>) -> u64 {
    std::fs::metadata(path).unwrap().ino()
}

#[test]
fn names_carry_the_owner_id_and_only_the_owner_matches() {
    assert_eq!(name("1a2b", "node"), "iq-1a2b-node");
    assert_eq!(prefix("1a2b"), "iq-1a2b-");
    assert!(belongs_to("iq-1a2b-node", "1a2b"));
    assert!(!belongs_to("iq-1a2b-", "1a2b"), "a role is required");
    assert!(!belongs_to("iq-1a2b-node", "1a2"), "ids are not prefixes");
    assert!(!belongs_to("iq-1a2bc-node", "1a2b"));
    assert!(!belongs_to("other-1a2b-node", "1a2b"));
    assert_eq!(path_of("iq-x-y"), Path::new("/run/netns/iq-x-y"));
}

#[test]
fn error_lines_are_trimmed_and_counted() {
    assert_eq!(first_lines("a\n\n  b  \nc\n", 5), "a | b | c");
    assert_eq!(first_lines("1\n2\n3\n4\n", 2), "1 | 2 | ... (2 more lines)");
    assert_eq!(first_lines("", 3), "");
}

#[test]
fn a_command_is_shown_with_its_input_and_namespace() {
    let shown = CommandLine::new(
        Path::new("/usr/sbin/ip"),
        &["-batch", "-"],
        Some(b"link add a type dummy\nlink set a up\n"),
        Some("iq-1-node"),
    );
    assert_eq!(
        shown.0,
        "/usr/sbin/ip -batch - <<< link add a type dummy | link set a up (in iq-1-node)"
    );
    let NetnsError::Command { command, detail } = shown.failed("exit status: 2".into()) else {
        panic!("a command failure")
    };
    assert_eq!(command, shown.0);
    assert_eq!(detail, "exit status: 2");
}

#[test]
fn a_missing_namespace_or_tool_is_named_in_the_error() {
    let missing = name(&unique_id(), "absent");
    assert!(!exists(&missing));
    let err = enter(&missing).unwrap_err();
    assert!(
        matches!(&err, NetnsError::Open { name, .. } if *name == missing),
        "{err}"
    );
    assert!(err.to_string().contains(&missing), "{err}");
    let err = run_on_thread(&missing, "iq-test", || ()).unwrap_err();
    assert!(matches!(err, NetnsError::Open { .. }), "{err}");
    assert!(!delete(&missing).unwrap(), "deleting a missing one is fine");
    let err = run_tool_in(&missing, "iq-no-such-tool", &[], None).unwrap_err();
    assert!(
        matches!(&err, NetnsError::ToolMissing { tool } if tool == "iq-no-such-tool"),
        "{err}"
    );
}

#[test]
fn a_namespace_is_made_entered_used_and_removed() {
    crate::require_caps!(NetAdmin, SysAdmin);
    let id = unique_id();
    let ns_name = name(&id, "lab");
    let host_ns = inode_of("/proc/thread-self/ns/net");
    {
        let ns = Netns::create(&ns_name).unwrap();
        assert!(exists(&ns_name));
        assert_eq!(names_with_prefix(&prefix(&id)), vec![ns_name.clone()]);
        let ns_inode = inode_of(path_of(&ns_name));
        assert_ne!(ns_inode, host_ns);

        let (inside, thread) = run_on_thread(&ns_name, "iq-netns-test", || {
            let thread = std::thread::current().name().map(str::to_string);
            (inode_of("/proc/thread-self/ns/net"), thread)
        })
        .unwrap();
        assert_eq!(inside, ns_inode, "the work ran inside the namespace");
        assert_eq!(thread.as_deref(), Some("iq-netns-test"));
        assert_eq!(
            inode_of("/proc/thread-self/ns/net"),
            host_ns,
            "the caller's thread did not move"
        );

        let link = ns
            .run(
                &find_tool("readlink").unwrap(),
                &["/proc/self/ns/net"],
                None,
            )
            .unwrap();
        assert_eq!(link.stdout.trim(), format!("net:[{ns_inode}]"));

        ip_batch(
            &ns_name,
            &[
                "link add iqt0 type veth peer name iqt1".into(),
                "link set iqt0 up".into(),
            ],
        )
        .unwrap();
        let links = run_tool_in(&ns_name, "ip", &["-o", "link", "show"], None).unwrap();
        let mut names: Vec<&str> = links
            .stdout
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap_or(n))
            .collect();
        names.sort();
        assert_eq!(names, ["iqt0", "iqt1", "lo"], "{}", links.stdout);
        let lo = links.stdout.lines().find(|l| l.contains(": lo:")).unwrap();
        assert!(lo.contains(",UP"), "lo is up: {lo}");

        let input = run_tool_in(&ns_name, "cat", &[], Some(b"through stdin\n")).unwrap();
        assert_eq!(input.stdout, "through stdin\n");

        let err = ip(&ns_name, &["link", "add", "iqt0", "type", "veth"]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(&ns_name) && text.contains("iqt0"), "{text}");

        let panicked = run_on_thread(&ns_name, "iq-netns-panics", || -> () {
            panic!("on purpose")
        })
        .unwrap_err();
        assert!(panicked.to_string().contains("on purpose"), "{panicked}");
    }
    assert!(!exists(&ns_name), "dropped, so deleted");
    assert!(names_with_prefix(&prefix(&id)).is_empty());

    add(&ns_name).unwrap();
    assert!(delete(&ns_name).unwrap(), "it existed");
    assert!(!delete(&ns_name).unwrap(), "and is gone");
}
