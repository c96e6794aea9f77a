//! `licensing-server`: the vendor's toolbox (keys, issue, verify, inspect) and the reference
//! server (`serve`). The command-line surface is a contract other tools drive; see README.

mod cli;
mod cli_input;
mod server;

use std::process::ExitCode;

// mimalloc instead of the system allocator: a validation allocates a few hundred small buffers
// (HTTP, JSON, claims), and glibc malloc took 13 % of the server's CPU under load
// (docs/BENCHMARKS.md, "Online validation").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    cli::run()
}
