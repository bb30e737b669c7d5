//! Flags of the commands that measure this machine into a run bundle
//! (`qualify`, `soak`).

use std::path::PathBuf;

use clap::Args;

#[derive(Args, Debug)]
pub struct LocalRunArgs {
    /// Where run bundles go.
    #[arg(long, value_name = "DIR", default_value = "runs")]
    pub out: PathBuf,
    /// Threshold profile: a built-in name (etcd) or a TOML file.
    #[arg(long, value_name = "NAME|FILE", default_value = "etcd")]
    pub profile: String,
    /// Node name recorded in the results.
    #[arg(long, default_value = "local")]
    pub node: String,
}
