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

use serde_json::{Map, Value};

use scim_v2::filter::{AttrExp, AttrPath, CompValue, CompareOp, PatchPath, ValFilter};

use super::error::{ScimError, ScimResult, ScimType};
use super::schema::{AttrDef, Kind, PATCH_OP_URN, ResourceSchema};

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

/// Applies `operations` in order to `resource` (the resource's JSON, extension attributes under
/// their schema URN), which `schema` describes. All or nothing: on an error the caller drops
/// the copy it passed.
pub(crate) fn apply(
    schema: &ResourceSchema,
    resource: &mut Map<String, Value>,
    operations: &[Operation],
) -> ScimResult<()> {
    for (i, op) in operations.iter().enumerate() {
        apply_one(schema, resource, op).map_err(|e| with_index(e, i))?;
    }
    Ok(())
}

fn apply_one(
    schema: &ResourceSchema,
    resource: &mut Map<String, Value>,
    op: &Operation,
) -> ScimResult<()> {
    match (&op.path, op.kind) {
        (None, OpKind::Remove) => Err(ScimError::bad(
            ScimType::NoTarget,
            "`remove` needs a `path`",
        )),
        (None, kind) => {
            // Without a path the value is an object of attributes (RFC 7644 §3.5.2.1, .3);
            // its keys may be paths, and an extension's URN may hold its attributes.
            let Some(Value::Object(values)) = &op.value else {
                return Err(ScimError::bad(
                    ScimType::InvalidValue,
                    "without a `path`, `value` must be an object of attributes",
                ));
            };
            for (key, value) in values {
                if key.eq_ignore_ascii_case("schemas") {
                    continue;
                }
                if let Some(ext) = schema.extension_named(key) {
                    let Value::Object(inner) = value else {
                        return Err(ScimError::bad(
                            ScimType::InvalidValue,
                            format!("`{key}` must be an object"),
                        ));
                    };
                    for (name, value) in inner {
                        let path = AttrPath {
                            uri: Some(ext.to_owned()),
                            name: name.clone(),
                            sub_attr: None,
                        };
                        set(schema, resource, kind, &PatchPath::Attr(path), value, key)?;
                    }
                    continue;
                }
                let path = parse_path(key)?;
                set(schema, resource, kind, &path, value, key)?;
            }
            Ok(())
        }
        (Some(text), kind) => {
            if let Some(ext) = schema.extension_named(text) {
                return whole_extension(schema, resource, kind, ext, op.value.as_ref());
            }
            let path = parse_path(text)?;
            match kind {
                OpKind::Remove => remove(schema, resource, &path, op.value.as_ref(), text),
                _ => {
                    let value = op.value.as_ref().unwrap_or(&Value::Null);
                    set(schema, resource, kind, &path, value, text)
                }
            }
        }
    }
}

/// An operation whose path is an extension's URN: on the extension's attributes at once.
fn whole_extension(
    schema: &ResourceSchema,
    resource: &mut Map<String, Value>,
    kind: OpKind,
    ext: &'static str,
    value: Option<&Value>,
) -> ScimResult<()> {
    if kind == OpKind::Remove {
        resource.retain(|k, _| !k.eq_ignore_ascii_case(ext));
        return Ok(());
    }
    let Some(Value::Object(inner)) = value else {
        return Err(ScimError::bad(
            ScimType::InvalidValue,
            format!("`{ext}` takes an object of its attributes"),
        ));
    };
    if kind == OpKind::Replace {
        resource.retain(|k, _| !k.eq_ignore_ascii_case(ext));
    }
    for (name, value) in inner {
        if name.eq_ignore_ascii_case("schemas") {
            continue;
        }
        let path = AttrPath {
            uri: Some(ext.to_owned()),
            name: name.clone(),
            sub_attr: None,
        };
        set(schema, resource, kind, &PatchPath::Attr(path), value, ext)?;
    }
    Ok(())
}

fn parse_path(text: &str) -> ScimResult<PatchPath> {
    text.parse::<PatchPath>()
        .map_err(|e| ScimError::bad(ScimType::InvalidPath, format!("path `{text}`: {e}")))
}

/// Where a path points in a resource: the attribute (its definition and the object that
/// holds it: the resource, or its extension's object), or nowhere this resource keeps.
struct Located<'s> {
    def: &'s AttrDef,
    /// `Some(urn)`: in the extension object under that key.
    extension: Option<&'static str>,
}

