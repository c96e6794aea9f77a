//! OAuth 2.0 access tokens of a licensing server's admin API: the JWT profile of RFC 9068
//! (`typ: at+jwt`), signed and verified like every other token of this format (EdDSA only,
//! key by `kid`, `verify_strict`, exact `typ`). Issued by `issue_access_token` (feature
//! `issuer`); checked by [`verify_access_token`].

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::jws::{TokenKind, verify_token};
use crate::keys::TrustStore;

/// Longest an access token may live: `exp - iat`, seconds (15 minutes).
pub const MAX_LIFETIME_SECS: i64 = 15 * 60;

/// Clock skew forgiven when `exp`, `nbf` and `iat` are compared with the verifier's clock,
/// seconds (replicas of one server, whose clocks agree to within this).
pub const LEEWAY_SECS: i64 = 30;

/// The claims of an access token (RFC 9068 §2.2), plus the organization it is scoped to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessClaims {
    /// The authorization server (the licensing server's issuer).
    pub iss: String,
    /// The client the token was issued to (client credentials: the client itself).
    pub sub: String,
    /// The resource server: the admin API's resource identifier.
    pub aud: String,
    /// The OAuth client id (equal to `sub`).
    pub client_id: String,
    /// The granted scope: one role name (`admin`, `license_manager`, `it_staff`, `auditor`).
    pub scope: String,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Not before, Unix seconds (the same as `iat` when the issuer writes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// Expires at, Unix seconds: at most [`MAX_LIFETIME_SECS`] after `iat`.
    pub exp: i64,
    /// The token's unique id (what revocation names).
    pub jti: String,
    /// The organization (tenant) the token acts in.
    pub org: String,
}

impl AccessClaims {
    /// The rules every access token's claims satisfy whatever the clock: every string
    /// present, `sub` equal to `client_id`, a lifetime of 1 s to [`MAX_LIFETIME_SECS`], `nbf`
    /// (when present) within that lifetime.
    pub fn validate(&self) -> Result<(), Error> {
        for (field, value) in [
            ("iss", &self.iss),
            ("sub", &self.sub),
            ("aud", &self.aud),
            ("client_id", &self.client_id),
            ("scope", &self.scope),
            ("jti", &self.jti),
            ("org", &self.org),
        ] {
            if value.is_empty() {
                return Err(Error::claim(field, "must not be empty"));
            }
        }
        if self.sub != self.client_id {
            return Err(Error::claim("sub", "must equal `client_id`"));
        }
        let lifetime = self.exp.saturating_sub(self.iat);
        if !(1..=MAX_LIFETIME_SECS).contains(&lifetime) {
            return Err(Error::claim(
                "exp",
                format!("must be 1 to {MAX_LIFETIME_SECS} seconds after `iat`"),
            ));
        }
        if let Some(nbf) = self.nbf
            && !(self.iat..self.exp).contains(&nbf)
        {
            return Err(Error::claim("nbf", "must be from `iat` to before `exp`"));
        }
        Ok(())
    }
}

