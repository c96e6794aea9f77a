//! Floating-license seat leases (`lease+jwt`): short-lived tokens a licensing server signs when
//! it grants a seat. See `docs/FORMAT.md`, "Lease tokens".

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::claims::{json_object, non_empty, path_error, timestamp};
use crate::error::Error;
use crate::status::Status;

/// The claims of a `lease+jwt` token. Every member is required but `borrowed`, and no other is
/// allowed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self")]
#[serde(deny_unknown_fields)]
pub struct LeaseClaims {
    /// Issuer: the licensing server.
    pub iss: String,
    /// Subject: the lease id.
    pub sub: String,
    /// Audience: the product id (one).
    pub aud: String,
    /// Issued at (seconds since the Unix epoch, server clock).
    pub iat: i64,
    /// Expiry (seconds since the Unix epoch, server clock): the lease is live strictly before.
    pub exp: i64,
    /// Unique token id (each heartbeat signs a fresh token).
    pub jti: String,
    /// The floating license the seat belongs to.
    pub license_id: String,
    /// The client installation holding the seat.
    pub client_id: String,
    /// The user holding the seat.
    pub user: String,
    /// Fencing counter of the lease: a heartbeat must present the current one.
    pub epoch: u64,
    /// A borrowed seat: taken offline until `exp`, with no heartbeat needed. Absent (and
    /// never written) when false, so leases that do not borrow read as before.
    #[serde(default, skip_serializing_if = "is_false")]
    pub borrowed: bool,
}

fn is_false(value: &bool) -> bool {
    !*value
}

json_object!(LeaseClaims);

impl LeaseClaims {
    /// Parses and validates a payload that already passed the strict JSON pre-pass.
    /// Parses and validates a verified token's payload in one strict pass, or, when that
    /// refuses it, the long way (strict pre-pass, then [`Self::from_json`]) to name the problem.
    pub(crate) fn from_payload(payload: &[u8]) -> Result<Self, Error> {
        let claims: LeaseClaims = match crate::strict_json::from_slice(payload) {
            Ok(claims) => claims,
            Err(_) => {
                crate::jws::check_payload(payload)?;
                return Self::from_json(payload);
            }
        };
        claims.validate()?;
        Ok(claims)
    }

    pub(crate) fn from_json(payload: &[u8]) -> Result<Self, Error> {
        let de = &mut serde_json::Deserializer::from_slice(payload);
        let claims: LeaseClaims = serde_path_to_error::deserialize(de).map_err(path_error)?;
        claims.validate()?;
        Ok(claims)
    }

    /// Builds and validates claims from a JSON object. Errors name the offending field.
    pub fn from_object(object: serde_json::Map<String, serde_json::Value>) -> Result<Self, Error> {
        let claims: LeaseClaims =
            serde_path_to_error::deserialize(serde_json::Value::Object(object))
                .map_err(path_error)?;
        claims.validate()?;
        Ok(claims)
    }

    /// The rules the JSON types cannot express; run before signing and after verifying.
    pub fn validate(&self) -> Result<(), Error> {
        for (field, value) in [
            ("iss", &self.iss),
            ("sub", &self.sub),
            ("aud", &self.aud),
            ("jti", &self.jti),
            ("license_id", &self.license_id),
            ("client_id", &self.client_id),
            ("user", &self.user),
        ] {
            non_empty(field, value)?;
        }
        timestamp("iat", Some(self.iat))?;
        timestamp("exp", Some(self.exp))?;
        if self.exp <= self.iat {
            return Err(Error::claim("exp", "must be later than iat"));
        }
        if self.epoch == 0 {
            return Err(Error::claim("epoch", "must be at least 1"));
        }
        Ok(())
    }

    /// Whether the lease is live at `now`: strictly before `exp`. At the exact expiry instant
    /// the lease is over; the server applies the same rule to heartbeats and to its reaper.
    pub fn is_live_at(&self, now: i64) -> bool {
        now < self.exp
    }
}

/// A verified lease token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub(crate) claims: LeaseClaims,
    pub(crate) kid: String,
}

impl Lease {
    /// The verified claims.
    pub fn claims(&self) -> &LeaseClaims {
        &self.claims
    }

    /// The kid of the key that signed it.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The lease id.
    pub fn id(&self) -> &str {
        &self.claims.sub
    }

    /// Whether this lease lets the app use the floating license `license_id` at `now`:
    /// [`Status::Valid`] while live, [`Status::LeaseExpired`] from `exp` on, and
    /// [`Status::LeaseRequired`] when it is a lease for another license.
    pub fn status_for(&self, license_id: &str, now: i64) -> Status {
        if self.claims.license_id != license_id {
            Status::LeaseRequired
        } else if self.claims.is_live_at(now) {
            Status::Valid
        } else {
            Status::LeaseExpired
        }
    }
}
