//! A person's data under the GDPR: its export (Article 15, right of access) and its erasure
//! (Article 17, right to erasure), for the admin API (`GET /v1/directory/users/{id}/export`,
//! `POST /v1/directory/users/{id}/erase`) and the command line (`licensing-server gdpr export |
//! erase`). What is personal data, where it is kept and for how long: docs/PRIVACY.md.
//!
//! A row is the person's when it is linked to their directory user (`user_id`), or linked to
//! nobody and names their user name without regard to case (a check-out, activation or denial
//! made before the directory knew them), on a license of their organization.
//!
//! An erasure first releases the person's seats and leases (deprovisioning), then, in one
//! transaction on the organization's directory, pseudonymises what names them: the directory
//! row keeps its id (so assignments, leases and counts stay right) but its user name becomes a
//! random pseudonym (`erased_...`) and its display name, e-mail, external id and department are
//! cleared, inactive; memberships and seat queue places are removed; leases, denials and
//! machines carry the pseudonym instead of the user name. Erasing again changes nothing more.

use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::db::directory::{self, DirectoryUser};
use super::db::gdpr::{
    self as sql, Scrubbed, SubjectAssignment, SubjectDenial, SubjectLease, SubjectMachine,
    SubjectQueuePlace, SubjectTransfer,
};
use super::db::{Db, Tx};
use super::error::{ApiError, ApiResult};
use super::secrets;
use licensing_core::protocol::ErrorCode;

/// Rows of each kind an export holds at most; a kind cut there is named in
/// [`SubjectExport::truncated`] (ask again after the older rows were pruned, or read the
/// database directly).
pub(crate) const EXPORT_CAP: i64 = 10_000;

/// The `format` of an export document.
pub(crate) const EXPORT_FORMAT: &str = "licensing-server gdpr export v1";

/// The most characters of an unknown id or name a 404 repeats.
const MAX_SHOWN_ID_CHARS: usize = 64;

/// The prefix of the pseudonym an erased person's user name becomes.
const PSEUDONYM_PREFIX: &str = "erased_";

/// The directory row of the person.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct SubjectUser {
    pub id: String,
    pub user_name: String,
    pub display_name: Option<String>,
    pub email: Option<String>,
    /// The identity provider's id.
    pub external_id: Option<String>,
    pub active: bool,
    /// The department attribute (free text, as the identity provider sent it).
    pub department: Option<String>,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<DirectoryUser> for SubjectUser {
    fn from(u: DirectoryUser) -> SubjectUser {
        SubjectUser {
            id: u.id,
            user_name: u.user_name,
            display_name: u.display_name,
            email: u.email,
            external_id: u.external_id,
            active: u.active,
            department: u.department,
            version: u.version,
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

/// A department the person belongs to.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct SubjectDepartment {
    pub id: String,
    pub name: String,
    pub external_id: Option<String>,
}

/// Everything the server keeps about one person of an organization (GDPR Article 15): one
/// JSON document.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct SubjectExport {
    /// `licensing-server gdpr export v1`.
    pub format: &'static str,
    /// The person's organization.
    pub organization_id: String,
    /// When the export was made (Unix seconds).
    pub exported_at: i64,
    /// The directory row.
    pub user: SubjectUser,
    /// The departments (groups) the person belongs to.
    pub departments: Vec<SubjectDepartment>,
    /// Seat assignments to the person, active and reclaimed.
    pub seat_assignments: Vec<SubjectAssignment>,
    /// Transfers of seat assignments from or to the person.
    pub assignment_transfers: Vec<SubjectTransfer>,
    /// Machines activated by the person (`created_at`: the activation).
    pub machines: Vec<SubjectMachine>,
    /// Floating seat leases the person held or holds.
    pub leases: Vec<SubjectLease>,
    /// Check-outs refused to the person (kept 60 days by default).
    pub denials: Vec<SubjectDenial>,
    /// Places the person holds in seat queues.
    pub queue_places: Vec<SubjectQueuePlace>,
    /// Audit trail entries whose subject is the person.
    /// The client-event chain's entries whose subject is the person's name.
    pub audit_events: Vec<serde_json::Value>,
    /// The most rows of one kind an export holds.
    pub cap: i64,
    /// The kinds (field names) that held more than `cap` rows: only the oldest `cap` are here.
    pub truncated: Vec<String>,
    /// What else the reader should know (what is not exported, and why).
    pub notes: Vec<String>,
}

/// What an erasure did. It names the person by id and pseudonym only.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct Erasure {
    /// The directory user's id (kept).
    pub user_id: String,
    /// The user name the person's rows carry from now on.
    pub pseudonym: String,
    /// The person was erased before: nothing personal was left to change.
    pub already_erased: bool,
    /// Leases force-released by the deprovisioning that came first.
    pub leases_released: u64,
    /// Seat assignments reclaimed by it.
    pub assignments_reclaimed: u64,
    /// Rows changed, per table.
    pub scrubbed: Scrubbed,
    /// Audit trail entries whose subject was removed.
    pub audit_subjects_erased: u64,
}

