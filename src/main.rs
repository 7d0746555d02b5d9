//! The `nftjail` binary: parses arguments, calls the library, maps the result to an exit code.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use nftjail::cli::{self, Cli};

fn main() -> ExitCode {
    // clap prints usage errors itself and exits with 2.
    let args = Cli::parse();
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of our output went away (`nftjail banned | head`): nothing to report.
        Err(cli::CliError::ClosedPipe) => ExitCode::SUCCESS,
        Err(err) => {
            match &err {
                // One `PATH:LINE:COL: message` per line, as editors and CI expect them.
                cli::CliError::Config(diagnostics) => nftjail::errln!("{diagnostics}"),
                other => nftjail::errln!("nftjail: {other}"),
            }
            ExitCode::from(err.exit_code())
        }
    }
}
