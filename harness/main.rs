//! The `infraqual` binary: a thin shell over the library.

use std::process::ExitCode;

fn main() -> ExitCode {
    infraqual::cli::main()
}
