//! [`DisplayName`]: the one rule for the human-readable names and labels a request carries
//! (product, policy, organization and API-token names and labels, a floating seat's user): 1 to
//! 200 characters, not only white space, without the characters the core refuses in displayed
//! text (`licensing_core::claims::is_unsafe_text_char`: control characters and bidirectional
//! overrides). Checked while the body is parsed; the 422 `invalid_field` names the field.

use serde::{Deserialize, Deserializer, Serialize};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::{PartialSchema, ToSchema};

use super::error::{ApiError, ApiResult};
use licensing_core::protocol::ErrorCode;

/// A checked display name (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub(crate) struct DisplayName(String);

impl DisplayName {
    /// The most characters a display name has.
    pub const MAX_CHARS: usize = licensing_core::claims::MAX_DISPLAY_NAME_CHARS;

    /// What a refused name is told, after the field's name.
    pub const RULE: &'static str = "must be 1 to 200 characters without control characters or \
                                    bidirectional overrides";

    /// The pattern of the OpenAPI schema (the same rule for a schema-driven client).
    const PATTERN: &'static str =
        r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$";

    /// Whether `value` follows the rule.
    pub fn is_valid(value: &str) -> bool {
        licensing_core::claims::is_display_name(value)
    }

    /// `value` as a display name; `None` when it breaks the rule.
    pub fn new(value: String) -> Option<Self> {
        Self::is_valid(&value).then_some(DisplayName(value))
    }

    /// Checks a field kept as a plain string: 422 `invalid_field` naming `field`.
    pub fn check(field: &str, value: &str) -> ApiResult<()> {
        if Self::is_valid(value) {
            Ok(())
        } else {
            Err(Self::refused(field))
        }
    }

    /// The 422 `invalid_field` of a name `field` that breaks the rule.
    pub fn refused(field: &str) -> ApiError {
        ApiError::invalid(ErrorCode::InvalidField, format!("`{field}` {}", Self::RULE))
    }

    /// The name.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl std::ops::Deref for DisplayName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for DisplayName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        DisplayName::new(String::deserialize(deserializer)?)
            .ok_or_else(|| serde::de::Error::custom(Self::RULE))
    }
}

impl PartialSchema for DisplayName {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(Self::MAX_CHARS))
            .pattern(Some(Self::PATTERN))
            .description(Some(
                "1 to 200 characters without control characters, not only white space.",
            ))
            .into()
    }
}

impl ToSchema for DisplayName {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_rule() {
        for good in ["Acme", "  x ", "Ünïcode ✓", &"x".repeat(200)] {
            assert!(DisplayName::is_valid(good), "{good:?}");
        }
        for bad in [
            "",
            "   ",
            "\t\n",
            "a\u{0}b",
            "a\u{1b}[2Jb",
            "a\u{7f}",
            "a\u{9b}31m",
            "gpj\u{202e}exe",
            "a\u{2066}b",
            &"x".repeat(201),
        ] {
            assert!(!DisplayName::is_valid(bad), "{bad:?}");
        }
    }

    #[test]
    fn a_refused_name_is_a_parse_error_naming_the_rule() {
        let ok: DisplayName = serde_json::from_str(r#""Acme""#).expect("valid");
        assert_eq!(&*ok, "Acme");
        let err = serde_json::from_str::<DisplayName>(r#""a\u001bb""#).expect_err("refused");
        assert!(err.to_string().starts_with(DisplayName::RULE), "{err}");
        let err = serde_json::from_str::<DisplayName>(r#"" ""#).expect_err("refused");
        assert!(err.to_string().starts_with(DisplayName::RULE), "{err}");
    }
}
