//! What the SCIM service provider is and serves: its discovery documents
//! (`ServiceProviderConfig`, `ResourceTypes`, `Schemas`, RFC 7643 §5–7), the attributes of its
//! two resource types (for PATCH), and the JSON of a User and a Group in and out.
//!
//! A User is a directory user: `userName`, `displayName`, `active`, one e-mail (`emails`: the
//! one marked primary, or the first, is kept, shown as type `work`), `externalId`, and the enterprise
//! extension's `department`. A Group is a department: `displayName`, `externalId`, `members`
//! (users). Other attributes are ignored (RFC 7643 §2 lets a service provider keep a subset).

use serde_json::{Map, Value, json};

use super::error::{ScimError, ScimResult, ScimType};

/// The media type of SCIM messages.
pub(crate) const SCIM_MEDIA_TYPE: &str = "application/scim+json";
/// The error message schema.
pub(crate) const ERROR_URN: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
/// The list response message schema.
pub(crate) const LIST_URN: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
/// The PATCH request message schema.
pub(crate) const PATCH_OP_URN: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// The core User schema.
pub(crate) const USER_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// The core Group schema.
pub(crate) const GROUP_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
/// The enterprise User extension (RFC 7643 §4.3), of which `department` is kept.
pub(crate) const ENTERPRISE_URN: &str =
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const SPC_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
const RESOURCE_TYPE_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
const SCHEMA_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";

/// Most resources one list answer holds (`count` is capped to it).
pub(crate) const MAX_RESULTS: i64 = 200;
/// Longest request body of the SCIM service provider (a group's members can be many).
pub(crate) const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Longest text attribute value (user name, display name, e-mail, external id, department).
pub(crate) const MAX_TEXT_CHARS: usize = 256;

/// The kind of an attribute, as PATCH needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A single string.
    String,
    /// A single boolean (strings `"true"`/`"false"` in any case are taken too).
    Boolean,
    /// A single complex value this server keeps whole (`meta`).
    Complex,
    /// A multi-valued complex attribute (`emails`, `members`).
    MultiComplex,
}

/// An attribute of a resource type, as PATCH needs it.
#[derive(Debug)]
pub(crate) struct AttrDef {
    /// The canonical name.
    pub name: &'static str,
    /// Its kind.
    pub kind: Kind,
    /// `false`: read-only (`id`, `meta`).
    pub mutable: bool,
    /// Required (cannot be removed).
    pub required: bool,
}

const fn attr(name: &'static str, kind: Kind) -> AttrDef {
    AttrDef {
        name,
        kind,
        mutable: true,
        required: false,
    }
}

const fn read_only(name: &'static str, kind: Kind) -> AttrDef {
    AttrDef {
        name,
        kind,
        mutable: false,
        required: false,
    }
}

const fn required(name: &'static str, kind: Kind) -> AttrDef {
    AttrDef {
        name,
        kind,
        mutable: true,
        required: true,
    }
}

/// A resource type's attributes: its core schema's (common attributes included) and an
/// extension's.
#[derive(Debug)]
pub(crate) struct ResourceSchema {
    /// The core schema URN.
    pub core_urn: &'static str,
    /// The core and common attributes.
    pub core: &'static [AttrDef],
    /// An extension: its URN and attributes.
    pub extension: Option<(&'static str, &'static [AttrDef])>,
}

impl ResourceSchema {
    /// The extension URN `key` names (without regard to case).
    pub fn extension_named(&self, key: &str) -> Option<&'static str> {
        self.extension
            .map(|(urn, _)| urn)
            .filter(|urn| urn.eq_ignore_ascii_case(key))
    }

    /// The attributes a path's schema URN names: `None` (or the core URN) for the core ones,
    /// the extension's URN for its own (`Some(urn)` in the answer); `None` for a URN this
    /// resource type does not have.
    pub fn attributes_of(
        &self,
        uri: Option<&str>,
    ) -> Option<(Option<&'static str>, &'static [AttrDef])> {
        match uri {
            None => Some((None, self.core)),
            Some(u) if u.eq_ignore_ascii_case(self.core_urn) => Some((None, self.core)),
            Some(u) => self
                .extension
                .filter(|(urn, _)| urn.eq_ignore_ascii_case(u))
                .map(|(urn, attrs)| (Some(urn), attrs)),
        }
    }
}

