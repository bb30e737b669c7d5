//! `infraqual agent`: serves the probes of this machine to a coordinator
//! over HTTP/1.1 (optionally TLS), one job per probe run.

mod auth;
mod buckets;
mod gate;
mod http;
mod identity;
mod jobs;
mod metrics;
mod soak;
mod soak_routes;
mod targets;
mod tls;
mod totals;

use auth::Credentials;
pub use auth::{generate as generate_token, Token};
pub use identity::IdentityArgs;
pub use targets::Cidr;
pub use tls::{client_config as tls_client_config, ClientIdentity};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use infraqual_probes::rtt::responder::{EchoNonces, EchoResponder};
use infraqual_probes::system::dirfd::DirHandle;
use infraqual_probes::system::netns;
use infraqual_probes::CancelToken;
use tokio::net::TcpListener;

use crate::exit::Outcome;
use crate::probe_args::load_profile;
use http::AgentState;
use jobs::Jobs;

#[derive(Args, Debug, Clone)]
pub struct AgentArgs {
    /// Address to serve on, e.g. 0.0.0.0:7070 (port 0 picks a free port).
    #[arg(long, value_name = "ADDR")]
    pub listen: SocketAddr,
    /// File holding the bearer token every request must carry, loopback
    /// included (mode 0600, at least 128 bits, e.g. `openssl rand -hex 16`).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// A second token that reads health, inventory and metrics only (for a
    /// metrics scraper); it cannot start, poll or cancel jobs.
    #[arg(long, value_name = "FILE")]
    pub read_token_file: Option<PathBuf>,
    /// A host name the agent answers to besides its IP addresses and
    /// localhost (repeatable); other Host headers get 403.
    #[arg(long = "allow-host", value_name = "NAME")]
    pub allow_hosts: Vec<String>,
    /// Addresses rtt and mtu jobs may send to besides those a coordinator
    /// registers for its plan's agents (repeatable, e.g. 10.0.0.0/8).
    #[arg(long = "allow-target", value_name = "CIDR")]
    pub allow_targets: Vec<Cidr>,
    /// Serve plain HTTP beyond loopback (tokens then cross the network in
    /// clear text); without it a non-loopback --listen needs --tls-cert.
    #[arg(long)]
    pub insecure_plaintext: bool,
    /// PEM certificate chain: serve HTTPS.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA certificate(s): clients must present a certificate one of
    /// them signed (mutual TLS); needs --tls-cert.
    #[arg(long, value_name = "FILE")]
    pub client_ca: Option<PathBuf>,
    /// A directory the fsync probe may write in (repeatable); none: no writes.
    #[arg(long = "allow-dir", value_name = "DIR")]
    pub allow_dirs: Vec<PathBuf>,
    /// Node name reported in results (default: the host name).
    #[arg(long, env = "INFRAQUAL_NODE")]
    pub node: Option<String>,
    /// Run probes inside this network namespace (/run/netns/NAME).
    #[arg(long, value_name = "NAME")]
    pub netns: Option<String>,
    /// Serve UDP and TCP echo on this port of the --listen address for the
    /// rtt and mtu probes of other agents (0 picks a free port; reported in
    /// /v1/health).
    #[arg(long, value_name = "PORT", conflicts_with = "echo_listen")]
    pub echo_port: Option<u16>,
    /// Serve the echo responder on this address instead (e.g. the node's
    /// pod-network address).
    #[arg(long, value_name = "ADDR")]
    pub echo_listen: Option<SocketAddr>,
    /// Write the bound address here once listening.
    #[arg(long, value_name = "FILE")]
    pub ready_file: Option<PathBuf>,
    /// Threshold profile for verdicts: a built-in name (etcd) or a TOML file.
    #[arg(long, value_name = "NAME|FILE", default_value = "etcd")]
    pub profile: String,
    #[command(flatten)]
    pub identity: IdentityArgs,
}

/// Everything the server needs, validated: bad input fails here, before
/// anything listens.
pub struct AgentConfig {
    pub listen: SocketAddr,
    pub state: AgentState,
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub ready_file: Option<PathBuf>,
    /// Kept alive as long as the server runs.
    pub echo: Option<EchoResponder>,
}

