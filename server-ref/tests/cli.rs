//! The vendor CLI is a contract: flags, file names, output and exit codes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_licensing-server"))
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("examples/licenses")
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

struct Keys {
    dir: tempfile::TempDir,
    kid: String,
}

impl Keys {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let out = run(&["keys", "generate", "--out", dir.path().to_str().unwrap()]);
        assert!(out.status.success(), "{}", stderr(&out));
        Keys {
            kid: stdout(&out).trim().to_owned(),
            dir,
        }
    }
    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_owned()
    }
    fn issue(&self, claims: &Path) -> String {
        let out = run(&[
            "license",
            "issue",
            "--private-key",
            &self.path("private.pem"),
            "--claims",
            claims.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        let token = stdout(&out).trim().to_owned();
        let file = self.dir.path().join(format!(
            "{}.jwt",
            claims.file_stem().unwrap().to_str().unwrap()
        ));
        std::fs::write(&file, &token).unwrap();
        file.to_str().unwrap().to_owned()
    }
    fn verify(&self, token_file: &str, extra: &[&str]) -> (i32, serde_json::Value) {
        let mut args = vec![
            "license",
            "verify",
            "--public-key",
            self.path("public.pem").leak(),
            "--token",
            token_file,
            "--json",
        ];
        args.extend_from_slice(extra);
        let out = run(&args);
        let code = out.status.code().unwrap();
        let json = serde_json::from_str(&stdout(&out))
            .unwrap_or_else(|e| panic!("{e}: {} {}", stdout(&out), stderr(&out)));
        (code, json)
    }
}

#[test]
fn keys_generate_writes_the_three_files() {
    let keys = Keys::new();
    assert_eq!(keys.kid.len(), 43, "base64url SHA-256 thumbprint");
    let private = std::fs::read_to_string(keys.path("private.pem")).unwrap();
    assert!(private.starts_with("-----BEGIN PRIVATE KEY-----"));
    let public = std::fs::read_to_string(keys.path("public.pem")).unwrap();
    assert!(public.starts_with("-----BEGIN PUBLIC KEY-----"));
    let jwks: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(keys.path("jwks.json")).unwrap()).unwrap();
    assert_eq!(jwks["keys"][0]["kid"], keys.kid.as_str());
    assert_eq!(jwks["keys"][0]["kty"], "OKP");
    assert!(jwks["keys"][0].get("d").is_none(), "no private part");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(keys.path("private.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Refuses to overwrite a key without --force.
    let again = run(&[
        "keys",
        "generate",
        "--out",
        keys.dir.path().to_str().unwrap(),
    ]);
    assert_eq!(again.status.code(), Some(2));
    assert!(stderr(&again).contains("--force"));
}

#[test]
fn every_sample_license_issues_and_verifies() {
    let keys = Keys::new();
    let cases: &[(&str, &[&str], &str)] = &[
        (
            "perpetual",
            &["--version", "2.4.0", "--release-date", "2026-06-01"],
            "valid",
        ),
        ("subscription", &["--feature", "export_step"], "valid"),
        ("trial", &[], "valid"),
        ("floating", &[], "valid"),
        // No fingerprint given: a node-locked license is never valid without one.
        ("node_locked", &[], "fingerprint_mismatch"),
        (
            "site",
            &["--attribute", "country=DE", "--attribute", "department=R&D"],
            "valid",
        ),
    ];
    for (model, extra, expected) in cases {
        let token = keys.issue(&examples().join(format!("{model}.json")));
        let mut args = vec![
            "--product",
            "com.example.cad",
            "--at",
            "2026-11-25T00:00:00Z",
        ];
        args.extend_from_slice(extra);
        let (code, verdict) = keys.verify(&token, &args);
        assert_eq!(verdict["status"], *expected, "{model}: {verdict}");
        assert_eq!(verdict["model"], *model);
        assert_eq!(code, if *expected == "valid" { 0 } else { 1 }, "{model}");
        assert_eq!(verdict["usable"], *expected == "valid");
        let status = licensing_core::Status::ALL
            .into_iter()
            .find(|s| s.as_str() == *expected)
            .unwrap();
        assert_eq!(verdict["message"], status.message());
    }
}

#[test]
fn verify_reports_grace_expiry_and_not_yet_valid_with_exit_codes() {
    let keys = Keys::new();
    let dir = tempfile::tempdir().unwrap();
    let claims = dir.path().join("sub.json");
    std::fs::write(
        &claims,
        r#"{"iss":"i","sub":"lic_9","aud":"p","nbf":1767225600,"exp":1798761600,
            "lic":{"model":"subscription","grace_period":864000}}"#,
    )
    .unwrap();
    let token = keys.issue(&claims);
    let (code, v) = keys.verify(&token, &["--product", "p", "--at", "2027-01-02T00:00:00Z"]);
    assert_eq!((code, v["status"].as_str().unwrap()), (0, "valid_in_grace"));
    assert_eq!(v["grace_left"], 9 * 86_400);
    let (code, v) = keys.verify(&token, &["--product", "p", "--at", "2027-01-11T00:00:00Z"]);
    assert_eq!((code, v["status"].as_str().unwrap()), (1, "expired"));
    let (code, v) = keys.verify(&token, &["--product", "p", "--at", "2025-12-31T23:59:59Z"]);
    assert_eq!((code, v["status"].as_str().unwrap()), (1, "not_yet_valid"));
    let (code, v) = keys.verify(&token, &["--product", "other"]);
    assert_eq!(
        (code, v["status"].as_str().unwrap()),
        (1, "product_mismatch")
    );
}

#[test]
fn verify_accepts_jwks_several_keys_and_stdin() {
    let a = Keys::new();
    let b = Keys::new();
    let token = a.issue(&examples().join("trial.json"));
    let text = std::fs::read_to_string(&token).unwrap();
    let mut child = bin()
        .args([
            "license",
            "verify",
            "--public-key",
            &b.path("public.pem"),
            "--public-key",
            &a.path("jwks.json"),
            "--token",
            "-",
            "--product",
            "com.example.cad",
            "--at",
            "2026-11-25T00:00:00Z",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{text}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).contains("status:     valid"));
    // The end-user sentence is the core's (`Status::message`), as in C and the bindings.
    assert!(
        stdout(&out).contains("message:    The license may be used.\n"),
        "{}",
        stdout(&out)
    );
    // Only the other key trusted: unknown key, exit 1.
    let out = run(&[
        "license",
        "verify",
        "--public-key",
        &b.path("public.pem"),
        "--token",
        &token,
        "--product",
        "com.example.cad",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("unknown_key"), "{}", stdout(&out));
}

#[test]
fn usage_errors_exit_2() {
    let keys = Keys::new();
    let token = keys.issue(&examples().join("trial.json"));
    let pk = keys.path("public.pem");
    let bad: &[&[&str]] = &[
        &["license", "verify", "--token", &token],
        &[
            "license",
            "verify",
            "--public-key",
            "/nonexistent.pem",
            "--token",
            &token,
            "--product",
            "com.example.cad",
        ],
        &[
            "license",
            "verify",
            "--public-key",
            &token,
            "--token",
            &token,
            "--product",
            "com.example.cad",
        ],
        &[
            "license",
            "verify",
            "--public-key",
            &pk,
            "--product",
            "com.example.cad",
            "--token",
            &token,
            "--at",
            "yesterday",
        ],
        &[
            "license",
            "verify",
            "--public-key",
            &pk,
            "--product",
            "com.example.cad",
            "--token",
            &token,
            "--version",
            "1.x",
        ],
        &[
            "license",
            "verify",
            "--public-key",
            &pk,
            "--product",
            "com.example.cad",
            "--token",
            &token,
            "--attribute",
            "novalue",
        ],
        &[
            "license",
            "verify",
            "--public-key",
            &pk,
            "--product",
            "com.example.cad",
            "--token",
            "/nonexistent.jwt",
        ],
        &["license", "issue", "--private-key", &pk, "--claims", &token],
        &["license", "bogus"],
    ];
    for args in bad {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).is_empty());
    }
}

