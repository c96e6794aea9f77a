//! TLS for `serve --tls-cert FILE --tls-key FILE`: rustls (ring provider, TLS 1.2 and 1.3,
//! HTTP/1.1 by ALPN), with the certificate and key re-read when their files change.
//!
//! The files are PEM: the certificate chain (leaf first) and its private key (PKCS#8, PKCS#1
//! or SEC1). Every few seconds ([`RELOAD_EVERY`]) their modification times and sizes are
//! compared with the last ones seen; on a change both are read again and, when they parse and
//! the key matches the leaf certificate, new handshakes use them (connections already open
//! keep theirs). A broken or half-written pair is logged as a warning and the pair in use stays.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// How often the certificate and key files are checked for a change.
pub(crate) const RELOAD_EVERY: Duration = Duration::from_secs(2);

/// Largest certificate chain or key file read (a chain is a few kilobytes).
const MAX_PEM_BYTES: u64 = 1024 * 1024;

/// The server's TLS: the acceptor new connections handshake with, and the files it reloads.
pub(crate) struct Tls {
    acceptor: tokio_rustls::TlsAcceptor,
    resolver: Arc<Resolver>,
    cert: PathBuf,
    key: PathBuf,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// The certificate new handshakes present: the last pair that loaded.
#[derive(Debug)]
struct Resolver(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.read().ok().map(|current| Arc::clone(&current))
    }
}

/// What identifies a version of the two files: modification time and size of each.
type Stamp = Option<[(SystemTime, u64); 2]>;

fn stamp(cert: &Path, key: &Path) -> Stamp {
    let one = |path: &Path| {
        std::fs::metadata(path)
            .and_then(|meta| Ok((meta.modified()?, meta.len())))
            .ok()
    };
    Some([one(cert)?, one(key)?])
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl Tls {
    /// Loads the pair (an error names the file and what is wrong with it).
    pub(crate) fn load(cert: &Path, key: &Path) -> Result<Tls, String> {
        let certified = load_pair(cert, key)?;
        let resolver = Arc::new(Resolver(RwLock::new(Arc::new(certified))));
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&resolver) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            resolver,
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
        })
    }

    /// The acceptor of new connections.
    pub(crate) fn acceptor(&self) -> &tokio_rustls::TlsAcceptor {
        &self.acceptor
    }

    /// Re-reads the pair; on success new handshakes use it.
    pub(crate) fn reload(&self) -> Result<(), String> {
        let certified = Arc::new(load_pair(&self.cert, &self.key)?);
        if let Ok(mut current) = self.resolver.0.write() {
            *current = certified;
        }
        Ok(())
    }

    /// Checks the files every `every` and reloads the pair when they changed (see the module).
    pub(crate) fn spawn_reloader(self: Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut seen = stamp(&self.cert, &self.key);
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                let now = stamp(&self.cert, &self.key);
                if now == seen {
                    continue;
                }
                seen = now;
                match self.reload() {
                    Ok(()) => tracing::info!(
                        cert = %self.cert.display(),
                        "TLS certificate reloaded; new connections use it"
                    ),
                    Err(e) => tracing::warn!(
                        error = %e,
                        "TLS certificate or key changed but does not load; still using the previous pair"
                    ),
                }
            }
        })
    }
}

fn read_pem(what: &str, path: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let fail = |e: std::io::Error| format!("{what} {}: {e}", path.display());
    let file = std::fs::File::open(path).map_err(fail)?;
    let mut bytes = Vec::new();
    file.take(MAX_PEM_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(fail)?;
    if bytes.len() as u64 > MAX_PEM_BYTES {
        return Err(format!(
            "{what} {}: larger than {MAX_PEM_BYTES} bytes",
            path.display()
        ));
    }
    Ok(bytes)
}

/// The certificate chain and key of `cert` and `key`, the key checked against the leaf.
fn load_pair(cert: &Path, key: &Path) -> Result<CertifiedKey, String> {
    let chain_pem = read_pem("--tls-cert", cert)?;
    let chain = CertificateDer::pem_slice_iter(&chain_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("--tls-cert {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "--tls-cert {}: no PEM certificate in it",
            cert.display()
        ));
    }
    let key_pem = read_pem("--tls-key", key)?;
    let private = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        format!(
            "--tls-key {}: no PEM private key in it ({e})",
            key.display()
        )
    })?;
    let certified = CertifiedKey::from_der(chain, private, &provider()).map_err(|e| {
        format!(
            "--tls-key {} does not go with --tls-cert {}: {e}",
            key.display(),
            cert.display()
        )
    })?;
    Ok(certified)
}