/// 404 for a user the organization does not have (another tenant's included).
fn no_such_user(id: &str) -> ApiError {
    let shown: String = id.chars().take(MAX_SHOWN_ID_CHARS).collect();
    ApiError::not_found(
        ErrorCode::UserNotFound,
        format!(
            "no directory user `{}`",
            crate::cli_input::printable(&shown)
        ),
    )
}

/// The directory user of `organization_id` that `text` names: its id, else its user name
/// (ignoring case). 404 when neither.
pub(crate) async fn find_user(
    db: &Db,
    organization_id: &str,
    text: &str,
) -> ApiResult<DirectoryUser> {
    if let Some(user) = db.user(organization_id, text).await? {
        return Ok(user);
    }
    db.user_by_name(organization_id, text)
        .await?
        .ok_or_else(|| no_such_user(text))
}

/// Whether `user` is an erased person's row: a pseudonym for a name, nothing else, inactive.
fn is_erased(user: &DirectoryUser) -> bool {
    let random = user.user_name.strip_prefix(PSEUDONYM_PREFIX).unwrap_or("");
    random.len() == 20
        && random
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && !user.active
        && user.display_name.is_none()
        && user.email.is_none()
        && user.external_id.is_none()
        && user.department.is_none()
}

/// A `LIKE` pattern on `LOWER(user_name)` that every user name whose key
/// ([`directory::name_key`]) is `key` matches, on both engines, to narrow a scan to candidates
/// (the caller then compares keys). SQLite's `LOWER` folds ASCII only, PostgreSQL's depends on
/// the locale, so only what both fold alike is kept: ASCII characters of the key, except `i`
/// and `k` (the lowercase of `İ` and of the Kelvin sign, the two non-ASCII characters whose
/// lowercase is ASCII); every other run of characters becomes `%`.
pub(crate) fn candidate_pattern(key: &str) -> String {
    let mut pattern = String::with_capacity(key.len());
    let mut wild = false;
    for c in key.chars() {
        if c.is_ascii() && !c.is_ascii_control() && !matches!(c, 'i' | 'k') {
            if matches!(c, '%' | '_' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
            wild = false;
        } else if !wild {
            pattern.push('%');
            wild = true;
        }
    }
    pattern
}

/// The user names on rows of `organization_id` linked to no directory user whose key is
/// `key` (the person's spellings of their user name).
async fn spellings_in(tx: &mut Tx, organization_id: &str, key: &str) -> ApiResult<Vec<String>> {
    Ok(
        sql::unlinked_names_in(tx, organization_id, &candidate_pattern(key), |n| {
            directory::name_key(n) == key
        })
        .await?,
    )
}

/// `rows` cut to [`EXPORT_CAP`], noting `kind` in `truncated` when it was longer.
pub(crate) fn capped<T>(mut rows: Vec<T>, kind: &str, truncated: &mut Vec<String>) -> Vec<T> {
    if rows.len() as i64 > EXPORT_CAP {
        rows.truncate(EXPORT_CAP as usize);
        truncated.push(kind.to_owned());
    }
    rows
}

/// The subjects the client-event chain names the person by: every spelling of their user name
/// (the same key, [`directory::name_key`]) among the organization's event subjects.
async fn subjects(db: &Db, organization_id: &str, user_name: &str) -> ApiResult<Vec<String>> {
    let key = directory::name_key(user_name);
    let candidates = db
        .audit_subjects_like(organization_id, &candidate_pattern(&key))
        .await?;
    Ok(candidates
        .into_iter()
        .filter(|subject| directory::name_key(subject) == key)
        .collect())
}

/// The export of directory user `user_id` of `organization_id` at `now`, read from one
/// snapshot. 404 when the organization has no such user.
pub(crate) async fn export(
    db: &Db,
    organization_id: &str,
    user_id: &str,
    now: i64,
) -> ApiResult<SubjectExport> {
    let mut tx = db.begin_snapshot().await?;
    let user = directory::user_in(&mut tx, organization_id, user_id)
        .await?
        .ok_or_else(|| no_such_user(user_id))?;
    let names = spellings_in(
        &mut tx,
        organization_id,
        &directory::name_key(&user.user_name),
    )
    .await?;
    let departments = directory::departments_of_in(&mut tx, organization_id, &user.id)
        .await?
        .into_iter()
        .map(|d| SubjectDepartment {
            id: d.id,
            name: d.name,
            external_id: d.external_id,
        })
        .collect();
    let cap = EXPORT_CAP;
    let mut truncated = Vec::new();
    let seat_assignments = sql::assignments_in(&mut tx, organization_id, &user.id, cap).await?;
    let transfers = sql::transfers_in(&mut tx, organization_id, &user.id, cap).await?;
    let machines = sql::machines_in(&mut tx, organization_id, &user.id, &names, cap).await?;
    let leases = sql::leases_in(&mut tx, organization_id, &user.id, &names, cap).await?;
    let denials = sql::denials_in(&mut tx, organization_id, &user.id, &names, cap).await?;
    let queue_places = sql::queue_places_in(&mut tx, organization_id, &names, cap).await?;
    tx.commit().await?;
    // The client-event chain's entries that name the person (their erasable subject), under
    // every spelling of the name; read after the snapshot (the chain is append-only).
    let mut audit_events = Vec::new();
    for subject in subjects(db, organization_id, &user.user_name).await? {
        for row in db
            .audit_events_naming(organization_id, &subject, cap)
            .await?
        {
            audit_events.push(serde_json::to_value(row).map_err(ApiError::internal)?);
        }
    }
    Ok(SubjectExport {
        format: EXPORT_FORMAT,
        organization_id: organization_id.to_owned(),
        exported_at: now,
        departments,
        seat_assignments: capped(seat_assignments, "seat_assignments", &mut truncated),
        assignment_transfers: capped(transfers, "assignment_transfers", &mut truncated),
        machines: capped(machines, "machines", &mut truncated),
        leases: capped(leases, "leases", &mut truncated),
        denials: capped(denials, "denials", &mut truncated),
        queue_places: capped(queue_places, "queue_places", &mut truncated),
        audit_events: capped(audit_events, "audit_events", &mut truncated),
        cap,
        truncated,
        notes: vec![
            "Compliance alerts are computed per license from counts when asked for and name \
             nobody; none are stored."
                .to_owned(),
            "Machine fingerprints hold salted SHA-256 hashes of the machine's components \
             (host name, hardware ids), never the values; the salt is the product id."
                .to_owned(),
            "Admin audit trail entries name API tokens, never people; a directory user appears \
             there by id in the paths of the requests that changed it."
                .to_owned(),
        ],
        user: user.into(),
    })
}

/// Erases directory user `user_id` of `organization_id` at `now` (see the module doc);
/// `actor` is who asked (an API token id, or `cli`). 404 when the organization has no such
/// user. Erasing an erased user changes nothing and answers `already_erased`.
pub(crate) async fn erase(
    state: &AppState,
    organization_id: &str,
    user_id: &str,
    now: i64,
    actor: &str,
) -> ApiResult<Erasure> {
    let db = state.db();
    if db.user(organization_id, user_id).await?.is_none() {
        return Err(no_such_user(user_id));
    }
    // 1. Release the person's seats and leases (their next heartbeat learns it).
    let released = super::deprovision::user(state, organization_id, user_id, now, actor).await?;
    let leases_released = released.leases_released.len() as u64;
    let assignments_reclaimed = released.assignments_reclaimed;
    // 2. The spellings of the user name on unlinked rows, found before the directory's write
    // lock is taken (the search scans the organization's unlinked rows: no writer waits for
    // it). A spelling first used between this read and the transaction is missed.
    let mut read = db.begin_snapshot().await?;
    let found = directory::user_in(&mut read, organization_id, user_id).await?;
    let mut spellings = None;
    if let Some(found) = found {
        let key = directory::name_key(&found.user_name);
        spellings = Some((
            key.clone(),
            spellings_in(&mut read, organization_id, &key).await?,
        ));
    }
    read.commit().await?;
    // 3. Pseudonymise, in one transaction that serializes with the directory's writers.
    let mut tx = db.begin_directory_change(organization_id).await?;
    let user = directory::user_in(&mut tx, organization_id, user_id)
        .await?
        .ok_or_else(|| no_such_user(user_id))?;
    let key = directory::name_key(&user.user_name);
    let names = match spellings {
        Some((found_key, names)) if found_key == key => names,
        // Renamed meanwhile: search again, under the lock.
        _ => spellings_in(&mut tx, organization_id, &key).await?,
    };
    let original_name = user.user_name.clone();
    let already_erased = is_erased(&user);
    let pseudonym = if already_erased {
        user.user_name.clone()
    } else {
        format!(
            "{PSEUDONYM_PREFIX}{}",
            secrets::new_id("x")
                .map_err(ApiError::internal)?
                .trim_start_matches("x_")
        )
    };
    let scrubbed = sql::scrub_in(&mut tx, organization_id, user_id, &names, &pseudonym).await?;
    if !already_erased {
        let erased = DirectoryUser {
            user_name: pseudonym.clone(),
            display_name: None,
            email: None,
            external_id: None,
            active: false,
            department: None,
            updated_at: now,
            ..user
        };
        if !directory::update_user(&mut tx, &erased).await? {
            // A pseudonym of 100 random bits taken already: practically never.
            return Err(ApiError::internal("the pseudonym is taken; retry"));
        }
    }
    tx.commit().await?;
    // This process's cached links of user names to directory users name the old user name.
    db.forget_directory_links();
    // 4. The audit trail's subjects: the client-event chain keeps the name outside its hashes
    // (a salted commitment inside), so blanking it keeps the chain verifiable. The events the
    // deprovisioning queued (force-released leases) are written first, so none names the
    // person after this.
    state.audit().flush().await;
    let mut audit_subjects_erased = 0;
    for subject in subjects(db, organization_id, &original_name).await? {
        audit_subjects_erased += db.erase_subject(organization_id, &subject).await?;
    }
    Ok(Erasure {
        user_id: user_id.to_owned(),
        pseudonym,
        already_erased: already_erased && scrubbed == Scrubbed::default(),
        leases_released,
        assignments_reclaimed,
        scrubbed,
        audit_subjects_erased,
    })
}
