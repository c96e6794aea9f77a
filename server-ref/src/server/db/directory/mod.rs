//! The directory of an organization's people (`directory_users`) and departments or groups
//! (`departments`, `department_members`): the SQL only. Who may change what, the SCIM and CSV
//! dialects, and what a deactivation releases are the handlers'.
//!
//! Writes take a [`Tx`] from [`Db::begin_directory_change`], which serializes the writers of
//! one organization's directory (a user name checked free stays free until the commit). Reads
//! are [`Db`] methods on the pool, with `_in` forms that run the same SQL on any connection
//! (a transaction derefs to one).
//!
//! Lists take a [`Filter`] (the SCIM filter grammar's shape, typed) that is turned into one
//! `WHERE` clause with bound values: the attribute names come from enums, never from input.
//! Text comparisons ignore case (SCIM `caseExact: false`): equality on the user name and the
//! department name uses their stored lowercase keys (indexed); the others compare `LOWER(..)`.

use sqlx::{AnyConnection, FromRow};

use super::{Db, DbResult, Engine, Tx};

pub(super) mod bulk;

/// PostgreSQL: locks the organization's row until the commit, serializing its directory
/// writers across replicas.
const LOCK_ORGANIZATION_FOR_WRITE: &str = "SELECT id FROM organizations WHERE id = $1 FOR UPDATE";

/// A person of an organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DirectoryUser {
    pub id: String,
    pub organization_id: String,
    /// Unique in the organization, ignoring case.
    pub user_name: String,
    pub display_name: Option<String>,
    pub email: Option<String>,
    /// The identity provider's id (SCIM `externalId`).
    pub external_id: Option<String>,
    /// `false`: deprovisioned.
    pub active: bool,
    /// The enterprise extension's `department` (free text).
    pub department: Option<String>,
    /// 1, 2, 3, ... bumped by every update (SCIM `meta.version`).
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A department or group of an organization.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub(crate) struct Department {
    pub id: String,
    pub organization_id: String,
    /// Unique in the organization, ignoring case.
    pub name: String,
    pub external_id: Option<String>,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// `directory_users` as stored (`active` is a BIGINT: the Any driver decodes no SQLite
/// BOOLEAN).
#[derive(FromRow)]
struct UserRow {
    id: String,
    organization_id: String,
    user_name: String,
    display_name: Option<String>,
    email: Option<String>,
    external_id: Option<String>,
    active: i64,
    department: Option<String>,
    version: i64,
    created_at: i64,
    updated_at: i64,
}

impl From<UserRow> for DirectoryUser {
    fn from(row: UserRow) -> DirectoryUser {
        DirectoryUser {
            id: row.id,
            organization_id: row.organization_id,
            user_name: row.user_name,
            display_name: row.display_name,
            email: row.email,
            external_id: row.external_id,
            active: row.active != 0,
            department: row.department,
            version: row.version,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// The lowercase key a name is unique and looked up by.
pub(crate) fn name_key(name: &str) -> String {
    name.to_lowercase()
}

/// A user attribute a [`Filter`] may test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UserAttr {
    Id,
    UserName,
    DisplayName,
    Email,
    ExternalId,
    /// Compared with [`Value::Bool`].
    Active,
    Department,
}

/// A department attribute a [`Filter`] may test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DepartmentAttr {
    Id,
    Name,
    ExternalId,
    /// A member's user id: `Eq(Member, id)` is "has this member", `Present(Member)` "has any".
    Member,
}

/// A compared value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    Text(String),
    Bool(bool),
}

/// Which rows a list returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Filter<A> {
    /// Every row.
    All,
    Eq(A, Value),
    Ne(A, Value),
    Contains(A, String),
    StartsWith(A, String),
    EndsWith(A, String),
    /// The attribute has a value (not NULL, not empty).
    Present(A),
    And(Box<Filter<A>>, Box<Filter<A>>),
    Or(Box<Filter<A>>, Box<Filter<A>>),
    Not(Box<Filter<A>>),
}

/// A page of a list: `start` rows skipped (0-based), at most `count` returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Page {
    pub start: i64,
    pub count: i64,
}

