//! The `infraqual` binary: a thin shell over the library.

#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    infraqual::cli::main()
}