/// The User resource type.
pub(crate) static USER_SCHEMA: ResourceSchema = ResourceSchema {
    core_urn: USER_URN,
    core: &[
        read_only("id", Kind::String),
        read_only("meta", Kind::Complex),
        required("userName", Kind::String),
        attr("displayName", Kind::String),
        attr("externalId", Kind::String),
        required("active", Kind::Boolean),
        attr("emails", Kind::MultiComplex),
    ],
    extension: Some((ENTERPRISE_URN, &[attr("department", Kind::String)])),
};

/// The Group resource type.
pub(crate) static GROUP_SCHEMA: ResourceSchema = ResourceSchema {
    core_urn: GROUP_URN,
    core: &[
        read_only("id", Kind::String),
        read_only("meta", Kind::Complex),
        required("displayName", Kind::String),
        attr("externalId", Kind::String),
        attr("members", Kind::MultiComplex),
    ],
    extension: None,
};

// ---- discovery ------------------------------------------------------------------------------

/// `GET /ServiceProviderConfig` (RFC 7643 §5).
pub(crate) fn service_provider_config(base: &str) -> Value {
    json!({
        "schemas": [SPC_URN],
        "documentationUri": "https://datatracker.ietf.org/doc/html/rfc7644",
        "patch": { "supported": true },
        "bulk": { "supported": false, "maxOperations": 0, "maxPayloadSize": 0 },
        "filter": { "supported": true, "maxResults": MAX_RESULTS },
        "changePassword": { "supported": false },
        "sort": { "supported": false },
        "etag": { "supported": false },
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "An API token of role `scim` of the organization, as \
                            `Authorization: Bearer <token>`",
            "primary": true,
        }],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": format!("{base}/ServiceProviderConfig"),
        },
    })
}

/// The `ResourceType`s (RFC 7643 §6): `User` and `Group`.
pub(crate) fn resource_types(base: &str) -> Vec<Value> {
    vec![
        json!({
            "schemas": [RESOURCE_TYPE_URN],
            "id": "User",
            "name": "User",
            "endpoint": "/Users",
            "description": "A person of the organization's directory",
            "schema": USER_URN,
            "schemaExtensions": [{ "schema": ENTERPRISE_URN, "required": false }],
            "meta": { "resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/User") },
        }),
        json!({
            "schemas": [RESOURCE_TYPE_URN],
            "id": "Group",
            "name": "Group",
            "endpoint": "/Groups",
            "description": "A department of the organization",
            "schema": GROUP_URN,
            "meta": { "resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/Group") },
        }),
    ]
}

fn string_attr(name: &str, description: &str, required: bool, uniqueness: &str) -> Value {
    json!({
        "name": name, "type": "string", "multiValued": false, "description": description,
        "required": required, "caseExact": false, "mutability": "readWrite",
        "returned": "default", "uniqueness": uniqueness,
    })
}

