//! Offline deactivation receipts: how an air-gapped machine proves to the server that it gave
//! up its activation, without holding any vendor private key.
//!
//! At each activation (online, transfer or offline) the server hands the machine a random
//! per-machine *deactivation key* (32 bytes, base64url), kept in the license store (0600). To
//! deactivate itself offline, the machine removes its license from the store and writes a
//! receipt: the license id, the machine id, the fingerprint id and machine-token `jti` the
//! server issued, the time, a fresh nonce, and an HMAC-SHA256 under the deactivation key over
//! [`DeactivationReceipt::mac_payload`]. The server looks the machine up by `machine_id` on
//! `license_id`, checks the MAC with that machine's key, and deletes the machine. So:
//! - someone who only knows the license key cannot forge a receipt (no deactivation key);
//! - a receipt frees exactly the machine it names (the key is per machine: a receipt of A
//!   names A's id, and B's key does not verify it);
//! - a receipt works once: the machine row it names is gone afterwards, and machine ids are
//!   never reused (a re-activation is a new id with a new key).
//!
//! The format is in docs/FORMAT.md ("Offline deactivation receipt"). No I/O here: the store
//! side is `Licensing::offline_deactivate`, the server side `POST /v1/offline/deactivate`.

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// `kind` of a deactivation receipt file.
pub const DEACTIVATION_RECEIPT_KIND: &str = "licensing.offline_deactivation_receipt";
/// The one version of the receipt format.
pub const DEACTIVATION_RECEIPT_VERSION: u32 = 1;
/// Bytes of a deactivation key.
pub const DEACTIVATION_KEY_BYTES: usize = 32;
/// Largest receipt file read (the real one is under 1 KiB).
pub const MAX_RECEIPT_BYTES: usize = 16 * 1024;
/// Longest text field of a receipt (ids, fingerprint id, jti, nonce).
const MAX_FIELD_CHARS: usize = 128;

/// Why a receipt or a deactivation key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiptError {
    /// Not a receipt of this format: JSON, `kind`, `version`, or a field out of bounds.
    #[error("not an offline deactivation receipt: {0}")]
    Malformed(String),
    /// A deactivation key that is not 32 bytes of base64url.
    #[error("the deactivation key is not 32 bytes of base64url")]
    BadKey,
    /// The MAC does not verify under the machine's deactivation key: forged, altered, or made
    /// for another machine.
    #[error("the receipt's MAC does not verify: forged, altered, or for another machine")]
    BadMac,
}

/// An offline deactivation receipt (the JSON file the air-gapped machine hands to the vendor;
/// also [`crate::protocol::DeactivationReceipt`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = OfflineDeactivationReceipt))]
#[serde(deny_unknown_fields)]
pub struct DeactivationReceipt {
    /// Always [`DEACTIVATION_RECEIPT_KIND`].
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = "^licensing\\.offline_deactivation_receipt$")
    )]
    pub kind: String,
    /// Always [`DEACTIVATION_RECEIPT_VERSION`].
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1))]
    pub version: u32,
    /// The license id (`lic_...`).
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 128, pattern = "^[!-~]+$")
    )]
    pub license_id: String,
    /// The machine (activation) id the server issued (`mch_...`), the machine token's `sub`.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 128, pattern = "^[!-~]+$")
    )]
    pub machine_id: String,
    /// The fingerprint id the machine token binds.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 128, pattern = "^[!-~]+$")
    )]
    pub fingerprint: String,
    /// The `jti` of the machine token the machine held.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 128, pattern = "^[!-~]+$")
    )]
    pub machine_token_jti: String,
    /// When the machine deactivated itself (its clock, Unix seconds; informational).
    pub deactivated_at: i64,
    /// 32 random bytes, base64url: no two receipts have the same MAC.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 128, pattern = "^[!-~]+$")
    )]
    pub nonce: String,
    /// HMAC-SHA256 under the machine's deactivation key over [`Self::mac_payload`], base64url.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 43, max_length = 43, pattern = "^[A-Za-z0-9_-]+$")
    )]
    pub mac: String,
}

type HmacSha256 = Hmac<Sha256>;

