//! The one support module of the integration tests in `server-ref/tests/` (each test file
//! declares `mod support;` and uses the parts it needs):
//! - `backend`: SQLite or a fresh PostgreSQL database, and running a test on both;
//! - `cli`: the command line on a server's database, and SQL straight on it;
//! - `online_server`: a `licensing-server serve` started on 127.0.0.1 with a product, policies
//!   and licenses, and an online client for it;
//! - `spawn`: starting `serve` and reading its first lines;
//! - `postgres` and `held_check`: the crate's own test helpers (`src/server/test_postgres.rs`,
//!   `src/server/db/held_check.rs`), shared with the in-process tests.
//!
//! A new integration test file starts from these instead of its own setup; the in-process
//! tests (`src/server/tests/`) have their own harness (`src/server/tests/harness.rs`).

// Each test binary uses a part of the support module.
#![allow(dead_code)]

pub mod backend;
pub mod cli;
#[path = "../../src/server/db/held_check.rs"]
pub mod held_check;
pub mod online_server;
#[path = "../../src/server/test_postgres.rs"]
pub mod postgres;
pub mod spawn;
