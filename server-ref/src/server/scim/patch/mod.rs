//! SCIM PATCH (RFC 7644 §3.5.2) applied to a resource's JSON, with the identity providers'
//! dialects: op names in any case (`"Replace"`, `"Add"`), operations without a `path` whose
//! value is an object of attributes (keys may be paths themselves, such as
//! `urn:...:enterprise:2.0:User:department` or `emails[type eq "work"].value`), booleans sent
//! as strings (`"False"`), and member removal by `members[value eq "..."]` or by `remove` on
//! `members` with the members to remove as its value.
//!
//! The path syntax is parsed by `scim_v2` (bounded depth and terms); applying the operations
//! is written here because no crate applies them to a JSON document: `scim_v2` only models
//! them. The handler renders the resource as JSON ([`super::schema`]), applies the operations
//! here, and reads the result back as it reads a `PUT` body, so one parser validates both.
//! Attributes the resource type does not have are ignored (identity providers send many
//! this service provider does not keep, such as `name.givenName`), as RFC 7643 §2 allows.
//!
//! Here: the request parsed into [`Operation`]s; applying them is `apply.rs`, the value
//! filters of their paths `value_filter.rs`.

use serde_json::{Map, Value};

use scim_v2::filter::{AttrExp, AttrPath, CompValue, CompareOp, PatchPath, ValFilter};

use super::error::{ScimError, ScimResult, ScimType};
use super::schema::{AttrDef, Kind, PATCH_OP_URN, ResourceSchema};

mod apply;
mod value_filter;

pub(crate) use apply::apply;

/// Most operations one PATCH request may carry.
pub(crate) const MAX_OPERATIONS: usize = 1000;

/// What an operation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpKind {
    /// `add`.
    Add,
    /// `replace`.
    Replace,
    /// `remove`.
    Remove,
}

/// One operation of a PATCH request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Operation {
    /// The op.
    pub kind: OpKind,
    /// The `path`, if any.
    pub path: Option<String>,
    /// The `value`, if any.
    pub value: Option<Value>,
}

/// The value of `key` in `object`, the key compared without regard to case (SCIM attribute
/// names are case-insensitive, RFC 7643 §2.1).
fn get_ci<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    object
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

/// The operations of a PATCH request body (`{"schemas": [PatchOp], "Operations": [...]}`).
pub(crate) fn parse_request(body: &Value) -> ScimResult<Vec<Operation>> {
    let invalid = |detail: &str| ScimError::bad(ScimType::InvalidSyntax, detail);
    let object = body
        .as_object()
        .ok_or_else(|| invalid("a PATCH body must be a JSON object"))?;
    if let Some(schemas) = get_ci(object, "schemas") {
        let names_patch = schemas
            .as_array()
            .is_some_and(|s| s.iter().any(|u| u.as_str() == Some(PATCH_OP_URN)));
        if !names_patch {
            return Err(invalid(&format!("`schemas` must name {PATCH_OP_URN}")));
        }
    }
    let operations = get_ci(object, "Operations")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("`Operations` must be an array of operations"))?;
    if operations.len() > MAX_OPERATIONS {
        return Err(ScimError::bad(
            ScimType::TooMany,
            format!("at most {MAX_OPERATIONS} operations per request"),
        ));
    }
    operations
        .iter()
        .enumerate()
        .map(|(i, op)| parse_operation(op).map_err(|e| with_index(e, i)))
        .collect()
}

fn with_index(e: ScimError, i: usize) -> ScimError {
    ScimError::new(
        e.status(),
        e.scim_type(),
        format!("Operations[{i}]: {}", e.detail()),
    )
}

fn parse_operation(op: &Value) -> ScimResult<Operation> {
    let object = op
        .as_object()
        .ok_or_else(|| ScimError::bad(ScimType::InvalidSyntax, "an operation must be an object"))?;
    let name = get_ci(object, "op").and_then(Value::as_str).unwrap_or("");
    let kind = if name.eq_ignore_ascii_case("add") {
        OpKind::Add
    } else if name.eq_ignore_ascii_case("replace") {
        OpKind::Replace
    } else if name.eq_ignore_ascii_case("remove") {
        OpKind::Remove
    } else {
        return Err(ScimError::bad(
            ScimType::InvalidSyntax,
            "`op` must be add, replace or remove",
        ));
    };
    let path = match get_ci(object, "path") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) if p.trim().is_empty() => None,
        Some(Value::String(p)) => Some(p.clone()),
        Some(_) => {
            return Err(ScimError::bad(
                ScimType::InvalidPath,
                "`path` must be a string",
            ));
        }
    };
    let value = get_ci(object, "value").cloned();
    if kind != OpKind::Remove && path.is_some() && value.is_none() {
        return Err(ScimError::bad(
            ScimType::InvalidValue,
            "`value` is required for add and replace",
        ));
    }
    Ok(Operation { kind, path, value })
}