/// An attribute's column, and whether it is text compared without case, for the `WHERE`
/// builder.
trait Column: Copy {
    /// The SQL expression of the column, and how text compares on it.
    fn column(self) -> (&'static str, Compare);
    /// For an attribute that is not a plain column but a related row (a department's
    /// members): the SQL of "has any" and the start of "has one equal to" (the bound value's
    /// placeholder and `)` follow). `None`: a plain column.
    fn membership(self) -> Option<(&'static str, &'static str)> {
        None
    }
}

/// How an attribute's text is compared.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Compare {
    /// Exactly (ids).
    Exact,
    /// Ignoring case, through `LOWER(column)`.
    Lower,
    /// Ignoring case, through a stored lowercase key column (equality only; the other
    /// operators use `LOWER` of the first column).
    Key(&'static str),
    /// A 0/1 column.
    Bool,
}

impl Column for UserAttr {
    fn column(self) -> (&'static str, Compare) {
        match self {
            UserAttr::Id => ("id", Compare::Exact),
            UserAttr::UserName => ("user_name", Compare::Key("user_name_key")),
            UserAttr::DisplayName => ("display_name", Compare::Lower),
            UserAttr::Email => ("email", Compare::Lower),
            UserAttr::ExternalId => ("external_id", Compare::Exact),
            UserAttr::Active => ("active", Compare::Bool),
            UserAttr::Department => ("department", Compare::Lower),
        }
    }
}

impl Column for DepartmentAttr {
    fn column(self) -> (&'static str, Compare) {
        match self {
            DepartmentAttr::Id => ("id", Compare::Exact),
            DepartmentAttr::Name => ("name", Compare::Key("name_key")),
            DepartmentAttr::ExternalId => ("external_id", Compare::Exact),
            DepartmentAttr::Member => ("id", Compare::Exact),
        }
    }

    fn membership(self) -> Option<(&'static str, &'static str)> {
        match self {
            DepartmentAttr::Member => Some((
                "EXISTS (SELECT 1 FROM department_members m \
                 WHERE m.department_id = departments.id)",
                "EXISTS (SELECT 1 FROM department_members m \
                 WHERE m.department_id = departments.id AND m.user_id = ",
            )),
            _ => None,
        }
    }
}

/// A `WHERE` clause being built, with its bound values in order (`$1` is the organization).
struct Where {
    sql: String,
    args: Vec<String>,
}

impl Where {
    fn new(organization_id: &str) -> Where {
        Where {
            sql: "organization_id = $1".to_owned(),
            args: vec![organization_id.to_owned()],
        }
    }

    /// Binds `value`, returning its placeholder.
    fn bind(&mut self, value: String) -> String {
        self.args.push(value);
        format!("${}", self.args.len())
    }

    fn push<A: Column>(&mut self, filter: &Filter<A>) {
        if matches!(filter, Filter::All) {
            return;
        }
        self.sql.push_str(" AND ");
        self.term(filter);
    }

