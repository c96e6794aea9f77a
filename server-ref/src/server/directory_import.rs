//! The directory's CSV import (`POST /v1/directory/import`), the parts that need no database:
//! the strict parse of the file ([`parse`]) and what importing it would do to the directory as
//! it is ([`plan`]). The handler reads the directory, plans, and applies the plan in one
//! transaction (or, for a dry run, only answers it).
//!
//! The file: UTF-8 CSV (RFC 4180 quoting), a header row naming some of
//! `user_name,display_name,email,external_id,active,department,groups` in any order
//! (`user_name` required), then one user per row, upserted by user name (without regard to
//! case). A column left out leaves that field of an existing user as it is (a new user gets no
//! value, `active` true, no groups); an empty cell clears the field (`active`: leaves it, true
//! for a new user). `groups` lists department names separated by `;`: the user's memberships
//! become exactly those, and departments that do not exist yet are created. Strict: an unknown
//! or repeated column, a row with another number of cells, an invalid value or a user named
//! twice refuses the whole file with a 422 naming the line and the column; nothing is imported.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;
use utoipa::ToSchema;

use super::display_name::DisplayName;
use super::error::{ApiError, ApiResult};
use licensing_core::protocol::ErrorCode;

/// Largest file accepted (bytes).
pub(crate) const MAX_IMPORT_BYTES: usize = 10 * 1024 * 1024;

/// Most user rows in one file.
pub(crate) const MAX_IMPORT_ROWS: usize = 100_000;

/// Most groups one row may list.
pub(crate) const MAX_GROUPS_PER_ROW: usize = 100;

/// The columns a file may have, in the documented order.
pub(crate) const COLUMNS: [&str; 7] = [
    "user_name",
    "display_name",
    "email",
    "external_id",
    "active",
    "department",
    "groups",
];

/// The longest e-mail address (RFC 5321's path limit).
const MAX_EMAIL_CHARS: usize = 254;

/// Whether `value` is a sane e-mail address: `local@domain`, at most 254 characters, one `@`,
/// a local part of 1 to 64 characters, a domain of dot-separated labels (at least two, none
/// empty, none starting or ending with `-`), no white space nor control characters. Not RFC
/// 5322's full grammar (quoted local parts, address literals): what directories hold.
pub(crate) fn is_valid_email(value: &str) -> bool {
    if value.chars().count() > MAX_EMAIL_CHARS
        || value.chars().any(|c| {
            c.is_whitespace() || c.is_control() || licensing_core::claims::is_unsafe_text_char(c)
        })
    {
        return false;
    }
    let Some((local, domain)) = value.split_once('@') else {
        return false;
    };
    if local.is_empty()
        || local.chars().count() > 64
        || domain.contains('@')
        || local.starts_with('.')
        || local.ends_with('.')
        || local.contains("..")
    {
        return false;
    }
    let labels: Vec<&str> = domain.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.chars().count() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
}

/// One user row of the file, checked. `None` fields: the column is not in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ImportRow {
    /// Its line in the file (1: the header).
    pub line: u64,
    pub user_name: String,
    /// `Some(None)`: the cell is empty (clear the field).
    pub display_name: Option<Option<String>>,
    pub email: Option<Option<String>>,
    pub external_id: Option<Option<String>>,
    /// `Some(None)`: empty (leave it; true for a new user).
    pub active: Option<Option<bool>>,
    pub department: Option<Option<String>>,
    /// Department names, each once (case-insensitive), in file order.
    pub groups: Option<Vec<String>>,
}

fn at(line: u64, column: &str, detail: impl std::fmt::Display) -> ApiError {
    ApiError::invalid(
        ErrorCode::InvalidField,
        format!("line {line}, column `{column}`: {detail}"),
    )
}

fn text(line: u64, column: &str, cell: &str) -> ApiResult<Option<String>> {
    if cell.is_empty() {
        return Ok(None);
    }
    if !DisplayName::is_valid(cell) {
        return Err(at(line, column, DisplayName::RULE));
    }
    Ok(Some(cell.to_owned()))
}