#[cfg(test)]
mod tests {
    use super::super::schema::{ENTERPRISE_URN, GROUP_SCHEMA, USER_SCHEMA};
    use super::*;
    use serde_json::json;

    fn patched(schema: &ResourceSchema, start: Value, body: Value) -> ScimResult<Value> {
        let ops = parse_request(&body)?;
        let mut resource = start.as_object().cloned().unwrap();
        apply(schema, &mut resource, &ops)?;
        Ok(Value::Object(resource))
    }

    fn ops(list: Value) -> Value {
        json!({ "schemas": [PATCH_OP_URN], "Operations": list })
    }

    fn user() -> Value {
        json!({
            "id": "usr_1", "userName": "bjensen", "active": true,
            "emails": [{ "value": "b@example.com", "type": "work", "primary": true }],
        })
    }

    #[test]
    fn replace_add_and_remove_with_a_path() {
        let out = patched(
            &USER_SCHEMA,
            user(),
            ops(json!([
                { "op": "replace", "path": "displayName", "value": "Babs" },
                { "op": "add", "path": "externalId", "value": "e-1" },
                { "op": "replace", "path": "emails[type eq \"work\"].value", "value": "babs@example.com" },
                { "op": "add", "path": format!("{ENTERPRISE_URN}:department"), "value": "Sales" },
                { "op": "remove", "path": "externalId" },
            ])),
        )
        .unwrap();
        assert_eq!(out["displayName"], "Babs");
        assert!(out.get("externalId").is_none());
        assert_eq!(out["emails"][0]["value"], "babs@example.com");
        assert_eq!(out[ENTERPRISE_URN]["department"], "Sales");
    }

    /// Entra ID: capitalised ops, no path with an object value, keys that are paths, and
    /// booleans as strings.
    #[test]
    fn entra_id_dialect() {
        let out = patched(
            &USER_SCHEMA,
            user(),
            ops(json!([
                { "op": "Replace", "value": {
                    "active": "False",
                    "displayName": "Barbara",
                    "emails[type eq \"work\"].value": "barbara@example.com",
                    format!("{ENTERPRISE_URN}:department"): "Legal",
                    "name.givenName": "Barbara",
                } },
                { "op": "Add", "path": "title", "value": "ignored" },
            ])),
        )
        .unwrap();
        assert_eq!(out["active"], false);
        assert_eq!(out["displayName"], "Barbara");
        assert_eq!(out["emails"][0]["value"], "barbara@example.com");
        assert_eq!(out[ENTERPRISE_URN]["department"], "Legal");
        assert!(out.get("name").is_none() && out.get("title").is_none());
        let back = patched(
            &USER_SCHEMA,
            out,
            ops(json!([{ "op": "Replace", "path": "active", "value": "True" }])),
        )
        .unwrap();
        assert_eq!(back["active"], true);
    }

    /// Okta: lowercase ops, no path, the extension's attributes under its URN.
    #[test]
    fn okta_dialect() {
        let out = patched(
            &USER_SCHEMA,
            user(),
            ops(json!([{ "op": "replace", "value": {
                "active": false, ENTERPRISE_URN: { "department": "R&D" } } }])),
        )
        .unwrap();
        assert_eq!(out["active"], false);
        assert_eq!(out[ENTERPRISE_URN]["department"], "R&D");
    }