    fn term<A: Column>(&mut self, filter: &Filter<A>) {
        match filter {
            Filter::All => self.sql.push_str("1 = 1"),
            Filter::And(a, b) | Filter::Or(a, b) => {
                let op = if matches!(filter, Filter::And(..)) {
                    " AND "
                } else {
                    " OR "
                };
                self.sql.push('(');
                self.term(a);
                self.sql.push_str(op);
                self.term(b);
                self.sql.push(')');
            }
            Filter::Not(a) => {
                // NULL-safe: a row whose attribute is NULL matches `not (attr eq x)`.
                self.sql.push_str("(CASE WHEN ");
                self.term(a);
                self.sql.push_str(" THEN 0 ELSE 1 END = 1)");
            }
            Filter::Present(attr) => match attr.membership() {
                Some((any, _)) => self.sql.push_str(any),
                None => {
                    let (column, compare) = attr.column();
                    if compare == Compare::Bool {
                        self.sql.push_str("1 = 1");
                    } else {
                        self.sql
                            .push_str(&format!("({column} IS NOT NULL AND {column} <> '')"));
                    }
                }
            },
            Filter::Eq(attr, value) | Filter::Ne(attr, value) => {
                let equal = matches!(filter, Filter::Eq(..));
                if let Some((_, exists)) = attr.membership() {
                    let text = match value {
                        Value::Text(text) => text.clone(),
                        Value::Bool(b) => b.to_string(),
                    };
                    let p = self.bind(text);
                    if !equal {
                        self.sql.push_str("NOT ");
                    }
                    self.sql.push_str(&format!("{exists}{p})"));
                    return;
                }
                let (column, compare) = attr.column();
                let (lhs, rhs) = match (compare, value) {
                    (Compare::Bool, Value::Bool(b)) => {
                        (column.to_owned(), i64::from(*b).to_string())
                    }
                    // A text compared with a boolean column, or a boolean with a text one,
                    // matches nothing.
                    (Compare::Bool, Value::Text(_)) | (_, Value::Bool(_)) => {
                        self.sql.push_str(if equal { "1 = 0" } else { "1 = 1" });
                        return;
                    }
                    (Compare::Exact, Value::Text(t)) => (column.to_owned(), t.clone()),
                    (Compare::Key(key), Value::Text(t)) => (key.to_owned(), name_key(t)),
                    (Compare::Lower, Value::Text(t)) => (format!("LOWER({column})"), name_key(t)),
                };
                let p = if compare == Compare::Bool {
                    // Bound as text would not compare with a BIGINT on PostgreSQL.
                    rhs
                } else {
                    self.bind(rhs)
                };
                if equal {
                    self.sql.push_str(&format!("{lhs} = {p}"));
                } else {
                    // NULL-safe: a row without the attribute is "not equal".
                    self.sql
                        .push_str(&format!("({lhs} IS NULL OR {lhs} <> {p})"));
                }
            }
            Filter::Contains(attr, text)
            | Filter::StartsWith(attr, text)
            | Filter::EndsWith(attr, text) => {
                let (column, compare) = attr.column();
                if compare == Compare::Bool || attr.membership().is_some() {
                    self.sql.push_str("1 = 0");
                    return;
                }
                let escaped = like_escape(&name_key(text));
                let pattern = match filter {
                    Filter::Contains(..) => format!("%{escaped}%"),
                    Filter::StartsWith(..) => format!("{escaped}%"),
                    _ => format!("%{escaped}"),
                };
                let lhs = if compare == Compare::Exact {
                    column.to_owned()
                } else {
                    format!("LOWER({column})")
                };
                let p = self.bind(pattern);
                self.sql.push_str(&format!("{lhs} LIKE {p} ESCAPE '\\'"));
            }
        }
    }

    /// Runs `SELECT {what} FROM {table} WHERE <this clause> {rest}` with the bound values.
    ///
    /// The statement is assembled at run time, so sqlx asks for it to be vouched for
    /// (`AssertSqlSafe`): every piece of SQL comes from this module's literals and the
    /// attribute enums, and every value from input is a bound parameter.
    async fn fetch_all<R>(
        &self,
        tx: &mut Tx,
        what: &str,
        table: &str,
        rest: &str,
    ) -> DbResult<Vec<R>>
    where
        R: for<'r> FromRow<'r, sqlx::any::AnyRow> + Send + Unpin,
    {
        let sql = format!("SELECT {what} FROM {table} WHERE {} {rest}", self.sql);
        let mut query = sqlx::query_as::<_, R>(sqlx::AssertSqlSafe(sql));
        for value in &self.args {
            query = query.bind(value.clone());
        }
        query.fetch_all(&mut **tx).await
    }
}

/// `text` with LIKE's wildcards and the escape character escaped (by `\`).
fn like_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The columns of [`UserRow`].
macro_rules! select_users {
    ($rest:literal) => {
        concat!(
            "SELECT id, organization_id, user_name, display_name, email, external_id, active, \
             department, version, created_at, updated_at FROM directory_users ",
            $rest
        )
    };
}

/// The columns of [`UserRow`], for a statement assembled at run time.
const USER_COLUMNS: &str = "id, organization_id, user_name, display_name, email, external_id, \
                            active, department, version, created_at, updated_at";

impl Db {
    /// Starts a write transaction on `organization_id`'s directory that serializes with its
    /// other directory writers: SQLite takes the database write lock up front; PostgreSQL locks
    /// the organization's row.
    pub async fn begin_directory_change(&self, organization_id: &str) -> DbResult<Tx> {
        let tx = match self.engine {
            Engine::Sqlite => self.gate.begin_immediate(&self.pool).await?,
            Engine::Postgres => {
                let mut tx = Tx::from(self.pool.begin().await?);
                sqlx::query(LOCK_ORGANIZATION_FOR_WRITE)
                    .bind(organization_id)
                    .execute(&mut *tx)
                    .await?;
                tx
            }
        };
        Ok(tx)
    }