fn locate<'s>(schema: &'s ResourceSchema, path: &AttrPath) -> ScimResult<Option<Located<'s>>> {
    let Some((extension, defs)) = schema.attributes_of(path.uri.as_deref()) else {
        return Ok(None);
    };
    let Some(def) = defs
        .iter()
        .find(|d| d.name.eq_ignore_ascii_case(&path.name))
    else {
        return Ok(None);
    };
    if path.sub_attr.is_some() && def.kind != Kind::MultiComplex {
        return Err(ScimError::bad(
            ScimType::InvalidPath,
            format!("`{}` has no sub-attributes", def.name),
        ));
    }
    Ok(Some(Located { def, extension }))
}

/// The object holding a located attribute (created for an extension when `create`).
fn holder<'r>(
    resource: &'r mut Map<String, Value>,
    extension: Option<&str>,
    create: bool,
) -> Option<&'r mut Map<String, Value>> {
    match extension {
        None => Some(resource),
        Some(urn) => {
            if create && !resource.contains_key(urn) {
                resource.insert(urn.to_owned(), Value::Object(Map::new()));
            }
            resource.get_mut(urn).and_then(Value::as_object_mut)
        }
    }
}

/// A boolean sent as a string (`"False"`, as Entra ID does) made a boolean.
fn coerce(def: &AttrDef, value: &Value) -> ScimResult<Value> {
    match (def.kind, value) {
        (Kind::Boolean, Value::String(s)) if s.eq_ignore_ascii_case("true") => {
            Ok(Value::Bool(true))
        }
        (Kind::Boolean, Value::String(s)) if s.eq_ignore_ascii_case("false") => {
            Ok(Value::Bool(false))
        }
        (Kind::Boolean, Value::Bool(_) | Value::Null) => Ok(value.clone()),
        (Kind::Boolean, _) => Err(ScimError::bad(
            ScimType::InvalidValue,
            format!("`{}` must be a boolean", def.name),
        )),
        _ => Ok(value.clone()),
    }
}

/// Refuses a change to a read-only attribute (`id`, `meta`); the same value is no change.
fn check_mutable(
    def: &AttrDef,
    holder: &Map<String, Value>,
    value: Option<&Value>,
) -> ScimResult<()> {
    if def.mutable {
        return Ok(());
    }
    if value.is_some() && get_ci(holder, def.name) == value {
        return Ok(());
    }
    Err(ScimError::bad(
        ScimType::Mutability,
        format!("`{}` is read-only", def.name),
    ))
}

/// `add` or `replace` of `value` at `path`.
fn set(
    schema: &ResourceSchema,
    resource: &mut Map<String, Value>,
    kind: OpKind,
    path: &PatchPath,
    value: &Value,
    text: &str,
) -> ScimResult<()> {
    let (attr_path, filter, sub) = match path {
        PatchPath::Attr(p) => (p, None, p.sub_attr.as_deref()),
        PatchPath::Value(v) => (&v.attr, Some(&v.filter), v.sub_attr.as_deref()),
    };
    let Some(at) = locate(schema, attr_path)? else {
        return Ok(());
    };
    let Some(holder) = holder(resource, at.extension, true) else {
        return Err(ScimError::bad(
            ScimType::InvalidPath,
            format!("`{text}`: the extension is not an object"),
        ));
    };
    check_mutable(at.def, holder, Some(value))?;
    if !at.def.mutable {
        return Ok(());
    }
    let name = at.def.name;
    if at.def.kind != Kind::MultiComplex {
        if filter.is_some() {
            return Err(ScimError::bad(
                ScimType::InvalidPath,
                format!("`{name}` is not multi-valued"),
            ));
        }
        holder.retain(|k, _| !k.eq_ignore_ascii_case(name));
        let value = coerce(at.def, value)?;
        if !value.is_null() {
            holder.insert(name.to_owned(), value);
        }
        return Ok(());
    }
    let mut items = take_items(holder, name);
    match (filter, sub) {
        (None, None) => {
            let new = as_items(name, value)?;
            if kind == OpKind::Replace {
                items = new;
            } else {
                for item in new {
                    if !items.contains(&item) {
                        items.push(item);
                    }
                }
            }
        }
        (None, Some(sub)) => {
            if items.is_empty() {
                items.push(Value::Object(Map::new()));
            }
            for item in &mut items {
                set_sub(item, sub, value);
            }
        }
        (Some(filter), sub) => {
            let mut matched = false;
            for item in &mut items {
                if matches(filter, item)? {
                    matched = true;
                    match sub {
                        Some(sub) => set_sub(item, sub, value),
                        None => merge(item, value, name)?,
                    }
                }
            }
            if !matched {
                // `add` through a filter that selects nothing creates the value it describes
                // (Entra ID adds `emails[type eq "work"].value` to a user with no e-mail);
                // `replace` selects nothing to replace (RFC 7644 §3.5.2.3: noTarget).
                let Some(mut item) = (kind == OpKind::Add)
                    .then(|| described_by(filter))
                    .flatten()
                else {
                    return Err(ScimError::bad(
                        ScimType::NoTarget,
                        format!("`{text}` matches no value"),
                    ));
                };
                match sub {
                    Some(sub) => set_sub(&mut item, sub, value),
                    None => merge(&mut item, value, name)?,
                }
                items.push(item);
            }
        }
    }
    put_items(holder, name, items);
    Ok(())
}