/// Verifies `token` as an access token signed by a key of `store` (the strict procedure of
/// every token kind, `typ` exactly `at+jwt`), then its claims: [`AccessClaims::validate`],
/// `iss` and `aud` exactly the expected values, and `now` (Unix seconds) within
/// `[nbf or iat, exp)` give or take [`LEEWAY_SECS`]. Whether the token or its client was
/// revoked is the caller's to check (it lives in the server's database).
pub fn verify_access_token(
    token: &str,
    store: &TrustStore,
    issuer: &str,
    audience: &str,
    now: i64,
) -> Result<AccessClaims, Error> {
    let verified = verify_token(token, TokenKind::Access, store)?;
    let claims: AccessClaims = serde_json::from_value(serde_json::Value::Object(verified.claims))
        .map_err(|e| Error::claim("", e.to_string()))?;
    claims.validate()?;
    if claims.iss != issuer {
        return Err(Error::claim("iss", "not this server's issuer"));
    }
    if claims.aud != audience {
        return Err(Error::claim("aud", "not this resource server"));
    }
    if now >= claims.exp.saturating_add(LEEWAY_SECS) {
        return Err(Error::claim("exp", "the access token has expired"));
    }
    if claims.nbf.unwrap_or(claims.iat) > now.saturating_add(LEEWAY_SECS) {
        return Err(Error::claim("nbf", "the access token is not valid yet"));
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{PrivateKey, issue_access_token, sign_raw, sign_token};

    const ISS: &str = "https://licensing.example";
    const AUD: &str = "https://licensing.example/v1";

    fn claims(iat: i64) -> AccessClaims {
        AccessClaims {
            iss: ISS.into(),
            sub: "oac_1".into(),
            aud: AUD.into(),
            client_id: "oac_1".into(),
            scope: "auditor".into(),
            iat,
            nbf: Some(iat),
            exp: iat + 600,
            jti: "atj_1".into(),
            org: "org_1".into(),
        }
    }

    fn store(key: &PrivateKey) -> TrustStore {
        let mut store = TrustStore::new();
        store.add(key.public_key().clone()).unwrap();
        store
    }

    #[test]
    fn issued_tokens_verify_with_their_claims_and_header() {
        let key = PrivateKey::generate().unwrap();
        let token = issue_access_token(&claims(1000), &key).unwrap();
        let (header, _) = crate::decode_unverified(&token).unwrap();
        assert_eq!(header["typ"], "at+jwt");
        assert_eq!(header["alg"], "EdDSA");
        assert_eq!(header["kid"], key.public_key().kid());
        let got = verify_access_token(&token, &store(&key), ISS, AUD, 1001).unwrap();
        assert_eq!(got, claims(1000));
    }

    #[test]
    fn the_clock_issuer_and_audience_are_checked() {
        let key = PrivateKey::generate().unwrap();
        let token = issue_access_token(&claims(1000), &key).unwrap();
        let store = store(&key);
        // Expired (beyond the leeway), not yet valid, another issuer or audience.
        for (iss, aud, now, field) in [
            (ISS, AUD, 1600 + LEEWAY_SECS, "exp"),
            (ISS, AUD, 1000 - LEEWAY_SECS - 1, "nbf"),
            ("https://other", AUD, 1001, "iss"),
            (ISS, "https://other/v1", 1001, "aud"),
        ] {
            match verify_access_token(&token, &store, iss, aud, now) {
                Err(Error::InvalidClaims { field: got, .. }) => assert_eq!(got, field),
                other => panic!("{field}: {other:?}"),
            }
        }
        assert!(verify_access_token(&token, &store, ISS, AUD, 1600 + LEEWAY_SECS - 1).is_ok());
    }

    #[test]
    fn lifetimes_over_fifteen_minutes_are_neither_issued_nor_accepted() {
        let key = PrivateKey::generate().unwrap();
        let mut long = claims(1000);
        long.exp = 1000 + MAX_LIFETIME_SECS + 1;
        assert!(issue_access_token(&long, &key).is_err());
        let map = serde_json::to_value(&long).unwrap();
        let token = sign_token(TokenKind::Access, &key, map.as_object().unwrap()).unwrap();
        assert!(verify_access_token(&token, &store(&key), ISS, AUD, 1001).is_err());
    }

    #[test]
    fn other_types_algorithms_and_keys_are_refused() {
        let key = PrivateKey::generate().unwrap();
        let other = PrivateKey::generate().unwrap();
        let store = store(&key);
        let payload = serde_json::to_vec(&claims(1000)).unwrap();
        let kid = key.public_key().kid();
        let typ_jwt = sign_raw("JWT", &key, None, &payload);
        assert!(matches!(
            verify_access_token(&typ_jwt, &store, ISS, AUD, 1001),
            Err(Error::WrongTokenType { .. })
        ));
        for alg in ["none", "HS256"] {
            let header = format!(r#"{{"alg":"{alg}","kid":"{kid}","typ":"at+jwt"}}"#);
            let token = sign_raw("at+jwt", &key, Some(&header), &payload);
            assert!(matches!(
                verify_access_token(&token, &store, ISS, AUD, 1001),
                Err(Error::UnsupportedAlgorithm(_))
            ));
        }
        let foreign = issue_access_token(&claims(1000), &other).unwrap();
        assert!(matches!(
            verify_access_token(&foreign, &store, ISS, AUD, 1001),
            Err(Error::UnknownKey(_))
        ));
        // The right kid with another key's signature.
        let header = format!(r#"{{"alg":"EdDSA","kid":"{kid}","typ":"at+jwt"}}"#);
        let forged = sign_raw("at+jwt", &other, Some(&header), &payload);
        assert_eq!(
            verify_access_token(&forged, &store, ISS, AUD, 1001),
            Err(Error::SignatureInvalid)
        );
    }
}
