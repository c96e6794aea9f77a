//! Signed checkpoints of a licensing server's audit chain (`audit-checkpoint+jwt`).
//!
//! The reference server keeps its admin requests in one SHA-256 hash chain (`seq` 1, 2, 3, ...
//! across organizations) and, at an interval and on demand, signs where the chain stands with
//! its current signing key. A checkpoint is an ordinary token of this profile (same header, same
//! verification procedure, its own `typ`), with one of two scopes:
//!
//! - [`SCOPE_SERVER`]: the whole server's chain heads: `seq` and `hash` of the admin chain's
//!   last entry, `events_seq` and `events_hash` of the client-event chain's. Whoever keeps such
//!   a checkpoint can later prove that no entry up to it was rewritten, even by someone who
//!   recomputed every hash of the chain.
//! - [`SCOPE_ORGANIZATION`]: one organization's entries, verifiable without any other tenant's:
//!   `seq` and `hash` of the organization's last entry, and `digest`, a hash chain over the
//!   `(seq, hash)` of each of the organization's entries in `(prev_seq, seq]`, started from
//!   `prev_digest` (the organization's checkpoint before, or [`ZERO_DIGEST`]); `entries` counts
//!   them. An entry of that range altered, removed or added changes the digest.
//!
//! No I/O here: the server signs ([`issue_audit_checkpoint`], feature `issuer`), anyone with
//! the server's JWKS verifies ([`verify_audit_checkpoint`]). docs/FORMAT.md section "Audit
//! checkpoint" is the format.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::Error;
use crate::jws::{TokenKind, verify_token};
use crate::keys::TrustStore;

/// `scope` of a checkpoint of the whole server's chains.
pub const SCOPE_SERVER: &str = "server";
/// `scope` of a checkpoint of one organization's entries.
pub const SCOPE_ORGANIZATION: &str = "organization";
/// The `prev_digest` of an organization's first checkpoint (64 zeros).
pub const ZERO_DIGEST: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// Longest organization id accepted.
const MAX_ORG_CHARS: usize = 128;

/// The claims of an `audit-checkpoint+jwt` token. Members of the other scope are absent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditCheckpointClaims {
    /// The server that signed it (its `--issuer`).
    pub iss: String,
    /// When it was signed (Unix seconds).
    pub iat: i64,
    /// [`SCOPE_SERVER`] or [`SCOPE_ORGANIZATION`].
    pub scope: String,
    /// Organization scope: the organization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    /// The `seq` of the admin entry covered last (server scope: the chain's head, 0 when the
    /// chain is empty).
    pub seq: i64,
    /// That entry's hash (64 lowercase hex digits; 64 zeros for an empty chain).
    pub hash: String,
    /// Server scope: the `seq` of the client-event chain's head (0 when empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_seq: Option<i64>,
    /// Server scope: that event's hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_hash: Option<String>,
    /// Organization scope: the `seq` the organization's checkpoint before covered (0: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev_seq: Option<i64>,
    /// Organization scope: that checkpoint's `digest` ([`ZERO_DIGEST`]: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev_digest: Option<String>,
    /// Organization scope: [`fold_digest`] of `prev_digest` over the organization's entries
    /// with `prev_seq < seq <= self.seq`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Organization scope: how many entries the digest folds (at least 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entries: Option<i64>,
}

/// Whether `value` is 64 lowercase hex digits.
pub fn is_hash(value: &str) -> bool {
    value.len() == 64
        && value
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn lower_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

/// One step of an organization digest: SHA-256 over the domain tag
/// `licensing audit digest v1`, then `prev` (64 ASCII hex digits), `seq` (8 bytes big-endian)
/// and `hash` (64 ASCII hex digits), as lowercase hex.
pub fn digest_step(prev: &str, seq: i64, hash: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"licensing audit digest v1");
    hasher.update(prev.as_bytes());
    hasher.update(seq.to_be_bytes());
    hasher.update(hash.as_bytes());
    lower_hex(&hasher.finalize())
}

