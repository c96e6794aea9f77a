//! SCIM filters (RFC 7644 §3.4.2.2) to the directory's typed filters: parsed by `scim_v2`
//! (which bounds nesting depth and the number of terms while it parses), then mapped here onto
//! [`Filter<UserAttr>`] or [`Filter<DepartmentAttr>`], which the database layer turns into one
//! `WHERE` clause with bound values. No crate maps a SCIM filter onto this schema, hence this
//! file.
//!
//! Users: `id`, `userName`, `displayName`, `externalId`, `active`, `emails` / `emails.value`
//! / `emails[value ...]`, and the enterprise extension's `department`. Groups: `id`,
//! `displayName`, `externalId`, `members` / `members.value` / `members[value eq ...]` (`eq` and
//! `pr`). Operators `eq`, `ne`, `co`, `sw`, `ew`, `pr`, `and`, `or`, `not` and parentheses;
//! `gt`, `ge`, `lt`, `le`, other attributes and other values are `invalidFilter`.

use scim_v2::filter::{
    AttrExp, AttrPath, CompValue, CompareOp, Filter as ScimFilter, ValFilter, ValuePath,
};

use super::super::db::directory::{DepartmentAttr, Filter, UserAttr, Value};
use super::error::{ScimError, ScimResult, ScimType};
use super::schema::{ENTERPRISE_URN, GROUP_URN, USER_URN};

/// Longest filter accepted, in bytes (the parser also bounds its depth and terms).
pub(crate) const MAX_FILTER_BYTES: usize = 4096;

fn invalid(detail: impl Into<String>) -> ScimError {
    ScimError::bad(ScimType::InvalidFilter, detail)
}

/// Parses a filter's text (`filter=` of a list).
fn parse(text: &str) -> ScimResult<ScimFilter> {
    if text.len() > MAX_FILTER_BYTES {
        return Err(invalid(format!(
            "the filter is longer than {MAX_FILTER_BYTES} bytes"
        )));
    }
    text.parse::<ScimFilter>()
        .map_err(|e| invalid(format!("filter `{text}`: {e}")))
}

/// The user filter a SCIM filter's text means.
pub(crate) fn users(text: &str) -> ScimResult<Filter<UserAttr>> {
    translate(&parse(text)?, &user_term)
}

/// The department filter a SCIM filter's text (on Groups) means.
pub(crate) fn groups(text: &str) -> ScimResult<Filter<DepartmentAttr>> {
    translate(&parse(text)?, &group_term)
}

/// `Filter::And` or `Filter::Or`.
type Join<A> = fn(Box<Filter<A>>, Box<Filter<A>>) -> Filter<A>;

/// A tree of `and`/`or` over `items`, balanced (its depth grows with the logarithm of the
/// number of terms, so a long `or` chain does not make a deep recursion downstream).
fn balanced<A>(mut items: Vec<Filter<A>>, join: Join<A>) -> Filter<A> {
    if items.len() <= 1 {
        return items.pop().unwrap_or(Filter::All);
    }
    let right = items.split_off(items.len() / 2);
    join(
        Box::new(balanced(items, join)),
        Box::new(balanced(right, join)),
    )
}

type Term<'a, A> = dyn Fn(&AttrExp) -> ScimResult<Filter<A>> + 'a;

fn translate<A: Copy>(filter: &ScimFilter, term: &Term<'_, A>) -> ScimResult<Filter<A>> {
    Ok(match filter {
        ScimFilter::Attr(exp) => term(exp)?,
        ScimFilter::Not(inner) => Filter::Not(Box::new(translate(inner, term)?)),
        ScimFilter::And(all) => balanced(
            all.iter()
                .map(|f| translate(f, term))
                .collect::<ScimResult<_>>()?,
            Filter::And,
        ),
        ScimFilter::Or(any) => balanced(
            any.iter()
                .map(|f| translate(f, term))
                .collect::<ScimResult<_>>()?,
            Filter::Or,
        ),
        ScimFilter::ValuePath(vp) => value_path(vp, term)?,
    })
}

