//! The harness the online end-to-end tests share: the real `licensing-server serve` on
//! 127.0.0.1 driven over its admin API, and an online client with short deadlines.
// `Server`'s Drop kills and waits for the child, which clippy cannot see.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::zombie_processes,
    dead_code
)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::spawn;

use licensing_core::TrustStore;
use licensing_core::online::{Client, ClientConfig};
use serde_json::{Value, json};

pub const PRODUCT: &str = "com.example.cad";
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// A running server; killed on drop if the test did not stop it.
pub struct Server {
    pub child: Child,
    pub url: String,
    pub admin_token: String,
    pub http: reqwest::blocking::Client,
}

impl Server {
    /// A first start on an empty data directory: the bootstrap admin token must be printed.
    pub fn start(data_dir: &Path) -> Server {
        let server = Self::start_with(data_dir, &[]);
        assert!(
            !server.admin_token.is_empty(),
            "bootstrap token on first start"
        );
        server
    }

    /// `serve` with more arguments (e.g. `--database-url`). `admin_token` is empty when the
    /// server printed none (a replica on a database another server already bootstrapped).
    pub fn start_with(data_dir: &Path, args: &[&str]) -> Server {
        let log = std::fs::File::create(data_dir.with_extension("log")).unwrap();
        let mut serve = Command::new(env!("CARGO_BIN_EXE_licensing-server"));
        serve
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(args)
            .stderr(Stdio::from(log));
        Self::from_command(serve)
    }

    /// A server from a `serve` command the test built (listening on `127.0.0.1:0`, its stderr
    /// set); `admin_token` as in [`Server::start_with`].
    pub fn from_command(serve: Command) -> Server {
        let started = spawn::spawn_serve(serve, TIMEOUT);
        Server {
            child: started.child,
            url: format!("http://{}", started.addr),
            admin_token: started.admin_token.unwrap_or_default(),
            http: reqwest::blocking::Client::builder()
                .timeout(TIMEOUT)
                .build()
                .unwrap(),
        }
    }

    /// A call with `token` as bearer; answers the status and the JSON body (`null` when the
    /// body is not JSON).
    pub fn call(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().unwrap();
        let status = response.status().as_u16();
        let text = response.text().unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// An admin call; asserts the status and answers the JSON body.
    pub fn admin(&self, method: &str, path: &str, body: Option<Value>, status: u16) -> Value {
        let (got, answer) = self.call(method, path, &self.admin_token, body);
        assert_eq!(got, status, "{method} {path}: {answer}");
        answer
    }

    /// The vendor's public keys, as the app ships them (fetched once here for the test; the
    /// client itself never reads the JWKS).
    pub fn shipped_trust_store(&self) -> TrustStore {
        let jwks = self.admin("GET", "/.well-known/jwks.json", None, 200);
        TrustStore::from_document(&jwks.to_string()).unwrap()
    }

    /// A license from a new policy; answers (license id, license key).
    pub fn issue(&self, policy: Value) -> (String, String) {
        let product = self.admin("GET", "/v1/products", None, 200);
        if !product["products"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["id"] == PRODUCT)
        {
            self.admin(
                "POST",
                "/v1/products",
                Some(json!({ "id": PRODUCT, "name": "CAD" })),
                201,
            );
        }
        let mut body = json!({ "product_id": PRODUCT, "name": "e2e" });
        body.as_object_mut()
            .unwrap()
            .extend(policy.as_object().unwrap().clone());
        let policy = self.admin("POST", "/v1/policies", Some(body), 201);
        let license = self.admin(
            "POST",
            "/v1/licenses",
            Some(json!({ "policy_id": policy["id"], "customer": { "name": "Northwind" } })),
            201,
        );
        (
            license["id"].as_str().unwrap().to_owned(),
            license["key"].as_str().unwrap().to_owned(),
        )
    }

    pub fn license_action(&self, id: &str, action: &str) -> Value {
        self.admin(
            "POST",
            &format!("/v1/licenses/{id}/{action}"),
            Some(json!({})),
            200,
        )
    }

    /// SIGTERM, then wait for the graceful exit.
    pub fn stop(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + TIMEOUT;
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "server did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn client(url: &str, trust: &TrustStore) -> Client {
    let config = ClientConfig {
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(5),
        deadline: Duration::from_secs(10),
        ..ClientConfig::new(url, PRODUCT)
    };
    Client::new(config, trust.clone()).unwrap()
}
