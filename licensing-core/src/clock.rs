//! Clock-rollback guard, pure part: a high-water mark of trusted time, and its tamper-evident
//! seal. Persisting the sealed mark is the store's job (feature `store`).
//!
//! The seal is an HMAC keyed to the product and the machine fingerprint: copying the state to
//! another machine, editing the mark or deleting the file is detected. It is tamper-evidence
//! against users, not secrecy against someone who reverse-engineers the app.

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::b64;

/// Default tolerance: the clock may be this far behind the mark (DST, NTP steps) — 1 hour.
pub const DEFAULT_TOLERANCE_SECS: i64 = 3_600;

/// Outcome of comparing the clock with the mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockCheck {
    /// The clock is plausible; persist `new_mark`.
    Trusted {
        /// The mark advanced to `max(mark, now, evidence)`.
        new_mark: i64,
    },
    /// The clock is behind trusted time by more than the tolerance.
    RolledBack {
        /// Seconds the clock is behind the mark.
        behind_by: i64,
    },
}

/// Compares `now` with the mark. `evidence` is trusted time seen since (e.g. the `iat` of a
/// verified token, a signed server time): a clock earlier than it is rolled back too.
pub fn check_clock(
    mark: Option<i64>,
    now: i64,
    evidence: Option<i64>,
    tolerance: i64,
) -> ClockCheck {
    let trusted = mark.into_iter().chain(evidence).max();
    match trusted {
        Some(t) if now < t.saturating_sub(tolerance.max(0)) => ClockCheck::RolledBack {
            behind_by: t.saturating_sub(now),
        },
        _ => ClockCheck::Trusted {
            new_mark: trusted.map_or(now, |t| t.max(now)),
        },
    }
}

/// The persisted form of the mark.
#[derive(Debug, Serialize, Deserialize)]
struct Sealed {
    v: u32,
    mark: i64,
    mac: String,
}

/// Why a sealed mark was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// Not the sealed format.
    #[error("clock state is not readable: {0}")]
    Corrupt(String),
    /// The HMAC does not match: edited, or copied from another machine or product.
    #[error("clock state was modified or belongs to another machine")]
    BadMac,
}

fn key(product: &str, fingerprint_id: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in [
        b"licensing clock guard v1".as_slice(),
        product.as_bytes(),
        fingerprint_id.as_bytes(),
    ] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    h.finalize().into()
}

fn mac(product: &str, fingerprint_id: &str, mark: i64) -> Hmac<Sha256> {
    // HMAC accepts keys of any length; 32 bytes can't fail.
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(&key(product, fingerprint_id))
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    m.update(b"v1 mark ");
    m.update(&mark.to_be_bytes());
    m
}

/// Seals `mark` for this product and machine.
pub fn seal(product: &str, fingerprint_id: &str, mark: i64) -> String {
    let tag = mac(product, fingerprint_id, mark).finalize().into_bytes();
    let sealed = Sealed {
        v: 1,
        mark,
        mac: b64::encode(&tag),
    };
    serde_json::to_string(&sealed).unwrap_or_default()
}

/// Opens a sealed mark, checking its HMAC in constant time.
pub fn unseal(product: &str, fingerprint_id: &str, text: &str) -> Result<i64, SealError> {
    crate::strict_json::check_object(text.as_bytes()).map_err(SealError::Corrupt)?;
    let sealed: Sealed =
        serde_json::from_str(text).map_err(|e| SealError::Corrupt(e.to_string()))?;
    if sealed.v != 1 {
        return Err(SealError::Corrupt(format!("unknown version {}", sealed.v)));
    }
    let tag = b64::decode(&sealed.mac).ok_or_else(|| SealError::Corrupt("mac".into()))?;
    mac(product, fingerprint_id, sealed.mark)
        .verify_slice(&tag)
        .map_err(|_| SealError::BadMac)?;
    Ok(sealed.mark)
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = DEFAULT_TOLERANCE_SECS;

    #[test]
    fn rollback_beyond_tolerance_is_detected_within_is_accepted() {
        let mark = 1_000_000;
        assert_eq!(
            check_clock(Some(mark), mark - H, None, H),
            ClockCheck::Trusted { new_mark: mark }
        );
        assert_eq!(
            check_clock(Some(mark), mark - H - 1, None, H),
            ClockCheck::RolledBack { behind_by: H + 1 }
        );
        // Forward jumps are fine and advance the mark.
        assert_eq!(
            check_clock(Some(mark), mark + 86_400 * 365, None, H),
            ClockCheck::Trusted {
                new_mark: mark + 86_400 * 365
            }
        );
        // A token issued in the clock's future is evidence of rollback.
        assert_eq!(
            check_clock(None, mark, Some(mark + H + 5), H),
            ClockCheck::RolledBack { behind_by: H + 5 }
        );
        assert_eq!(
            check_clock(None, mark, None, H),
            ClockCheck::Trusted { new_mark: mark }
        );
    }

    #[test]
    fn seal_round_trips_and_detects_edits() {
        let sealed = seal("p", "fp", 42);
        assert_eq!(unseal("p", "fp", &sealed), Ok(42));
        assert_eq!(
            unseal("p", "other-machine", &sealed),
            Err(SealError::BadMac)
        );
        assert_eq!(unseal("q", "fp", &sealed), Err(SealError::BadMac));
        let edited = sealed.replace("42", "43");
        assert_eq!(unseal("p", "fp", &edited), Err(SealError::BadMac));
        assert!(matches!(
            unseal("p", "fp", "garbage"),
            Err(SealError::Corrupt(_))
        ));
        assert!(matches!(unseal("p", "fp", ""), Err(SealError::Corrupt(_))));
    }
}
