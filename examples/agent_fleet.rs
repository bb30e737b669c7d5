//! Hosts many agents in one process on 127.0.0.1 ephemeral ports and writes
//! a plan naming all of them: the load for scripts/bench-fleet, which
//! measures how the coordinator copes with a fleet.
//!
//! Usage: agent_fleet N DIR [--echo]   (writes DIR/plan.toml and DIR/token,
//! then serves until SIGTERM or SIGINT; with --echo every agent also serves
//! an echo responder on its own loopback port and the plan gives each agent
//! the path `native` on 127.0.0.1, for rtt between the agents)

use std::path::PathBuf;

use anyhow::{Context, Result};
use infraqual::agent::{serve, shutdown_signal, AgentArgs, AgentConfig};
use tokio::net::TcpListener;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let count: usize = args
        .next()
        .context("usage: agent_fleet N DIR")?
        .parse()
        .context("N must be a number")?;
    let dir = PathBuf::from(args.next().context("usage: agent_fleet N DIR")?);
    let echo = args.next().as_deref() == Some("--echo");
    anyhow::ensure!((1..=5000).contains(&count), "N must be 1..=5000");
    std::fs::create_dir_all(&dir)?;
    let token_file = dir.join("token");
    std::fs::write(&token_file, infraqual::agent::generate_token()?)?;
    std::fs::set_permissions(
        &token_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let mut plan = String::from("name = \"fleet\"\nout = \"runs\"\n");
        let (stop_tx, _) = tokio::sync::broadcast::channel::<()>(1);
        let mut servers = Vec::new();
        for i in 0..count {
            let name = format!("agent-{i:04}");
            let agent_args = AgentArgs {
                listen: "127.0.0.1:0".parse()?,
                token_file: Some(token_file.clone()),
                read_token_file: None,
                allow_hosts: Vec::new(),
                allow_targets: Vec::new(),
                insecure_plaintext: false,
                tls_cert: None,
                tls_key: None,
                client_ca: None,
                allow_dirs: Vec::new(),
                node: Some(name.clone()),
                netns: None,
                echo_port: None,
                echo_listen: echo.then(|| "127.0.0.1:0".parse()).transpose()?,
                ready_file: None,
                profile: "etcd".into(),
                identity: Default::default(),
            };
            let config = AgentConfig::from_args(&agent_args)?;
            let listener = TcpListener::bind(agent_args.listen).await?;
            let addr = listener.local_addr()?;
            plan.push_str(&format!(
                "[[agents]]\nname = \"{name}\"\nurl = \"http://{addr}\"\ntoken_file = \"token\"\n"
            ));
            if echo {
                plan.push_str("addresses = { native = \"127.0.0.1\" }\n");
            }
            let mut stop = stop_tx.subscribe();
            servers.push(tokio::spawn(async move {
                serve(listener, config, async move {
                    let _ = stop.recv().await;
                })
                .await
            }));
        }
        plan.push_str("[probes.inventory]\n");
        infraqual_reports::atomic::write(&dir.join("plan.toml"), plan.as_bytes())?;
        eprintln!(
            "agent_fleet: {count} agents serving; plan in {}",
            dir.display()
        );
        shutdown_signal().await;
        let _ = stop_tx.send(());
        for s in servers {
            let _ = s.await;
        }
        anyhow::Ok(())
    })
}
