//! End to end: the real `licensing-server serve` binary on 127.0.0.1 (port 0, a temp data dir),
//! driven over plain HTTP/1.1; every token it signs is checked with licensing-core against the
//! JWKS it publishes. Each test starts its own server(s) and is bounded by timeouts.
// `Server`'s Drop kills and waits for the child, which clippy cannot see.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::zombie_processes)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use licensing_core::{Context, Error, Status, TokenKind, TrustStore, Verifier, verify_token};
use serde_json::{Value, json};

mod support;
use backend::{Backend, on_both, temp_data};
use support::{backend, postgres, spawn};

const PRODUCT: &str = "com.example.cad";
const TIMEOUT: Duration = Duration::from_secs(30);

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_licensing-server"))
}

/// A running server; killed on drop if the test did not stop it.
struct Server {
    child: Child,
    addr: String,
    admin_token: Option<String>,
}

impl Server {
    fn start(data_dir: &Path) -> Server {
        Self::start_with(data_dir, &[])
    }

    fn start_with(data_dir: &Path, extra: &[&str]) -> Server {
        let log = std::fs::File::create(data_dir.with_extension("log")).unwrap();
        let mut serve = bin();
        serve
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .env("RUST_LOG", "info")
            .stderr(Stdio::from(log));
        let started = spawn::spawn_serve(serve, TIMEOUT);
        Server {
            child: started.child,
            addr: started.addr,
            admin_token: started.admin_token,
        }
    }

    /// SIGTERM, then wait for the graceful exit.
    fn stop(mut self) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "server did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn admin(&self) -> &str {
        self.admin_token.as_deref().unwrap()
    }

    fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<&Value>) -> Reply {
        let body = body.map(|b| b.to_string().into_bytes());
        http(
            &self.addr,
            method,
            path,
            token,
            body.as_ref().map(|_| "application/json"),
            body.as_deref().unwrap_or_default(),
        )
    }

    fn get(&self, path: &str) -> Reply {
        self.call("GET", path, Some(self.admin()), None)
    }

    fn post(&self, path: &str, body: &Value) -> Reply {
        self.call("POST", path, Some(self.admin()), Some(body))
    }

    fn client(&self, path: &str, body: &Value) -> Reply {
        self.call("POST", path, None, Some(body))
    }

    fn trust_store(&self) -> TrustStore {
        let jwks = self.call("GET", "/.well-known/jwks.json", None, None);
        assert_eq!(jwks.status, 200);
        TrustStore::from_document(&jwks.body.to_string()).unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP answer.
#[derive(Debug)]
struct Reply {
    status: u16,
    content_type: String,
    retry_after: Option<u64>,
    body: Value,
}

impl Reply {
    /// Asserts a JSON error with this status and code; returns the detail.
    fn error(&self, status: u16, code: &str) -> String {
        assert_eq!(self.status, status, "{self:?}");
        assert!(
            self.content_type.starts_with("application/json"),
            "{self:?}"
        );
        assert_eq!(self.body["error"], code, "{self:?}");
        self.body["detail"].as_str().unwrap().to_owned()
    }

    fn ok(&self, status: u16) -> &Value {
        assert_eq!(self.status, status, "{self:?}");
        &self.body
    }
}

/// A minimal HTTP/1.1 client (one request per connection), so tests can also send what a
/// well-behaved client never would.
fn http(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: &[u8],
) -> Reply {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(TIMEOUT)).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(token) = token {
        head.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    if let Some(content_type) = content_type {
        head.push_str(&format!("Content-Type: {content_type}\r\n"));
    }
    head.push_str("\r\n");
    let mut request = head.into_bytes();
    request.extend_from_slice(body);
    // The server may answer (413) and close before reading everything: keep what it said.
    let _ = stream.write_all(&request);
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if !raw.is_empty() => {
                eprintln!("read after {} bytes: {e}", raw.len());
                break;
            }
            Err(e) => panic!("{method} {path}: {e}"),
        }
    }
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let mut content_type = String::new();
    let mut retry_after = None;
    let mut chunked = false;
    for line in lines {
        let (name, value) = line.split_once(':').unwrap();
        match name.to_ascii_lowercase().as_str() {
            "content-type" => content_type = value.trim().to_owned(),
            "retry-after" => retry_after = Some(value.trim().parse::<u64>().unwrap()),
            "transfer-encoding" => chunked = value.trim().eq_ignore_ascii_case("chunked"),
            _ => {}
        }
    }
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    let body = if body.is_empty() {
        Value::Null
    } else if content_type.starts_with("text/plain") {
        Value::String(body)
    } else {
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
    };
    Reply {
        status,
        content_type,
        retry_after,
        body,
    }
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n").unwrap();
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
}