/// Decodes a deactivation key (base64url of 32 bytes).
pub fn decode_deactivation_key(key: &str) -> Result<[u8; DEACTIVATION_KEY_BYTES], ReceiptError> {
    crate::b64::decode_array::<DEACTIVATION_KEY_BYTES>(key.trim()).ok_or(ReceiptError::BadKey)
}

/// Encodes a deactivation key (base64url, no padding): how the server hands it out.
pub fn encode_deactivation_key(key: &[u8; DEACTIVATION_KEY_BYTES]) -> String {
    crate::b64::encode(key)
}

impl DeactivationReceipt {
    /// A receipt for the machine `machine_id` of `license_id`, MAC'd under `key` (the
    /// deactivation key the server issued to this machine, base64url).
    pub fn sign(
        key: &str,
        license_id: &str,
        machine_id: &str,
        fingerprint: &str,
        machine_token_jti: &str,
        deactivated_at: i64,
        nonce: &str,
    ) -> Result<Self, ReceiptError> {
        let key = decode_deactivation_key(key)?;
        let mut receipt = DeactivationReceipt {
            kind: DEACTIVATION_RECEIPT_KIND.to_owned(),
            version: DEACTIVATION_RECEIPT_VERSION,
            license_id: license_id.to_owned(),
            machine_id: machine_id.to_owned(),
            fingerprint: fingerprint.to_owned(),
            machine_token_jti: machine_token_jti.to_owned(),
            deactivated_at,
            nonce: nonce.to_owned(),
            mac: String::new(),
        };
        receipt.check_fields()?;
        receipt.mac = crate::b64::encode(&receipt.hmac(&key)?.finalize().into_bytes());
        Ok(receipt)
    }

    /// The canonical bytes the MAC covers: the domain `licensing.offline_deactivation_receipt`
    /// and the version, then each of `license_id`, `machine_id`, `fingerprint`,
    /// `machine_token_jti`, `nonce` as an 8-byte big-endian length and its UTF-8 bytes, then
    /// `deactivated_at` as 8 bytes big-endian (two's complement).
    pub fn mac_payload(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(DEACTIVATION_RECEIPT_KIND.as_bytes());
        out.extend_from_slice(&self.version.to_be_bytes());
        for field in [
            &self.license_id,
            &self.machine_id,
            &self.fingerprint,
            &self.machine_token_jti,
            &self.nonce,
        ] {
            out.extend_from_slice(&(field.len() as u64).to_be_bytes());
            out.extend_from_slice(field.as_bytes());
        }
        out.extend_from_slice(&self.deactivated_at.to_be_bytes());
        out
    }

    fn hmac(&self, key: &[u8; DEACTIVATION_KEY_BYTES]) -> Result<HmacSha256, ReceiptError> {
        let mut mac =
            <HmacSha256 as KeyInit>::new_from_slice(key).map_err(|_| ReceiptError::BadKey)?;
        mac.update(&self.mac_payload());
        Ok(mac)
    }

    /// Checks the MAC under `key` (the machine's deactivation key, base64url), in constant time.
    pub fn verify_mac(&self, key: &str) -> Result<(), ReceiptError> {
        let key = decode_deactivation_key(key)?;
        let tag = crate::b64::decode_array::<32>(&self.mac).ok_or(ReceiptError::BadMac)?;
        self.hmac(&key)?
            .verify_slice(&tag)
            .map_err(|_| ReceiptError::BadMac)
    }

    /// Reads a receipt file (strict JSON: no duplicate or unknown members; kind, version and
    /// field bounds checked). The MAC is not checked here: [`Self::verify_mac`].
    pub fn from_json(text: &str) -> Result<Self, ReceiptError> {
        let text = text.trim_start_matches('\u{feff}').trim();
        if text.len() > MAX_RECEIPT_BYTES {
            return Err(ReceiptError::Malformed(format!(
                "larger than {MAX_RECEIPT_BYTES} bytes"
            )));
        }
        crate::strict_json::check_object(text.as_bytes()).map_err(ReceiptError::Malformed)?;
        let receipt: DeactivationReceipt =
            serde_json::from_str(text).map_err(|e| ReceiptError::Malformed(e.to_string()))?;
        receipt.check_fields()?;
        Ok(receipt)
    }