/// The `Schema`s (RFC 7643 §7) of the attributes this service provider keeps.
pub(crate) fn schemas(base: &str) -> Vec<Value> {
    let meta =
        |id: &str| json!({ "resourceType": "Schema", "location": format!("{base}/Schemas/{id}") });
    vec![
        json!({
            "schemas": [SCHEMA_URN],
            "id": USER_URN,
            "name": "User",
            "description": "User Account",
            "attributes": [
                string_attr("userName", "Unique identifier for the User, unique without regard to case in the organization", true, "server"),
                string_attr("displayName", "The name of the User, suitable for display", false, "none"),
                // Required here (RFC 7643 makes it optional): a directory user is always active
                // or deprovisioned, never without a status; a User created without it is active.
                {
                    "name": "active", "type": "boolean", "multiValued": false,
                    "description": "The User's administrative status; false releases every seat and lease the User holds",
                    "required": true, "mutability": "readWrite", "returned": "default",
                },
                {
                    "name": "emails", "type": "complex", "multiValued": true,
                    "description": "E-mail addresses for the User (one is kept: the one marked `primary`, else the first)",
                    "required": false, "mutability": "readWrite", "returned": "default", "uniqueness": "none",
                    "subAttributes": [
                        string_attr("value", "The e-mail address", false, "none"),
                        {
                            "name": "type", "type": "string", "multiValued": false,
                            "description": "The kind of address (kept as `work`)", "required": false,
                            "caseExact": false, "canonicalValues": ["work"], "mutability": "readWrite",
                            "returned": "default", "uniqueness": "none",
                        },
                    ],
                },
            ],
            "meta": meta(USER_URN),
        }),
        json!({
            "schemas": [SCHEMA_URN],
            "id": ENTERPRISE_URN,
            "name": "EnterpriseUser",
            "description": "Enterprise User",
            "attributes": [string_attr("department", "The User's department", false, "none")],
            "meta": meta(ENTERPRISE_URN),
        }),
        json!({
            "schemas": [SCHEMA_URN],
            "id": GROUP_URN,
            "name": "Group",
            "description": "Group (a department of the organization)",
            "attributes": [
                string_attr("displayName", "The department's name, unique without regard to case in the organization", true, "server"),
                {
                    "name": "members", "type": "complex", "multiValued": true,
                    "description": "The Users of the department", "required": false,
                    "mutability": "readWrite", "returned": "default", "uniqueness": "none",
                    "subAttributes": [
                        {
                            "name": "value", "type": "string", "multiValued": false,
                            "description": "The User's id", "required": false, "caseExact": false,
                            "mutability": "immutable", "returned": "default", "uniqueness": "none",
                        },
                        {
                            "name": "$ref", "type": "reference", "referenceTypes": ["User"],
                            "multiValued": false, "description": "The User's URI", "required": false,
                            "caseExact": false, "mutability": "immutable", "returned": "default",
                            "uniqueness": "none",
                        },
                        {
                            "name": "type", "type": "string", "multiValued": false,
                            "description": "Always `User`", "required": false, "caseExact": false,
                            "canonicalValues": ["User"], "mutability": "immutable",
                            "returned": "default", "uniqueness": "none",
                        },
                    ],
                },
            ],
            "meta": meta(GROUP_URN),
        }),
    ]
}

/// A `ListResponse` of `resources`, `total` in all, starting at 1-based `start_index`.
pub(crate) fn list_response(resources: Vec<Value>, total: i64, start_index: i64) -> Value {
    json!({
        "schemas": [LIST_URN],
        "totalResults": total,
        "startIndex": start_index,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    })
}

// ---- resources ------------------------------------------------------------------------------

/// A User's attributes this server keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UserFields {
    pub user_name: String,
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub external_id: Option<String>,
    pub active: bool,
    pub department: Option<String>,
}

/// A Group's attributes this server keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GroupFields {
    pub display_name: String,
    pub external_id: Option<String>,
    /// The member users' ids, in the order given, without repeats.
    pub members: Vec<String>,
}

/// What `meta` says of a resource.
#[derive(Debug, Clone)]
pub(crate) struct Meta<'a> {
    pub resource_type: &'static str,
    pub id: &'a str,
    pub created: i64,
    pub last_modified: i64,
    pub version: i64,
    /// The service provider's base URL (`http://host/scim/v2`).
    pub base: &'a str,
}

fn rfc3339(at: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(at)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

impl Meta<'_> {
    /// The resource's URI.
    pub fn location(&self) -> String {
        let endpoint = if self.resource_type == "User" {
            "Users"
        } else {
            "Groups"
        };
        format!("{}/{endpoint}/{}", self.base, self.id)
    }

    /// The ETag, `W/"<version>"`.
    pub fn etag(&self) -> String {
        format!("W/\"{}\"", self.version)
    }

    fn json(&self) -> Value {
        json!({
            "resourceType": self.resource_type,
            "created": rfc3339(self.created),
            "lastModified": rfc3339(self.last_modified),
            "location": self.location(),
            "version": self.etag(),
        })
    }
}

