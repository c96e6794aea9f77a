//! The OpenAPI 3.1 document of the HTTP API, generated from the handlers' `#[utoipa::path]`
//! attributes and the request/response types (`GET /openapi.json`).
//!
//! The router is built from the same attributes (`utoipa_axum::routes!`), so a route cannot be
//! registered without being documented. The protocol's types (`licensing_core::protocol`: the
//! client API's requests and answers, the error body, the machine fingerprint) carry their own
//! schemas (the core's feature `openapi`); this module holds the schemas of the other
//! licensing-core types the admin API takes as input: they mirror the core's serde shapes and
//! the server's input rules, so valid generated inputs are accepted.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoResponses, Modify, OpenApi, ToSchema};

/// Tag of the health, metrics, JWKS and document endpoints.
pub(crate) const TAG_PUBLIC: &str = "public";
/// Tag of the admin API (bearer API token).
pub(crate) const TAG_ADMIN: &str = "admin";
/// Tag of the client API (license key).
pub(crate) const TAG_CLIENT: &str = "client";

/// Name of the bearer security scheme of the admin API.
pub(crate) const BEARER: &str = "api_token";

/// The document's root: info, security scheme, shared schemas. Paths come from the router.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "licensing-server",
        description = "Reference licensing server: admin API (bearer API token), client API \
                       (license key), JWKS, health and metrics.",
        license(name = "MIT OR Apache-2.0"),
    ),
    modifiers(&BearerScheme),
    components(schemas(ErrorBody)),
    tags(
        (name = "public", description = "Health, metrics, published keys, this document."),
        (name = "admin", description = "Admin API: `Authorization: Bearer <API token>`; the \
                                        token's role decides what it may do."),
        (name = "client", description = "Client API, authenticated by the license key."),
        (name = "oauth", description = "OAuth 2.0 authorization server (RFC 6749 client \
                                        credentials, RFC 7009, RFC 8414): form bodies, client \
                                        authentication by HTTP Basic or the body, RFC 6749 \
                                        errors. Its access tokens are accepted by the admin API \
                                        beside API tokens."),
    )
)]
pub(crate) struct ApiDoc;

struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API token (`licensing-server` prints the first one), or an OAuth \
                         2.0 access token from `POST /oauth/token`",
                    ))
                    .build(),
            ),
        );
    }
}

/// The document, serialized once (the routes never change at run time).
pub(crate) fn document_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        let (_, doc) = super::api_router();
        // Serializing an in-memory document cannot fail; an empty body would show it.
        doc.to_json().unwrap_or_default()
    })
}

/// `GET /openapi.json`: this API's OpenAPI 3.1 document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = TAG_PUBLIC,
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json", body = Object)),
)]
pub(crate) async fn openapi_json() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        document_json(),
    )
}

// ---- shared answers ------------------------------------------------------------------------

/// Every error answer: a status and a code naming the problem (the protocol's own type).
pub(crate) use licensing_core::protocol::ErrorBody;

/// Errors of every admin-API call: the bearer token and its role.
#[derive(IntoResponses)]
#[allow(dead_code)] // a documentation type: never built
pub(crate) enum AdminErrors {
    /// Missing, malformed, unknown or revoked API token.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// The token's role may not do this.
    #[response(status = 403)]
    Forbidden(ErrorBody),
}

/// Errors of every call that takes a JSON body.
#[derive(IntoResponses)]
#[allow(dead_code)] // a documentation type: never built
pub(crate) enum BodyErrors {
    /// Malformed JSON, duplicate names, an unreadable body or path.
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// The body is larger than 64 KiB.
    #[response(status = 413)]
    TooLarge(ErrorBody),
    /// The body is not `application/json`.
    #[response(status = 415)]
    UnsupportedMediaType(ErrorBody),
    /// A field is missing, unknown or invalid; `detail` names it.
    #[response(status = 422)]
    Invalid(ErrorBody),
}

/// Errors of a call without a body: a path or query that cannot be read.
#[derive(IntoResponses)]
#[allow(dead_code)] // a documentation type: never built
pub(crate) enum ReadErrors {
    /// A path or query parameter that cannot be read.
    #[response(status = 400)]
    BadRequest(ErrorBody),
}

/// Errors of a client-API call counted against its license key's rate.
#[derive(IntoResponses)]
#[allow(dead_code)] // a documentation type: never built
pub(crate) enum RateLimited {
    /// Too many requests for this license key; see `Retry-After`.
    #[response(status = 429, headers(("Retry-After" = u64, description = "Seconds to wait")))]
    TooMany(ErrorBody),
}

// ---- schemas of licensing-core input types ---------------------------------------------------

/// A role of an API token.
#[derive(ToSchema)]
#[schema(as = Role, rename_all = "snake_case")]
#[allow(dead_code)] // a schema mirror of the roles `extract::Role` parses
pub(crate) enum RoleSchema {
    /// Everything in its organization.
    Admin,
    /// Products, policies, licenses, machines, seats.
    LicenseManager,
    /// Reads, deactivations, seat releases.
    ItStaff,
    /// Read-only.
    Auditor,
    /// An identity provider's SCIM client: `/scim/v2` only (refused by every admin route).
    Scim,
}

