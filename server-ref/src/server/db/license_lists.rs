//! The console's large lists (issue 23): an organization's licenses paged by keyset and
//! searched, and a license's audit entries, each read through an index of migration 0020.

use super::{AuditEntry, Db, DbResult, LicenseRow};

/// A place in the newest-first order of licenses (`created_at DESC, id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LicenseCursor {
    pub created_at: i64,
    pub id: String,
}

/// Which way a page reads from its cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LicensePage {
    /// From the newest.
    First,
    /// The licenses after the cursor (older).
    After(LicenseCursor),
    /// The licenses before the cursor (newer), answered in the list's order.
    Before(LicenseCursor),
}

/// What a license search matches: one text, compared with each searchable field.
#[derive(Debug, Clone, Default)]
pub(crate) struct LicenseSearch {
    /// SHA-256 (hex) of the text as a canonical license key; none when it is not one. A
    /// whole key finds its license only (by the unique index on `key_hash`, no scan).
    pub key_hash: Option<String>,
    /// `%text%` (lowercase, `\` escaping `%`, `_` and itself): part of the license id, its
    /// product's or policy's id, the key's last group, or the customer's name.
    pub like: String,
    /// A directory user's user name (lowercase): the licenses assigned to them or whose seats
    /// they held.
    pub user: String,
    /// A directory user's e-mail as typed: the same.
    pub email: String,
}

/// The text search's conditions on `licenses`, its placeholders from `$b` to `$b+3` (`$1` is
/// the organization).
fn search_sql(b: usize) -> String {
    let (like, user, email) = (b + 1, b + 2, b + 3);
    format!(
        " AND (key_hash = ${b} OR LOWER(id) LIKE ${like} ESCAPE '\\' \
         OR LOWER(key_hint) LIKE ${like} ESCAPE '\\' \
         OR LOWER(product_id) LIKE ${like} ESCAPE '\\' \
         OR LOWER(policy_id) LIKE ${like} ESCAPE '\\' \
         OR customer_key LIKE ${like} ESCAPE '\\' \
         OR (customer_key IS NULL AND LOWER(claims) LIKE ${like} ESCAPE '\\') \
         OR id IN (SELECT a.license_id FROM seat_assignments a \
                   JOIN directory_users u ON u.id = a.assignee_id \
                   WHERE a.organization_id = $1 AND a.assignee_kind = 'user' \
                   AND u.organization_id = $1 AND (u.user_name_key = ${user} OR u.email = ${email})) \
         OR id IN (SELECT s.license_id FROM leases s \
                   JOIN directory_users u ON u.id = s.user_id \
                   WHERE u.organization_id = $1 AND (u.user_name_key = ${user} OR u.email = ${email})))"
    )
}

/// How a page is searched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Searched {
    No,
    /// By a whole license key: one placeholder.
    Key,
    /// By text: four placeholders.
    Text,
}

fn searched(search: Option<&LicenseSearch>) -> Searched {
    match search {
        None => Searched::No,
        Some(s) if s.key_hash.is_some() => Searched::Key,
        Some(_) => Searched::Text,
    }
}

/// The statement of [`Db::license_page`]: `$1` the organization, `$2`, `$3` the cursor
/// (when the page has one), then the search's, then the limit.
fn page_sql(page: &LicensePage, search: Searched) -> String {
    let (cursor, order, next) = match page {
        LicensePage::First => ("", "created_at DESC, id", 2),
        LicensePage::After(_) => (
            " AND (created_at < $2 OR (created_at = $2 AND id > $3))",
            "created_at DESC, id",
            4,
        ),
        LicensePage::Before(_) => (
            " AND (created_at > $2 OR (created_at = $2 AND id < $3))",
            "created_at, id DESC",
            4,
        ),
    };
    let (search_part, limit_at) = match search {
        Searched::No => (String::new(), next),
        Searched::Key => (format!(" AND key_hash = ${next}"), next + 1),
        Searched::Text => (search_sql(next), next + 4),
    };
    format!(
        "SELECT * FROM licenses WHERE organization_id = $1{cursor}{search_part} \
         ORDER BY {order} LIMIT ${limit_at}"
    )
}

/// A license's audit entries (see [`Db::license_audit`]): each half names its index's
/// expression exactly; the length check keeps a longer path segment that starts with the id
/// out.
const LICENSE_AUDIT: &str = "SELECT * FROM (\
     SELECT * FROM audit_log WHERE organization_id = $1 \
     AND substr(target, 14, 24) = $2 AND seq > $3 \
     AND substr(target, 1, 13) = '/v1/licenses/' \
     AND (length(target) = 37 OR substr(target, 38, 1) = '/') \
     UNION ALL \
     SELECT * FROM audit_log WHERE organization_id = $1 \
     AND substr(target, 19, 24) = $2 AND seq > $3 \
     AND substr(target, 1, 18) = '/console/licenses/' \
     AND (length(target) = 42 OR substr(target, 43, 1) = '/')\
     ) AS t ORDER BY seq LIMIT $4";