/// A User's JSON.
pub(crate) fn user_json(user: &UserFields, meta: &Meta<'_>) -> Value {
    let mut out = Map::new();
    let mut schemas = vec![json!(USER_URN)];
    if user.department.is_some() {
        schemas.push(json!(ENTERPRISE_URN));
    }
    out.insert("schemas".into(), Value::Array(schemas));
    out.insert("id".into(), json!(meta.id));
    if let Some(e) = &user.external_id {
        out.insert("externalId".into(), json!(e));
    }
    out.insert("userName".into(), json!(user.user_name));
    if let Some(d) = &user.display_name {
        out.insert("displayName".into(), json!(d));
    }
    out.insert("active".into(), json!(user.active));
    if let Some(e) = &user.email {
        out.insert("emails".into(), json!([{ "value": e, "type": "work" }]));
    }
    if let Some(d) = &user.department {
        out.insert(ENTERPRISE_URN.into(), json!({ "department": d }));
    }
    out.insert("meta".into(), meta.json());
    Value::Object(out)
}

/// A Group's JSON; `members` are `(user id, user name)` (the name is not shown: RFC 7643
/// §8.7.1 gives members `value`, `$ref` and `type`).
pub(crate) fn group_json(
    group: &GroupFields,
    members: &[(String, String)],
    meta: &Meta<'_>,
) -> Value {
    let mut out = Map::new();
    out.insert("schemas".into(), json!([GROUP_URN]));
    out.insert("id".into(), json!(meta.id));
    if let Some(e) = &group.external_id {
        out.insert("externalId".into(), json!(e));
    }
    out.insert("displayName".into(), json!(group.display_name));
    let members: Vec<Value> = members
        .iter()
        .map(|(id, _name)| {
            json!({
                "value": id, "type": "User",
                "$ref": format!("{}/Users/{id}", meta.base),
            })
        })
        .collect();
    out.insert("members".into(), Value::Array(members));
    out.insert("meta".into(), meta.json());
    Value::Object(out)
}

fn get_ci<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    object
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
        .filter(|v| !v.is_null())
}

fn invalid(detail: String) -> ScimError {
    ScimError::bad(ScimType::InvalidValue, detail)
}

/// A text attribute: a string of 1 to [`MAX_TEXT_CHARS`] characters without control
/// characters (`None` when absent or null; an empty string is absent too).
fn text(object: &Map<String, Value>, name: &str) -> ScimResult<Option<String>> {
    match get_ci(object, name) {
        None => Ok(None),
        Some(Value::String(s)) => {
            let s = s.trim();
            if s.is_empty() {
                return Ok(None);
            }
            if s.chars().count() > MAX_TEXT_CHARS || s.chars().any(char::is_control) {
                return Err(invalid(format!(
                    "`{name}` must be at most {MAX_TEXT_CHARS} characters without control characters"
                )));
            }
            Ok(Some(s.to_owned()))
        }
        Some(_) => Err(invalid(format!("`{name}` must be a string"))),
    }
}

/// A boolean attribute; strings `"true"` and `"false"` in any case are taken (Entra ID sends
/// them so).
fn boolean(object: &Map<String, Value>, name: &str) -> ScimResult<Option<bool>> {
    match get_ci(object, name) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(_) => Err(invalid(format!("`{name}` must be a boolean"))),
    }
}

/// Checks `schemas`, when present, names `core` (RFC 7643 §3: every resource names its
/// schemas).
fn check_schemas(object: &Map<String, Value>, core: &str) -> ScimResult<()> {
    match get_ci(object, "schemas") {
        None => Ok(()),
        Some(Value::Array(list)) if list.iter().any(|s| s.as_str() == Some(core)) => Ok(()),
        Some(_) => Err(ScimError::bad(
            ScimType::InvalidSyntax,
            format!("`schemas` must name {core}"),
        )),
    }
}

