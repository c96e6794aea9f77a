//! The words of the protocol: a license's status as the server reports it, and the codes of
//! its error answers. Both are open sets on the wire (a newer server may say a word this
//! client does not know): an unknown word parses as `Other`, so an answer is never refused
//! for it.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest unknown word kept (a hostile server cannot make the client keep a long string).
const MAX_OTHER_CHARS: usize = 64;

fn bounded(text: &str) -> String {
    text.chars().take(MAX_OTHER_CHARS).collect()
}

/// A license's status as the server reports it (`status` of a `response+jwt`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ServerStatus {
    /// In force.
    Active,
    /// Suspended by the vendor (may be reinstated).
    Suspended,
    /// Revoked for good.
    Revoked,
    /// Expired (grace included).
    Expired,
    /// Not valid yet.
    NotYetValid,
    /// A status this client does not know (a newer server); treated as not active.
    Other(String),
}

impl ServerStatus {
    /// Every status the server answers today.
    pub const KNOWN: [ServerStatus; 5] = [
        ServerStatus::Active,
        ServerStatus::Suspended,
        ServerStatus::Revoked,
        ServerStatus::Expired,
        ServerStatus::NotYetValid,
    ];

    /// The status named `text` ([`ServerStatus::Other`] for a word this client does not know,
    /// cut to 64 characters).
    pub fn parse(text: &str) -> Self {
        match text {
            "active" => ServerStatus::Active,
            "suspended" => ServerStatus::Suspended,
            "revoked" => ServerStatus::Revoked,
            "expired" => ServerStatus::Expired,
            "not_yet_valid" => ServerStatus::NotYetValid,
            other => ServerStatus::Other(bounded(other)),
        }
    }

    /// The server's name for it.
    pub fn as_str(&self) -> &str {
        match self {
            ServerStatus::Active => "active",
            ServerStatus::Suspended => "suspended",
            ServerStatus::Revoked => "revoked",
            ServerStatus::Expired => "expired",
            ServerStatus::NotYetValid => "not_yet_valid",
            ServerStatus::Other(text) => text,
        }
    }

    /// Whether the status refuses the license (suspended, revoked, expired, not yet valid): a
    /// client keeps such an answer and refuses the license until the server says otherwise.
    /// `false` for active and for a word this client does not know.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            ServerStatus::Suspended
                | ServerStatus::Revoked
                | ServerStatus::Expired
                | ServerStatus::NotYetValid
        )
    }

    /// The error code a server answers (HTTP 403) when a license in this status may not take
    /// a machine or a seat; `None` for active (and for an unknown word).
    pub fn refusal_code(&self) -> Option<ErrorCode> {
        match self {
            ServerStatus::Suspended => Some(ErrorCode::LicenseSuspended),
            ServerStatus::Revoked => Some(ErrorCode::LicenseRevoked),
            ServerStatus::Expired => Some(ErrorCode::LicenseExpired),
            ServerStatus::NotYetValid => Some(ErrorCode::LicenseNotYetValid),
            ServerStatus::Active | ServerStatus::Other(_) => None,
        }
    }
}

impl std::fmt::Display for ServerStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ServerStatus {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ServerStatus {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Ok(ServerStatus::parse(&text))
    }
}

macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident = $name:literal,)*) => {
        /// The code of a server's error answer (`{"error": code, "detail": ...}`): one word per
        /// refusal, stable across versions.
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $($(#[$doc])* $variant,)*
            /// A code this client does not know (a newer server, or `http_<status>` for an
            /// answer that was not the server's error format).
            Other(String),
        }

        impl ErrorCode {
            /// Every code the server answers today.
            pub const KNOWN: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The code named `text` ([`ErrorCode::Other`] for a word this client does not
            /// know, cut to 64 characters).
            pub fn parse(text: &str) -> Self {
                match text {
                    $($name => ErrorCode::$variant,)*
                    other => ErrorCode::Other(bounded(other)),
                }
            }

            /// The code's word on the wire.
            pub fn as_str(&self) -> &str {
                match self {
                    $(ErrorCode::$variant => $name,)*
                    ErrorCode::Other(text) => text,
                }
            }
        }
    };
}

error_codes! {
    // ---- request shape (any route) ----
    /// A field is missing, unknown or invalid (HTTP 422; the detail names it).
    InvalidField = "invalid_field",
    /// The request cannot be read as asked (HTTP 400/422).
    InvalidRequest = "invalid_request",
    /// The body is not well-formed JSON (HTTP 400).
    MalformedJson = "malformed_json",
    /// A request the HTTP layer refused before any route read it (HTTP 4xx).
    BadRequest = "bad_request",
    /// The request took longer than the server allows (HTTP 408).
    RequestTimeout = "request_timeout",
    /// The body could not be read (HTTP 400).
    UnreadableBody = "unreadable_body",
    /// The body is too large (HTTP 413).
    PayloadTooLarge = "payload_too_large",
    /// The body is not `application/json` (HTTP 415).
    UnsupportedMediaType = "unsupported_media_type",
    /// The `Licensing-Trusted-Kids` header cannot be read (HTTP 400).
    InvalidTrustedKids = "invalid_trusted_kids",
    /// No such route (HTTP 404).
    NotFound = "not_found",
    /// The route does not take this method (HTTP 405).
    MethodNotAllowed = "method_not_allowed",
    /// Too many requests for this license key (HTTP 429, `Retry-After`).
    RateLimited = "rate_limited",
    /// The server failed (HTTP 500; the detail says nothing more).
    Internal = "internal",
    /// The server cannot answer now (HTTP 503).
    Unavailable = "unavailable",
    // ---- licenses and machines (client API) ----
    /// No license has this key (HTTP 404).
    LicenseNotFound = "license_not_found",
    /// The license key is not a well-formed key (HTTP 422).
    InvalidLicenseKey = "invalid_license_key",
    /// The license is suspended (HTTP 403).
    LicenseSuspended = "license_suspended",
    /// The license is revoked (HTTP 403).
    LicenseRevoked = "license_revoked",
    /// The license has expired (HTTP 403).
    LicenseExpired = "license_expired",
    /// The license is not valid yet (HTTP 403).
    LicenseNotYetValid = "license_not_yet_valid",
    /// The license's machine limit is reached (HTTP 409).
    MachineLimitReached = "machine_limit_reached",
    /// The license's transfers are used up (HTTP 409).
    TransferLimitReached = "transfer_limit_reached",
    /// No such machine is activated on the license (HTTP 404).
    MachineNotFound = "machine_not_found",
    /// The machine is activated on the license already (HTTP 409).
    MachineAlreadyActivated = "machine_already_activated",
    /// The license's claims cannot be signed (HTTP 422).
    InvalidLicense = "invalid_license",
    // ---- floating seats ----
    /// Every seat is taken (HTTP 409): "No available licenses, please contact IT".
    NoSeats = "no_seats",
    /// The license is not floating (HTTP 409).
    LicenseNotFloating = "license_not_floating",
    /// The lease is over, or this holder was superseded (HTTP 409/410).
    LeaseReleased = "lease_released",
    /// No such lease on the license (HTTP 404).
    LeaseNotFound = "lease_not_found",
    /// The lease has a secret and the request did not present it (HTTP 403).
    LeaseSecretRequired = "lease_secret_required",
    /// The request presented another secret than the lease's (HTTP 403).
    LeaseSecretInvalid = "lease_secret_invalid",
    /// A borrowed lease cannot be force-released (HTTP 409).
    LeaseBorrowed = "lease_borrowed",
    /// The request id was used for another user (HTTP 409).
    RequestIdConflict = "request_id_conflict",
    /// The license allows no borrowing (HTTP 409).
    BorrowingNotAllowed = "borrowing_not_allowed",
    /// The license's borrowable seats are all borrowed (HTTP 409).
    BorrowLimit = "borrow_limit",
    // ---- offline files ----
    /// The file's version is not supported (HTTP 422).
    UnsupportedVersion = "unsupported_version",
    /// The offline deactivation receipt does not verify (HTTP 422).
    InvalidReceipt = "invalid_receipt",
    /// The machine has no deactivation key (HTTP 409).
    NoDeactivationKey = "no_deactivation_key",
    // ---- admin API ----
    /// No or a wrong API token (HTTP 401).
    Unauthorized = "unauthorized",
    /// The token's role may not do this (HTTP 403).
    Forbidden = "forbidden",
    /// No such API token (HTTP 404).
    ApiTokenNotFound = "api_token_not_found",
    /// No such OAuth 2.0 client (HTTP 404).
    OAuthClientNotFound = "oauth_client_not_found",
    /// No such organization (HTTP 404).
    OrganizationNotFound = "organization_not_found",
    /// No such product (HTTP 404).
    ProductNotFound = "product_not_found",
    /// The product exists already (HTTP 409).
    ProductExists = "product_exists",
    /// No such policy (HTTP 404).
    PolicyNotFound = "policy_not_found",
    /// The license cannot move to that status (HTTP 409).
    InvalidTransition = "invalid_transition",
    /// No such signing key (HTTP 404).
    KeyNotFound = "key_not_found",
    /// A key is staged already (HTTP 409).
    KeyAlreadyStaged = "key_already_staged",
    /// The key is the current one (HTTP 409).
    KeyIsCurrent = "key_is_current",
    /// The key is not the previous one (HTTP 409).
    KeyNotPrevious = "key_not_previous",
    /// The staged key was not published long enough (HTTP 409).
    KeyNotPublishedLongEnough = "key_not_published_long_enough",
    /// No key is staged (HTTP 409).
    KeyNotStaged = "key_not_staged",
    /// The key is retired (HTTP 409).
    KeyRetired = "key_retired",
    // ---- directory (admin API) ----
    /// No such directory user in the organization (HTTP 404).
    UserNotFound = "user_not_found",
    /// The organization has a user of that name already, ignoring case (HTTP 409).
    UserExists = "user_exists",
    /// No such department in the organization (HTTP 404).
    DepartmentNotFound = "department_not_found",
    /// The organization has a department of that name already, ignoring case (HTTP 409).
    DepartmentExists = "department_exists",
    // ---- named seats ----
    /// The license's seats are named and this user (or machine) is not assigned one, or the
    /// seats of the department it belongs to are all in use (HTTP 403).
    UserNotAssigned = "user_not_assigned",
    /// Every seat of the license is assigned and it does not allow over-allocation (HTTP 409).
    AssignmentLimitReached = "assignment_limit_reached",
    /// No such seat assignment on the license (HTTP 404).
    AssignmentNotFound = "assignment_not_found",
    /// The assignee already holds an assignment on the license (HTTP 409).
    AssignmentExists = "assignment_exists",
    /// No such user, department or machine to assign a seat to (HTTP 404).
    AssigneeNotFound = "assignee_not_found",
    /// The user is deactivated (deprovisioned) and cannot hold a seat (HTTP 409).
    AssigneeInactive = "assignee_inactive",
    /// No such assignment transfer (HTTP 404).
    TransferNotFound = "transfer_not_found",
    /// The assignment transfer was approved or rejected already (HTTP 409).
    TransferDecided = "transfer_decided",
    /// The assignment has a transfer waiting for an approval already (HTTP 409).
    TransferPending = "transfer_pending",
    /// The user's named seat was reclaimed after inactivity and no seat is free to give it
    /// back (HTTP 403).
    SeatReclaimed = "seat_reclaimed",
    /// The user the app named is deactivated (deprovisioned) in the organization's directory:
    /// it may not take a seat or activate a machine (HTTP 403).
    UserDeactivated = "user_deactivated",
}

impl From<&str> for ErrorCode {
    fn from(text: &str) -> Self {
        ErrorCode::parse(text)
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Ok(ErrorCode::parse(&text))
    }
}

/// A server's error answer: `{"error": code, "detail": text}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// The code naming the problem.
    pub error: ErrorCode,
    /// What went wrong, for a human (names the field when one is at fault).
    pub detail: String,
}

#[cfg(feature = "openapi")]
mod openapi {
    use utoipa::openapi::RefOr;
    use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};

    impl utoipa::PartialSchema for super::ServerStatus {
        fn schema() -> RefOr<Schema> {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some("A license's status as the server reports it."))
                .enum_values(Some(super::ServerStatus::KNOWN.iter().map(|s| s.as_str())))
                .into()
        }
    }

    impl utoipa::ToSchema for super::ServerStatus {}

    impl utoipa::PartialSchema for super::ErrorCode {
        fn schema() -> RefOr<Schema> {
            // An open set: a string, its known words described (not an enum, so a newer code
            // does not break an older reader's validation).
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some(
                    "A stable code (`invalid_field`, `license_not_found`, \
                     `machine_limit_reached`, `no_seats`, ...).",
                ))
                .into()
        }
    }

    impl utoipa::ToSchema for super::ErrorCode {}
}