    #[test]
    fn members_added_and_removed_every_way() {
        let group = json!({ "id": "dep_1", "displayName": "Sales",
            "members": [{ "value": "u1" }, { "value": "u2" }] });
        let out = patched(
            &GROUP_SCHEMA,
            group,
            ops(json!([
                { "op": "Add", "path": "members", "value": [{ "value": "u3" }, { "value": "u1" }] },
                { "op": "Remove", "path": "members[value eq \"u2\"]" },
                { "op": "Remove", "path": "members", "value": [{ "value": "U3" }] },
                { "op": "add", "value": { "members": [{ "value": "u4" }] } },
            ])),
        )
        .unwrap();
        let members: Vec<&str> = out["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["value"].as_str().unwrap())
            .collect();
        assert_eq!(members, ["u1", "u4"]);
        let none = patched(
            &GROUP_SCHEMA,
            out,
            ops(json!([{ "op": "remove", "path": "members" }])),
        )
        .unwrap();
        assert!(none.get("members").is_none());
    }

    #[test]
    fn refusals_name_the_rfc_scim_type() {
        let cases = [
            (json!([{ "op": "remove" }]), ScimType::NoTarget),
            (
                json!([{ "op": "replace", "path": "id", "value": "other" }]),
                ScimType::Mutability,
            ),
            (
                json!([{ "op": "remove", "path": "userName" }]),
                ScimType::Mutability,
            ),
            (
                json!([{ "op": "replace", "path": "emails[type eq \"home\"].value", "value": "x" }]),
                ScimType::NoTarget,
            ),
            (
                json!([{ "op": "replace", "path": "userName[", "value": "x" }]),
                ScimType::InvalidPath,
            ),
            (
                json!([{ "op": "replace", "path": "userName.x", "value": "x" }]),
                ScimType::InvalidPath,
            ),
            (
                json!([{ "op": "replace", "path": "active", "value": "maybe" }]),
                ScimType::InvalidValue,
            ),
            (
                json!([{ "op": "replace", "value": "not an object" }]),
                ScimType::InvalidValue,
            ),
            (
                json!([{ "op": "move", "path": "x" }]),
                ScimType::InvalidSyntax,
            ),
            (
                json!([{ "op": "replace", "path": "emails[value gt \"a\"].type", "value": "x" }]),
                ScimType::InvalidFilter,
            ),
        ];
        for (list, expected) in cases {
            let err = patched(&USER_SCHEMA, user(), ops(list.clone())).unwrap_err();
            assert_eq!(
                err.scim_type(),
                Some(expected),
                "{list} -> {}",
                err.detail()
            );
        }
        // The same id is no change.
        patched(
            &USER_SCHEMA,
            user(),
            ops(json!([{ "op": "replace", "path": "id", "value": "usr_1" }])),
        )
        .unwrap();
        let too_many = vec![json!({ "op": "remove", "path": "title" }); MAX_OPERATIONS + 1];
        let err = patched(&USER_SCHEMA, user(), ops(Value::Array(too_many))).unwrap_err();
        assert_eq!(err.scim_type(), Some(ScimType::TooMany));
        let err = patched(
            &USER_SCHEMA,
            user(),
            json!({ "schemas": ["x"], "Operations": [] }),
        )
        .unwrap_err();
        assert_eq!(err.scim_type(), Some(ScimType::InvalidSyntax));
    }

    /// A path that is the extension's URN: its attributes at once.
    #[test]
    fn the_extension_as_a_whole() {
        let out = patched(
            &USER_SCHEMA,
            user(),
            ops(json!([{ "op": "add", "path": ENTERPRISE_URN,
                "value": { "schemas": [ENTERPRISE_URN], "department": "Ops" } }])),
        )
        .unwrap();
        assert_eq!(out[ENTERPRISE_URN]["department"], "Ops");
        let out = patched(
            &USER_SCHEMA,
            out,
            ops(json!([{ "op": "remove", "path": ENTERPRISE_URN }])),
        )
        .unwrap();
        assert!(out.get(ENTERPRISE_URN).is_none());
    }

    /// `add` through a filter that selects nothing creates the value (Entra ID's first
    /// e-mail).
    #[test]
    fn add_through_an_empty_filter_creates_the_value() {
        let out = patched(
            &USER_SCHEMA,
            json!({ "id": "usr_1", "userName": "x" }),
            ops(json!([{ "op": "Add", "path": "emails[type eq \"work\"].value", "value": "x@example.com" }])),
        )
        .unwrap();
        assert_eq!(
            out["emails"],
            json!([{ "type": "work", "value": "x@example.com" }])
        );
    }

    /// Fuzz-style: random operations over the attribute and path alphabet give an answer,
    /// never a panic, on both resource types.
    #[test]
    fn random_operations_never_panic() {
        let ops_names = ["add", "Replace", "remove", "REMOVE", "x"];
        let paths = [
            "",
            "userName",
            "active",
            "emails",
            "emails.value",
            "emails[type eq \"work\"]",
            "emails[type eq \"work\"].value",
            "members",
            "members[value eq \"u1\"]",
            "members[",
            "id",
            "meta",
            ENTERPRISE_URN,
            "urn:x:y",
            "name.givenName",
            "[]",
            "a b",
        ];
        let values = [
            json!(null),
            json!("x"),
            json!("False"),
            json!(true),
            json!(7),
            json!([]),
            json!([{ "value": "u1" }]),
            json!({ "value": "v" }),
            json!([1, 2]),
            json!({ "active": "True", "emails[type eq \"work\"].value": "a@b" }),
        ];
        let mut seed: u64 = 0x51_7cc1_b727_220a;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            usize::try_from(seed % n as u64).unwrap()
        };
        for _ in 0..3000 {
            let mut list = Vec::new();
            for _ in 0..=next(3) {
                let mut op = serde_json::Map::new();
                op.insert("op".into(), json!(ops_names[next(ops_names.len())]));
                let path = paths[next(paths.len())];
                if !path.is_empty() {
                    op.insert("path".into(), json!(path));
                }
                if next(4) > 0 {
                    op.insert("value".into(), values[next(values.len())].clone());
                }
                list.push(Value::Object(op));
            }
            let group = json!({ "id": "g", "displayName": "G", "members": [{ "value": "u1" }] });
            let _ = patched(&USER_SCHEMA, user(), ops(Value::Array(list.clone())));
            let _ = patched(&GROUP_SCHEMA, group, ops(Value::Array(list)));
        }
    }
}