    /// Checks `kind`, `version` and that every text field is 1 to 128 printable ASCII
    /// characters (what the server's ids, fingerprint ids and nonces are).
    pub fn check_fields(&self) -> Result<(), ReceiptError> {
        if self.kind != DEACTIVATION_RECEIPT_KIND {
            return Err(ReceiptError::Malformed(format!(
                "`kind` must be `{DEACTIVATION_RECEIPT_KIND}`"
            )));
        }
        if self.version != DEACTIVATION_RECEIPT_VERSION {
            return Err(ReceiptError::Malformed(format!(
                "version {} is not supported (only {DEACTIVATION_RECEIPT_VERSION})",
                self.version
            )));
        }
        for (name, value) in [
            ("license_id", &self.license_id),
            ("machine_id", &self.machine_id),
            ("fingerprint", &self.fingerprint),
            ("machine_token_jti", &self.machine_token_jti),
            ("nonce", &self.nonce),
        ] {
            let printable = value.bytes().all(|b| (b'!'..=b'~').contains(&b));
            if value.is_empty() || value.len() > MAX_FIELD_CHARS || !printable {
                return Err(ReceiptError::Malformed(format!(
                    "`{name}` must be 1 to {MAX_FIELD_CHARS} printable ASCII characters"
                )));
            }
        }
        Ok(())
    }

    /// The receipt file's content (pretty JSON).
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";

    fn receipt() -> DeactivationReceipt {
        DeactivationReceipt::sign(
            KEY,
            "lic_a",
            "mch_a",
            "fp-a",
            "jti-a",
            1_700_000_000,
            "nonce-0123456789",
        )
        .unwrap()
    }

    #[test]
    fn a_signed_receipt_verifies_and_round_trips() {
        let r = receipt();
        r.verify_mac(KEY).unwrap();
        let back = DeactivationReceipt::from_json(&r.to_json()).unwrap();
        assert_eq!(back, r);
        back.verify_mac(KEY).unwrap();
    }

    #[test]
    fn every_field_is_covered_by_the_mac() {
        let r = receipt();
        let mut changed = Vec::new();
        for i in 0..6 {
            let mut c = r.clone();
            match i {
                0 => c.license_id = "lic_b".into(),
                1 => c.machine_id = "mch_b".into(),
                2 => c.fingerprint = "fp-b".into(),
                3 => c.machine_token_jti = "jti-b".into(),
                4 => c.nonce = "nonce-other-0123".into(),
                _ => c.deactivated_at += 1,
            }
            changed.push(c);
        }
        for c in changed {
            assert_eq!(c.verify_mac(KEY), Err(ReceiptError::BadMac));
        }
    }

    #[test]
    fn another_key_or_a_garbled_mac_is_refused() {
        let r = receipt();
        let other = encode_deactivation_key(&[7u8; 32]);
        assert_eq!(r.verify_mac(&other), Err(ReceiptError::BadMac));
        let mut garbled = r.clone();
        garbled.mac = "not base64!".into();
        assert_eq!(garbled.verify_mac(KEY), Err(ReceiptError::BadMac));
        assert_eq!(r.verify_mac("short"), Err(ReceiptError::BadKey));
    }

    #[test]
    fn length_prefixes_keep_fields_apart() {
        let a = DeactivationReceipt::sign(KEY, "lic_ab", "c", "f", "j", 0, "n").unwrap();
        let mut b = a.clone();
        b.license_id = "lic_a".into();
        b.machine_id = "bc".into();
        assert_ne!(a.mac_payload(), b.mac_payload());
    }

    #[test]
    fn malformed_receipts_are_refused() {
        let r = receipt();
        let mut json: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        json["extra"] = 1.into();
        assert!(matches!(
            DeactivationReceipt::from_json(&json.to_string()),
            Err(ReceiptError::Malformed(_))
        ));
        let mut bad = r.clone();
        bad.kind = "licensing.offline_activation_request".into();
        assert!(DeactivationReceipt::from_json(&bad.to_json()).is_err());
        let mut bad = r.clone();
        bad.machine_id = "mch a\n".into();
        assert!(DeactivationReceipt::from_json(&bad.to_json()).is_err());
        assert!(DeactivationReceipt::from_json(&"x".repeat(MAX_RECEIPT_BYTES + 1)).is_err());
    }
}