    /// The user `id` of `organization_id`.
    pub async fn user(&self, organization_id: &str, id: &str) -> DbResult<Option<DirectoryUser>> {
        user_in(&mut *self.pool.acquire().await?, organization_id, id).await
    }

    /// The user of `organization_id` named `user_name`, ignoring case.
    pub async fn user_by_name(
        &self,
        organization_id: &str,
        user_name: &str,
    ) -> DbResult<Option<DirectoryUser>> {
        let row: Option<UserRow> = sqlx::query_as(select_users!(
            "WHERE organization_id = $1 AND user_name_key = $2"
        ))
        .bind(organization_id)
        .bind(name_key(user_name))
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(DirectoryUser::from))
    }

    /// The users of `organization_id` that `filter` matches, by user name, `page` of them, and
    /// how many match in all.
    pub async fn users(
        &self,
        organization_id: &str,
        filter: &Filter<UserAttr>,
        page: Page,
    ) -> DbResult<(Vec<DirectoryUser>, i64)> {
        let mut tx = self.begin_read().await?;
        let found = users_in(&mut tx, organization_id, filter, page).await?;
        tx.commit().await?;
        Ok(found)
    }

    /// The department `id` of `organization_id`.
    pub async fn department(
        &self,
        organization_id: &str,
        id: &str,
    ) -> DbResult<Option<Department>> {
        department_in(&mut *self.pool.acquire().await?, organization_id, id).await
    }

    /// The departments of `organization_id` that `filter` matches, by name, `page` of them,
    /// and how many match in all.
    pub async fn departments(
        &self,
        organization_id: &str,
        filter: &Filter<DepartmentAttr>,
        page: Page,
    ) -> DbResult<(Vec<Department>, i64)> {
        let mut tx = self.begin_read().await?;
        let found = departments_in(&mut tx, organization_id, filter, page).await?;
        tx.commit().await?;
        Ok(found)
    }

    /// The members of department `department_id`: (user id, user name), by user name.
    pub async fn members(
        &self,
        organization_id: &str,
        department_id: &str,
    ) -> DbResult<Vec<(String, String)>> {
        members_in(
            &mut *self.pool.acquire().await?,
            organization_id,
            department_id,
        )
        .await
    }

    /// The departments user `user_id` belongs to, by name.
    pub async fn departments_of(
        &self,
        organization_id: &str,
        user_id: &str,
    ) -> DbResult<Vec<Department>> {
        departments_of_in(&mut *self.pool.acquire().await?, organization_id, user_id).await
    }
}

/// [`Db::user`] on a connection (a transaction derefs to one).
pub(crate) async fn user_in(
    conn: &mut AnyConnection,
    organization_id: &str,
    id: &str,
) -> DbResult<Option<DirectoryUser>> {
    let row: Option<UserRow> =
        sqlx::query_as(select_users!("WHERE organization_id = $1 AND id = $2"))
            .bind(organization_id)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(row.map(DirectoryUser::from))
}

/// [`Db::users`] inside a transaction.
pub(crate) async fn users_in(
    tx: &mut Tx,
    organization_id: &str,
    filter: &Filter<UserAttr>,
    page: Page,
) -> DbResult<(Vec<DirectoryUser>, i64)> {
    let mut w = Where::new(organization_id);
    w.push(filter);
    let total: Vec<(i64,)> = w.fetch_all(tx, "COUNT(*)", "directory_users", "").await?;
    let rest = format!(
        "ORDER BY user_name_key, id LIMIT {} OFFSET {}",
        page.count.max(0),
        page.start.max(0)
    );
    let rows: Vec<UserRow> = w
        .fetch_all(tx, USER_COLUMNS, "directory_users", &rest)
        .await?;
    let total = total.first().map_or(0, |(n,)| *n);
    Ok((rows.into_iter().map(DirectoryUser::from).collect(), total))
}

