//! The shared state of the handlers (`AppState`): the database, the signing keys, the
//! rate limits, and the trust a client declared for the request at hand.

use std::sync::Arc;

use axum::extract::Request;
use licensing_core::{PrivateKey, TrustStore};

use super::*;
use licensing_core::protocol::ErrorCode;

/// The seats of a floating license that its seat-call rate grows with, at most (see
/// [`AppState::check_seat_rate`]).
pub(super) const SEAT_RATE_CELLS: u32 = 1024;

/// The seats of a floating license that its seat-call rate counts at least: a small license's
/// users waiting in line poll every few seconds.
pub(super) const MIN_SEAT_RATE_SEATS: i64 = 4;

/// Shared state of the handlers.
#[derive(Clone)]
pub(crate) struct AppState(pub(super) Arc<Inner>);

pub(super) struct Inner {
    pub(super) db: Db,
    pub(super) keys: std::sync::RwLock<Arc<KeyRing>>,
    pub(super) issuer: String,
    /// Client API requests per license key (hash), on this replica.
    pub(super) client_limiter: governor::DefaultKeyedRateLimiter<String>,
    /// Seat calls per floating license (id), on this replica: the client rate per seat (see
    /// [`AppState::check_seat_rate`]).
    pub(super) seat_limiter: governor::DefaultKeyedRateLimiter<String>,
    /// This replica's one audit writer.
    pub(super) audit: audit::Writer,
    /// Seconds a staged key must have been published before it may sign
    /// (`--key-min-publish-secs`).
    pub(super) key_min_publish_secs: std::sync::atomic::AtomicI64,
}

/// The signing keys in effect, as loaded from the database: the keys that may sign (the
/// current key first, then the previous ones, newest first) and the published JWK Set
/// (staged, current and previous keys; retired ones are unpublished). The server never
/// verifies its own stored tokens: it decides from the claims in its database.
pub(crate) struct KeyRing {
    signers: Vec<PrivateKey>,
    jwks: serde_json::Value,
}

impl KeyRing {
    pub(super) fn from_rows(rows: &[db::SigningKeyRow]) -> Result<KeyRing, String> {
        let mut current = None;
        let mut previous = Vec::new();
        let mut published = TrustStore::new();
        // `rows` come newest first.
        for row in rows {
            let key = PrivateKey::from_pkcs8_pem(&row.private_pem)
                .map_err(|e| format!("signing key {}: {e}", row.kid))?;
            if row.status != "retired" {
                published
                    .add(key.public_key().clone())
                    .map_err(|e| format!("signing key {}: {e}", row.kid))?;
            }
            match row.status.as_str() {
                "current" => current = Some(key),
                "previous" => previous.push(key),
                _ => {}
            }
        }
        let mut signers = vec![current.ok_or("the database holds no current signing key")?];
        signers.extend(previous);
        Ok(KeyRing {
            signers,
            jwks: published.to_jwks(),
        })
    }

    /// Which key signs for a client that trusts `trust`: the current key when the client
    /// trusts it (or says nothing), else the newest previous key it trusts (an app built
    /// before a promotion keeps working until that key is retired), else the current key
    /// (the client will report the key it does not trust). Staged keys never sign.
    pub(super) fn signer_for(&self, trust: &ClientTrust) -> usize {
        let trusted = |kid: &str| match (&trust.kids, trust.held.get()) {
            (Some(kids), _) => kids.iter().any(|k| k == kid),
            (None, Some(held)) => held == kid,
            (None, None) => false,
        };
        if trust.kids.is_none() && trust.held.get().is_none() {
            return 0;
        }
        if trusted(self.signers[0].public_key().kid()) {
            return 0;
        }
        self.signers
            .iter()
            .position(|key| trusted(key.public_key().kid()))
            .unwrap_or(0)
    }
}

/// The keys a client request says its app trusts: the `Licensing-Trusted-Kids` header (sent
/// by the SDK: the kids of the app's trust store), or else the `kid` of the license token the
/// app holds (older SDKs send no header). Set for each request by the request layer.
#[derive(Debug, Default)]
pub(crate) struct ClientTrust {
    pub(super) kids: Option<Vec<String>>,
    pub(super) held: std::sync::OnceLock<String>,
}

tokio::task_local! {
    pub(super) static CLIENT_TRUST: Arc<ClientTrust>;
}

