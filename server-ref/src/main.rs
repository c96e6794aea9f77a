//! `licensing-server`: the vendor's toolbox (keys, issue, verify, inspect) and the reference
//! server (`serve`). The command-line surface is a contract other tools drive; see README.

mod cli;
mod server;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::run()
}
