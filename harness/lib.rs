//! The infraqual harness: CLI, qualify, run bundles and report rendering on
//! top of the probes and reports crates.

pub mod agent;
pub mod api;
pub mod cli;
pub mod commands;
pub mod coordinator;
pub mod exit;
pub mod lab;
pub mod probe_args;
pub mod progress;
pub mod signals;
pub mod table;
