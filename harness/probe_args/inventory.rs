use anyhow::Result;
use clap::Args;
use infraqual_probes::ProbeName;
use serde_json::{json, Value};

use super::{CommonArgs, ProbeArgs};

#[derive(Args, Debug)]
pub struct InventoryArgs {
    #[command(flatten)]
    pub common: CommonArgs,
}

impl ProbeArgs for InventoryArgs {
    const PROBE: ProbeName = infraqual_probes::inventory::NAME;

    fn common(&self) -> &CommonArgs {
        &self.common
    }

    fn params(&self) -> Result<Value> {
        Ok(json!({}))
    }
}