/// [`Db::departments`] inside a transaction.
pub(crate) async fn departments_in(
    tx: &mut Tx,
    organization_id: &str,
    filter: &Filter<DepartmentAttr>,
    page: Page,
) -> DbResult<(Vec<Department>, i64)> {
    let mut w = Where::new(organization_id);
    w.push(filter);
    let total: Vec<(i64,)> = w.fetch_all(tx, "COUNT(*)", "departments", "").await?;
    let rest = format!(
        "ORDER BY name_key, id LIMIT {} OFFSET {}",
        page.count.max(0),
        page.start.max(0)
    );
    let rows: Vec<Department> = w.fetch_all(tx, "*", "departments", &rest).await?;
    let total = total.first().map_or(0, |(n,)| *n);
    Ok((rows, total))
}

/// [`Db::department`] on a connection (a transaction derefs to one).
pub(crate) async fn department_in(
    conn: &mut AnyConnection,
    organization_id: &str,
    id: &str,
) -> DbResult<Option<Department>> {
    sqlx::query_as("SELECT * FROM departments WHERE organization_id = $1 AND id = $2")
        .bind(organization_id)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
}

/// [`Db::members`] on a connection (a transaction derefs to one).
pub(crate) async fn members_in(
    conn: &mut AnyConnection,
    organization_id: &str,
    department_id: &str,
) -> DbResult<Vec<(String, String)>> {
    sqlx::query_as(
        "SELECT u.id, u.user_name FROM department_members m \
         JOIN directory_users u ON u.id = m.user_id \
         WHERE m.organization_id = $1 AND m.department_id = $2 ORDER BY u.user_name_key, u.id",
    )
    .bind(organization_id)
    .bind(department_id)
    .fetch_all(&mut *conn)
    .await
}

/// [`Db::departments_of`] on a connection (a transaction derefs to one).
pub(crate) async fn departments_of_in(
    conn: &mut AnyConnection,
    organization_id: &str,
    user_id: &str,
) -> DbResult<Vec<Department>> {
    sqlx::query_as(
        "SELECT d.* FROM department_members m JOIN departments d ON d.id = m.department_id \
         WHERE m.organization_id = $1 AND m.user_id = $2 ORDER BY d.name_key, d.id",
    )
    .bind(organization_id)
    .bind(user_id)
    .fetch_all(&mut *conn)
    .await
}

/// Stores a new user. `Ok(false)`: its organization has a user of that name already
/// (ignoring case), and nothing is stored. The statement is the import's
/// ([`insert_users_in`](bulk::insert_users_in)), with one row.
pub(crate) async fn insert_user(tx: &mut Tx, user: &DirectoryUser) -> DbResult<bool> {
    Ok(bulk::insert_users_in(tx, std::slice::from_ref(user)).await? == 1)
}