fn boolean(line: u64, cell: &str) -> ApiResult<Option<bool>> {
    Ok(Some(match cell.to_ascii_lowercase().as_str() {
        "" => return Ok(None),
        "true" | "1" | "yes" => true,
        "false" | "0" | "no" => false,
        _ => {
            return Err(at(
                line,
                "active",
                "must be true or false (also 1/0, yes/no), or empty",
            ));
        }
    }))
}

/// Parses and checks a whole file (see the module documentation): every row, or the first
/// error, a 422 naming its line and column.
pub(crate) fn parse(bytes: &[u8]) -> ApiResult<Vec<ImportRow>> {
    if bytes.len() > MAX_IMPORT_BYTES {
        return Err(too_large());
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let csv_error = |e: csv::Error| {
        let line = e.position().map_or(0, csv::Position::line);
        let detail = match e.kind() {
            csv::ErrorKind::Utf8 { .. } => "the file is not UTF-8".to_owned(),
            csv::ErrorKind::UnequalLengths {
                expected_len, len, ..
            } => format!("{len} cell(s) where the header has {expected_len}"),
            _ => e.to_string(),
        };
        ApiError::invalid(ErrorCode::InvalidRequest, format!("line {line}: {detail}"))
    };
    let header = reader.headers().map_err(csv_error)?.clone();
    let mut index: HashMap<&'static str, usize> = HashMap::new();
    for (position, name) in header.iter().enumerate() {
        let name = name.trim_start_matches('\u{feff}');
        let Some(column) = COLUMNS.iter().find(|c| c.eq_ignore_ascii_case(name)) else {
            return Err(ApiError::invalid(
                ErrorCode::InvalidField,
                format!(
                    "line 1: unknown column `{}`; the columns are {}",
                    name.chars().take(64).collect::<String>(),
                    COLUMNS.join(",")
                ),
            ));
        };
        if index.insert(column, position).is_some() {
            return Err(ApiError::invalid(
                ErrorCode::InvalidField,
                format!("line 1: column `{column}` appears twice"),
            ));
        }
    }
    if !index.contains_key("user_name") {
        return Err(ApiError::invalid(
            ErrorCode::InvalidField,
            "line 1: the header has no `user_name` column",
        ));
    }
    let mut rows = Vec::new();
    let mut seen: HashMap<String, u64> = HashMap::new();
    for record in reader.records() {
        let record = record.map_err(csv_error)?;
        if rows.len() >= MAX_IMPORT_ROWS {
            return Err(ApiError::invalid(
                ErrorCode::InvalidRequest,
                format!("the file has more than {MAX_IMPORT_ROWS} rows"),
            ));
        }
        let line = record.position().map_or(0, csv::Position::line);
        let cell = |column: &str| index.get(column).and_then(|&i| record.get(i));
        let user_name = cell("user_name").unwrap_or_default();
        if !DisplayName::is_valid(user_name) {
            return Err(at(line, "user_name", DisplayName::RULE));
        }
        let key = super::db::directory::name_key(user_name);
        if let Some(first) = seen.insert(key, line) {
            return Err(at(
                line,
                "user_name",
                format!("`{user_name}` is named on line {first} already"),
            ));
        }
        let field = |column: &str| cell(column).map(|c| text(line, column, c)).transpose();
        let email = field("email")?;
        if let Some(Some(email)) = &email
            && !is_valid_email(email)
        {
            return Err(at(
                line,
                "email",
                "must be an e-mail address like name@example.com",
            ));
        }
        let groups = cell("groups").map(|c| groups(line, c)).transpose()?;
        rows.push(ImportRow {
            line,
            user_name: user_name.to_owned(),
            display_name: field("display_name")?,
            email,
            external_id: field("external_id")?,
            active: cell("active").map(|c| boolean(line, c)).transpose()?,
            department: field("department")?,
            groups,
        });
    }
    Ok(rows)
}

fn groups(line: u64, cell: &str) -> ApiResult<Vec<String>> {
    let mut names: Vec<String> = Vec::new();
    for name in cell.split(';').map(str::trim).filter(|n| !n.is_empty()) {
        if !DisplayName::is_valid(name) {
            return Err(at(line, "groups", DisplayName::RULE));
        }
        if !names
            .iter()
            .any(|n| n.to_lowercase() == name.to_lowercase())
        {
            names.push(name.to_owned());
        }
    }
    if names.len() > MAX_GROUPS_PER_ROW {
        return Err(at(
            line,
            "groups",
            format!("at most {MAX_GROUPS_PER_ROW} groups per user"),
        ));
    }
    Ok(names)
}

/// The 413 of a file over [`MAX_IMPORT_BYTES`].
pub(crate) fn too_large() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::PayloadTooLarge,
        format!("the file is larger than {MAX_IMPORT_BYTES} bytes"),
    )
}