#[test]
fn invalid_claims_name_the_field() {
    let keys = Keys::new();
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            r#"{"iss":"i","sub":"s","aud":"p","lic":{"model":"lifetime"}}"#,
            "lic.model",
        ),
        (
            r#"{"iss":"i","sub":"s","aud":"p","lic":{"model":"perpetual","features":{"x":{"limit":-1}}}}"#,
            "lic.features.x.limit",
        ),
        (
            r#"{"iss":"i","sub":"s","aud":"p","lic":{"model":"trial"}}"#,
            "exp",
        ),
        (
            r#"{"iss":"i","sub":"s","aud":"p","lic":{"model":"floating"}}"#,
            "lic.seats",
        ),
        (
            r#"{"iss":"i","sub":"s","aud":"p","lic":{"model":"floating","seats":2,"exp":1}}"#,
            "unknown field `exp`",
        ),
        (
            r#"{"iss":"i","sub":"s","aud":"p","lic":{"model":"site","site":{"restriction":{}}}}"#,
            "lic.site.restriction",
        ),
        (
            r#"{"iss":"i","sub":"s","sub":"t","aud":"p","lic":{"model":"perpetual"}}"#,
            "duplicate key `sub`",
        ),
        (
            r#"{"iss":"i","aud":"p","lic":{"model":"perpetual"}}"#,
            "sub",
        ),
        // New claims: no control characters or bidi overrides in text, sensible counts.
        (
            r#"{"iss":"i","sub":"s","aud":"p","lic":{"model":"perpetual","customer":{"name":"a\u001b[2Jb"}}}"#,
            "lic.customer.name",
        ),
        (
            r#"{"iss":"i","sub":"s","aud":"p","lic":{"model":"perpetual","metadata":{"k":"\u202egnp.exe"}}}"#,
            "lic.metadata.k",
        ),
        (
            r#"{"iss":"i","sub":"s","aud":"p","lic":{"model":"perpetual","seats":3}}"#,
            "lic.seats",
        ),
    ];
    let private = keys.path("private.pem");
    for (i, (json, field)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("{i}.json"));
        std::fs::write(&path, json).unwrap();
        let out = run(&[
            "license",
            "issue",
            "--private-key",
            &private,
            "--claims",
            path.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(1), "{json}");
        assert!(stdout(&out).is_empty(), "no token on failure");
        assert!(stderr(&out).contains(field), "{json}: {}", stderr(&out));
    }
}

