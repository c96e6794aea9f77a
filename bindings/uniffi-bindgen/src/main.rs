//! Runs the uniffi generator at the workspace's uniffi version.
fn main() {}
