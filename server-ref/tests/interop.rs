//! Interop with an independent JOSE implementation: runs `tests/interop/pyjwt_interop.py`
//! (PyJWT + cryptography + jsonschema) against the `licensing-server` binary.
//!
//! Python and its modules are required, not optional: without them this test fails and says
//! how to install them, so a machine that lacks them can never pass silently.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

const INSTALL: &str = "python3 -m pip install -r tests/interop/requirements.txt";

fn python(root: &Path, args: &[&std::ffi::OsStr]) -> Output {
    match Command::new("python3")
        .args(args)
        .current_dir(root)
        .output()
    {
        Ok(output) => output,
        Err(e) => panic!(
            "python3 could not be run ({e}). The PyJWT interop test needs Python 3 with PyJWT, \
             cryptography and jsonschema: install python3, then run `{INSTALL}` in {}",
            root.display()
        ),
    }
}

#[test]
fn pyjwt_interop() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("server-ref lives inside the workspace");

    let probe = python(
        root,
        &[
            "-c".as_ref(),
            "import jwt, cryptography, jsonschema".as_ref(),
        ],
    );
    assert!(
        probe.status.success(),
        "the PyJWT interop test needs the Python modules jwt (PyJWT), cryptography and \
         jsonschema; run `{INSTALL}` in {}\n{}",
        root.display(),
        String::from_utf8_lossy(&probe.stderr)
    );

    let tmp = tempfile::tempdir().expect("temporary directory");
    let script = root.join("tests/interop/pyjwt_interop.py");
    let examples = root.join("examples/licenses");
    let output = python(
        root,
        &[
            script.as_os_str(),
            env!("CARGO_BIN_EXE_licensing-server").as_ref(),
            tmp.path().as_os_str(),
            examples.as_os_str(),
        ],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        output.status.success(),
        "pyjwt_interop.py failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    let summary = stdout.lines().last().unwrap_or_default();
    assert!(
        summary.ends_with(" passed, 0 failed") && !summary.starts_with("0 passed"),
        "unexpected summary: {summary:?}"
    );
}