/// A user of the directory as the import compares it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Current {
    pub user_name: String,
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub external_id: Option<String>,
    pub active: bool,
    pub department: Option<String>,
    /// Department names, sorted by their lowercase form.
    pub groups: Vec<String>,
}

/// One field an import changes: its old and new value (`null`: none).
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub(crate) struct FieldChange {
    /// `display_name`, `email`, `external_id`, `active`, `department` or `groups`.
    pub field: &'static str,
    /// The value before (`groups`: the names joined by `;`).
    pub old: Option<String>,
    /// The value after.
    pub new: Option<String>,
}

/// What the import does with one line.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub(crate) struct LineOutcome {
    /// The line in the file (1: the header).
    pub line: u64,
    /// The user it names.
    pub user_name: String,
    /// `created`, `changed` or `unchanged`.
    pub action: &'static str,
    /// The fields that change (a created user: every field it gets a value for).
    pub changes: Vec<FieldChange>,
}

/// The whole plan: each line's outcome, each user's fields after, the departments to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    pub lines: Vec<LineOutcome>,
    /// Per line (same order): the user as it will be (for created and changed lines).
    pub after: Vec<Option<Current>>,
    /// Department names to create (first spelling in the file), by lowercase name.
    pub new_departments: Vec<String>,
}

fn joined(groups: &[String]) -> Option<String> {
    (!groups.is_empty()).then(|| groups.join(";"))
}

fn sorted_groups(mut groups: Vec<String>) -> Vec<String> {
    groups.sort_by_key(|g| g.to_lowercase());
    groups
}

