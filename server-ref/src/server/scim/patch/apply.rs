//! Applying parsed PATCH operations to a resource's JSON: locating a path's attribute in the
//! resource or its extension, checking it may change, coercing the value, and setting,
//! adding to or removing it (multi-valued attributes through their value filters).

use super::value_filter::{described_by, matches, same_value};
use super::*;

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