#[test]
fn inspect_is_labelled_unverified() {
    let keys = Keys::new();
    let token = keys.issue(&examples().join("site.json"));
    let out = run(&["license", "inspect", "--token", &token]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["verified"], false);
    assert!(v["WARNING"].as_str().unwrap().contains("UNVERIFIED"));
    assert_eq!(v["header"]["kid"], keys.kid.as_str());
    assert_eq!(v["header"]["typ"], "license+jwt");
    assert_eq!(v["payload"]["lic"]["model"], "site");
    // iat and jti were filled in by `issue`.
    assert!(v["payload"]["iat"].as_i64().unwrap() > 1_700_000_000);
    assert_eq!(v["payload"]["jti"].as_str().unwrap().len(), 32);
}

#[test]
fn openssl_reads_the_generated_keys() {
    let keys = Keys::new();
    let out = Command::new("openssl")
        .args(["pkey", "-in", &keys.path("private.pem"), "-pubout"])
        .output()
        .expect("openssl must be installed (the test command installs it)");
    assert!(out.status.success(), "{}", stderr(&out));
    let public = std::fs::read_to_string(keys.path("public.pem")).unwrap();
    assert_eq!(stdout(&out), public);
    // And a key written by `openssl genpkey` signs licenses.
    let dir = tempfile::tempdir().unwrap();
    let foreign = dir.path().join("openssl.pem");
    let out = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "ed25519",
            "-out",
            foreign.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = run(&[
        "license",
        "issue",
        "--private-key",
        foreign.to_str().unwrap(),
        "--claims",
        examples().join("trial.json").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
}

fn fingerprint_json(args: &[&str], env: Option<(&str, &str)>) -> serde_json::Value {
    let mut cmd = bin();
    cmd.args(["machine", "fingerprint", "--json"]).args(args);
    cmd.env_remove("LICENSING_FINGERPRINT_OVERRIDE");
    if let Some((k, v)) = env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_str(&stdout(&out)).unwrap()
}

#[test]
fn machine_fingerprint_is_stable_across_processes_and_salted_per_product() {
    let a = fingerprint_json(&["--product", "com.example.cad"], None);
    let b = fingerprint_json(&["--product", "com.example.cad"], None);
    assert_eq!(
        a, b,
        "same machine, same product: same fingerprint in another process"
    );
    let c = fingerprint_json(&["--product", "com.example.viewer"], None);
    assert_ne!(a["id"], c["id"]);
    let components = a["components"].as_object().unwrap();
    assert!(components.contains_key("machine_id"), "{a}");
    assert!(components.contains_key("os"), "{a}");
    for (name, hash) in components {
        assert_eq!(
            hash.as_str().unwrap().len(),
            43,
            "{name}: base64url SHA-256"
        );
        assert_ne!(c["components"][name], *hash, "{name} salted per product");
    }
    // The human form prints the same id.
    let out = run(&["machine", "fingerprint", "--product", "com.example.cad"]);
    assert!(stdout(&out).contains(a["id"].as_str().unwrap()));
}

#[test]
fn machine_fingerprint_honours_the_override() {
    let plain = fingerprint_json(&["--product", "p"], None);
    let a = fingerprint_json(
        &["--product", "p"],
        Some(("LICENSING_FINGERPRINT_OVERRIDE", "node-1")),
    );
    let b = fingerprint_json(
        &["--product", "p"],
        Some(("LICENSING_FINGERPRINT_OVERRIDE", "node-2")),
    );
    assert_ne!(a["id"], plain["id"]);
    assert_ne!(a["id"], b["id"]);
    let names: Vec<&String> = a["components"].as_object().unwrap().keys().collect();
    assert_eq!(names, ["override"]);
    assert_eq!(
        a["is_virtual"], plain["is_virtual"],
        "VM signals still reported"
    );
}

#[test]
fn node_locked_license_verifies_against_a_fingerprint_file() {
    let keys = Keys::new();
    let fp = fingerprint_json(&["--product", "com.example.cad"], None);
    let fp_file = keys.dir.path().join("fp.json");
    std::fs::write(&fp_file, fp.to_string()).unwrap();
    let n = fp["components"].as_object().unwrap().len();
    let claims = serde_json::json!({
        "iss": "i", "sub": "lic_nl", "aud": "com.example.cad",
        "lic": {"model": "node_locked", "node_lock": {
            "fingerprints": [{"id": fp["id"], "components": fp["components"]}],
            "match": {"required": ["machine_id"], "min_matching": n - 1}
        }}
    });
    let claims_file = keys.dir.path().join("nl.json");
    std::fs::write(&claims_file, claims.to_string()).unwrap();
    let token = keys.issue(&claims_file);
    let fp_arg = fp_file.to_str().unwrap();
    let (code, v) = keys.verify(
        &token,
        &["--product", "com.example.cad", "--fingerprint-file", fp_arg],
    );
    assert_eq!((code, v["status"].as_str().unwrap()), (0, "valid"), "{v}");

    // One component changed (within min_matching = n - 1): still valid, and explained.
    let mut moved = fp.clone();
    moved["components"]["hostname"] = "changed".into();
    std::fs::write(&fp_file, moved.to_string()).unwrap();
    let (code, v) = keys.verify(
        &token,
        &["--product", "com.example.cad", "--fingerprint-file", fp_arg],
    );
    assert_eq!(code, 0, "{v}");
    assert!(v["reason"].as_str().unwrap().contains("hostname"), "{v}");

    // The machine id changed: mismatch naming it.
    moved["components"]["machine_id"] = "other".into();
    std::fs::write(&fp_file, moved.to_string()).unwrap();
    let (code, v) = keys.verify(
        &token,
        &["--product", "com.example.cad", "--fingerprint-file", fp_arg],
    );
    assert_eq!(
        (code, v["status"].as_str().unwrap()),
        (1, "fingerprint_mismatch"),
        "{v}"
    );
    assert!(v["reason"].as_str().unwrap().contains("machine_id"), "{v}");

    // A broken fingerprint file is a usage error.
    std::fs::write(&fp_file, "{\"id\": 5}").unwrap();
    let out = run(&[
        "license",
        "verify",
        "--public-key",
        &keys.path("public.pem"),
        "--token",
        &token,
        "--product",
        "com.example.cad",
        "--fingerprint-file",
        fp_arg,
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not a fingerprint"),
        "{}",
        stderr(&out)
    );
}

/// Review: `license verify` without `--product` accepted another product's (another
/// tenant's) token signed by the same key. It now asks for `--product`; `--any-product` skips
/// the check only with a warning on stderr and in the JSON.
#[test]
fn verify_asks_for_the_product_or_warns_loudly() {
    let keys = Keys::new();
    let dir = tempfile::tempdir().unwrap();
    let claims = dir.path().join("tenant_b.json");
    std::fs::write(
        &claims,
        r#"{"iss":"i","sub":"lic_b","aud":"com.tenant-b.app","lic":{"model":"perpetual"}}"#,
    )
    .unwrap();
    let token = keys.issue(&claims);
    let pk = keys.path("public.pem");
    // The quick start's old invocation: refused, exit 2, saying what to pass.
    let out = run(&["license", "verify", "--public-key", &pk, "--token", &token]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(stderr(&out).contains("--product"), "{}", stderr(&out));
    assert!(stdout(&out).is_empty());
    // Tenant A's app checks its own product: tenant B's token is refused.
    let (code, v) = keys.verify(&token, &["--product", "com.example.cad"]);
    assert_eq!(
        (code, v["status"].as_str().unwrap()),
        (1, "product_mismatch")
    );
    assert_eq!(v["product_checked"], true);
    assert!(v.get("warning").is_none());
    // --any-product: accepted, and said loudly.
    let (code, v) = keys.verify(&token, &["--any-product"]);
    assert_eq!((code, v["status"].as_str().unwrap()), (0, "valid"), "{v}");
    assert_eq!(v["product_checked"], false);
    assert!(v["warning"].as_str().unwrap().contains("NOT"), "{v}");
    let out = run(&[
        "license",
        "verify",
        "--public-key",
        &pk,
        "--token",
        &token,
        "--any-product",
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("WARNING"), "{}", stderr(&out));
    assert!(stdout(&out).contains("NOT checked"), "{}", stdout(&out));
    // Both at once is a contradiction.
    let out = run(&[
        "license",
        "verify",
        "--public-key",
        &pk,
        "--token",
        &token,
        "--any-product",
        "--product",
        "com.example.cad",
    ]);
    assert_eq!(out.status.code(), Some(2));
}

/// Review: `license verify --token /dev/zero` grew to 4.7 GB. Every file the CLI reads is
/// capped: an endless or oversized input fails at once, exit 2, naming the flag and the cap.
#[test]
fn every_input_is_capped() {
    let keys = Keys::new();
    let token = keys.issue(&examples().join("trial.json"));
    let pk = keys.path("public.pem");
    let private = keys.path("private.pem");
    let claims = examples().join("trial.json");
    let claims = claims.to_str().unwrap();
    let zero = "/dev/zero";
    fn verify<'a>(extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec!["license", "verify", "--product", "com.example.cad"];
        args.extend_from_slice(extra);
        args
    }
    // A token file one byte past the 64 KiB token and its line ending.
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.jwt");
    std::fs::write(&big, vec![b'a'; 64 * 1024 + 3]).unwrap();
    let big = big.to_str().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (verify(&["--public-key", &pk, "--token", zero]), "--token"),
        (verify(&["--public-key", &pk, "--token", big]), "--token"),
        (
            verify(&["--public-key", zero, "--token", &token]),
            "--public-key",
        ),
        (
            verify(&[
                "--public-key",
                &pk,
                "--token",
                &token,
                "--fingerprint-file",
                zero,
            ]),
            "--fingerprint-file",
        ),
        (
            vec![
                "license",
                "issue",
                "--private-key",
                zero,
                "--claims",
                claims,
            ],
            "--private-key",
        ),
        (
            vec![
                "license",
                "issue",
                "--private-key",
                &private,
                "--claims",
                zero,
            ],
            "--claims",
        ),
        (vec!["license", "inspect", "--token", zero], "--token"),
        (vec!["license", "inspect", "--token", big], "--token"),
    ];
    for (args, flag) in cases {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains(flag) && err.contains("larger than"),
            "{args:?}: {err}"
        );
        assert!(stdout(&out).is_empty(), "{args:?}");
    }
    // stdin (`--token -`) endless too.
    for args in [
        verify(&["--public-key", &pk, "--token", "-"]),
        vec!["license", "inspect"],
    ] {
        let out = bin()
            .args(&args)
            .stdin(std::fs::File::open(zero).unwrap())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("stdin: larger than 64 KiB"),
            "{}",
            stderr(&out)
        );
    }
    // A token exactly at the cap is read (and judged by the format, not the reader).
    let exact = dir.path().join("exact.jwt");
    let text = std::fs::read_to_string(&token).unwrap();
    std::fs::write(&exact, format!("{text}\r\n")).unwrap();
    let (code, _) = keys.verify(exact.to_str().unwrap(), &["--product", "com.example.cad"]);
    assert_eq!(code, 0);
}

/// A token file saved with a UTF-8 byte order mark (Windows editors) verifies.
#[test]
fn a_byte_order_mark_is_not_part_of_the_token() {
    let keys = Keys::new();
    let token = keys.issue(&examples().join("trial.json"));
    let text = std::fs::read_to_string(&token).unwrap();
    std::fs::write(&token, format!("\u{feff}{text}\n")).unwrap();
    let (code, v) = keys.verify(&token, &["--product", "com.example.cad"]);
    assert_eq!((code, v["status"].as_str().unwrap()), (0, "valid"), "{v}");
}

/// Review: `keys generate` overwrote public.pem and jwks.json without --force, and wrote
/// through symlinks. Each of the three files is refused without --force, a link is never
/// followed (without --force it counts as an existing file; with --force it is replaced by
/// a regular file and its target is untouched).
#[cfg(unix)]
#[test]
fn keys_generate_never_overwrites_or_follows_links() {
    use std::os::unix::fs::{PermissionsExt, symlink};
    for name in ["private.pem", "public.pem", "jwks.json"] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("keys");
        std::fs::create_dir(&out).unwrap();
        std::fs::write(out.join(name), "mine\n").unwrap();
        let o = run(&["keys", "generate", "--out", out.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2), "{name}");
        assert!(
            stderr(&o).contains(name) && stderr(&o).contains("--force"),
            "{}",
            stderr(&o)
        );
        assert_eq!(std::fs::read_to_string(out.join(name)).unwrap(), "mine\n");
        let others = std::fs::read_dir(&out).unwrap().count();
        assert_eq!(others, 1, "{name}: nothing else written");

        // A link to a file elsewhere (the attacker's target), and a dangling one.
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "victim\n").unwrap();
        std::fs::remove_file(out.join(name)).unwrap();
        symlink(&victim, out.join(name)).unwrap();
        let o = run(&["keys", "generate", "--out", out.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2), "{name}: {}", stderr(&o));
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "victim\n");
        let dangling = dir.path().join("dangling");
        std::fs::remove_file(out.join(name)).unwrap();
        symlink(&dangling, out.join(name)).unwrap();
        let o = run(&["keys", "generate", "--out", out.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2), "{name}: {}", stderr(&o));
        assert!(
            !dangling.exists(),
            "{name}: created through a dangling link"
        );

        // --force replaces the link itself.
        std::fs::remove_file(out.join(name)).unwrap();
        symlink(&victim, out.join(name)).unwrap();
        let o = run(&[
            "keys",
            "generate",
            "--out",
            out.to_str().unwrap(),
            "--force",
        ]);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        assert_eq!(
            std::fs::read_to_string(&victim).unwrap(),
            "victim\n",
            "{name}"
        );
        let meta = std::fs::symlink_metadata(out.join(name)).unwrap();
        assert!(meta.file_type().is_file(), "{name}: a regular file now");
        let mode = meta.permissions().mode() & 0o777;
        assert_eq!(
            mode,
            if name == "private.pem" { 0o600 } else { 0o644 },
            "{name}"
        );
        let names: Vec<_> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 3, "no temporary file left: {names:?}");
        // The replaced files form one key pair.
        let kid = stdout(&o).trim().to_owned();
        let jwks = std::fs::read_to_string(out.join("jwks.json")).unwrap();
        assert!(jwks.contains(&kid));
    }
}