/// How a license is sold and evaluated.
#[derive(ToSchema)]
#[schema(as = LicenseModel, rename_all = "snake_case")]
#[allow(dead_code)] // a schema mirror of licensing_core::LicenseModel
pub(crate) enum LicenseModelSchema {
    /// Never expires; versions gated by the maintenance window.
    Perpetual,
    /// Valid until `exp`, then a grace period.
    Subscription,
    /// Valid until `exp`; no grace.
    Trial,
    /// Concurrent use through seat leases.
    Floating,
    /// Bound to machine fingerprints.
    NodeLocked,
    /// Bound to a site's attributes.
    Site,
}

/// One entitled feature.
#[derive(serde::Deserialize, ToSchema)]
#[schema(as = Feature)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // a schema mirror of licensing_core::claims::Feature
pub(crate) struct FeatureSchema {
    /// The feature's own expiry (Unix seconds).
    #[schema(nullable = false, minimum = 0, maximum = 253402300799_i64)]
    exp: Option<i64>,
    /// A numeric limit the app enforces.
    #[schema(nullable = false, minimum = 0)]
    limit: Option<u64>,
}

/// Version entitlement: a semver requirement and/or a maintenance window.
#[derive(serde::Deserialize, ToSchema)]
#[schema(as = VersionRule)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // a schema mirror of licensing_core::claims::VersionRule
pub(crate) struct VersionRuleSchema {
    /// Semver requirement, e.g. `>=2.0.0, <3.0.0`.
    #[schema(nullable = false, example = ">=2.0.0, <3.0.0")]
    req: Option<String>,
    /// Versions released at or before this instant are entitled (Unix seconds).
    #[schema(nullable = false, minimum = 0, maximum = 253402300799_i64)]
    maintenance_until: Option<i64>,
}

/// k-of-n fingerprint matching.
#[derive(serde::Deserialize, ToSchema)]
#[schema(as = MatchPolicy)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // a schema mirror of licensing_core::claims::MatchPolicy
pub(crate) struct MatchPolicySchema {
    /// Components that must all match.
    #[schema(nullable = false)]
    required: Option<Vec<String>>,
    /// Minimum number of matching components (required ones included).
    #[schema(minimum = 0)]
    min_matching: u32,
}

/// Site restrictions.
#[derive(serde::Deserialize, ToSchema)]
#[schema(as = Site)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // a schema mirror of licensing_core::claims::Site
pub(crate) struct SiteSchema {
    /// Display name of the site.
    #[schema(nullable = false)]
    name: Option<String>,
    /// Attribute name → allowed values.
    #[schema(nullable = false)]
    restrictions: Option<BTreeMap<String, Vec<String>>>,
}

/// The licensee.
#[derive(serde::Deserialize, ToSchema)]
#[schema(as = Customer)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // a schema mirror of licensing_core::claims::Customer
pub(crate) struct CustomerSchema {
    /// Customer id in the vendor's systems.
    #[schema(nullable = false)]
    id: Option<String>,
    /// Display name.
    #[schema(nullable = false)]
    name: Option<String>,
    /// Contact e-mail.
    #[schema(nullable = false)]
    email: Option<String>,
}

/// A public key as a JWK (Ed25519).
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // schema only: the JWKS is built by licensing-core
pub(crate) struct Jwk {
    /// Always `OKP`.
    kty: String,
    /// Always `Ed25519`.
    crv: String,
    /// The public key, base64url.
    x: String,
    /// Key id.
    kid: String,
    /// Always `EdDSA`.
    alg: String,
    /// Always `sig`.
    #[serde(rename = "use")]
    use_: String,
}

/// A JWK Set.
#[derive(ToSchema)]
#[allow(dead_code)] // schema only: the JWKS is built by licensing-core
pub(crate) struct Jwks {
    /// The published keys.
    keys: Vec<Jwk>,
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use axum::http::StatusCode;
    use serde_json::Value;

    use super::super::tests::{ADMIN, app, call};

    const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

    fn document() -> Value {
        serde_json::from_str(super::document_json()).unwrap()
    }