/// A User from a `POST`/`PUT` body (or a patched resource): `userName` required; `active`
/// defaults to true.
pub(crate) fn user_from_json(body: &Value) -> ScimResult<UserFields> {
    let object = body
        .as_object()
        .ok_or_else(|| ScimError::bad(ScimType::InvalidSyntax, "a User is a JSON object"))?;
    check_schemas(object, USER_URN)?;
    let user_name =
        text(object, "userName")?.ok_or_else(|| invalid("`userName` is required".into()))?;
    let email = match get_ci(object, "emails") {
        None => None,
        Some(Value::Array(emails)) => {
            let chosen = emails
                .iter()
                .find(|e| {
                    e.get("primary")
                        .is_some_and(|p| p == true || p == "true" || p == "True")
                })
                .or_else(|| emails.first());
            match chosen {
                None => None,
                Some(Value::Object(e)) => text(e, "value")?,
                Some(_) => return Err(invalid("`emails` must be objects".into())),
            }
        }
        Some(_) => return Err(invalid("`emails` must be an array".into())),
    };
    if let Some(e) = &email {
        let (local, domain) = e.split_once('@').unwrap_or(("", ""));
        if local.is_empty() || domain.is_empty() || e.chars().any(char::is_whitespace) {
            return Err(invalid(format!(
                "`emails.value` `{e}` is not an e-mail address"
            )));
        }
    }
    // The extension's attributes under its URN, or as a URN-qualified key.
    let department = match get_ci(object, ENTERPRISE_URN) {
        Some(Value::Object(ext)) => text(ext, "department")?,
        Some(_) => return Err(invalid(format!("`{ENTERPRISE_URN}` must be an object"))),
        None => text(object, &format!("{ENTERPRISE_URN}:department"))?,
    };
    Ok(UserFields {
        user_name,
        display_name: text(object, "displayName")?,
        email,
        external_id: text(object, "externalId")?,
        active: boolean(object, "active")?.unwrap_or(true),
        department,
    })
}

/// A Group from a `POST`/`PUT` body (or a patched resource): `displayName` required.
pub(crate) fn group_from_json(body: &Value) -> ScimResult<GroupFields> {
    let object = body
        .as_object()
        .ok_or_else(|| ScimError::bad(ScimType::InvalidSyntax, "a Group is a JSON object"))?;
    check_schemas(object, GROUP_URN)?;
    let display_name =
        text(object, "displayName")?.ok_or_else(|| invalid("`displayName` is required".into()))?;
    let mut members: Vec<String> = Vec::new();
    match get_ci(object, "members") {
        None => {}
        Some(Value::Array(list)) => {
            for m in list {
                let id = m
                    .as_object()
                    .and_then(|o| get_ci(o, "value"))
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid("each of `members` needs a string `value`".into()))?;
                if !members.iter().any(|known| known == id) {
                    members.push(id.to_owned());
                }
            }
        }
        Some(_) => return Err(invalid("`members` must be an array".into())),
    }
    Ok(GroupFields {
        display_name,
        external_id: text(object, "externalId")?,
        members,
    })
}