/// `emails[value co "@x"]`, `members[value eq "id"]`: the inner filter's attributes are
/// sub-attributes of the outer one.
fn value_path<A: Copy>(vp: &ValuePath, term: &Term<'_, A>) -> ScimResult<Filter<A>> {
    fn inner<A: Copy>(
        outer: &AttrPath,
        f: &ValFilter,
        term: &Term<'_, A>,
    ) -> ScimResult<Filter<A>> {
        Ok(match f {
            ValFilter::Attr(exp) => {
                let qualify = |sub: &AttrPath| AttrPath {
                    uri: outer.uri.clone(),
                    name: outer.name.clone(),
                    sub_attr: Some(sub.name.clone()),
                };
                let exp = match exp {
                    AttrExp::Present(p) => AttrExp::Present(qualify(p)),
                    AttrExp::Comparison(p, op, v) => {
                        AttrExp::Comparison(qualify(p), op.clone(), v.clone())
                    }
                };
                term(&exp)?
            }
            ValFilter::Not(f) => Filter::Not(Box::new(inner(outer, f, term)?)),
            ValFilter::And(all) => balanced(
                all.iter()
                    .map(|f| inner(outer, f, term))
                    .collect::<ScimResult<_>>()?,
                Filter::And,
            ),
            ValFilter::Or(any) => balanced(
                any.iter()
                    .map(|f| inner(outer, f, term))
                    .collect::<ScimResult<_>>()?,
                Filter::Or,
            ),
        })
    }
    inner(&vp.attr, &vp.filter, term)
}

/// The attribute's name, its schema URN checked (`None`, the core one, or the extension's
/// for `department`), and its sub-attribute, lowercased.
fn names(path: &AttrPath, core: &str) -> ScimResult<(String, Option<String>)> {
    let name = path.name.to_ascii_lowercase();
    let sub = path.sub_attr.as_deref().map(str::to_ascii_lowercase);
    match path.uri.as_deref() {
        None => Ok((name, sub)),
        Some(uri) if uri.eq_ignore_ascii_case(core) => Ok((name, sub)),
        Some(uri) if uri.eq_ignore_ascii_case(ENTERPRISE_URN) && core == USER_URN => {
            Ok((format!("enterprise:{name}"), sub))
        }
        Some(uri) => Err(invalid(format!("unknown schema `{uri}` in the filter"))),
    }
}

/// A comparison's value as text or a boolean.
fn value_of(path: &AttrPath, value: &CompValue, boolean: bool) -> ScimResult<Value> {
    match (value, boolean) {
        (CompValue::True, true) => Ok(Value::Bool(true)),
        (CompValue::False, true) => Ok(Value::Bool(false)),
        // Booleans sent as strings, as some identity providers do.
        (CompValue::Str(s), true) if s.eq_ignore_ascii_case("true") => Ok(Value::Bool(true)),
        (CompValue::Str(s), true) if s.eq_ignore_ascii_case("false") => Ok(Value::Bool(false)),
        (CompValue::Str(s), false) => Ok(Value::Text(s.clone())),
        _ => Err(invalid(format!(
            "`{path}` compares with a {}",
            if boolean { "boolean" } else { "string" }
        ))),
    }
}

/// One comparison on an attribute, `null` included (`eq null` is "absent").
fn compare<A: Copy>(
    attr: A,
    path: &AttrPath,
    op: &CompareOp,
    value: &CompValue,
    boolean: bool,
) -> ScimResult<Filter<A>> {
    if matches!(value, CompValue::Null) {
        return match op {
            CompareOp::Eq => Ok(Filter::Not(Box::new(Filter::Present(attr)))),
            CompareOp::Ne => Ok(Filter::Present(attr)),
            _ => Err(invalid(format!("`{path} {op} null` is not a comparison"))),
        };
    }
    let v = value_of(path, value, boolean)?;
    let text = || match &v {
        Value::Text(t) => Ok(t.clone()),
        Value::Bool(_) => Err(invalid(format!("`{op}` compares strings"))),
    };
    Ok(match op {
        CompareOp::Eq => Filter::Eq(attr, v.clone()),
        CompareOp::Ne => Filter::Ne(attr, v.clone()),
        CompareOp::Co => Filter::Contains(attr, text()?),
        CompareOp::Sw => Filter::StartsWith(attr, text()?),
        CompareOp::Ew => Filter::EndsWith(attr, text()?),
        CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le => {
            return Err(invalid(format!("`{op}` is not supported (on `{path}`)")));
        }
    })
}