/// This machine's fingerprint for `PRODUCT` exactly as the CLI prints it, with an override
/// value so each test machine is distinct and stable.
fn fingerprint(machine: &str) -> Value {
    let out = bin()
        .args(["machine", "fingerprint", "--json", "--product", PRODUCT])
        .env("LICENSING_FINGERPRINT_OVERRIDE", machine)
        .output()
        .unwrap();
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A product and a policy; returns the policy id.
fn setup_policy(server: &Server, policy: Value) -> String {
    let product = server.post("/v1/products", &json!({ "id": PRODUCT, "name": "CAD Pro" }));
    assert!(
        product.status == 201 || product.status == 409,
        "{product:?}"
    );
    let mut body = json!({ "product_id": PRODUCT, "name": "test policy" });
    body.as_object_mut()
        .unwrap()
        .extend(policy.as_object().unwrap().clone());
    let reply = server.post("/v1/policies", &body);
    reply.ok(201)["id"].as_str().unwrap().to_owned()
}

fn validate(
    server: &Server,
    key: &str,
    fingerprint: &str,
    nonce: &str,
) -> serde_json::Map<String, Value> {
    let reply = server.client(
        "/v1/client/validate",
        &json!({ "license_key": key, "fingerprint": fingerprint, "nonce": nonce }),
    );
    let token = reply.ok(200)["response_token"].as_str().unwrap().to_owned();
    let store = server.trust_store();
    assert!(matches!(
        verify_token(&token, TokenKind::Machine, &store),
        Err(Error::WrongTokenType { .. })
    ));
    let verified = verify_token(&token, TokenKind::Response, &store).unwrap();
    assert_eq!(verified.claims["nonce"], nonce);
    verified.claims
}

/// Both are genuine license tokens for the same license with the same claims, signed at
/// different times (`iat`, `jti` and `lic.check_in.until` may differ).
fn same_license(store: &TrustStore, a: &Value, b: &Value) {
    let verifier = Verifier::for_any_product(store.clone());
    let a = verifier.verify(a.as_str().unwrap()).unwrap();
    let b = verifier.verify(b.as_str().unwrap()).unwrap();
    let (a, b) = (a.claims(), b.claims());
    assert_eq!(
        (&a.sub, &a.aud, a.nbf, a.exp),
        (&b.sub, &b.aud, b.nbf, b.exp)
    );
    let (mut lic_a, mut lic_b) = (a.lic.clone(), b.lic.clone());
    lic_a.check_in = None;
    lic_b.check_in = None;
    assert_eq!(lic_a, lic_b);
}

#[test]
fn first_start_bootstraps_once_and_a_restart_keeps_data_and_key() {
    on_both(
        "first_start_bootstraps_once_and_a_restart_keeps_data_and_key",
        first_start_bootstraps_once_and_a_restart_keeps_data_and_key_on,
    );
}

fn first_start_bootstraps_once_and_a_restart_keeps_data_and_key_on(backend: Backend) {
    let (_dir, data) = temp_data();
    let server = Server::start_with(&data, &backend.args());
    let token = server.admin().to_owned();
    assert!(token.starts_with("lst_"));

    let health = server.call("GET", "/healthz", None, None);
    assert_eq!(health.ok(200)["status"], "ok");
    let jwks = server.call("GET", "/.well-known/jwks.json", None, None);
    let keys = jwks.ok(200)["keys"].as_array().unwrap().clone();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["kty"], "OKP");
    assert_eq!(keys[0]["alg"], "EdDSA");
    assert!(keys[0].get("d").is_none(), "no private material");
    let kid = keys[0]["kid"].as_str().unwrap().to_owned();

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data.join("signing-key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    if matches!(backend, Backend::Sqlite) {
        assert!(data.join("licensing.db").is_file());
    }
    let product = server.post("/v1/products", &json!({ "id": PRODUCT, "name": "CAD" }));
    assert_eq!(product.ok(201)["id"], PRODUCT);
    assert!(server.stop().success(), "graceful shutdown exits 0");

    // The log says what happened, and holds no secret.
    let log = std::fs::read_to_string(data.with_extension("log")).unwrap();
    assert!(log.contains("shutting down"), "{log}");
    assert!(!log.contains(&token), "the API token was logged");

    let mut again = Server::start_with(&data, &backend.args());
    assert!(
        again.admin_token.is_none(),
        "bootstrap token printed on a restart"
    );
    again.admin_token = Some(token);
    let jwks = again.call("GET", "/.well-known/jwks.json", None, None);
    assert_eq!(
        jwks.ok(200)["keys"][0]["kid"],
        kid.as_str(),
        "same key after restart"
    );
    let products = again.get("/v1/products");
    assert_eq!(products.ok(200)["products"][0]["id"], PRODUCT);
    drop(again);

    // A signing key named explicitly must exist.
    let out = bin()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .arg("--signing-key")
        .arg(data.join("missing.pem"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.pem"));
}

#[test]
fn license_lifecycle_activation_validation_suspend_reinstate_revoke() {
    on_both(
        "license_lifecycle_activation_validation_suspend_reinstate_revoke",
        license_lifecycle_activation_validation_suspend_reinstate_revoke_on,
    );
}

fn license_lifecycle_activation_validation_suspend_reinstate_revoke_on(backend: Backend) {
    let (_dir, data) = temp_data();
    let server = Server::start_with(&data, &backend.args());
    let policy = setup_policy(
        &server,
        json!({
            "model": "subscription", "duration": 365 * 86400, "grace_period": 14 * 86400,
            "max_machines": 2, "features": { "export_step": {}, "render": { "limit": 4 } },
            "version": { "req": ">=2.0.0, <3.0.0" }
        }),
    );
    let created = server.post(
        "/v1/licenses",
        &json!({ "policy_id": policy, "customer": { "name": "Northwind" }, "metadata": { "order": "SO-1" } }),
    );
    let license = created.ok(201).clone();
    let key = license["key"].as_str().unwrap().to_owned();
    let groups: Vec<&str> = key.split('-').collect();
    assert_eq!(groups.len(), 5);
    assert!(groups.iter().all(|g| {
        g.len() == 5
            && g.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    }));
    assert_eq!(license["status"], "active");
    let license_id = license["id"].as_str().unwrap().to_owned();

    // The license token is a license+jwt the core verifies against the published JWKS.
    let store = server.trust_store();
    let verifier = Verifier::new(store.clone(), PRODUCT);
    let token = license["token"].as_str().unwrap();
    let ctx = Context::at(now())
        .with_version(semver::Version::new(2, 1, 0))
        .with_feature("render");
    let verdict = verifier.check(token, &ctx);
    assert_eq!(verdict.status, Status::Valid, "{verdict:?}");
    assert_eq!(verdict.license_id.as_deref(), Some(license_id.as_str()));
    assert_eq!(verdict.customer.as_deref(), Some("Northwind"));
    assert_eq!(verdict.features[0].limit, Some(4));

    // Activate: a machine+jwt bound to the fingerprint.
    let fp_a = fingerprint("box-a");
    let activated = server.client(
        "/v1/client/activate",
        &json!({ "license_key": key, "fingerprint": fp_a }),
    );
    let activated = activated.ok(201).clone();
    let machine_token = activated["machine_token"].as_str().unwrap();
    let machine = verify_token(machine_token, TokenKind::Machine, &store).unwrap();
    assert_eq!(machine.claims["fingerprint"]["id"], fp_a["id"]);
    assert_eq!(
        machine.claims["fingerprint"]["components"],
        fp_a["components"]
    );
    assert_eq!(machine.claims["license_id"], license_id.as_str());
    assert_eq!(machine.claims["sub"], activated["machine_id"]);
    assert_eq!(machine.claims["aud"], PRODUCT);
    assert_eq!(
        verifier.verify(machine_token).unwrap_err().status(),
        Status::WrongTokenType,
        "a machine token is not a license"
    );
    assert_eq!(
        verifier
            .check(activated["license_token"].as_str().unwrap(), &ctx)
            .status,
        Status::Valid
    );

    // Same machine again (key typed sloppily): the same activation, 200.
    let sloppy = key.to_ascii_lowercase().replace('-', " ");
    let again = server.client(
        "/v1/client/activate",
        &json!({ "license_key": sloppy, "fingerprint": fp_a }),
    );
    assert_eq!(again.ok(200)["machine_id"], activated["machine_id"]);
    // max_machines = 2.
    let fp_b = fingerprint("box-b");
    server
        .client(
            "/v1/client/activate",
            &json!({ "license_key": key, "fingerprint": fp_b }),
        )
        .ok(201);
    let third = server.client(
        "/v1/client/activate",
        &json!({ "license_key": key, "fingerprint": fingerprint("box-c") }),
    );
    assert!(third.error(409, "machine_limit_reached").contains('2'));
    let machines = server.get(&format!("/v1/licenses/{license_id}/machines"));
    assert_eq!(machines.ok(200)["machines"].as_array().unwrap().len(), 2);

    // Validate: signed, nonce echoed, server time, status, current token.
    let fp_a_id = fp_a["id"].as_str().unwrap();
    let answer = validate(&server, &key, fp_a_id, "nonce-0001-abcdef");
    assert_eq!(answer["status"], "active");
    assert_eq!(answer["machine_activated"], true);
    assert_eq!(answer["license_id"], license_id.as_str());
    assert!((answer["server_time"].as_i64().unwrap() - now()).abs() < 60);
    same_license(
        &server.trust_store(),
        &answer["license_token"],
        &license["token"],
    );
    let unknown_machine = validate(&server, &key, "not-activated", "nonce-0002-abcdef");
    assert_eq!(unknown_machine["machine_activated"], false);
    assert_eq!(unknown_machine["nonce"], "nonce-0002-abcdef");

    // Suspend → validation says so, activation refused; reinstate → active.
    let path = |action: &str| format!("/v1/licenses/{license_id}/{action}");
    assert_eq!(
        server.post(&path("suspend"), &json!({})).ok(200)["status"],
        "suspended"
    );
    assert_eq!(
        validate(&server, &key, fp_a_id, "nonce-0003-abcdef")["status"],
        "suspended"
    );
    server
        .client(
            "/v1/client/activate",
            &json!({ "license_key": key, "fingerprint": fp_a }),
        )
        .error(403, "license_suspended");
    server
        .post(&path("suspend"), &json!({}))
        .error(409, "invalid_transition");
    assert_eq!(
        server.post(&path("reinstate"), &json!({})).ok(200)["status"],
        "active"
    );
    assert_eq!(
        validate(&server, &key, fp_a_id, "nonce-0004-abcdef")["status"],
        "active"
    );

    // Revoke → revoked for good.
    assert_eq!(
        server.post(&path("revoke"), &json!({})).ok(200)["status"],
        "revoked"
    );
    assert_eq!(
        validate(&server, &key, fp_a_id, "nonce-0005-abcdef")["status"],
        "revoked"
    );
    server
        .client(
            "/v1/client/activate",
            &json!({ "license_key": key, "fingerprint": fp_a }),
        )
        .error(403, "license_revoked");
    server
        .post(&path("reinstate"), &json!({}))
        .error(409, "invalid_transition");
    assert_eq!(
        server.get(&format!("/v1/licenses/{license_id}")).ok(200)["status"],
        "revoked"
    );
}

#[test]
fn node_locked_and_expired_licenses() {
    on_both(
        "node_locked_and_expired_licenses",
        node_locked_and_expired_licenses_on,
    );
}

fn node_locked_and_expired_licenses_on(backend: Backend) {
    let (_dir, data) = temp_data();
    let server = Server::start_with(&data, &backend.args());
    let store = server.trust_store();
    let verifier = Verifier::new(store, PRODUCT);

    // Node-locked: no token until a machine is activated; then the token binds it.
    let policy = setup_policy(
        &server,
        json!({ "model": "node_locked", "max_machines": 1, "match": { "required": ["override"], "min_matching": 1 } }),
    );
    let license = server.post("/v1/licenses", &json!({ "policy_id": policy }));
    let license = license.ok(201).clone();
    assert_eq!(license["token"], Value::Null);
    let key = license["key"].as_str().unwrap();
    let fp_a = fingerprint("box-a");
    let activated = server.client(
        "/v1/client/activate",
        &json!({ "license_key": key, "fingerprint": fp_a }),
    );
    let token = activated.ok(201)["license_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let on = |machine: &str| {
        let fp = serde_json::from_value(fingerprint(machine)).unwrap();
        verifier
            .check(&token, &Context::at(now()).with_fingerprint(fp))
            .status
    };
    assert_eq!(on("box-a"), Status::Valid);
    assert_eq!(on("box-b"), Status::FingerprintMismatch);
    server
        .client(
            "/v1/client/activate",
            &json!({ "license_key": key, "fingerprint": fingerprint("box-b") }),
        )
        .error(409, "machine_limit_reached");
    let answer = validate(
        &server,
        key,
        fp_a["id"].as_str().unwrap(),
        "nonce-node-locked",
    );
    same_license(
        &server.trust_store(),
        &answer["license_token"],
        &json!(token),
    );

    // Expired (exp in the past, no grace): validation says so, activation is refused.
    let policy = setup_policy(
        &server,
        json!({ "model": "subscription", "duration": 86400 }),
    );
    let license = server.post(
        "/v1/licenses",
        &json!({ "policy_id": policy, "starts_at": now() - 7200, "expires_at": now() - 3600 }),
    );
    let license = license.ok(201).clone();
    assert_eq!(license["status"], "expired");
    let key = license["key"].as_str().unwrap();
    assert_eq!(
        validate(&server, key, "any", "nonce-expired-1")["status"],
        "expired"
    );
    server
        .client(
            "/v1/client/activate",
            &json!({ "license_key": key, "fingerprint": fp_a }),
        )
        .error(403, "license_expired");
}

#[test]
fn bad_input_gets_a_4xx_json_error_naming_the_problem() {
    let (_dir, data) = temp_data();
    let server = Server::start(&data);
    let addr = server.addr.clone();
    let product = json!({ "id": PRODUCT, "name": "CAD" });

    // Authentication.
    server
        .call("GET", "/v1/products", None, None)
        .error(401, "unauthorized");
    server
        .call("GET", "/v1/products", Some("lst_not-a-real-token"), None)
        .error(401, "unauthorized");
    let raw = |token: Option<&str>, content_type: Option<&str>, body: &[u8]| {
        http(&addr, "POST", "/v1/products", token, content_type, body)
    };
    raw(
        None,
        Some("application/json"),
        product.to_string().as_bytes(),
    )
    .error(401, "unauthorized");

    // Bodies.
    let admin = Some(server.admin());
    let json_ct = Some("application/json");
    raw(admin, json_ct, b"{\"id\": ").error(400, "malformed_json");
    let dup =
        raw(admin, json_ct, br#"{"id":"a","name":"x","id":"b"}"#).error(400, "malformed_json");
    assert!(dup.contains("duplicate key `id`"), "{dup}");
    raw(admin, json_ct, b"[1, 2]").error(400, "malformed_json");
    raw(admin, Some("text/plain"), product.to_string().as_bytes())
        .error(415, "unsupported_media_type");
    raw(admin, None, product.to_string().as_bytes()).error(415, "unsupported_media_type");
    let big = format!(r#"{{"id":"x","name":"{}"}}"#, "a".repeat(70 * 1024));
    raw(admin, json_ct, big.as_bytes()).error(413, "payload_too_large");
    let unknown =
        raw(admin, json_ct, br#"{"id":"x","name":"y","colour":"red"}"#).error(422, "invalid_field");
    assert!(unknown.contains("colour"), "{unknown}");
    let missing = raw(admin, json_ct, br#"{"id":"x"}"#).error(422, "invalid_request");
    assert!(missing.contains("name"), "{missing}");
    let wrong_type = raw(admin, json_ct, br#"{"id":"x","name":7}"#).error(422, "invalid_field");
    assert!(wrong_type.contains("`name`"), "{wrong_type}");
    raw(admin, json_ct, br#"{"id":"has space","name":"y"}"#).error(422, "invalid_field");

    // State conflicts and unknown things.
    server.post("/v1/products", &product).ok(201);
    server
        .post("/v1/products", &product)
        .error(409, "product_exists");
    server
        .post(
            "/v1/policies",
            &json!({ "product_id": "nope", "name": "p", "model": "perpetual" }),
        )
        .error(404, "product_not_found");
    server
        .post("/v1/licenses", &json!({ "policy_id": "pol_nope" }))
        .error(404, "policy_not_found");
    server
        .get("/v1/licenses/lic_nope")
        .error(404, "license_not_found");
    server
        .post("/v1/licenses/lic_nope/suspend", &json!({}))
        .error(404, "license_not_found");
    server.get("/v1/nothing-here").error(404, "not_found");
    server
        .call("DELETE", "/v1/products", Some(server.admin()), None)
        .error(405, "method_not_allowed");

    // Policies the core refuses, with the claim named.
    let perpetual = server.post(
        "/v1/policies",
        &json!({ "product_id": PRODUCT, "name": "p", "model": "perpetual", "duration": 86400 }),
    );
    assert!(perpetual.error(422, "invalid_license").contains("exp"));
    let floating = server.post(
        "/v1/policies",
        &json!({ "product_id": PRODUCT, "name": "f", "model": "floating" }),
    );
    assert!(floating.error(422, "invalid_license").contains("lic.seats"));
    let model = server.post(
        "/v1/policies",
        &json!({ "product_id": PRODUCT, "name": "m", "model": "forever" }),
    );
    assert!(model.error(422, "invalid_field").contains("model"));
    // A match policy no fingerprint can meet is refused at once, naming the field: the largest
    // u32 once kept a worker building a placeholder fingerprint until memory ran out.
    for (min_matching, required) in [
        (u32::MAX, json!([])),
        (33, json!([])),
        (
            1,
            json!((0..33).map(|i| format!("c{i}")).collect::<Vec<_>>()),
        ),
    ] {
        let policy = server.post(
            "/v1/policies",
            &json!({ "product_id": PRODUCT, "name": "n", "model": "node_locked",
                     "match": { "min_matching": min_matching, "required": required } }),
        );
        assert!(
            policy
                .error(422, "invalid_license")
                .contains("lic.node_lock.match."),
            "{min_matching}"
        );
    }
    server
        .post(
            "/v1/policies",
            &json!({ "product_id": PRODUCT, "name": "n", "model": "node_locked",
                     "match": { "min_matching": 32 } }),
        )
        .ok(201);

    // Client endpoints.
    let fp = fingerprint("box-a");
    server
        .client(
            "/v1/client/activate",
            &json!({ "license_key": "AAAAA-BBBBB-CCCCC-DDDDD-EEEEE", "fingerprint": fp }),
        )
        .error(404, "license_not_found");
    server
        .client(
            "/v1/client/activate",
            &json!({ "license_key": "hello", "fingerprint": fp }),
        )
        .error(422, "invalid_license_key");
    server
        .client(
            "/v1/client/activate",
            &json!({ "license_key": "AAAAA-BBBBB-CCCCC-DDDDD-EEEEE", "fingerprint": { "id": "" } }),
        )
        .error(422, "invalid_field");
    let nonce = server.client(
        "/v1/client/validate",
        &json!({ "license_key": "AAAAA-BBBBB-CCCCC-DDDDD-EEEEE", "fingerprint": "f", "nonce": "short" }),
    );
    assert!(nonce.error(422, "invalid_field").contains("nonce"));
    server
        .client(
            "/v1/client/validate",
            &json!({ "license_key": "AAAAA-BBBBB-CCCCC-DDDDD-EEEEE", "fingerprint": "f", "nonce": "long-enough-nonce" }),
        )
        .error(404, "license_not_found");
    let dup = http(
        &addr,
        "POST",
        "/v1/client/validate",
        None,
        json_ct,
        br#"{"license_key":"a","license_key":"b","fingerprint":"f","nonce":"12345678"}"#,
    );
    dup.error(400, "malformed_json");

    // Still healthy after all of that.
    assert_eq!(
        server.call("GET", "/healthz", None, None).ok(200)["status"],
        "ok"
    );
}

fn kid_of(token: &str) -> String {
    let (header, _) = licensing_core::decode_unverified(token).unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

fn jwks_kids(server: &Server) -> Vec<String> {
    let jwks = server.call("GET", "/.well-known/jwks.json", None, None);
    let mut kids: Vec<String> = jwks.ok(200)["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    kids.sort();
    kids
}

#[test]
fn signing_keys_rotate_and_retire() {
    on_both(
        "signing_keys_rotate_and_retire",
        signing_keys_rotate_and_retire_on,
    );
}

fn signing_keys_rotate_and_retire_on(backend: Backend) {
    let (_dir, data) = temp_data();
    let server = Server::start_with(&data, &backend.args());
    let policy = setup_policy(&server, json!({ "model": "perpetual" }));
    let old = server.post("/v1/licenses", &json!({ "policy_id": policy }));
    let old = old.ok(201).clone();
    let old_token = old["token"].as_str().unwrap().to_owned();
    let old_kid = kid_of(&old_token);
    assert_eq!(jwks_kids(&server), vec![old_kid.clone()]);

    // Only operator admins rotate.
    let org = server.post("/v1/organizations", &json!({ "name": "Tenant" }));
    let tenant_admin = org.ok(201)["admin_token"].as_str().unwrap().to_owned();
    let denied = server.call("POST", "/v1/keys/rotate", Some(&tenant_admin), None);
    denied.error(403, "forbidden");

    // Rotate: the new key signs, the old one still verifies and stays published.
    let rotated = server.call("POST", "/v1/keys/rotate", Some(server.admin()), None);
    let new_kid = rotated.ok(201)["kid"].as_str().unwrap().to_owned();
    assert_ne!(new_kid, old_kid);
    let mut both = vec![old_kid.clone(), new_kid.clone()];
    both.sort();
    assert_eq!(jwks_kids(&server), both);
    let fresh = server.post("/v1/licenses", &json!({ "policy_id": policy }));
    assert_eq!(kid_of(fresh.ok(201)["token"].as_str().unwrap()), new_kid);
    let verifier = Verifier::new(server.trust_store(), PRODUCT);
    assert_eq!(
        verifier.check(&old_token, &Context::at(now())).status,
        Status::Valid
    );
    let listed = server.get("/v1/keys");
    let statuses: Vec<(String, String)> = listed.ok(200)["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["kid"].as_str().unwrap().to_owned(),
                k["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        statuses.contains(&(new_kid.clone(), "current".into())),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&(old_kid.clone(), "previous".into())),
        "{statuses:?}"
    );
    assert!(
        !listed.body.to_string().contains("PRIVATE"),
        "no private key in listings"
    );

    // The current key cannot be retired; the previous one can, and the license the server
    // stored under it is re-signed with the current key.
    let refused = server.call(
        "POST",
        &format!("/v1/keys/{new_kid}/retire"),
        Some(server.admin()),
        None,
    );
    refused.error(409, "key_is_current");
    let retired = server.call(
        "POST",
        &format!("/v1/keys/{old_kid}/retire"),
        Some(server.admin()),
        None,
    );
    assert_eq!(retired.ok(200)["resigned_licenses"], 1);
    assert_eq!(jwks_kids(&server), vec![new_kid.clone()]);
    let reread = server.get(&format!("/v1/licenses/{}", old["id"].as_str().unwrap()));
    let resigned = reread.ok(200)["token"].as_str().unwrap().to_owned();
    assert_eq!(kid_of(&resigned), new_kid);
    let verifier = Verifier::new(server.trust_store(), PRODUCT);
    assert_eq!(
        verifier.check(&resigned, &Context::at(now())).status,
        Status::Valid
    );
    assert_eq!(
        verifier.check(&old_token, &Context::at(now())).status,
        Status::UnknownKey
    );
    server
        .call(
            "POST",
            &format!("/v1/keys/{old_kid}/retire"),
            Some(server.admin()),
            None,
        )
        .error(409, "key_retired");
    server
        .call("POST", "/v1/keys/nope/retire", Some(server.admin()), None)
        .error(404, "key_not_found");

    // A restart keeps the rotated key (the data-dir key file does not take over again).
    drop(server);
    let again = Server::start_with(&data, &backend.args());
    assert_eq!(jwks_kids(&again), vec![new_kid]);
}

/// Two replicas on one PostgreSQL: one bootstrap token, one key ring; a rotation on one
/// reaches the other within its reload period.
#[test]
fn replicas_share_one_postgres() {
    let Some(url) = postgres::fresh_database("replicas_share_one_postgres") else {
        return;
    };
    let backend = Backend::Postgres(url);
    let (_dir_a, data_a) = temp_data();
    let (_dir_b, data_b) = temp_data();
    let mut args = backend.args();
    args.extend(["--key-reload-secs", "1"]);
    let a = Server::start_with(&data_a, &args);
    let mut b = Server::start_with(&data_b, &args);
    assert!(a.admin_token.is_some());
    assert!(
        b.admin_token.is_none(),
        "the bootstrap token is minted once"
    );
    b.admin_token = a.admin_token.clone();
    assert_eq!(jwks_kids(&a), jwks_kids(&b), "replicas sign with one key");

    let product = a.post("/v1/products", &json!({ "id": PRODUCT, "name": "CAD" }));
    product.ok(201);
    assert_eq!(b.get("/v1/products").ok(200)["products"][0]["id"], PRODUCT);

    let rotated = a.call("POST", "/v1/keys/rotate", Some(a.admin()), None);
    let new_kid = rotated.ok(201)["kid"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(10);
    let policy = setup_policy(&b, json!({ "model": "perpetual" }));
    loop {
        let license = b.post("/v1/licenses", &json!({ "policy_id": policy }));
        if kid_of(license.ok(201)["token"].as_str().unwrap()) == new_kid {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "replica B never picked up the rotation"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(jwks_kids(&a), jwks_kids(&b));

    // A suspension made on A reaches B's client calls within the license cache's lifetime
    // (1 s), and A's own at once.
    let license = b.post("/v1/licenses", &json!({ "policy_id": policy }));
    let license = license.ok(201).clone();
    let (id, key) = (
        license["id"].as_str().unwrap(),
        license["key"].as_str().unwrap(),
    );
    let fingerprint = "fp-replicas-0001";
    assert_eq!(
        validate(&b, key, fingerprint, "nonce-rep-0001")["status"],
        "active"
    );
    let path = format!("/v1/licenses/{id}/suspend");
    assert_eq!(a.post(&path, &json!({})).ok(200)["status"], "suspended");
    assert_eq!(
        validate(&a, key, fingerprint, "nonce-rep-0002")["status"],
        "suspended"
    );
    let suspended_at = Instant::now();
    let mut n = 3;
    while validate(&b, key, fingerprint, &format!("nonce-rep-{n:04}"))["status"] != "suspended" {
        assert!(
            suspended_at.elapsed() < Duration::from_secs(3),
            "replica B still answers from a license older than its cache's lifetime"
        );
        n += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn licenses_renew_and_extend() {
    on_both("licenses_renew_and_extend", licenses_renew_and_extend_on);
}

fn licenses_renew_and_extend_on(backend: Backend) {
    let (_dir, data) = temp_data();
    let server = Server::start_with(&data, &backend.args());
    let year = 365 * 86400;
    let policy = setup_policy(
        &server,
        json!({ "model": "subscription", "duration": year }),
    );
    let t0 = now();
    // Already expired: renewal counts from now, and makes it usable again.
    let created = server.post(
        "/v1/licenses",
        &json!({ "policy_id": policy, "expires_at": t0 - 10 }),
    );
    let id = created.ok(201)["id"].as_str().unwrap().to_owned();
    assert_eq!(created.body["status"], "expired");
    let renew = |body: Value| server.post(&format!("/v1/licenses/{id}/renew"), &body);
    let renewed = renew(json!({}));
    let exp = renewed.ok(200)["expires_at"].as_i64().unwrap();
    assert!((t0 + year..=now() + year).contains(&exp), "{exp}");
    assert_eq!(renewed.body["status"], "active");
    let verifier = Verifier::new(server.trust_store(), PRODUCT);
    let token = renewed.body["token"].as_str().unwrap().to_owned();
    let verdict = verifier.check(&token, &Context::at(now()));
    assert_eq!(verdict.status, Status::Valid);
    assert_eq!(verdict.expires_at, Some(exp));

    // extend_by counts from the later of the expiry and now; expires_at sets it.
    let extended = renew(json!({ "extend_by": 86400 }));
    assert_eq!(extended.ok(200)["expires_at"], exp + 86400);
    let set = renew(json!({ "expires_at": t0 + 1000 }));
    assert_eq!(set.ok(200)["expires_at"], t0 + 1000);
    renew(json!({ "expires_at": 1, "extend_by": 1 })).error(422, "invalid_request");
    renew(json!({ "extend_by": -1 })).error(422, "invalid_field");
    renew(json!({ "expires_in": 1 })).error(422, "invalid_field");

    // Perpetual: no expiry to extend; the maintenance window moves instead.
    let perpetual = setup_policy(&server, json!({ "model": "perpetual" }));
    let p = server.post("/v1/licenses", &json!({ "policy_id": perpetual }));
    let pid = p.ok(201)["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/licenses/{pid}/renew");
    server
        .post(&path, &json!({ "extend_by": 10 }))
        .error(422, "invalid_request");
    server.post(&path, &json!({})).error(422, "invalid_request");
    let maintained = server.post(&path, &json!({ "maintenance_until": t0 + 5000 }));
    let token = maintained.ok(200)["token"].as_str().unwrap().to_owned();
    let claims = verify_token(&token, TokenKind::License, &server.trust_store())
        .unwrap()
        .claims;
    assert_eq!(claims["lic"]["version"]["maintenance_until"], t0 + 5000);

    // Roles and final states.
    let auditor = server.post(
        "/v1/api-tokens",
        &json!({ "role": "auditor", "label": "a" }),
    );
    let auditor = auditor.ok(201)["secret"].as_str().unwrap().to_owned();
    server
        .call(
            "POST",
            &format!("/v1/licenses/{id}/renew"),
            Some(&auditor),
            Some(&json!({})),
        )
        .error(403, "forbidden");
    server
        .post(&format!("/v1/licenses/{id}/revoke"), &json!({}))
        .ok(200);
    renew(json!({})).error(409, "license_revoked");
    server
        .post("/v1/licenses/lic_nope/renew", &json!({}))
        .error(404, "license_not_found");
}

/// Settings from a TOML file (flags still win), client-API rate limiting per license key,
/// and the Prometheus endpoint.
#[test]
fn config_file_rate_limits_and_metrics() {
    let (dir, data) = temp_data();
    let config = dir.path().join("licensing.toml");
    std::fs::write(
        &config,
        "issuer = \"issuer-from-file\"\nclient_rate_per_minute = 3\nlisten = \"127.0.0.1:1\"\n",
    )
    .unwrap();
    let server = Server::start_with(&data, &["--config", config.to_str().unwrap()]);
    let policy = setup_policy(&server, json!({ "model": "perpetual" }));
    let mut keys = Vec::new();
    for _ in 0..2 {
        let license = server.post("/v1/licenses", &json!({ "policy_id": policy }));
        let license = license.ok(201).clone();
        let claims = licensing_core::decode_unverified(license["token"].as_str().unwrap())
            .unwrap()
            .1;
        assert_eq!(claims["iss"], "issuer-from-file");
        keys.push(license["key"].as_str().unwrap().to_owned());
    }
    let body =
        |key: &str| json!({ "license_key": key, "fingerprint": "fp-1", "nonce": "nonce-123456" });
    for _ in 0..3 {
        server
            .client("/v1/client/validate", &body(&keys[0]))
            .ok(200);
    }
    let limited = server.client("/v1/client/validate", &body(&keys[0]));
    limited.error(429, "rate_limited");
    assert!(
        limited.retry_after.is_some_and(|s| (1..=60).contains(&s)),
        "{limited:?}"
    );
    // Another license key has its own budget.
    server
        .client("/v1/client/validate", &body(&keys[1]))
        .ok(200);

    let metrics = server.call("GET", "/metrics", None, None);
    let text = metrics.ok(200).as_str().unwrap().to_owned();
    assert!(
        text.contains(r#"licensing_http_requests_total{method="POST",route="/v1/client/validate",status="200"} 4"#),
        "{text}"
    );
    assert!(text.contains(r#"status="429""#), "{text}");
    assert!(
        text.contains("licensing_client_rate_limited_total 1"),
        "{text}"
    );
    assert!(
        text.contains("licensing_http_request_duration_seconds_bucket"),
        "{text}"
    );
    assert!(!text.contains(&keys[0]), "no license key in metrics");

    // A bad config file stops startup with exit 2 and names the problem.
    std::fs::write(&config, "listen = 5\n").unwrap();
    let out = bin()
        .args(["serve", "--data-dir"])
        .arg(&data)
        .args(["--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("listen"),
        "{out:?}"
    );
}

/// `licensing-server offline activate` on the data directory of a running server: request
/// file in, response file out, verified with the JWKS the server publishes.
#[test]
fn offline_activation_from_the_command_line() {
    let (dir, data) = temp_data();
    let server = Server::start(&data);
    let store = server.trust_store();
    let policy = setup_policy(
        &server,
        json!({ "model": "node_locked", "max_machines": 1, "check_in_interval": 86400 }),
    );
    let license = server.post("/v1/licenses", &json!({ "policy_id": policy }));
    let key = license.ok(201)["key"].as_str().unwrap().to_owned();
    let request_file = |name: &str, machine: &str, nonce: &str| {
        let path = dir.path().join(name);
        let request = json!({
            "kind": "licensing.offline_activation_request",
            "version": 1,
            "license_key": key,
            "fingerprint": fingerprint(machine),
            "nonce": nonce,
            "created_at": now(),
        });
        std::fs::write(&path, request.to_string()).unwrap();
        path
    };
    let offline = |request: &Path, out: &Path| {
        bin()
            .args(["offline", "activate", "--request"])
            .arg(request)
            .arg("--out")
            .arg(out)
            .arg("--data-dir")
            .arg(&data)
            .output()
            .unwrap()
    };

    let nonce = "air-gapped-nonce-0001";
    let out = dir.path().join("response.json");
    let run = offline(&request_file("request.json", "box-air", nonce), &out);
    assert!(run.status.success(), "{run:?}");
    let file: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(file["kind"], "licensing.offline_activation_response");
    assert_eq!(file["version"], 1);
    let token = file["response_token"].as_str().unwrap();
    assert!(matches!(
        verify_token(token, TokenKind::License, &store),
        Err(Error::WrongTokenType { .. })
    ));
    let claims = verify_token(token, TokenKind::Response, &store)
        .unwrap()
        .claims;
    assert_eq!(claims["nonce"], nonce);
    assert_eq!(claims["offline"], true);
    assert_eq!(claims["status"], "active");
    let exp = claims["exp"].as_i64().unwrap();
    assert_eq!(exp - claims["iat"].as_i64().unwrap(), 30 * 86400);
    verify_token(
        claims["machine_token"].as_str().unwrap(),
        TokenKind::Machine,
        &store,
    )
    .unwrap();
    // The license token works on that machine, offline.
    let fp = serde_json::from_value(fingerprint("box-air")).unwrap();
    let verdict = Verifier::new(store.clone(), PRODUCT).check(
        claims["license_token"].as_str().unwrap(),
        &Context::at(now()).with_fingerprint(fp),
    );
    assert_eq!(verdict.status, Status::Valid, "{verdict:?}");
    // The running server sees the machine.
    let license_id = claims["license_id"].as_str().unwrap();
    let machines = server.get(&format!("/v1/licenses/{license_id}/machines"));
    assert_eq!(machines.ok(200)["machines"].as_array().unwrap().len(), 1);
    // The audit trail has it, by the command line, in the license's organization.
    let audit = server.get("/v1/audit");
    let entries = audit.ok(200)["entries"].as_array().unwrap().clone();
    let last = entries.last().unwrap();
    assert_eq!(
        (&last["actor"], &last["action"], &last["target"]),
        (
            &json!("cli"),
            &json!("cli offline activate"),
            &json!(license_id)
        ),
        "{entries:?}"
    );
    let verified = server.get("/v1/audit/verify");
    assert_eq!(verified.ok(200)["ok"], true);

    // Refused by a licensing rule (machine limit): exit 1, nothing written.
    let out2 = dir.path().join("response2.json");
    let run = offline(&request_file("request2.json", "box-two", nonce), &out2);
    assert_eq!(run.status.code(), Some(1), "{run:?}");
    assert!(String::from_utf8_lossy(&run.stderr).contains("machine_limit_reached"));
    assert!(!out2.exists());

    // A bad request file: exit 2.
    let bad = dir.path().join("bad.json");
    for content in [
        "not json".to_owned(),
        json!({ "kind": "licensing.offline_activation_request" }).to_string(),
        r#"{"kind":"a","kind":"b"}"#.to_owned(),
    ] {
        std::fs::write(&bad, &content).unwrap();
        let run = offline(&bad, &out2);
        assert_eq!(run.status.code(), Some(2), "{content}: {run:?}");
        assert!(!out2.exists());
    }
    let run = offline(&request_file("short.json", "box-x", "short"), &out2);
    assert_eq!(run.status.code(), Some(2), "{run:?}");
    assert!(String::from_utf8_lossy(&run.stderr).contains("nonce"));
    let run = offline(&dir.path().join("missing.json"), &out2);
    assert_eq!(run.status.code(), Some(2), "{run:?}");
    let run = bin().args(["offline", "activate"]).output().unwrap();
    assert_eq!(run.status.code(), Some(2), "{run:?}");
    assert!(server.stop().success());
}

/// Every kind of token the server signs (license, machine, response, lease) verifies with an
/// independent JOSE library (PyJWT) using the JWKS the server publishes.
#[test]
fn server_tokens_verify_with_pyjwt() {
    let (dir, data) = temp_data();
    let server = Server::start(&data);
    let policy = setup_policy(
        &server,
        json!({ "model": "subscription", "duration": 86400 * 30, "check_in_interval": 86400 }),
    );
    let license = server.post("/v1/licenses", &json!({ "policy_id": policy }));
    let license = license.ok(201).clone();
    let key = license["key"].as_str().unwrap().to_owned();
    let activated = server.client(
        "/v1/client/activate",
        &json!({ "license_key": key, "fingerprint": { "id": "py-box" } }),
    );
    let activated = activated.ok(201).clone();
    let validated = server.client(
        "/v1/client/validate",
        &json!({ "license_key": key, "fingerprint": "py-box", "nonce": "nonce-py-0001" }),
    );
    let response = validated.ok(200)["response_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let floating = setup_policy(&server, json!({ "model": "floating", "seats": 2 }));
    let pool = server.post("/v1/licenses", &json!({ "policy_id": floating }));
    let pool_key = pool.ok(201)["key"].as_str().unwrap().to_owned();
    let lease = server.client(
        "/v1/client/leases",
        &json!({ "license_key": pool_key, "client_id": "py", "user": "ada", "request_id": "r1" }),
    );
    let lease = lease.ok(201)["lease_token"].as_str().unwrap().to_owned();
    let tokens = json!([
        { "token": license["token"], "typ": "license+jwt", "aud": PRODUCT },
        { "token": activated["machine_token"], "typ": "machine+jwt", "aud": PRODUCT },
        { "token": activated["license_token"], "typ": "license+jwt", "aud": PRODUCT },
        { "token": response, "typ": "response+jwt", "aud": PRODUCT },
        { "token": lease, "typ": "lease+jwt", "aud": PRODUCT },
    ]);
    let jwks = server.call("GET", "/.well-known/jwks.json", None, None);
    std::fs::write(dir.path().join("jwks.json"), jwks.ok(200).to_string()).unwrap();
    std::fs::write(dir.path().join("tokens.json"), tokens.to_string()).unwrap();
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/interop/pyjwt_server_tokens.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(dir.path())
        .output()
        .unwrap_or_else(|e| {
            panic!("python3 (with PyJWT: pip install -r tests/interop/requirements.txt): {e}")
        });
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("5 server tokens verified by PyJWT"),
        "{stdout}"
    );
}

/// Reads from `stream` until the server closes it (EOF or reset) and answers how long that
/// took, or fails the test after `bound`. What came before the close is returned too.
fn wait_closed(stream: &mut TcpStream, bound: Duration) -> (Duration, Vec<u8>) {
    let start = Instant::now();
    stream
        .set_read_timeout(Some(Duration::from_millis(250)))
        .unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (start.elapsed(), seen),
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return (start.elapsed(), seen),
        }
        assert!(
            start.elapsed() < bound,
            "the server kept the connection open for {bound:?}"
        );
    }
}

/// Slow and idle connections are closed: a client sending half a request head, or nothing, or
/// leaving a keep-alive connection idle, loses the connection; requests on time are answered
/// as before. Bounds are generous: only "closed at all" is asserted.
#[test]
fn slow_and_idle_connections_are_closed() {
    let (_dir, data) = temp_data();
    let server = Server::start_with(
        &data,
        &["--header-read-timeout", "1", "--idle-timeout", "2"],
    );
    let bound = Duration::from_secs(20);
    let connect = || {
        let stream = TcpStream::connect(&server.addr).unwrap();
        stream.set_nodelay(true).unwrap();
        stream
    };

    // Half a request head, then nothing.
    let mut half = connect();
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .unwrap();
    // Nothing at all.
    let mut silent = connect();
    let (_, seen) = wait_closed(&mut half, bound);
    assert!(
        seen.is_empty() || seen.starts_with(b"HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&seen)
    );
    wait_closed(&mut silent, bound);

    // A complete request is answered; then the idle keep-alive connection is closed.
    let mut idle = connect();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (_, seen) = wait_closed(&mut idle, bound);
    let text = String::from_utf8_lossy(&seen);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");

    // Ordinary requests still work, back to back on one connection.
    for _ in 0..3 {
        server.call("GET", "/healthz", None, None).ok(200);
    }
    assert!(server.stop().success());
}

/// The cap holds: with `--max-connections 1`, a second connection is not served while the
/// first is open, and is served as soon as it closes.
#[test]
fn connections_beyond_the_cap_wait_for_a_slot() {
    let (_dir, data) = temp_data();
    let server = Server::start_with(
        &data,
        &["--max-connections", "1", "--header-read-timeout", "60"],
    );
    let mut first = TcpStream::connect(&server.addr).unwrap();
    first.write_all(b"G").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let mut second = TcpStream::connect(&server.addr).unwrap();
    second
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    second
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut buf = [0u8; 64];
    let waited = second.read(&mut buf);
    assert!(
        matches!(&waited, Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)),
        "served beyond the cap: {waited:?}"
    );
    drop(first);
    let (_, seen) = wait_closed(&mut second, Duration::from_secs(20));
    let text = String::from_utf8_lossy(&seen);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(server.stop().success());
}