    /// Every (method, path) of the document.
    fn operations(doc: &Value) -> BTreeSet<(String, String)> {
        let mut ops = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in METHODS {
                if item.get(method).is_some() {
                    ops.insert((method.to_owned(), path.clone()));
                }
            }
        }
        ops
    }

    /// A concrete path for a template: every `{param}` becomes `x`.
    fn concrete(template: &str) -> String {
        let mut out = String::new();
        let mut in_param = false;
        for c in template.chars() {
            match c {
                '{' => {
                    in_param = true;
                    out.push('x');
                }
                '}' => in_param = false,
                _ if in_param => {}
                _ => out.push(c),
            }
        }
        out
    }

    /// The router's fallbacks answer these codes; a routed handler never does.
    fn is_fallback(status: StatusCode, body: &Value) -> bool {
        (status == StatusCode::NOT_FOUND && body["detail"] == "no such endpoint")
            || (status == StatusCode::METHOD_NOT_ALLOWED && body["error"] == "method_not_allowed")
    }

    #[tokio::test]
    async fn every_route_is_documented_and_every_documented_operation_is_routed() {
        let (_dir, state) = app().await;
        let doc = document();
        let ops = operations(&doc);
        // The router is built from the same `routes!` list as the document; this pins the list
        // (a handler dropped from it, or a route added beside it, changes the count).
        assert_eq!(ops.len(), 101, "{ops:#?}");
        for (method, path) in &ops {
            let uri = concrete(path);
            let (status, body) =
                call(&state, &method.to_uppercase(), &uri, Some(ADMIN), None).await;
            assert!(
                !is_fallback(status, &body),
                "{method} {path} is documented but not routed: {status} {body}"
            );
        }
        // Every other method on a documented path is refused by the router: nothing is routed
        // that the document does not list.
        let paths: BTreeSet<&String> = ops.iter().map(|(_, p)| p).collect();
        for path in paths {
            for method in METHODS {
                if ops.contains(&(method.to_owned(), path.clone())) {
                    continue;
                }
                let (status, body) = call(
                    &state,
                    &method.to_uppercase(),
                    &concrete(path),
                    Some(ADMIN),
                    None,
                )
                .await;
                assert_eq!(
                    status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path} answers {body} but is not documented"
                );
            }
        }
        // A path the document does not list is the fallback's.
        let (status, body) = call(&state, "GET", "/v1/nothing-here", Some(ADMIN), None).await;
        assert!(is_fallback(status, &body), "{status} {body}");
    }

    #[tokio::test]
    async fn the_document_is_served_at_openapi_json() {
        let (_dir, state) = app().await;
        let (status, body) = call(&state, "GET", "/openapi.json", None, None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, document());
        assert!(body["openapi"].as_str().unwrap().starts_with("3.1."));
        assert_eq!(body["info"]["version"], env!("CARGO_PKG_VERSION"));
    }

    #[test]
    fn admin_operations_need_the_bearer_token_and_client_ones_do_not() {
        let doc = document();
        assert_eq!(
            doc["components"]["securitySchemes"][super::BEARER]["scheme"],
            "bearer"
        );
        for (method, path) in operations(&doc) {
            let op = &doc["paths"][&path][&method];
            let secured = op.get("security").is_some();
            let admin = op["tags"][0] == super::TAG_ADMIN;
            assert_eq!(secured, admin, "{method} {path}: security {secured}");
            let responses = op["responses"].as_object().unwrap();
            if admin {
                for status in ["401", "403"] {
                    assert!(
                        responses.contains_key(status),
                        "{method} {path}: no {status}"
                    );
                }
            }
            // The OAuth 2.0 endpoints take form bodies and answer RFC 6749 errors.
            let oauth = op["tags"][0] == super::super::routes::TAG_OAUTH;
            if oauth && op.get("requestBody").is_some() {
                for status in ["400", "401", "413"] {
                    assert!(
                        responses.contains_key(status),
                        "{method} {path}: no {status}"
                    );
                }
            }
            if op.get("requestBody").is_some() && !oauth {
                for status in ["400", "413", "415", "422"] {
                    assert!(
                        responses.contains_key(status),
                        "{method} {path}: no {status}"
                    );
                }
            }
            for (status, response) in responses {
                if status.starts_with('4') {
                    let schema = if oauth { "OAuthErrorBody" } else { "ErrorBody" };
                    assert_eq!(
                        response["content"]["application/json"]["schema"]["$ref"],
                        format!("#/components/schemas/{schema}").as_str(),
                        "{method} {path} {status}"
                    );
                }
            }
        }
        for path in [
            "/v1/client/activate",
            "/v1/client/validate",
            "/v1/client/deactivate",
            "/v1/client/transfer",
        ] {
            assert!(
                doc["paths"][path]["post"]["responses"].get("429").is_some(),
                "{path}: no 429"
            );
        }
    }

    #[test]
    fn request_schemas_refuse_unknown_fields() {
        let doc = document();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for (method, path) in operations(&doc) {
            let Some(body) = doc["paths"][&path][&method].get("requestBody") else {
                continue;
            };
            // OAuth 2.0 form bodies: unknown parameters are ignored (RFC 6749 §3.1).
            if doc["paths"][&path][&method]["tags"][0] == super::super::routes::TAG_OAUTH {
                let form = &body["content"]["application/x-www-form-urlencoded"];
                assert!(form["schema"]["$ref"].is_string(), "{method} {path}");
                continue;
            }
            let reference = body["content"]["application/json"]["schema"]["$ref"]
                .as_str()
                .unwrap();
            let name = reference.trim_start_matches("#/components/schemas/");
            assert_eq!(
                schemas[name]["additionalProperties"],
                Value::Bool(false),
                "{method} {path}: {name}"
            );
        }
    }
}