/// The request header in which the SDK names the kids of the app's trust store.
pub(crate) const TRUSTED_KIDS_HEADER: &str = "licensing-trusted-kids";

/// Most kids a request may name.
pub(super) const MAX_TRUSTED_KIDS: usize = 32;

/// Parses the `Licensing-Trusted-Kids` header: comma-separated kids (visible ASCII, 1 to 128
/// characters each, at most [`MAX_TRUSTED_KIDS`]). `Ok(None)` without the header.
pub(super) fn trusted_kids(req: &Request) -> Result<Option<Vec<String>>, error::ApiError> {
    let mut values = req.headers().get_all(TRUSTED_KIDS_HEADER).iter().peekable();
    if values.peek().is_none() {
        return Ok(None);
    }
    let invalid = |why: &str| {
        error::ApiError::invalid(
            ErrorCode::InvalidTrustedKids,
            format!("header Licensing-Trusted-Kids: {why}"),
        )
    };
    let mut kids = Vec::new();
    for value in values {
        let text = value.to_str().map_err(|_| invalid("not visible ASCII"))?;
        for kid in text.split(',').map(str::trim).filter(|k| !k.is_empty()) {
            if kid.len() > 128 || !kid.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(invalid("each kid is 1 to 128 visible ASCII characters"));
            }
            kids.push(kid.to_owned());
        }
    }
    if kids.len() > MAX_TRUSTED_KIDS {
        return Err(invalid(&format!("at most {MAX_TRUSTED_KIDS} kids")));
    }
    Ok(Some(kids))
}

/// Notes the kid of the license token a client holds (signature checked by the client): when
/// the request named no trusted kids, the answer is signed with that key if it still signs.
pub(crate) fn note_held_kid(kid: &str) {
    let _ = CLIENT_TRUST.try_with(|trust| trust.held.set(kid.to_owned()));
}

/// Runs `f` signing with the current key whatever the client trusts (tokens the server stores
/// are always signed by the current key).
pub(crate) fn with_current_key<T>(f: impl FnOnce() -> T) -> T {
    CLIENT_TRUST.sync_scope(Arc::new(ClientTrust::default()), f)
}

/// The key that signs (keeps its key ring alive while in use).
pub(crate) struct Signer(Arc<KeyRing>, usize);

impl std::ops::Deref for Signer {
    type Target = PrivateKey;
    fn deref(&self) -> &PrivateKey {
        &self.0.signers[self.1]
    }
}

impl AppState {
    pub(super) async fn new(
        db: Db,
        issuer: String,
        client_rate_per_minute: u32,
    ) -> Result<Self, String> {
        let ring = Self::load_ring(&db).await?;
        let per_minute = std::num::NonZeroU32::new(client_rate_per_minute)
            .ok_or("client_rate_per_minute must be at least 1")?;
        Ok(AppState(Arc::new(Inner {
            audit: audit::Writer::start(db.clone()),
            db,
            keys: std::sync::RwLock::new(Arc::new(ring)),
            issuer,
            client_limiter: governor::RateLimiter::keyed(governor::Quota::per_minute(per_minute)),
            key_min_publish_secs: std::sync::atomic::AtomicI64::new(
                config::DEFAULT_KEY_MIN_PUBLISH_SECS,
            ),
            seat_limiter: governor::RateLimiter::keyed(governor::Quota::per_minute(
                per_minute.saturating_mul(
                    std::num::NonZeroU32::new(SEAT_RATE_CELLS).unwrap_or(std::num::NonZeroU32::MIN),
                ),
            )),
        })))
    }

    /// Sets how long a staged key must have been published before it may sign.
    pub(crate) fn set_key_min_publish_secs(&self, secs: u64) {
        let secs = i64::try_from(secs).unwrap_or(i64::MAX);
        self.0
            .key_min_publish_secs
            .store(secs, std::sync::atomic::Ordering::Relaxed);
    }

