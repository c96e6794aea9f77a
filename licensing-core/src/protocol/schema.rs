//! OpenAPI schemas (feature `openapi`) of core types the protocol carries whose serde shape
//! utoipa cannot derive (a [`MachineFingerprint`](crate::MachineFingerprint) with its input
//! rules), and of bounded strings.

use std::collections::BTreeMap;

use utoipa::ToSchema;

/// A machine's fingerprint, as printed by `licensing-server machine fingerprint --json`.
#[derive(ToSchema)]
#[schema(as = MachineFingerprint)]
#[allow(dead_code)] // a schema mirror of crate::MachineFingerprint
pub struct FingerprintSchema {
    /// Combined id over every component hash.
    #[schema(min_length = 1, max_length = 128, pattern = "^[!-~]+$")]
    id: String,
    /// Component name → salted hash (at most 32).
    #[schema(nullable = false, value_type = Option<BTreeMap<ComponentName, ComponentHash>>)]
    components: Option<BTreeMap<String, String>>,
    /// Whether the machine looks like a VM or container.
    #[schema(nullable = false)]
    is_virtual: Option<bool>,
    /// The signals behind `is_virtual` (at most 16).
    #[schema(nullable = false, max_items = 16, value_type = Option<Vec<Text200>>)]
    virtualization: Option<Vec<String>>,
}

/// A string schema with length bounds and a pattern (utoipa has no such attributes on
/// newtypes).
macro_rules! string_schema {
    ($(#[$doc:meta])* $name:ident, $min:expr, $max:expr, $pattern:expr) => {
        $(#[$doc])*
        pub struct $name;

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .min_length(Some($min))
                    .max_length(Some($max))
                    .pattern(Some($pattern))
                    .into()
            }
        }

        impl ToSchema for $name {}
    };
}

string_schema!(
    /// A fingerprint component name.
    ComponentName, 1, 64, "^[!-~]+$"
);
string_schema!(
    /// A fingerprint component hash.
    ComponentHash, 1, 128, "^[!-~]+$"
);
string_schema!(
    /// 1 to 200 characters without control characters, not only white space.
    Text200, 1, 200, r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
);
