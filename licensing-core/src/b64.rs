//! Strict base64url (RFC 4648 §5) as JWS requires: no padding, no whitespace, canonical
//! trailing bits. The `base64` crate enforces all three with this configuration.

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

const STRICT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(false),
);

/// Decodes strict unpadded base64url; `None` on any deviation.
pub(crate) fn decode(input: &str) -> Option<Vec<u8>> {
    STRICT.decode(input).ok()
}

/// Decodes into a fixed-size buffer; `None` unless the input decodes to exactly `N` bytes.
pub(crate) fn decode_array<const N: usize>(input: &str) -> Option<[u8; N]> {
    // A longer input cannot decode to N bytes; refusing it early bounds the work.
    if input.len() != (N * 4).div_ceil(3) {
        return None;
    }
    let mut out = [0u8; N];
    match STRICT.decode_slice(input, &mut out) {
        Ok(n) if n == N => Some(out),
        _ => None,
    }
}

/// Encodes unpadded base64url.
pub(crate) fn encode(input: &[u8]) -> String {
    STRICT.encode(input)
}
