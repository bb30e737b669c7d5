//! The infraqual harness: CLI, qualify, run bundles and report rendering on
//! top of the probes and reports crates.
//!
//! Unsafe code is denied except in the files that allow it at their top
//! (signal handlers, lab processes, the delay line's TUN device, a soak
//! bundle's flock), every
//! block with its SAFETY argument.

#![deny(unsafe_code)]

pub mod agent;
pub mod api;
pub mod cli;
pub mod commands;
pub mod coordinator;
pub mod exit;
pub mod lab;
pub mod probe_args;
pub mod progress;
pub mod rounds;
pub mod signals;
pub mod soak;
pub mod table;
