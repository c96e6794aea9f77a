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

/// What the store seals: the mark, and the digest of the licensing server's last answer that
/// said the license is not in force, while the store keeps that answer (`response.jwt`).
///
/// Sealing the answer's digest with the mark makes deleting or replacing the kept answer as
/// evident as deleting or editing the mark: a missing answer after a refusal is tampering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockState {
    /// The high-water mark of trusted time (seconds since the epoch).
    pub mark: i64,
    /// SHA-256 of the kept server answer ([`answer_digest`]); `None` when none is kept.
    pub answer: Option<[u8; 32]>,
}

impl ClockState {
    /// A state with `mark` and no kept answer.
    pub fn mark(mark: i64) -> Self {
        ClockState { mark, answer: None }
    }
}

/// The digest a [`ClockState`] seals for a kept server answer: SHA-256 of the token's text
/// with surrounding whitespace removed (as the store reads it back).
pub fn answer_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.trim().as_bytes()).into()
}

/// The persisted form of the state: version 1 (the mark alone) when no answer is kept, so the
/// file stays what earlier releases wrote and read; version 2 with the answer's digest.
#[derive(Debug, Serialize, Deserialize)]
struct Sealed {
    v: u32,
    mark: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    answer: Option<String>,
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

/// The HMAC of a state: `"v1 mark " || BE64(mark)` without an answer (the original format),
/// `"v2 mark " || BE64(mark) || "answer " || digest` with one.
fn mac(product: &str, fingerprint_id: &str, state: &ClockState) -> Hmac<Sha256> {
    // HMAC accepts keys of any length; 32 bytes can't fail.
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(&key(product, fingerprint_id))
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    match &state.answer {
        None => {
            m.update(b"v1 mark ");
            m.update(&state.mark.to_be_bytes());
        }
        Some(digest) => {
            m.update(b"v2 mark ");
            m.update(&state.mark.to_be_bytes());
            m.update(b"answer ");
            m.update(digest);
        }
    }
    m
}

/// Seals `mark` (and no kept answer) for this product and machine.
pub fn seal(product: &str, fingerprint_id: &str, mark: i64) -> String {
    seal_state(product, fingerprint_id, &ClockState::mark(mark))
}

/// Seals a state for this product and machine.
pub fn seal_state(product: &str, fingerprint_id: &str, state: &ClockState) -> String {
    let tag = mac(product, fingerprint_id, state).finalize().into_bytes();
    let sealed = Sealed {
        v: if state.answer.is_some() { 2 } else { 1 },
        mark: state.mark,
        answer: state.answer.as_ref().map(|d| b64::encode(d)),
        mac: b64::encode(&tag),
    };
    serde_json::to_string(&sealed).unwrap_or_default()
}

/// Opens a sealed state and returns its mark, checking its HMAC in constant time.
pub fn unseal(product: &str, fingerprint_id: &str, text: &str) -> Result<i64, SealError> {
    unseal_state(product, fingerprint_id, text).map(|state| state.mark)
}

/// Opens a sealed state, checking its HMAC in constant time.
pub fn unseal_state(
    product: &str,
    fingerprint_id: &str,
    text: &str,
) -> Result<ClockState, SealError> {
    crate::strict_json::check_object(text.as_bytes()).map_err(SealError::Corrupt)?;
    let sealed: Sealed =
        serde_json::from_str(text).map_err(|e| SealError::Corrupt(e.to_string()))?;
    let answer = match (sealed.v, &sealed.answer) {
        // Version 1 has no answer; a member of that name is ignored like any other.
        (1, _) => None,
        (2, Some(answer)) => Some(
            b64::decode_array::<32>(answer).ok_or_else(|| SealError::Corrupt("answer".into()))?,
        ),
        (2, None) => return Err(SealError::Corrupt("version 2 without answer".into())),
        (v, _) => return Err(SealError::Corrupt(format!("unknown version {v}"))),
    };
    let state = ClockState {
        mark: sealed.mark,
        answer,
    };
    let tag = b64::decode(&sealed.mac).ok_or_else(|| SealError::Corrupt("mac".into()))?;
    mac(product, fingerprint_id, &state)
        .verify_slice(&tag)
        .map_err(|_| SealError::BadMac)?;
    Ok(state)
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

    /// A kept answer's digest is sealed with the mark: a state without it, with another
    /// answer, or with the answer dropped from a version 2 file does not open as the original.
    #[test]
    fn the_kept_answer_is_sealed_with_the_mark() {
        let digest = answer_digest("a.b.c\n");
        assert_eq!(digest, answer_digest("a.b.c"));
        let state = ClockState {
            mark: 42,
            answer: Some(digest),
        };
        let sealed = seal_state("p", "fp", &state);
        assert!(
            sealed.starts_with(r#"{"v":2,"mark":42,"answer":""#),
            "{sealed}"
        );
        assert_eq!(unseal_state("p", "fp", &sealed), Ok(state));
        assert_eq!(unseal("p", "fp", &sealed), Ok(42));
        // Without an answer the file is version 1, byte for byte what earlier releases wrote.
        let plain = seal("p", "fp", 42);
        assert!(plain.starts_with(r#"{"v":1,"mark":42,"mac":""#), "{plain}");
        assert_eq!(unseal_state("p", "fp", &plain), Ok(ClockState::mark(42)));
        // Another answer's digest, or the answer removed, or version 1 with the v2 MAC: refused.
        let other = b64::encode(&answer_digest("x.y.z"));
        let swapped = sealed.replace(&b64::encode(&digest), &other);
        assert_eq!(unseal_state("p", "fp", &swapped), Err(SealError::BadMac));
        let mut value: serde_json::Value = serde_json::from_str(&sealed).unwrap();
        value.as_object_mut().unwrap().remove("answer");
        assert!(unseal_state("p", "fp", &value.to_string()).is_err());
        value["v"] = serde_json::json!(1);
        assert_eq!(
            unseal_state("p", "fp", &value.to_string()),
            Err(SealError::BadMac)
        );
    }
}