/// [`digest_step`] folded over `entries` (`(seq, hash)`, in seq order) from `prev`.
pub fn fold_digest<'a>(prev: &str, entries: impl IntoIterator<Item = (i64, &'a str)>) -> String {
    entries
        .into_iter()
        .fold(prev.to_owned(), |digest, (seq, hash)| {
            digest_step(&digest, seq, hash)
        })
}

impl AuditCheckpointClaims {
    /// Checks the claims are one scope's, complete and in range; the error names the claim.
    pub fn validate(&self) -> Result<(), Error> {
        let hash = |field: &str, value: &str| {
            if is_hash(value) {
                Ok(())
            } else {
                Err(Error::claim(field, "must be 64 lowercase hex digits"))
            }
        };
        if self.iat < 0 {
            return Err(Error::claim("iat", "must not be negative"));
        }
        hash("hash", &self.hash)?;
        match self.scope.as_str() {
            SCOPE_SERVER => {
                if self.org.is_some()
                    || self.prev_seq.is_some()
                    || self.prev_digest.is_some()
                    || self.digest.is_some()
                    || self.entries.is_some()
                {
                    return Err(Error::claim(
                        "scope",
                        "a server checkpoint has no org, prev_seq, prev_digest, digest or entries",
                    ));
                }
                if self.seq < 0 {
                    return Err(Error::claim("seq", "must not be negative"));
                }
                match (self.events_seq, &self.events_hash) {
                    (Some(seq), Some(events_hash)) if seq >= 0 => hash("events_hash", events_hash),
                    _ => Err(Error::claim(
                        "events_seq",
                        "a server checkpoint has events_seq (0 or more) and events_hash",
                    )),
                }
            }
            SCOPE_ORGANIZATION => {
                if self.events_seq.is_some() || self.events_hash.is_some() {
                    return Err(Error::claim(
                        "scope",
                        "an organization checkpoint has no events_seq or events_hash",
                    ));
                }
                match &self.org {
                    Some(org) if !org.is_empty() && org.chars().count() <= MAX_ORG_CHARS => {}
                    _ => return Err(Error::claim("org", "must be 1 to 128 characters")),
                }
                let (Some(prev_seq), Some(prev_digest), Some(digest), Some(entries)) =
                    (self.prev_seq, &self.prev_digest, &self.digest, self.entries)
                else {
                    return Err(Error::claim(
                        "digest",
                        "an organization checkpoint has prev_seq, prev_digest, digest and entries",
                    ));
                };
                if prev_seq < 0 || prev_seq >= self.seq {
                    return Err(Error::claim("prev_seq", "must be 0 or more and below seq"));
                }
                if entries < 1 || entries > self.seq - prev_seq {
                    return Err(Error::claim(
                        "entries",
                        "must be at least 1 and at most seq - prev_seq",
                    ));
                }
                hash("prev_digest", prev_digest)?;
                hash("digest", digest)
            }
            _ => Err(Error::claim("scope", "must be `server` or `organization`")),
        }
    }
}

/// Verifies `token` as a genuine `audit-checkpoint+jwt` signed by a key in `store` (the
/// profile's procedure: size, header, `alg`, key by `kid`, signature, then `typ`) and returns
/// the signing key's kid and the validated claims.
pub fn verify_audit_checkpoint(
    token: &str,
    store: &TrustStore,
) -> Result<(String, AuditCheckpointClaims), Error> {
    let verified = verify_token(token, TokenKind::AuditCheckpoint, store)?;
    let claims: AuditCheckpointClaims =
        serde_json::from_value(serde_json::Value::Object(verified.claims))
            .map_err(|e| Error::claim("", e.to_string()))?;
    claims.validate()?;
    Ok((verified.kid, claims))
}