/// Review: `--attribute =x` (an empty name) was taken; `iat` after `exp` was signed.
#[test]
fn an_empty_attribute_name_and_iat_after_exp_are_refused() {
    let keys = Keys::new();
    let token = keys.issue(&examples().join("site.json"));
    let out = run(&[
        "license",
        "verify",
        "--public-key",
        &keys.path("public.pem"),
        "--token",
        &token,
        "--product",
        "com.example.cad",
        "--attribute",
        "=x",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--attribute =x"), "{}", stderr(&out));
    assert!(stdout(&out).is_empty());

    let dir = tempfile::tempdir().unwrap();
    for (iat, exp) in [
        (1_800_000_000_i64, 1_700_000_000_i64),
        (1_700_000_000, 1_700_000_000),
    ] {
        let claims = dir.path().join("late.json");
        std::fs::write(
            &claims,
            format!(
                r#"{{"iss":"i","sub":"s","aud":"p","iat":{iat},"exp":{exp},
                    "lic":{{"model":"subscription"}}}}"#
            ),
        )
        .unwrap();
        let out = run(&[
            "license",
            "issue",
            "--private-key",
            &keys.path("private.pem"),
            "--claims",
            claims.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(stderr(&out).contains("iat"), "{}", stderr(&out));
        assert!(stdout(&out).is_empty(), "no token");
    }
}

/// Review: `license verify` printed customer fields raw, so a token's escape sequences and
/// bidi overrides reached the vendor's terminal. Signed here without the issuer's checks, as
/// a token issued elsewhere could be.
#[test]
fn verify_escapes_what_it_prints() {
    let keys = Keys::new();
    let pem = std::fs::read_to_string(keys.path("private.pem")).unwrap();
    let key = licensing_core::PrivateKey::from_pkcs8_pem(&pem).unwrap();
    let evil = "ACME\u{1b}[2J\u{1b}]0;pwned\u{7}\u{202e}gpj.exe\u{9b}31m";
    let payload = serde_json::json!({
        "iss": "i", "sub": "lic_\u{1b}[31mred", "aud": "com.example.cad", "iat": 1_700_000_000,
        "lic": { "model": "perpetual", "customer": { "name": evil },
                 "features": { "x\u{202e}y": {} } },
    });
    let token = licensing_core::sign_raw("license+jwt", &key, None, payload.to_string().as_bytes());
    let file = keys.dir.path().join("evil.jwt");
    std::fs::write(&file, &token).unwrap();
    let file = file.to_str().unwrap();
    let unsafe_char =
        |c: char| (c.is_control() && c != '\n') || ('\u{202a}'..='\u{202e}').contains(&c);
    let out = run(&[
        "license",
        "verify",
        "--public-key",
        &keys.path("public.pem"),
        "--token",
        file,
        "--product",
        "com.example.cad",
        "--feature",
        "x\u{202e}y",
    ]);
    let text = stdout(&out);
    assert!(text.contains("customer:   ACME\\u{001b}[2J"), "{text}");
    assert!(text.contains("\\u{202e}gpj.exe"), "{text}");
    assert!(!text.chars().any(unsafe_char), "{text:?}");
    // JSON: the same values, escaped for the terminal.
    for args in [
        vec![
            "license",
            "verify",
            "--public-key",
            &keys.path("public.pem"),
            "--token",
            file,
            "--product",
            "com.example.cad",
            "--json",
        ],
        vec!["license", "inspect", "--token", file],
    ] {
        let out = run(&args);
        let text = stdout(&out);
        assert!(!text.chars().any(unsafe_char), "{text:?}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let customer = v
            .get("customer")
            .unwrap_or(&v["payload"]["lic"]["customer"]["name"]);
        assert_eq!(customer, evil, "{v}");
    }
}