/// `remove` at `path`; `value`, on a multi-valued attribute without a filter, lists the values
/// to remove (Entra ID removes members so: `{"path": "members", "value": [{"value": id}]}`).
fn remove(
    schema: &ResourceSchema,
    resource: &mut Map<String, Value>,
    path: &PatchPath,
    value: Option<&Value>,
    text: &str,
) -> ScimResult<()> {
    let (attr_path, filter, sub) = match path {
        PatchPath::Attr(p) => (p, None, p.sub_attr.as_deref()),
        PatchPath::Value(v) => (&v.attr, Some(&v.filter), v.sub_attr.as_deref()),
    };
    let Some(at) = locate(schema, attr_path)? else {
        return Ok(());
    };
    let Some(holder) = holder(resource, at.extension, false) else {
        return Ok(());
    };
    check_mutable(at.def, holder, None)?;
    if at.def.required {
        return Err(ScimError::bad(
            ScimType::Mutability,
            format!("`{}` is required and cannot be removed", at.def.name),
        ));
    }
    let name = at.def.name;
    if at.def.kind != Kind::MultiComplex {
        if filter.is_some() {
            return Err(ScimError::bad(
                ScimType::InvalidPath,
                format!("`{text}`: `{name}` is not multi-valued"),
            ));
        }
        holder.retain(|k, _| !k.eq_ignore_ascii_case(name));
        return Ok(());
    }
    let mut items = take_items(holder, name);
    match (filter, sub) {
        (None, None) => match value {
            Some(listed) if !listed.is_null() => {
                let listed = as_items(name, listed)?;
                let gone: Vec<&Value> = listed
                    .iter()
                    .filter_map(|l| l.as_object().and_then(|o| get_ci(o, "value")))
                    .collect();
                items.retain(|item| {
                    let v = item.as_object().and_then(|o| get_ci(o, "value"));
                    !v.is_some_and(|v| gone.iter().any(|g| same_value(g, v)))
                });
            }
            _ => items.clear(),
        },
        (None, Some(sub)) => {
            for item in &mut items {
                if let Some(o) = item.as_object_mut() {
                    o.retain(|k, _| !k.eq_ignore_ascii_case(sub));
                }
            }
        }
        (Some(filter), sub) => {
            let mut kept = Vec::with_capacity(items.len());
            for mut item in items {
                if matches(filter, &item)? {
                    if let (Some(sub), Some(o)) = (sub, item.as_object_mut()) {
                        o.retain(|k, _| !k.eq_ignore_ascii_case(sub));
                        kept.push(item);
                    }
                } else {
                    kept.push(item);
                }
            }
            items = kept;
        }
    }
    put_items(holder, name, items);
    Ok(())
}

fn take_items(holder: &mut Map<String, Value>, name: &str) -> Vec<Value> {
    let key = holder
        .keys()
        .find(|k| k.eq_ignore_ascii_case(name))
        .cloned();
    match key.and_then(|k| holder.remove(&k)) {
        Some(Value::Array(items)) => items,
        Some(Value::Null) | None => Vec::new(),
        Some(one) => vec![one],
    }
}

fn put_items(holder: &mut Map<String, Value>, name: &str, items: Vec<Value>) {
    if !items.is_empty() {
        holder.insert(name.to_owned(), Value::Array(items));
    }
}

/// A multi-valued attribute's new values: an array of objects, or one object.
fn as_items(name: &str, value: &Value) -> ScimResult<Vec<Value>> {
    let items = match value {
        Value::Array(items) => items.clone(),
        Value::Object(_) => vec![value.clone()],
        Value::Null => Vec::new(),
        _ => {
            return Err(ScimError::bad(
                ScimType::InvalidValue,
                format!("`{name}` takes objects"),
            ));
        }
    };
    if items.iter().any(|i| !i.is_object()) {
        return Err(ScimError::bad(
            ScimType::InvalidValue,
            format!("`{name}` takes objects"),
        ));
    }
    Ok(items)
}

