//! Starting the real `licensing-server serve` for the end-to-end tests and the load harnesses:
//! the one place that reads its start-up lines (the bootstrap admin token on a first start,
//! then the address it listens on).
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The line `serve` prints once, on the first start, before the token.
pub const ADMIN_TOKEN_LINE: &str = "admin API token (shown once, only its hash is stored): ";
/// The line `serve` prints when it accepts connections, before the address.
pub const LISTENING_LINE: &str = "listening on http://";
/// The same line when `serve` speaks TLS (`--tls-cert`).
pub const LISTENING_TLS_LINE: &str = "listening on https://";

/// A started server: the process (the caller owns killing it), its address and, on a first
/// start, the bootstrap admin token.
pub struct Started {
    /// The `licensing-server serve` process.
    pub child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// The bootstrap admin API token, printed on the first start only.
    pub admin_token: Option<String>,
}

/// Runs `serve` (the caller has set its arguments, environment and stderr) with stdout piped,
/// and waits up to `timeout` for the address. Stdout is drained for the life of the process,
/// so the server never blocks on a full pipe. Panics when the server does not start (a test
/// cannot go on): its stderr says why.
pub fn spawn_serve(mut serve: Command, timeout: Duration) -> Started {
    let mut child = serve.stdout(Stdio::piped()).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // After start-up nobody listens; keep reading all the same.
            let _ = tx.send(line);
        }
    });
    let mut admin_token = None;
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = match rx.recv_timeout(left) {
            Ok(line) => line,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the server did not start ({e}); see its stderr");
            }
        };
        if let Some(token) = line.strip_prefix(ADMIN_TOKEN_LINE) {
            assert!(admin_token.is_none(), "bootstrap token printed twice");
            admin_token = Some(token.to_owned());
        } else if let Some(addr) = line
            .strip_prefix(LISTENING_LINE)
            .or_else(|| line.strip_prefix(LISTENING_TLS_LINE))
        {
            return Started {
                child,
                addr: addr.to_owned(),
                admin_token,
            };
        }
    }
}
