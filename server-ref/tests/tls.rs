//! TLS end to end: the real `licensing-server serve --tls-cert --tls-key` on 127.0.0.1 with a
//! self-signed certificate made here (rcgen), reached by a rustls client (reqwest) that trusts
//! only that certificate; the connection limits over TLS (a stalled handshake is cut off); the
//! reload of the certificate files; the console's `Secure` cookies; and `sslmode` on
//! `--database-url`. Every wait is bounded; no timing is asserted.
// `Server`'s Drop kills and waits for the child, which clippy cannot see.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::zombie_processes)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod support;
use support::backend::temp_data;
use support::{postgres, spawn};

const BOUND: Duration = Duration::from_secs(30);

struct Server {
    child: Child,
    addr: String,
    log: PathBuf,
    admin_token: Option<String>,
}

impl Server {
    fn start(data: &Path, args: &[&str]) -> Server {
        let log = data.with_extension("log");
        let mut serve = Command::new(env!("CARGO_BIN_EXE_licensing-server"));
        serve
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data)
            .args(args)
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()));
        let started = spawn::spawn_serve(serve, BOUND);
        Server {
            child: started.child,
            addr: started.addr,
            log,
            admin_token: started.admin_token,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `serve` with `args`, expecting it to stop by itself within [`BOUND`] (killed and
/// failed otherwise): (success, stdout, stderr).
fn run_to_exit(data: &Path, args: &[&std::ffi::OsStr]) -> (bool, String, String) {
    let out = data.with_extension("out");
    let err = data.with_extension("err");
    let mut child = Command::new(env!("CARGO_BIN_EXE_licensing-server"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .args(args)
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > BOUND {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "serve kept running: {}",
                std::fs::read_to_string(&out).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    (
        status.success(),
        std::fs::read_to_string(&out).unwrap(),
        std::fs::read_to_string(&err).unwrap(),
    )
}

/// A self-signed certificate for `localhost` and 127.0.0.1: (certificate PEM, key PEM).
fn self_signed() -> (String, String) {
    let made =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    (made.cert.pem(), made.signing_key.serialize_pem())
}

/// Replaces `path` at once (a new file renamed over it), as a certificate manager does.
fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A client that trusts `cert_pem` only and opens a new connection for every request.
fn client(cert_pem: &str) -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap())
        .pool_max_idle_per_host(0)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Reads from `stream` until the server closes it and returns what came before; fails the
/// test if it is still open after [`BOUND`].
fn wait_closed(stream: &mut TcpStream) -> Vec<u8> {
    let start = Instant::now();
    stream
        .set_read_timeout(Some(Duration::from_millis(250)))
        .unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return seen,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return seen,
        }
        assert!(
            start.elapsed() < BOUND,
            "the server kept the connection open for {BOUND:?}"
        );
    }
}

/// Over TLS: a client trusting the certificate is answered; plain HTTP on the TLS port gets no
/// HTTP answer; a client that opens TCP and sends nothing, or half a ClientHello, is cut off by
/// the header read timeout; the console's cookies are `Secure`; after the files are replaced a
/// new connection sees the new certificate, and a broken replacement keeps the one in use.
#[test]
fn https_is_served_bounded_and_reloaded() {
    let (dir, data) = temp_data();
    let (cert_a, key_a) = self_signed();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, &cert_a).unwrap();
    std::fs::write(&key, &key_a).unwrap();
    let server = Server::start(
        &data,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--header-read-timeout",
            "1",
        ],
    );
    let https = |path: &str| format!("https://{}{path}", server.addr);

    // A client trusting the certificate gets answers.
    let trusts_a = client(&cert_a);
    let answer = trusts_a.get(https("/healthz")).send().unwrap();
    assert_eq!(answer.status(), 200);

    // One that does not is refused by its own TLS check.
    let (other_cert, _) = self_signed();
    assert!(client(&other_cert).get(https("/healthz")).send().is_err());

    // Plain HTTP to the TLS port: no HTTP answer, and reqwest's plain request fails.
    let mut plain = TcpStream::connect(&server.addr).unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let seen = wait_closed(&mut plain);
    assert!(
        !seen.starts_with(b"HTTP/"),
        "{}",
        String::from_utf8_lossy(&seen)
    );
    let plain_client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    assert!(
        plain_client
            .get(format!("http://{}/healthz", server.addr))
            .send()
            .is_err()
    );

    // A stalled handshake: nothing at all, or the first bytes of a ClientHello.
    let mut silent = TcpStream::connect(&server.addr).unwrap();
    let mut half = TcpStream::connect(&server.addr).unwrap();
    half.write_all(&[
        0x16, 0x03, 0x01, 0x00, 0xc8, 0x01, 0x00, 0x00, 0xc4, 0x03, 0x03,
    ])
    .unwrap();
    assert!(wait_closed(&mut half).is_empty());
    assert!(wait_closed(&mut silent).is_empty());

    // The console's cookies are Secure over TLS.
    let page = trusts_a.get(https("/console/setup")).send().unwrap();
    assert_eq!(page.status(), 200);
    let cookies: Vec<_> = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert!(!cookies.is_empty());
    for cookie in &cookies {
        assert!(cookie.ends_with("; Secure"), "{cookie}");
    }

    // Absolute URLs say https over TLS, whatever X-Forwarded-Proto the client sends.
    let admin = server.admin_token.clone().unwrap();
    let scim: serde_json::Value = serde_json::from_str(
        &trusts_a
            .post(https("/v1/api-tokens"))
            .bearer_auth(&admin)
            .header("content-type", "application/json")
            .body(r#"{"role": "scim", "label": "idp"}"#)
            .send()
            .unwrap()
            .text()
            .unwrap(),
    )
    .unwrap();
    let config: serde_json::Value = serde_json::from_str(
        &trusts_a
            .get(https("/scim/v2/ServiceProviderConfig"))
            .bearer_auth(scim["secret"].as_str().unwrap())
            .header("x-forwarded-proto", "http")
            .send()
            .unwrap()
            .text()
            .unwrap(),
    )
    .unwrap();
    let location = config["meta"]["location"].as_str().unwrap();
    assert!(location.starts_with("https://"), "{location}");

    // The files are replaced: a new connection soon sees the new certificate.
    let (cert_b, key_b) = self_signed();
    replace(&key, &key_b);
    replace(&cert, &cert_b);
    let trusts_b = client(&cert_b);
    let start = Instant::now();
    while trusts_b.get(https("/healthz")).send().is_err() {
        assert!(
            start.elapsed() < BOUND,
            "the new certificate was not loaded"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // (A new client: the old one may resume its TLS session, as TLS allows.)
    assert!(client(&cert_a).get(https("/healthz")).send().is_err());

    // A broken certificate file: a warning, and the pair in use stays.
    replace(&cert, "-----BEGIN CERTIFICATE-----\nnot base64\n");
    let start = Instant::now();
    while !server.log().contains("does not load") {
        assert!(start.elapsed() < BOUND, "no warning for the broken file");
        std::thread::sleep(Duration::from_millis(200));
    }
    let answer = trusts_b.get(https("/healthz")).send().unwrap();
    assert_eq!(answer.status(), 200);
    // A certificate with another key than the key file's is refused the same way.
    replace(&cert, &cert_a);
    let start = Instant::now();
    while server.log().matches("does not load").count() < 2 {
        assert!(
            start.elapsed() < BOUND,
            "no warning for the mismatched pair"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        trusts_b.get(https("/healthz")).send().unwrap().status(),
        200
    );
}

/// Startup refuses a certificate that does not load, naming the flag (no HTTP fallback).
#[test]
fn a_bad_certificate_stops_startup() {
    let (dir, data) = temp_data();
    let (cert_a, _) = self_signed();
    let (_, key_b) = self_signed();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, &cert_a).unwrap();
    std::fs::write(&key, &key_b).unwrap();
    for (cert_arg, needle) in [
        (cert.clone(), "does not go with"),
        (key.clone(), "--tls-cert"),
    ] {
        let (ok, stdout, stderr) = run_to_exit(
            &data,
            &[
                "--tls-cert".as_ref(),
                cert_arg.as_os_str(),
                "--tls-key".as_ref(),
                key.as_os_str(),
            ],
        );
        assert!(!ok);
        assert!(stderr.contains(needle), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(!stdout.contains("listening"), "{stdout}");
    }
}

/// Behind a TLS-terminating proxy the operator says so, and the cookies are `Secure` over the
/// plain listener; without the flag they are not (a plain-HTTP console keeps working).
#[test]
fn cookies_are_secure_behind_a_declared_tls_proxy() {
    for (args, secure) in [(&["--behind-tls-proxy"][..], true), (&[][..], false)] {
        let (_dir, data) = temp_data();
        let server = Server::start(&data, args);
        let page = reqwest::blocking::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap()
            .get(format!("http://{}/console/setup", server.addr))
            .send()
            .unwrap();
        assert_eq!(page.status(), 200);
        let cookie = page.headers()["set-cookie"].to_str().unwrap().to_owned();
        assert_eq!(cookie.ends_with("; Secure"), secure, "{args:?}: {cookie}");
    }
}

/// `--database-url` honours `sslmode`: `sslmode=require` against the test PostgreSQL, which
/// speaks no TLS, is refused with a clear error, not a panic and not a plain connection.
#[test]
fn sslmode_require_is_honoured() {
    let Some(url) = postgres::fresh_database("sslmode_require_is_honoured") else {
        return;
    };
    let (_dir, data) = temp_data();
    let require = format!("{url}?sslmode=require");
    let (ok, _, stderr) = run_to_exit(&data, &["--database-url".as_ref(), require.as_ref()]);
    assert!(!ok, "{stderr}");
    assert!(stderr.to_lowercase().contains("tls"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    // The same URL without it connects (the server starts).
    let server = Server::start(&data, &["--database-url", &url]);
    drop(server);
}