/// What importing `rows` does to the directory whose users are `current` (by lowercase user
/// name) and whose departments are `departments` (lowercase names).
pub(crate) fn plan(
    rows: &[ImportRow],
    current: &HashMap<String, Current>,
    departments: &BTreeSet<String>,
) -> Plan {
    let mut lines = Vec::with_capacity(rows.len());
    let mut after = Vec::with_capacity(rows.len());
    let mut new_departments: BTreeMap<String, String> = BTreeMap::new();
    for row in rows {
        let key = super::db::directory::name_key(&row.user_name);
        let old = current.get(&key);
        let base = old.cloned().unwrap_or_else(|| Current {
            active: true,
            ..Current::default()
        });
        let pick = |given: &Option<Option<String>>, old: &Option<String>| match given {
            None => old.clone(),
            Some(value) => value.clone(),
        };
        let new = Current {
            // A rename by case only is a change of the stored spelling.
            user_name: row.user_name.clone(),
            display_name: pick(&row.display_name, &base.display_name),
            email: pick(&row.email, &base.email),
            external_id: pick(&row.external_id, &base.external_id),
            active: match row.active {
                Some(Some(active)) => active,
                _ => base.active,
            },
            department: pick(&row.department, &base.department),
            groups: match &row.groups {
                None => base.groups.clone(),
                Some(groups) => sorted_groups(groups.clone()),
            },
        };
        for group in &new.groups {
            let key = group.to_lowercase();
            if !departments.contains(&key) {
                new_departments.entry(key).or_insert_with(|| group.clone());
            }
        }
        let mut changes = Vec::new();
        let mut field = |field: &'static str, old: Option<String>, new: Option<String>| {
            if old != new {
                changes.push(FieldChange { field, old, new });
            }
        };
        let (before, action) = match old {
            Some(old) => (old.clone(), "changed"),
            None => (
                Current {
                    active: false,
                    ..Current::default()
                },
                "created",
            ),
        };
        if old.is_some() {
            field(
                "user_name",
                Some(before.user_name.clone()),
                Some(new.user_name.clone()),
            );
        }
        field(
            "display_name",
            before.display_name.clone(),
            new.display_name.clone(),
        );
        field("email", before.email.clone(), new.email.clone());
        field(
            "external_id",
            before.external_id.clone(),
            new.external_id.clone(),
        );
        field(
            "active",
            old.map(|o| o.active.to_string()),
            Some(new.active.to_string()),
        );
        field(
            "department",
            before.department.clone(),
            new.department.clone(),
        );
        let old_groups: Vec<String> = before.groups.iter().map(|g| g.to_lowercase()).collect();
        let new_groups: Vec<String> = new.groups.iter().map(|g| g.to_lowercase()).collect();
        if old_groups != new_groups {
            changes.push(FieldChange {
                field: "groups",
                old: joined(&before.groups),
                new: joined(&new.groups),
            });
        }
        let action = if action == "changed" && changes.is_empty() {
            "unchanged"
        } else {
            action
        };
        after.push((action != "unchanged").then_some(new));
        lines.push(LineOutcome {
            line: row.line,
            user_name: row.user_name.clone(),
            action,
            changes,
        });
    }
    Plan {
        lines,
        after,
        new_departments: new_departments.into_values().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e_mail_addresses_follow_a_sane_rule() {
        for good in [
            "a@b.co",
            "alice.smith+tag@example.com",
            "ünï@exämple.de",
            "x@sub.domain-1.org",
        ] {
            assert!(is_valid_email(good), "{good}");
        }
        for bad in [
            "",
            "alice",
            "@example.com",
            "alice@",
            "alice@example",
            "alice@@example.com",
            "a@b@example.com",
            "alice smith@example.com",
            "alice@exa mple.com",
            "alice@.example.com",
            "alice@example..com",
            "alice@-example.com",
            ".alice@example.com",
            "al..ice@example.com",
            "a\u{202e}@example.com",
            "a\u{0}@example.com",
            &format!("{}@example.com", "x".repeat(65)),
            &format!("a@{}.com", "x".repeat(250)),
        ] {
            assert!(!is_valid_email(bad), "{bad:?}");
        }
    }

    #[test]
    fn a_file_parses_in_any_column_order_with_quoting() {
        let file = "\u{feff}groups,USER_NAME,active,email\n\
                    \"Eng; Ops\",alice,true,alice@example.com\n\
                    ,\"bob, jr\",no,\n";
        let rows = parse(file.as_bytes()).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].line, 2);
        assert_eq!(rows[0].user_name, "alice");
        assert_eq!(rows[0].groups, Some(vec!["Eng".into(), "Ops".into()]));
        assert_eq!(rows[0].email, Some(Some("alice@example.com".into())));
        assert_eq!(rows[0].display_name, None, "no such column: left as it is");
        assert_eq!(rows[1].user_name, "bob, jr");
        assert_eq!(rows[1].active, Some(Some(false)));
        assert_eq!(rows[1].email, Some(None), "an empty cell clears");
        assert_eq!(rows[1].groups, Some(vec![]));
    }

    fn refused(file: &str) -> String {
        let e = parse(file.as_bytes()).expect_err(file);
        assert_eq!(e.status(), axum::http::StatusCode::UNPROCESSABLE_ENTITY);
        e.detail().to_owned()
    }

    #[test]
    fn a_bad_file_is_refused_naming_line_and_column() {
        assert!(refused("user_name,phone\nalice,1\n").contains("unknown column `phone`"));
        assert!(refused("user_name,email,email\n").contains("`email` appears twice"));
        assert!(refused("email\na@b.co\n").contains("no `user_name` column"));
        let d = refused("user_name,email\nalice,a@b.co\nbob,not-an-address\n");
        assert!(d.contains("line 3, column `email`"), "{d}");
        let d = refused("user_name,active\nalice,maybe\n");
        assert!(d.contains("line 2, column `active`"), "{d}");
        let d = refused("user_name\nalice\nALICE\n");
        assert!(
            d.contains("line 3, column `user_name`") && d.contains("line 2"),
            "{d}"
        );
        let d = refused("user_name,display_name\nalice,\"a\u{1b}[2J\"\n");
        assert!(d.contains("line 2, column `display_name`"), "{d}");
        let d = refused("user_name,email\nalice\n");
        assert!(d.contains("line 2") && d.contains("1 cell(s)"), "{d}");
        let d = refused("user_name\n\"\"\n");
        assert!(d.contains("column `user_name`"), "{d}");
        let d = refused("user_name,groups\nalice,\"a\u{7}\"\n");
        assert!(d.contains("column `groups`"), "{d}");
        let mut bytes = b"user_name\nalice\n".to_vec();
        bytes.extend_from_slice(&[0xff, 0xfe, b'\n']);
        let e = parse(&bytes).expect_err("not UTF-8");
        assert!(e.detail().contains("UTF-8"), "{}", e.detail());
    }

    #[test]
    fn a_file_over_the_row_cap_is_refused() {
        let mut file = String::from("user_name\n");
        for n in 0..=MAX_IMPORT_ROWS {
            file.push_str(&format!("u{n}\n"));
        }
        assert!(refused(&file).contains("more than 100000 rows"));
    }

    #[test]
    fn the_plan_reports_created_changed_and_unchanged_lines() {
        let rows = parse(
            "user_name,display_name,active,groups\n\
             alice,Alice,true,Eng\n\
             Bob,Bob B,false,eng;Sales\n\
             carol,,,\n"
                .as_bytes(),
        )
        .unwrap();
        let mut current = HashMap::new();
        current.insert(
            "alice".to_owned(),
            Current {
                user_name: "alice".into(),
                display_name: Some("Alice".into()),
                active: true,
                groups: vec!["Eng".into()],
                email: Some("alice@example.com".into()),
                ..Current::default()
            },
        );
        current.insert(
            "bob".to_owned(),
            Current {
                user_name: "bob".into(),
                display_name: Some("Bob".into()),
                active: true,
                ..Current::default()
            },
        );
        let departments = BTreeSet::from(["eng".to_owned()]);
        let plan = plan(&rows, &current, &departments);
        assert_eq!(plan.lines[0].action, "unchanged", "{:?}", plan.lines[0]);
        assert_eq!(plan.after[0], None);
        assert_eq!(plan.lines[1].action, "changed");
        let fields: Vec<_> = plan.lines[1]
            .changes
            .iter()
            .map(|c| (c.field, c.old.as_deref(), c.new.as_deref()))
            .collect();
        assert_eq!(
            fields,
            vec![
                ("user_name", Some("bob"), Some("Bob")),
                ("display_name", Some("Bob"), Some("Bob B")),
                ("active", Some("true"), Some("false")),
                ("groups", None, Some("eng;Sales")),
            ]
        );
        assert_eq!(plan.lines[2].action, "created");
        assert_eq!(
            plan.lines[2].changes,
            vec![FieldChange {
                field: "active",
                old: None,
                new: Some("true".into())
            }]
        );
        assert_eq!(plan.new_departments, vec!["Sales".to_owned()]);
        let carol = plan.after[2].clone().unwrap();
        assert!(carol.active && carol.groups.is_empty());
    }
}
