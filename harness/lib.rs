//! The infraqual harness: CLI, qualify, run bundles and report rendering on
//! top of the probes and reports crates.

pub mod cli;
pub mod commands;
pub mod exit;
pub mod probe_args;
pub mod progress;
pub mod signals;
pub mod table;
