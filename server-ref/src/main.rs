//! `licensing-server`: the vendor's toolbox (keys, issue, verify, inspect) and, later, the
//! reference server. The command-line surface is a contract other tools drive; see README.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::run()
}