/// `attributes` / `excludedAttributes` (RFC 7644 §3.4.2.5) applied to a resource's JSON, at
/// the level of top-level attributes (`emails.value` keeps or drops `emails`). `id` and
/// `schemas` are always returned.
pub(crate) fn project(resource: &mut Value, attributes: &[String], excluded: &[String]) {
    let Some(object) = resource.as_object_mut() else {
        return;
    };
    let top = |name: &str| -> String {
        // `urn:...:User:department` names the extension; `emails.value` names `emails`.
        if name.len() >= ENTERPRISE_URN.len()
            && name[..ENTERPRISE_URN.len()].eq_ignore_ascii_case(ENTERPRISE_URN)
        {
            return ENTERPRISE_URN.to_ascii_lowercase();
        }
        let name = name
            .strip_prefix(USER_URN)
            .or_else(|| name.strip_prefix(GROUP_URN))
            .map_or(name, |r| r.trim_start_matches(':'));
        name.split('.').next().unwrap_or(name).to_ascii_lowercase()
    };
    let always = |k: &str| k == "id" || k == "schemas";
    if !attributes.is_empty() {
        let keep: Vec<String> = attributes.iter().map(|a| top(a)).collect();
        object.retain(|k, _| always(k) || keep.contains(&k.to_ascii_lowercase()));
    } else if !excluded.is_empty() {
        let drop: Vec<String> = excluded.iter().map(|a| top(a)).collect();
        object.retain(|k, _| always(k) || !drop.contains(&k.to_ascii_lowercase()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_reads_back_as_it_was_written() {
        let body = json!({
            "schemas": [USER_URN, ENTERPRISE_URN],
            "userName": "bjensen@example.com", "displayName": "Barbara Jensen", "externalId": "x1",
            "active": "False",
            "emails": [{ "value": "home@example.com", "type": "home" },
                       { "value": "b@example.com", "type": "work", "primary": true }],
            ENTERPRISE_URN: { "department": "Sales" },
            "name": { "givenName": "Barbara" },
        });
        let user = user_from_json(&body).unwrap();
        assert_eq!(
            user,
            UserFields {
                user_name: "bjensen@example.com".into(),
                display_name: Some("Barbara Jensen".into()),
                email: Some("b@example.com".into()),
                external_id: Some("x1".into()),
                active: false,
                department: Some("Sales".into()),
            }
        );
        let meta = Meta {
            resource_type: "User",
            id: "usr_1",
            created: 0,
            last_modified: 60,
            version: 3,
            base: "http://h/scim/v2",
        };
        let out = user_json(&user, &meta);
        assert_eq!(out["meta"]["version"], "W/\"3\"");
        assert_eq!(out["meta"]["lastModified"], "1970-01-01T00:01:00Z");
        assert_eq!(out["meta"]["location"], "http://h/scim/v2/Users/usr_1");
        assert_eq!(user_from_json(&out).unwrap(), user);
    }

    #[test]
    fn bad_users_and_groups_are_refused_with_invalid_value() {
        for body in [
            json!({}),
            json!({ "userName": "" }),
            json!({ "userName": 7 }),
            json!({ "userName": "a\u{7}b" }),
            json!({ "userName": "x".repeat(MAX_TEXT_CHARS + 1) }),
            json!({ "userName": "a", "active": "maybe" }),
            json!({ "userName": "a", "emails": [{ "value": "not-an-address" }] }),
            json!({ "userName": "a", "emails": "a@b" }),
        ] {
            let err = user_from_json(&body).unwrap_err();
            assert_eq!(err.scim_type(), Some(ScimType::InvalidValue), "{body}");
        }
        let err = user_from_json(&json!({ "schemas": [GROUP_URN], "userName": "a" })).unwrap_err();
        assert_eq!(err.scim_type(), Some(ScimType::InvalidSyntax));
        for body in [
            json!({}),
            json!({ "displayName": "x", "members": [{ "display": "no value" }] }),
        ] {
            let err = group_from_json(&body).unwrap_err();
            assert_eq!(err.scim_type(), Some(ScimType::InvalidValue), "{body}");
        }
        let group = group_from_json(&json!({ "displayName": "Sales",
            "members": [{ "value": "u1" }, { "value": "u1" }, { "value": "u2" }] }))
        .unwrap();
        assert_eq!(group.members, ["u1", "u2"]);
    }

    #[test]
    fn attributes_and_excluded_attributes() {
        let meta = Meta {
            resource_type: "User",
            id: "usr_1",
            created: 0,
            last_modified: 0,
            version: 1,
            base: "http://h/scim/v2",
        };
        let user = UserFields {
            user_name: "a".into(),
            display_name: Some("A".into()),
            email: Some("a@b".into()),
            external_id: None,
            active: true,
            department: Some("D".into()),
        };
        let mut only = user_json(&user, &meta);
        project(&mut only, &["userName".into(), "emails.value".into()], &[]);
        let mut keys: Vec<&String> = only.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(keys, ["emails", "id", "schemas", "userName"]);
        let mut without = user_json(&user, &meta);
        project(
            &mut without,
            &[],
            &[format!("{ENTERPRISE_URN}:department"), "meta".into()],
        );
        assert!(without.get(ENTERPRISE_URN).is_none() && without.get("meta").is_none());
        assert_eq!(without["userName"], "a");
    }
}