fn user_term(exp: &AttrExp) -> ScimResult<Filter<UserAttr>> {
    let path = match exp {
        AttrExp::Present(p) | AttrExp::Comparison(p, ..) => p,
    };
    let (name, sub) = names(path, USER_URN)?;
    let attr = match (name.as_str(), sub.as_deref()) {
        ("id", None) => UserAttr::Id,
        ("username", None) => UserAttr::UserName,
        ("displayname", None) => UserAttr::DisplayName,
        ("externalid", None) => UserAttr::ExternalId,
        ("active", None) => UserAttr::Active,
        ("emails", None | Some("value")) => UserAttr::Email,
        // The one e-mail kept is shown as `work` and `primary`.
        ("emails", Some("type")) => {
            return email_flag(
                exp,
                |v| matches!(v, CompValue::Str(s) if s.eq_ignore_ascii_case("work")),
            );
        }
        ("emails", Some("primary")) => {
            return email_flag(exp, |v| matches!(v, CompValue::True));
        }
        ("enterprise:department", None) => UserAttr::Department,
        _ => return Err(invalid(format!("`{path}` cannot be filtered on"))),
    };
    match exp {
        AttrExp::Present(_) => Ok(Filter::Present(attr)),
        AttrExp::Comparison(_, op, value) => {
            compare(attr, path, op, value, attr == UserAttr::Active)
        }
    }
}

/// `emails.type eq "work"`, `emails.primary eq true`: true of every user with an e-mail when
/// `holds` says the value is the one shown.
fn email_flag(exp: &AttrExp, holds: impl Fn(&CompValue) -> bool) -> ScimResult<Filter<UserAttr>> {
    let has = Filter::Present(UserAttr::Email);
    match exp {
        AttrExp::Present(_) => Ok(has),
        AttrExp::Comparison(_, CompareOp::Eq, v) if holds(v) => Ok(has),
        AttrExp::Comparison(_, CompareOp::Ne, v) if !holds(v) => Ok(has),
        AttrExp::Comparison(_, CompareOp::Eq | CompareOp::Ne, _) => Ok(Filter::And(
            Box::new(has.clone()),
            Box::new(Filter::Not(Box::new(has))),
        )),
        AttrExp::Comparison(p, op, _) => Err(invalid(format!("`{p} {op}` is not supported"))),
    }
}