    /// How long a staged key must have been published before it may sign, seconds.
    pub(crate) fn key_min_publish_secs(&self) -> i64 {
        self.0
            .key_min_publish_secs
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// This replica's audit writer.
    pub(crate) fn audit(&self) -> &audit::Writer {
        &self.0.audit
    }

    /// 429 when the license key with this hash has used its client-API rate on this replica.
    pub(crate) fn check_client_rate(&self, key_hash: &str) -> Result<(), error::ApiError> {
        use governor::clock::Clock as _;
        match self.0.client_limiter.check_key(&key_hash.to_owned()) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                metrics::counter!("licensing_client_rate_limited_total").increment(1);
                let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
                Err(error::ApiError::rate_limited(wait.as_secs().max(1)))
            }
        }
    }

    /// 429 when the floating license `license_id`, of `seats` seats, has used its seat-call
    /// rate on this replica: the client rate (`client_rate_per_minute`) times its seats, at
    /// least [`MIN_SEAT_RATE_SEATS`] and at most [`SEAT_RATE_CELLS`] of them (a burst of as
    /// many). Each call costs `SEAT_RATE_CELLS / seats` cells of a bucket of the client rate
    /// times `SEAT_RATE_CELLS`, so one keyed limiter serves every size of license.
    pub(crate) fn check_seat_rate(
        &self,
        license_id: &str,
        seats: i64,
    ) -> Result<(), error::ApiError> {
        use governor::clock::Clock as _;
        let seats = u32::try_from(seats.clamp(MIN_SEAT_RATE_SEATS, i64::from(SEAT_RATE_CELLS)))
            .unwrap_or(SEAT_RATE_CELLS);
        let cost = std::num::NonZeroU32::new(SEAT_RATE_CELLS.div_ceil(seats.max(1)))
            .unwrap_or(std::num::NonZeroU32::MIN);
        match self
            .0
            .seat_limiter
            .check_key_n(&license_id.to_owned(), cost)
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => {
                metrics::counter!("licensing_seat_rate_limited_total").increment(1);
                let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
                Err(error::ApiError::rate_limited(wait.as_secs().max(1)))
            }
            // Never: the cost is at most the bucket (the client rate is at least 1).
            Err(_) => Err(error::ApiError::rate_limited(60)),
        }
    }

    pub(super) async fn load_ring(db: &Db) -> Result<KeyRing, String> {
        let rows = db
            .list_signing_keys()
            .await
            .map_err(|e| format!("loading signing keys: {e}"))?;
        let mut rows = rows;
        for row in &mut rows {
            let pem = key_wrap::open_stored(db.key_encryption(), Some(&row.kid), &row.private_pem)?;
            row.private_pem = pem.as_str().to_owned();
        }
        let ring = KeyRing::from_rows(&rows);
        for row in &mut rows {
            zeroize::Zeroize::zeroize(&mut row.private_pem);
        }
        ring
    }

    /// Reloads the key ring from the database (after a rotation here, and periodically, so
    /// every replica follows a rotation made on another).
    pub(crate) async fn reload_keys(&self) -> Result<(), String> {
        let ring = Arc::new(Self::load_ring(self.db()).await?);
        match self.0.keys.write() {
            Ok(mut keys) => *keys = ring,
            Err(poisoned) => *poisoned.into_inner() = ring,
        }
        Ok(())
    }

    pub(super) fn ring(&self) -> Arc<KeyRing> {
        match self.0.keys.read() {
            Ok(keys) => Arc::clone(&keys),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// The database.
    pub(crate) fn db(&self) -> &Db {
        &self.0.db
    }

    /// The key that signs now: the current key, or, in a client request whose app does not
    /// trust the current key yet, the newest previous key it trusts ([`KeyRing::signer_for`]).
    pub(crate) fn key(&self) -> Signer {
        let ring = self.ring();
        let index = CLIENT_TRUST
            .try_with(|trust| ring.signer_for(trust))
            .unwrap_or(0);
        Signer(ring, index)
    }

    /// A verifier trusting the published keys, for any product (tests check what the server
    /// signs the way a client would).
    #[cfg(test)]
    pub(crate) fn verifier(&self) -> licensing_core::Verifier {
        let store = TrustStore::from_document(&self.jwks().to_string())
            .unwrap_or_else(|_| TrustStore::new());
        licensing_core::Verifier::for_any_product(store)
    }

    /// The JWK Set of the published public keys.
    pub(crate) fn jwks(&self) -> serde_json::Value {
        self.ring().jwks.clone()
    }

    /// The `iss` of signed tokens.
    pub(crate) fn issuer(&self) -> &str {
        &self.0.issuer
    }
}

/// Now, in Unix seconds, from the server's clock.
pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
