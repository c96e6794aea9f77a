//! The directory's statements that write many rows at once (an import of 100 000 users one
//! statement per row took longer than a request may on PostgreSQL): users (the one-row
//! `insert_user` too) and memberships, and every membership of an organization in one read.

use super::super::{Db, DbResult, Tx};
use super::{DirectoryUser, name_key};

impl Db {
    /// A transaction for reading the directory as of one moment without taking the
    /// organization's write lock (an import's dry run: on SQLite the write lock is the
    /// database's, which every seat write waits for).
    pub async fn begin_directory_read(&self) -> DbResult<Tx> {
        self.begin_read().await
    }
}

/// Every membership of `organization_id`: (user id, department id).
pub(crate) async fn memberships_in(
    tx: &mut Tx,
    organization_id: &str,
) -> DbResult<Vec<(String, String)>> {
    sqlx::query_as(
        "SELECT user_id, department_id FROM department_members WHERE organization_id = $1",
    )
    .bind(organization_id)
    .fetch_all(&mut **tx)
    .await
}

/// Values bound per multi-row statement of the import. Few: binding a statement's values
/// costs the SQLite driver time that grows with the square of their number (500 users of 12
/// values per statement took 1.3 s per 5 000 users in a debug build, 25 per statement 0.1 s),
/// and past a few hundred values a statement saves no more round trips worth having.
const VALUES_PER_STATEMENT: usize = 300;

/// Rows of `width` values per statement.
fn chunk(width: usize) -> usize {
    (VALUES_PER_STATEMENT / width).max(1)
}

/// `count` rows of `width` placeholders each, `$first` on: `($1, $2), ($3, $4)`; `casts` names
/// the SQL type of each column (`""`: as bound).
fn rows(count: usize, casts: &[&str]) -> String {
    let width = casts.len();
    (0..count)
        .map(|row| {
            let cells: Vec<String> = casts
                .iter()
                .enumerate()
                .map(|(column, cast)| {
                    let n = 1 + row * width + column;
                    if cast.is_empty() {
                        format!("${n}")
                    } else {
                        format!("CAST(${n} AS {cast})")
                    }
                })
                .collect();
            format!("({})", cells.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Stores new users, many per statement. Answers how many were stored: fewer than given when
/// a user name was taken (ignoring case), which the caller treats as a failure.
pub(crate) async fn insert_users_in(tx: &mut Tx, users: &[DirectoryUser]) -> DbResult<u64> {
    let mut stored = 0;
    for chunk in users.chunks(chunk(12)) {
        let sql = format!(
            "INSERT INTO directory_users (id, organization_id, user_name, user_name_key, \
             display_name, email, external_id, active, department, version, created_at, \
             updated_at) VALUES {} ON CONFLICT (organization_id, user_name_key) DO NOTHING",
            rows(
                chunk.len(),
                &["", "", "", "", "", "", "", "", "", "", "", ""]
            )
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for user in chunk {
            query = query
                .bind(&user.id)
                .bind(&user.organization_id)
                .bind(&user.user_name)
                .bind(name_key(&user.user_name))
                .bind(&user.display_name)
                .bind(&user.email)
                .bind(&user.external_id)
                .bind(i64::from(user.active))
                .bind(&user.department)
                .bind(user.version)
                .bind(user.created_at)
                .bind(user.updated_at);
        }
        stored += query.execute(&mut **tx).await?.rows_affected();
    }
    Ok(stored)
}

/// Replaces the attributes of existing users of `organization_id` (by id), many per
/// statement, bumping each one's version. Answers how many were changed.
pub(crate) async fn update_users_in(
    tx: &mut Tx,
    organization_id: &str,
    users: &[DirectoryUser],
) -> DbResult<u64> {
    let mut changed = 0;
    for chunk in users.chunks(chunk(9)) {
        // VALUES' columns are `column1`, `column2`, ... on both engines; `$1` is the
        // organization, the rows' placeholders start at `$2`.
        let values = rows(
            chunk.len(),
            &[
                "TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "BIGINT", "TEXT", "BIGINT",
            ],
        );
        let values = shift(&values, 1);
        let sql = format!(
            "UPDATE directory_users SET user_name = v.column2, user_name_key = v.column3, \
             display_name = v.column4, email = v.column5, external_id = v.column6, \
             active = v.column7, department = v.column8, updated_at = v.column9, \
             version = directory_users.version + 1 \
             FROM (VALUES {values}) AS v \
             WHERE directory_users.id = v.column1 AND directory_users.organization_id = $1"
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(organization_id);
        for user in chunk {
            query = query
                .bind(&user.id)
                .bind(&user.user_name)
                .bind(name_key(&user.user_name))
                .bind(&user.display_name)
                .bind(&user.email)
                .bind(&user.external_id)
                .bind(i64::from(user.active))
                .bind(&user.department)
                .bind(user.updated_at);
        }
        changed += query.execute(&mut **tx).await?.rows_affected();
    }
    Ok(changed)
}

/// `sql` with every placeholder `$n` renumbered `$(n + by)`.
fn shift(sql: &str, by: usize) -> String {
    let mut out = String::with_capacity(sql.len() + sql.len() / 8);
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '$' {
            let mut digits = String::new();
            while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                digits.push(d);
                chars.next();
            }
            let n: usize = digits.parse().unwrap_or(0);
            out.push_str(&(n + by).to_string());
        }
    }
    out
}

/// Makes `memberships` ((user id, department id) pairs, departments of `organization_id`
/// checked by the caller) the exact memberships of the users `user_ids`, many per statement.
pub(crate) async fn replace_memberships_in(
    tx: &mut Tx,
    organization_id: &str,
    user_ids: &[String],
    memberships: &[(String, String)],
) -> DbResult<()> {
    for chunk in user_ids.chunks(chunk(1)) {
        let list = (0..chunk.len())
            .map(|i| format!("${}", i + 2))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "DELETE FROM department_members WHERE organization_id = $1 AND user_id IN ({list})"
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(organization_id);
        for id in chunk {
            query = query.bind(id);
        }
        query.execute(&mut **tx).await?;
    }
    for chunk in memberships.chunks(chunk(3)) {
        let sql = format!(
            "INSERT INTO department_members (department_id, user_id, organization_id) VALUES {} \
             ON CONFLICT (department_id, user_id) DO NOTHING",
            rows(chunk.len(), &["", "", ""])
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (user_id, department_id) in chunk {
            query = query
                .bind(department_id)
                .bind(user_id)
                .bind(organization_id);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_row_after_row() {
        assert_eq!(
            rows(2, &["", "BIGINT"]),
            "($1, CAST($2 AS BIGINT)), ($3, CAST($4 AS BIGINT))"
        );
        assert_eq!(shift("($1, $2), ($10)", 1), "($2, $3), ($11)");
    }
}