fn group_term(exp: &AttrExp) -> ScimResult<Filter<DepartmentAttr>> {
    let path = match exp {
        AttrExp::Present(p) | AttrExp::Comparison(p, ..) => p,
    };
    let (name, sub) = names(path, GROUP_URN)?;
    let attr = match (name.as_str(), sub.as_deref()) {
        ("id", None) => DepartmentAttr::Id,
        ("displayname", None) => DepartmentAttr::Name,
        ("externalid", None) => DepartmentAttr::ExternalId,
        ("members", None | Some("value")) => DepartmentAttr::Member,
        _ => return Err(invalid(format!("`{path}` cannot be filtered on"))),
    };
    match exp {
        AttrExp::Present(_) => Ok(Filter::Present(attr)),
        AttrExp::Comparison(_, op, value) => {
            if attr == DepartmentAttr::Member && !matches!(op, CompareOp::Eq | CompareOp::Ne) {
                return Err(invalid(format!("`{path}` takes `eq`, `ne` or `pr`")));
            }
            compare(attr, path, op, value, false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Value {
        Value::Text(s.into())
    }

    #[test]
    fn user_filters_map_onto_the_directory() {
        use Filter::*;
        use UserAttr::*;
        let b = Box::new;
        assert_eq!(
            users(r#"userName eq "BJensen""#).unwrap(),
            Eq(UserName, text("BJensen"))
        );
        assert_eq!(
            users(r#"userName Eq "a" AND not (active eq "False")"#).unwrap(),
            And(
                b(Eq(UserName, text("a"))),
                b(Not(b(Eq(Active, Value::Bool(false)))))
            )
        );
        assert_eq!(
            users(&format!(r#"{ENTERPRISE_URN}:department sw "Sal""#)).unwrap(),
            StartsWith(Department, "Sal".into())
        );
        assert_eq!(
            users(&format!(r#"{USER_URN}:displayName co "ens""#)).unwrap(),
            Contains(DisplayName, "ens".into())
        );
        assert_eq!(
            users(r#"emails[value ew "@example.com"]"#).unwrap(),
            EndsWith(Email, "@example.com".into())
        );
        assert_eq!(users(r#"emails.value pr"#).unwrap(), Present(Email));
        assert_eq!(users(r#"emails[type eq "work"]"#).unwrap(), Present(Email));
        assert_eq!(
            users(r#"externalId ne "x""#).unwrap(),
            Ne(ExternalId, text("x"))
        );
        assert_eq!(users(r#"id eq "usr_1""#).unwrap(), Eq(Id, text("usr_1")));
        assert_eq!(
            users("displayName eq null").unwrap(),
            Not(b(Present(DisplayName)))
        );
        assert_eq!(
            users("active eq true").unwrap(),
            Eq(Active, Value::Bool(true))
        );
        // An `or` of four is a balanced tree.
        assert_eq!(
            users(r#"userName eq "a" or userName eq "b" or userName eq "c" or userName eq "d""#)
                .unwrap(),
            Or(
                b(Or(b(Eq(UserName, text("a"))), b(Eq(UserName, text("b"))))),
                b(Or(b(Eq(UserName, text("c"))), b(Eq(UserName, text("d")))))
            )
        );
    }

    #[test]
    fn group_filters_map_onto_the_directory() {
        use DepartmentAttr::*;
        use Filter::*;
        assert_eq!(
            groups(r#"displayName eq "Sales""#).unwrap(),
            Eq(Name, text("Sales"))
        );
        assert_eq!(
            groups(r#"members[value eq "usr_1"]"#).unwrap(),
            Eq(Member, text("usr_1"))
        );
        assert_eq!(
            groups(r#"members.value eq "usr_1""#).unwrap(),
            Eq(Member, text("usr_1"))
        );
        assert_eq!(groups("members pr").unwrap(), Present(Member));
        assert_eq!(
            groups(r#"externalId eq "g""#).unwrap(),
            Eq(ExternalId, text("g"))
        );
    }

    #[test]
    fn what_cannot_be_filtered_is_invalid_filter() {
        for bad in [
            "",
            "userName",
            r#"userName eq"#,
            r#"userName eq "a" and"#,
            r#"(userName eq "a""#,
            r#"title eq "x""#,
            r#"meta.lastModified gt "2011-05-13T04:42:34Z""#,
            r#"userName gt "a""#,
            r#"active co "t""#,
            r#"userName eq true"#,
            r#"active eq "maybe""#,
            r#"userName eq 42"#,
            r#"urn:example:other:2.0:User:x eq "a""#,
            r#"members co "u""#,
            r#"emails.primary gt true"#,
        ] {
            let err = users(bad).and_then(|_| groups(bad)).unwrap_err();
            assert_eq!(
                err.scim_type(),
                Some(ScimType::InvalidFilter),
                "{bad}: {}",
                err.detail()
            );
        }
    }

    /// Fuzz-style: hostile and random inputs never panic, and nesting and length are bounded.
    #[test]
    fn hostile_filters_are_refused_without_panicking() {
        let deep = format!("{}userName pr{}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(users(&deep).is_err());
        let nots = format!("{}userName pr{}", "not (".repeat(100), ")".repeat(100));
        assert!(users(&nots).is_err());
        let long = format!(r#"userName eq "{}""#, "a".repeat(MAX_FILTER_BYTES));
        assert_eq!(
            users(&long).unwrap_err().scim_type(),
            Some(ScimType::InvalidFilter)
        );
        let many = vec![r#"userName eq "a""#; 2000].join(" or ");
        assert!(users(&many).is_err());
        // Within the bounds, a wide filter parses.
        let wide = vec![r#"userName eq "a""#; 100].join(" or ");
        assert!(users(&wide).is_ok());
        // Random inputs over the filter alphabet: an answer, never a panic.
        let alphabet: Vec<&str> = vec![
            "userName", "emails", "members", "[", "]", "(", ")", " ", "eq", "pr", "and", "or",
            "not", "\"", "\\", "a", ".", ":", "urn:", "value", "true", "null", "1", "\u{e9}", "\0",
        ];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..5000 {
            let mut input = String::new();
            for _ in 0..(seed % 24) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let pick = usize::try_from(seed % alphabet.len() as u64).unwrap();
                input.push_str(alphabet[pick]);
                input.push(' ');
            }
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let _ = users(&input);
            let _ = groups(&input);
        }
    }
}