fn set_sub(item: &mut Value, sub: &str, value: &Value) {
    if let Some(o) = item.as_object_mut() {
        o.retain(|k, _| !k.eq_ignore_ascii_case(sub));
        if !value.is_null() {
            o.insert(sub.to_owned(), value.clone());
        }
    }
}

fn merge(item: &mut Value, value: &Value, name: &str) -> ScimResult<()> {
    let (Some(o), Value::Object(new)) = (item.as_object_mut(), value) else {
        return Err(ScimError::bad(
            ScimType::InvalidValue,
            format!("a value of `{name}` is an object"),
        ));
    };
    for (k, v) in new {
        set_sub_in(o, k, v);
    }
    Ok(())
}

fn set_sub_in(o: &mut Map<String, Value>, key: &str, value: &Value) {
    o.retain(|k, _| !k.eq_ignore_ascii_case(key));
    o.insert(key.to_owned(), value.clone());
}

/// The value a filter of `eq` comparisons joined by `and` describes (`type eq "work"`), to
/// create when an `add` selects nothing; `None` for any other filter.
fn described_by(filter: &ValFilter) -> Option<Value> {
    let mut item = Map::new();
    fn walk(filter: &ValFilter, item: &mut Map<String, Value>) -> Option<()> {
        match filter {
            ValFilter::Attr(AttrExp::Comparison(path, CompareOp::Eq, value)) => {
                let value = match value {
                    CompValue::Str(s) => Value::String(s.clone()),
                    CompValue::True => Value::Bool(true),
                    CompValue::False => Value::Bool(false),
                    CompValue::Number(n) => Value::Number(n.clone()),
                    CompValue::Null => return None,
                };
                item.insert(path.name.clone(), value);
                Some(())
            }
            ValFilter::And(all) => all.iter().try_for_each(|f| walk(f, item)),
            _ => None,
        }
    }
    walk(filter, &mut item)?;
    Some(Value::Object(item))
}

/// Two values equal for SCIM: strings without regard to case (`caseExact` false), others
/// exactly.
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(a), Value::String(b)) => a.to_lowercase() == b.to_lowercase(),
        _ => a == b,
    }
}

/// Whether a value of a multi-valued attribute matches a value filter (`type eq "work"`).
pub(crate) fn matches(filter: &ValFilter, item: &Value) -> ScimResult<bool> {
    Ok(match filter {
        ValFilter::Attr(exp) => matches_exp(exp, item)?,
        ValFilter::Not(inner) => !matches(inner, item)?,
        ValFilter::And(all) => {
            for f in all {
                if !matches(f, item)? {
                    return Ok(false);
                }
            }
            true
        }
        ValFilter::Or(any) => {
            for f in any {
                if matches(f, item)? {
                    return Ok(true);
                }
            }
            false
        }
    })
}

fn matches_exp(exp: &AttrExp, item: &Value) -> ScimResult<bool> {
    let field = |path: &AttrPath| {
        item.as_object()
            .and_then(|o| get_ci(o, &path.name))
            .filter(|v| !v.is_null())
    };
    Ok(match exp {
        AttrExp::Present(path) => {
            field(path).is_some_and(|v| v != "" && v != &Value::Array(vec![]))
        }
        AttrExp::Comparison(path, op, expected) => {
            let actual = field(path);
            let expected = match expected {
                CompValue::Str(s) => Value::String(s.clone()),
                CompValue::True => Value::Bool(true),
                CompValue::False => Value::Bool(false),
                CompValue::Number(n) => Value::Number(n.clone()),
                CompValue::Null => Value::Null,
            };
            let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_lowercase);
            match op {
                CompareOp::Eq => match actual {
                    None => expected.is_null(),
                    Some(a) => same_value(a, &expected),
                },
                CompareOp::Ne => match actual {
                    None => !expected.is_null(),
                    Some(a) => !same_value(a, &expected),
                },
                CompareOp::Co | CompareOp::Sw | CompareOp::Ew => {
                    let (Some(a), Some(e)) = (text(actual), text(Some(&expected))) else {
                        return Ok(false);
                    };
                    match op {
                        CompareOp::Co => a.contains(&e),
                        CompareOp::Sw => a.starts_with(&e),
                        _ => a.ends_with(&e),
                    }
                }
                CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le => {
                    return Err(ScimError::bad(
                        ScimType::InvalidFilter,
                        format!("`{op}` is not supported in a value filter"),
                    ));
                }
            }
        }
    })
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