impl AgentConfig {
    pub fn from_args(args: &AgentArgs) -> Result<Self> {
        let Some(token_file) = &args.token_file else {
            bail!("--token-file is required: every request carries a token, loopback included");
        };
        let credentials = Credentials {
            jobs: Token::load("--token-file", token_file)?,
            read: args
                .read_token_file
                .as_deref()
                .map(|p| Token::load("--read-token-file", p))
                .transpose()?,
        };
        if args.tls_cert.is_none() && !args.listen.ip().is_loopback() && !args.insecure_plaintext {
            bail!(
                "--listen {}: refusing plain HTTP beyond loopback (the token would travel in \
                 clear text); give --tls-cert/--tls-key, or --insecure-plaintext",
                args.listen
            );
        }
        let mut allow_dirs = Vec::new();
        for d in &args.allow_dirs {
            let root =
                DirHandle::open(d).with_context(|| format!("--allow-dir {}", d.display()))?;
            allow_dirs.push(root);
        }
        sweep_leftovers(&allow_dirs);
        if let Some(ns) = &args.netns {
            if !netns::exists(ns) {
                bail!("--netns {ns}: no such network namespace (see `ip netns list`)");
            }
        }
        if args.client_ca.is_some() && args.tls_cert.is_none() {
            bail!("--client-ca needs --tls-cert and --tls-key: client certificates travel only over TLS");
        }
        let tls = match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => {
                Some(tls::server_config(cert, key, args.client_ca.as_deref())?)
            }
            _ => None,
        };
        let profile = load_profile(&args.profile)?;
        let identity = identity::Identity::from_args(&args.identity)?;
        let node = args
            .node
            .clone()
            .unwrap_or_else(|| sysinfo_hostname().unwrap_or_else(|| "agent".to_string()));
        let echo_bind = args.echo_listen.or_else(|| {
            args.echo_port
                .map(|port| SocketAddr::new(args.listen.ip(), port))
        });
        let echo_nonces = Arc::new(EchoNonces::default());
        let echo = echo_bind
            .map(|bind| start_echo(bind, args.netns.as_deref(), Arc::clone(&echo_nonces)))
            .transpose()?;
        let mut jobs = Jobs::new(
            node.clone(),
            profile.clone(),
            allow_dirs,
            args.netns.clone(),
        );
        jobs.targets = Arc::new(targets::TargetPolicy::new(args.allow_targets.clone()));
        Ok(AgentConfig {
            listen: args.listen,
            state: AgentState {
                credentials,
                echo_nonces,
                allowed_hosts: args.allow_hosts.clone(),
                jobs,
                soaks: soak::Soaks::default(),
                node,
                profile,
                echo_port: echo.as_ref().map(EchoResponder::port),
                netns: args.netns.clone(),
                identity,
            },
            tls,
            ready_file: args.ready_file.clone(),
            echo,
        })
    }
}

/// What an earlier agent that crashed left: fsync work directories under
/// the allowed directories and services sandbox namespaces; each removal is
/// logged by the sweep.
fn sweep_leftovers(allow_dirs: &[DirHandle]) {
    for root in allow_dirs {
        infraqual_probes::fsync::leftovers::sweep_tree(root, LEFTOVER_DEPTH);
    }
    infraqual_probes::services::sweep_orphans();
}

/// How deep below an allowed directory fsync leftovers are looked for.
const LEFTOVER_DEPTH: usize = 3;

/// Starts the echo responder from a thread inside the agent's namespace, so
/// the responder's threads (which inherit it) serve there.
fn start_echo(
    bind: SocketAddr,
    netns: Option<&str>,
    nonces: Arc<EchoNonces>,
) -> Result<EchoResponder> {
    let netns = netns.map(str::to_string);
    let started = std::thread::Builder::new()
        .name("echo-setup".into())
        .spawn(move || -> Result<EchoResponder> {
            if let Some(ns) = &netns {
                netns::enter(ns)?;
            }
            Ok(EchoResponder::start_gated(
                bind,
                CancelToken::new(),
                Some(nonces),
            )?)
        })
        .context("starting the echo responder thread")?
        .join()
        .map_err(|_| anyhow::anyhow!("the echo responder thread panicked"))?;
    started.with_context(|| format!("echo responder on {bind}"))
}

fn sysinfo_hostname() -> Option<String> {
    infraqual_probes::system::read_trimmed("/proc/sys/kernel/hostname")
}

pub fn run(args: &AgentArgs) -> Result<Outcome> {
    let config = AgentConfig::from_args(args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("--listen {}", config.listen))?;
        serve(listener, config, shutdown_signal()).await
    })?;
    Ok(Outcome::Pass)
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
}

/// Connections served at once; more are closed as soon as accepted, so
/// held-open connections cannot exhaust tasks and descriptors.
pub const MAX_CONNECTIONS: usize = 256;

/// Serves until `shutdown` resolves, then cancels every job and waits for
/// the probes to clean up.
pub async fn serve(
    listener: TcpListener,
    config: AgentConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<()> {
    let local = listener.local_addr().context("reading the bound address")?;
    if let Some(path) = &config.ready_file {
        infraqual_reports::atomic::write(path, local.to_string().as_bytes())
            .with_context(|| format!("--ready-file {}", path.display()))?;
    }
    tracing::info!(%local, "agent listening");
    let state = Arc::new(config.state);
    let reaper_jobs = state.jobs.clone();
    let reaper = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tick.tick().await;
            reaper_jobs.reap();
        }
    });
    let tls = config.tls.map(tokio_rustls::TlsAcceptor::from);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                tracing::warn!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            tracing::warn!(%peer, "connection refused: {MAX_CONNECTIONS} connections open");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let state = Arc::clone(&state);
        let tls = tls.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let service = service_fn(move |req| http::handle(Arc::clone(&state), peer, req));
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10));
            let served = match tls {
                Some(acceptor) => match acceptor.accept(stream).await {
                    Ok(s) => builder.serve_connection(TokioIo::new(s), service).await,
                    Err(e) => {
                        tracing::debug!("TLS handshake: {e}");
                        return;
                    }
                },
                None => {
                    builder
                        .serve_connection(TokioIo::new(stream), service)
                        .await
                }
            };
            if let Err(e) = served {
                tracing::debug!("connection: {e}");
            }
        });
    }
    reaper.abort();
    let jobs = state.jobs.clone();
    let _ = tokio::task::spawn_blocking(move || jobs.shutdown(Duration::from_secs(20))).await;
    if let Some(path) = &config.ready_file {
        let _ = std::fs::remove_file(path);
    }
    drop(config.echo);
    Ok(())
}