/// Validates `claims` and signs them as an `audit-checkpoint+jwt` token.
#[cfg(feature = "issuer")]
pub fn issue_audit_checkpoint(
    claims: &AuditCheckpointClaims,
    key: &crate::PrivateKey,
) -> Result<String, Error> {
    claims.validate()?;
    crate::sign_claims(TokenKind::AuditCheckpoint, key, claims)
}

#[cfg(test)]
#[cfg(feature = "issuer")]
mod tests {
    use super::*;
    use crate::PrivateKey;

    fn org_claims() -> AuditCheckpointClaims {
        let hash = "a".repeat(64);
        AuditCheckpointClaims {
            iss: "test".into(),
            iat: 1,
            scope: SCOPE_ORGANIZATION.into(),
            org: Some("org".into()),
            seq: 5,
            hash: hash.clone(),
            events_seq: None,
            events_hash: None,
            prev_seq: Some(0),
            prev_digest: Some(ZERO_DIGEST.into()),
            digest: Some(fold_digest(ZERO_DIGEST, [(5, hash.as_str())])),
            entries: Some(1),
        }
    }

    fn store(key: &PrivateKey) -> TrustStore {
        let mut store = TrustStore::new();
        store.add(key.public_key().clone()).unwrap();
        store
    }

    #[test]
    fn a_checkpoint_round_trips_and_is_refused_as_another_kind() {
        let key = PrivateKey::from_seed(&[3; 32]).unwrap();
        let token = issue_audit_checkpoint(&org_claims(), &key).unwrap();
        let (kid, claims) = verify_audit_checkpoint(&token, &store(&key)).unwrap();
        assert_eq!(kid, key.public_key().kid());
        assert_eq!(claims, org_claims());
        // Another key, or another token kind with the same claims, is refused.
        let other = PrivateKey::from_seed(&[4; 32]).unwrap();
        assert!(verify_audit_checkpoint(&token, &store(&other)).is_err());
        let lease_typed = crate::sign_raw(
            "response+jwt",
            &key,
            None,
            &serde_json::to_vec(&org_claims()).unwrap(),
        );
        assert!(matches!(
            verify_audit_checkpoint(&lease_typed, &store(&key)),
            Err(Error::WrongTokenType { .. })
        ));
        let none = crate::sign_raw(
            "audit-checkpoint+jwt",
            &key,
            Some(r#"{"alg":"none","kid":"x","typ":"audit-checkpoint+jwt"}"#),
            &serde_json::to_vec(&org_claims()).unwrap(),
        );
        assert!(verify_audit_checkpoint(&none, &store(&key)).is_err());
    }

    #[test]
    fn claims_of_mixed_or_incomplete_scopes_are_refused() {
        let mut c = org_claims();
        c.events_seq = Some(1);
        assert!(c.validate().is_err());
        let mut c = org_claims();
        c.prev_seq = Some(5);
        assert!(c.validate().is_err());
        let mut c = org_claims();
        c.hash = "A".repeat(64);
        assert!(c.validate().is_err());
        let mut c = org_claims();
        c.scope = "tenant".into();
        assert!(c.validate().is_err());
        let mut c = org_claims();
        c.scope = SCOPE_SERVER.into();
        assert!(c.validate().is_err());
    }

    #[test]
    fn the_digest_depends_on_every_seq_and_hash_and_their_order() {
        let (a, b) = ("a".repeat(64), "b".repeat(64));
        let base = fold_digest(ZERO_DIGEST, [(1, a.as_str()), (2, b.as_str())]);
        assert!(is_hash(&base));
        for variant in [
            fold_digest(ZERO_DIGEST, [(2, b.as_str()), (1, a.as_str())]),
            fold_digest(ZERO_DIGEST, [(1, a.as_str())]),
            fold_digest(ZERO_DIGEST, [(1, a.as_str()), (3, b.as_str())]),
            fold_digest(ZERO_DIGEST, [(1, b.as_str()), (2, b.as_str())]),
            fold_digest(&"1".repeat(64), [(1, a.as_str()), (2, b.as_str())]),
        ] {
            assert_ne!(base, variant);
        }
    }
}