/// Replaces user `user.id`'s attributes (all but its id, organization and creation time) and
/// bumps its version: `user.version` is ignored, the stored one goes up by one. `Ok(false)`: no
/// such user, or another user of the organization has the new name (nothing is stored).
pub(crate) async fn update_user(tx: &mut Tx, user: &DirectoryUser) -> DbResult<bool> {
    let taken: Option<(String,)> = sqlx::query_as(
        "SELECT id FROM directory_users WHERE organization_id = $1 AND user_name_key = $2 \
         AND id <> $3",
    )
    .bind(&user.organization_id)
    .bind(name_key(&user.user_name))
    .bind(&user.id)
    .fetch_optional(&mut **tx)
    .await?;
    if taken.is_some() {
        return Ok(false);
    }
    let done = sqlx::query(
        "UPDATE directory_users SET user_name = $3, user_name_key = $4, display_name = $5, \
         email = $6, external_id = $7, active = $8, department = $9, version = version + 1, \
         updated_at = $10 WHERE organization_id = $1 AND id = $2",
    )
    .bind(&user.organization_id)
    .bind(&user.id)
    .bind(&user.user_name)
    .bind(name_key(&user.user_name))
    .bind(&user.display_name)
    .bind(&user.email)
    .bind(&user.external_id)
    .bind(i64::from(user.active))
    .bind(&user.department)
    .bind(user.updated_at)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes user `id` and its memberships. `Ok(false)`: no such user. Its seats and leases are
/// the caller's to release first; the rows that name it (`leases.user_id`...) keep the id.
pub(crate) async fn delete_user(tx: &mut Tx, organization_id: &str, id: &str) -> DbResult<bool> {
    sqlx::query("DELETE FROM department_members WHERE organization_id = $1 AND user_id = $2")
        .bind(organization_id)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    let done = sqlx::query("DELETE FROM directory_users WHERE organization_id = $1 AND id = $2")
        .bind(organization_id)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Stores a new department. `Ok(false)`: its organization has one of that name already
/// (ignoring case).
pub(crate) async fn insert_department(tx: &mut Tx, department: &Department) -> DbResult<bool> {
    let done = sqlx::query(
        "INSERT INTO departments (id, organization_id, name, name_key, external_id, version, \
         created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (organization_id, name_key) DO NOTHING",
    )
    .bind(&department.id)
    .bind(&department.organization_id)
    .bind(&department.name)
    .bind(name_key(&department.name))
    .bind(&department.external_id)
    .bind(department.version)
    .bind(department.created_at)
    .bind(department.updated_at)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Replaces department `department.id`'s name and external id and bumps its version.
/// `Ok(false)`: no such department, or another one has the new name.
pub(crate) async fn update_department(tx: &mut Tx, department: &Department) -> DbResult<bool> {
    let taken: Option<(String,)> = sqlx::query_as(
        "SELECT id FROM departments WHERE organization_id = $1 AND name_key = $2 AND id <> $3",
    )
    .bind(&department.organization_id)
    .bind(name_key(&department.name))
    .bind(&department.id)
    .fetch_optional(&mut **tx)
    .await?;
    if taken.is_some() {
        return Ok(false);
    }
    let done = sqlx::query(
        "UPDATE departments SET name = $3, name_key = $4, external_id = $5, \
         version = version + 1, updated_at = $6 WHERE organization_id = $1 AND id = $2",
    )
    .bind(&department.organization_id)
    .bind(&department.id)
    .bind(&department.name)
    .bind(name_key(&department.name))
    .bind(&department.external_id)
    .bind(department.updated_at)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes department `id` and its memberships. `Ok(false)`: no such department.
pub(crate) async fn delete_department(
    tx: &mut Tx,
    organization_id: &str,
    id: &str,
) -> DbResult<bool> {
    sqlx::query("DELETE FROM department_members WHERE organization_id = $1 AND department_id = $2")
        .bind(organization_id)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    let done = sqlx::query("DELETE FROM departments WHERE organization_id = $1 AND id = $2")
        .bind(organization_id)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Makes `user_ids` the members of department `department_id`, exactly. Ids that are not users
/// of the organization are skipped; the caller checks them first to refuse them.
pub(crate) async fn set_members(
    tx: &mut Tx,
    organization_id: &str,
    department_id: &str,
    user_ids: &[String],
) -> DbResult<()> {
    sqlx::query("DELETE FROM department_members WHERE organization_id = $1 AND department_id = $2")
        .bind(organization_id)
        .bind(department_id)
        .execute(&mut **tx)
        .await?;
    add_members(tx, organization_id, department_id, user_ids).await
}

/// Adds `user_ids` to department `department_id` (members already are stay). Ids that are
/// not users of the organization are skipped.
pub(crate) async fn add_members(
    tx: &mut Tx,
    organization_id: &str,
    department_id: &str,
    user_ids: &[String],
) -> DbResult<()> {
    for user_id in user_ids {
        sqlx::query(
            "INSERT INTO department_members (department_id, user_id, organization_id) \
             SELECT $2, id, $1 FROM directory_users WHERE organization_id = $1 AND id = $3 \
             ON CONFLICT (department_id, user_id) DO NOTHING",
        )
        .bind(organization_id)
        .bind(department_id)
        .bind(user_id)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Removes `user_ids` from department `department_id` (ids that are not members are ignored).
pub(crate) async fn remove_members(
    tx: &mut Tx,
    organization_id: &str,
    department_id: &str,
    user_ids: &[String],
) -> DbResult<()> {
    for user_id in user_ids {
        sqlx::query(
            "DELETE FROM department_members \
             WHERE organization_id = $1 AND department_id = $2 AND user_id = $3",
        )
        .bind(organization_id)
        .bind(department_id)
        .bind(user_id)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}