impl Db {
    /// One page of the organization's licenses in the list's order (`created_at DESC, id`),
    /// at most `limit`, matching `search` when given. Keyset paging on the `licenses_newest`
    /// index: no row is skipped or read twice however deep the page.
    pub async fn license_page(
        &self,
        organization_id: &str,
        page: &LicensePage,
        search: Option<&LicenseSearch>,
        limit: i64,
    ) -> DbResult<Vec<LicenseRow>> {
        let how = searched(search);
        let sql = page_sql(page, how);
        // Only fixed fragments are joined; every value is bound.
        let mut query =
            sqlx::query_as::<_, LicenseRow>(sqlx::AssertSqlSafe(sql)).bind(organization_id);
        if let LicensePage::After(c) | LicensePage::Before(c) = page {
            query = query.bind(c.created_at).bind(c.id.clone());
        }
        if let Some(s) = search {
            query = query.bind(s.key_hash.clone().unwrap_or_default());
            if how == Searched::Text {
                query = query
                    .bind(s.like.clone())
                    .bind(s.user.clone())
                    .bind(s.email.clone());
            }
        }
        let mut rows = query.bind(limit).fetch_all(&self.pool).await?;
        if matches!(page, LicensePage::Before(_)) {
            rows.reverse();
        }
        Ok(rows)
    }

    /// The organization's audit entries whose target is license `license_id` (its API
    /// routes, `/v1/licenses/{id}…`, and the console's, `/console/licenses/{id}…`) with
    /// `seq > after`, oldest first, at most `limit`: read on the two `audit_log_by_*_license`
    /// indexes of migration 0020, which address a 24-character license id by its place in
    /// the path.
    pub async fn license_audit(
        &self,
        organization_id: &str,
        license_id: &str,
        after: i64,
        limit: i64,
    ) -> DbResult<Vec<AuditEntry>> {
        let entries: Vec<AuditEntry> = if license_id.len() == 24 {
            sqlx::query_as(LICENSE_AUDIT)
                .bind(organization_id)
                .bind(license_id)
                .bind(after)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
        } else {
            // Not an id the server issues: no index has it; an exact comparison of the path.
            let api = format!("/v1/licenses/{license_id}");
            let console = format!("/console/licenses/{license_id}");
            sqlx::query_as(
                "SELECT * FROM audit_log WHERE organization_id = $1 AND seq > $2 \
                 AND (target = $3 OR substr(target, 1, length($3) + 1) = $3 || '/' \
                 OR target = $4 OR substr(target, 1, length($4) + 1) = $4 || '/') \
                 ORDER BY seq LIMIT $5",
            )
            .bind(organization_id)
            .bind(after)
            .bind(api)
            .bind(console)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?
        };
        Ok(entries
            .into_iter()
            .map(AuditEntry::with_target_id)
            .collect())
    }
}

#[cfg(test)]
impl Db {
    /// Test: the license's seat assignments assigned and last used at `at`.
    pub(crate) async fn backdate_assignments_for_tests(&self, license_id: &str, at: i64) {
        sqlx::query(
            "UPDATE seat_assignments SET created_at = $1, updated_at = $1, last_used_at = $1 \
             WHERE license_id = $2",
        )
        .bind(at)
        .bind(license_id)
        .execute(&self.pool)
        .await
        .unwrap();
    }

    /// Measurement: `n` copies of license `template` (ids `lic_m<n>`, one second apart, each
    /// its own customer `customer <n>`), and `n` audit entries of other licenses.
    pub(crate) async fn fill_licenses_for_tests(&self, template: &str, n: i64) {
        sqlx::query(
            "WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < $2) \
             INSERT INTO licenses (id, organization_id, key_hash, key_hint, product_id, \
             policy_id, status, claims, token, expires_at, created_at, updated_at, \
             lease_timeout, allow_unmetered, seat_mode, allow_over_allocation, reclaim_after, \
             customer_key) \
             SELECT 'lic_m' || n, organization_id, 'hash' || n, key_hint, product_id, \
             policy_id, status, claims, token, expires_at, created_at - n, updated_at, \
             lease_timeout, allow_unmetered, seat_mode, allow_over_allocation, reclaim_after, \
             'customer ' || n FROM seq, licenses WHERE licenses.id = $1",
        )
        .bind(template)
        .bind(n)
        .execute(&self.pool)
        .await
        .unwrap();
        sqlx::query(
            "WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < $2) \
             INSERT INTO audit_log (seq, at, organization_id, actor, action, target, status, \
             prev_hash, hash) \
             SELECT 10000000 + n, n, organization_id, 'tok', 'POST /v1/licenses/{id}/suspend', \
             '/v1/licenses/lic_m' || n || '/suspend', 200, '', '' \
             FROM seq, licenses WHERE licenses.id = $1",
        )
        .bind(template)
        .bind(n)
        .execute(&self.pool)
        .await
        .unwrap();
        let analyze = match self.engine {
            super::Engine::Sqlite => "ANALYZE",
            super::Engine::Postgres => "ANALYZE licenses; ANALYZE audit_log",
        };
        sqlx::raw_sql(analyze).execute(&self.pool).await.unwrap();
    }

    /// Test (SQLite): `EXPLAIN QUERY PLAN` of a page after a cursor (searched or not) and of
    /// a license's audit entries, each plan's details joined by `; `.
    pub(crate) async fn list_plans_for_tests(&self) -> (String, String, String) {
        let after = LicensePage::After(LicenseCursor {
            created_at: 0,
            id: String::new(),
        });
        let mut plans = Vec::new();
        for sql in [
            page_sql(&after, Searched::No),
            page_sql(&after, Searched::Text),
            LICENSE_AUDIT.to_owned(),
        ] {
            let rows: Vec<(i64, i64, i64, String)> =
                sqlx::query_as(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
                    .fetch_all(&self.pool)
                    .await
                    .unwrap();
            plans.push(rows.into_iter().map(|r| r.3).collect::<Vec<_>>().join("; "));
        }
        let audit = plans.pop().unwrap_or_default();
        let searched = plans.pop().unwrap_or_default();
        let page = plans.pop().unwrap_or_default();
        (page, searched, audit)
    }
}
