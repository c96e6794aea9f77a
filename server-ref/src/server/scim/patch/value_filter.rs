//! The value filters of a PATCH path (`emails[type eq "work"]`, `members[value eq "..."]`):
//! which values of a multi-valued attribute a filter selects, and the value an `add` creates
//! when it selects none.

use super::*;

/// The value a filter of `eq` comparisons joined by `and` describes (`type eq "work"`), to
/// create when an `add` selects nothing; `None` for any other filter.
pub(super) fn described_by(filter: &ValFilter) -> Option<Value> {
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
pub(super) fn same_value(a: &Value, b: &Value) -> bool {
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
