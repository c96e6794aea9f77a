//! Leases and places in line: the rows of `leases` and `seat_queue`, the check-out and
//! lease-write types, the statements that address one lease, and the count of held leases
//! (`licenses.leases_held`). Shared by the floating-license queries (`floating`) and the seat
//! writer (`seats`), so neither imports the other.

use sqlx::{AnyConnection, FromRow};

use super::DbResult;

/// A row of `leases`.
#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub(crate) struct LeaseRow {
    pub id: String,
    pub license_id: String,
    pub client_id: String,
    pub user_name: String,
    pub request_id: String,
    pub epoch: i64,
    pub created_at: i64,
    pub heartbeat_at: i64,
    pub expires_at: i64,
    pub released_at: Option<i64>,
    pub release_reason: Option<String>,
    /// 1: borrowed (see [`LeaseRow::is_borrowed`]).
    pub borrowed: i64,
    /// SHA-256 (hex) of the lease's secret, which heartbeats and check-ins present; `None` for
    /// a lease taken before secrets existed (migration 0010) or by a check-out that did not
    /// declare `lease_secret_supported` (an SDK older than lease secrets).
    pub secret_hash: Option<String>,
}

impl LeaseRow {
    /// Whether the seat is borrowed: taken offline until `expires_at` (heartbeats leave the
    /// expiry alone, and an administrator cannot release it early).
    pub fn is_borrowed(&self) -> bool {
        self.borrowed != 0
    }

    /// Whether the lease holds its seat at `now` (the one rule, see the module doc).
    pub fn is_live_at(&self, now: i64) -> bool {
        self.released_at.is_none() && now < self.expires_at
    }

    /// Whether `presented` (the SHA-256 hex of a secret a client sent, if any) proves
    /// possession of this lease, compared in constant time. A lease taken before secrets
    /// existed has none and accepts any.
    pub fn secret_matches(&self, presented: Option<&str>) -> bool {
        match (&self.secret_hash, presented) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(stored), Some(presented)) => {
                use subtle::ConstantTimeEq as _;
                stored.len() == presented.len()
                    && bool::from(stored.as_bytes().ct_eq(presented.as_bytes()))
            }
        }
    }
}

/// A row of `seat_queue`: a place in a floating license's wait line.
#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub(crate) struct QueueRow {
    pub id: String,
    pub license_id: String,
    pub client_id: String,
    pub user_name: String,
    /// The order of the line (lower first).
    pub seq: i64,
    pub queued_at: i64,
    pub polled_at: i64,
    pub wait_until: i64,
    /// The place is held while `now < expires_at` (see the migration `0006_seat_queue.sql`).
    pub expires_at: i64,
}

/// A waiting client keeps its place by asking again within this many seconds; the answer tells
/// it to ask every [`QUEUE_RETRY_AFTER`]. Short, so a client that quit holds up the line (and a
/// freed seat) for half a minute at most.
pub(crate) const QUEUE_POLL_WINDOW: i64 = 30;

/// Seconds a waiting client is told to wait before asking again (`Retry-After`).
pub(crate) const QUEUE_RETRY_AFTER: i64 = 5;

/// A check-out request, with the ids the server chose for a new lease or denial.
#[derive(Debug, Clone)]
pub(crate) struct CheckOut<'a> {
    pub license_id: &'a str,
    pub client_id: &'a str,
    pub user: &'a str,
    pub request_id: &'a str,
    /// The license's seats.
    pub seats: i64,
    pub now: i64,
    /// Id of the lease if one is granted.
    pub lease_id: &'a str,
    /// SHA-256 (hex) of a fresh secret: the new lease's, or the one that replaces the secret
    /// of this request id's lease (a retry: the instance lost the first answer). `None` for a
    /// check-out that did not declare `lease_secret_supported` (an SDK older than lease
    /// secrets): a new lease has none, and a retry of a lease that has one is refused
    /// ([`CheckOutOutcome::SecretRequired`]), never answered nor downgraded.
    pub secret_hash: Option<&'a str>,
    /// SHA-256 (hex) of the secret the check-out presented (`lease_secret`): a live lease of
    /// the same client and user with this secret is the instance's own (it ties this request
    /// id to it, and borrows it if asked); with none, the check-out is another instance.
    pub presented_hash: Option<&'a str>,
    /// Id of the denial record if none is free.
    pub denial_id: &'a str,
    /// A borrowing: the seat is taken offline until then.
    pub borrow: Option<Borrow>,
    /// The license's wait line; `None` when it has none (`queue_max_seconds` 0).
    pub queue: Option<Line>,
}

/// A check-out of a license that has a wait line: it never takes a seat that someone waiting
/// before it is due, and it may wait in line itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Line {
    /// Seconds this check-out may wait in line when no seat is free for it (already capped by
    /// the license's `queue_max_seconds`); 0: it does not wait, it is denied.
    pub wait: i64,
    /// Id of its place in line, if a new one is taken.
    pub place_id: String,
}

/// A check-out waiting in line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Waiting {
    /// Its place.
    pub place: QueueRow,
    /// 1 for the head of the line.
    pub position: i64,
    /// Places in line, this one included.
    pub waiting: i64,
}

/// A check-out that borrows its seat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Borrow {
    /// The lease's expiry (server clock); no heartbeat moves it.
    pub until: i64,
    /// The license's cap on leases borrowed at once.
    pub max_leases: i64,
}

impl From<&CheckOut<'_>> for OwnedCheckOut {
    fn from(c: &CheckOut<'_>) -> Self {
        OwnedCheckOut {
            license_id: c.license_id.to_owned(),
            client_id: c.client_id.to_owned(),
            user: c.user.to_owned(),
            request_id: c.request_id.to_owned(),
            seats: c.seats,
            now: c.now,
            lease_id: c.lease_id.to_owned(),
            secret_hash: c.secret_hash.map(str::to_owned),
            presented_hash: c.presented_hash.map(str::to_owned),
            denial_id: c.denial_id.to_owned(),
            borrow: c.borrow,
            queue: c.queue.clone(),
            user_id: None,
        }
    }
}

/// What a check-out did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CheckOutOutcome {
    /// A seat was granted: the new lease.
    Granted(LeaseRow),
    /// This request id's live lease (its secret replaced unless the check-out presented it),
    /// or the live lease whose secret the check-out presented.
    Existing(LeaseRow),
    /// The lease of this request id has ended (checked in, force-released or lapsed).
    Ended(LeaseRow),
    /// This request id was used by the same client for another user.
    RequestIdConflict,
    /// This request id's lease has a secret and the check-out did not declare
    /// `lease_secret_supported`: refused, nothing changed (a lease is never downgraded).
    SecretRequired,
    /// No seat free; the denial is recorded.
    Denied,
    /// No seat free for it yet: it waits in line (the denial is recorded when it takes its
    /// place, not at each later ask).
    Queued(Waiting),
    /// Its wait in line is over and no seat came free; its place is given up (its denial was
    /// recorded when it took the place).
    WaitOver,
    /// A borrowing refused: the license's cap of borrowed leases is reached (a seat may still be
    /// free for a check-out that does not borrow). Not a denial: nothing is recorded.
    BorrowLimit,
}

/// What a heartbeat or a check-in did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LeaseUpdate {
    /// Done; the lease as it is now.
    Done(LeaseRow),
    /// No such lease on this license.
    NotFound,
    /// The lease is no longer live (checked in, force-released, lapsed).
    Ended(LeaseRow),
    /// The epoch presented is not the lease's (a fenced, older holder).
    Fenced(LeaseRow),
    /// The secret presented is not the lease's, or none was: not its holder. Nothing changed.
    WrongSecret,
}

/// A check-out with the ids the server chose for a new lease or denial (see
/// [`super::CheckOut`]).
#[derive(Debug, Clone)]
pub(crate) struct OwnedCheckOut {
    pub license_id: String,
    pub client_id: String,
    pub user: String,
    pub request_id: String,
    pub seats: i64,
    pub now: i64,
    pub lease_id: String,
    pub secret_hash: Option<String>,
    pub presented_hash: Option<String>,
    pub denial_id: String,
    pub borrow: Option<Borrow>,
    pub queue: Option<Line>,
    /// The directory user `user` names in the license's organization, if one matches: stored
    /// in the new lease's or denial's `user_id` (see `directory_links`).
    pub user_id: Option<String>,
}

/// A write to one lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LeaseWrite {
    /// Extend a live lease (may be committed without waiting for the disk).
    Heartbeat,
    /// Release a live lease (durable).
    CheckIn,
}

/// A force-release: releases the live, not borrowed lease `$2` of license `$3` at `$1` and moves
/// its epoch on (fencing).
pub(super) const FORCE_RELEASE_LEASE: &str = concat!(
    "UPDATE leases SET released_at = $1, release_reason = 'forced', epoch = epoch + 1 WHERE ",
    by_lease_id!(
        "$2",
        "license_id = $3 AND released_at IS NULL AND borrowed = 0"
    )
);

/// A heartbeat: extends the live lease `$2` of license `$3` presenting epoch `$4` and the
/// SHA-256 hex `$5` of its secret ('' for none) to `$1` + the license's timeout (a borrowed
/// lease keeps its expiry). The hashes are compared by the database (digests of a 256-bit
/// random secret: their equality leaks nothing usable); [`update_lease`] checks the row it
/// returns again in constant time.
pub(super) const HEARTBEAT_LEASE: &str = concat!(
    "UPDATE leases SET heartbeat_at = $1, expires_at = CASE WHEN borrowed = 1 \
     THEN expires_at ELSE $1 + (SELECT lease_timeout FROM licenses WHERE id = $3) END WHERE ",
    by_lease_id!(
        "$2",
        "license_id = $3 AND epoch = $4 AND released_at IS NULL AND expires_at > $1 \
         AND (secret_hash IS NULL OR secret_hash = $5)"
    ),
    " RETURNING *"
);

/// A check-in: releases the live lease `$2` of license `$3` presenting epoch `$4` and the
/// SHA-256 hex `$5` of its secret ('' for none) at `$1`.
pub(super) const CHECK_IN_LEASE: &str = concat!(
    "UPDATE leases SET released_at = $1, release_reason = 'checked_in' WHERE ",
    by_lease_id!(
        "$2",
        "license_id = $3 AND epoch = $4 AND released_at IS NULL AND expires_at > $1 \
         AND (secret_hash IS NULL OR secret_hash = $5)"
    ),
    " RETURNING *"
);

/// The lease `$1` if it belongs to license `$2`.
pub(super) const LEASE_OF_LICENSE: &str = concat!(
    "SELECT * FROM leases WHERE ",
    by_lease_id!("$1", "license_id = $2")
);

/// Borrows the live lease `$3` at `$1`: it now runs until `$2`.
pub(super) const BORROW_LEASE: &str = concat!(
    "UPDATE leases SET borrowed = 1, heartbeat_at = $1, expires_at = $2 WHERE ",
    by_lease_id!("$3", "released_at IS NULL AND expires_at > $1"),
    " RETURNING *"
);

/// Heartbeat or check-in inside the batch transaction. One conditional `UPDATE` on a live lease
/// presenting its epoch and secret (`secret`: its SHA-256 hex), so it and the reaper (or a
/// force-release) cannot both win: at `now == expires_at` the lease is over and the write
/// fails. A secret that is not the lease's (or none) changes nothing and is told apart first,
/// so a caller that is not the holder learns nothing of the lease's state.
pub(super) async fn update_lease(
    conn: &mut AnyConnection,
    kind: LeaseWrite,
    license_id: &str,
    lease_id: &str,
    epoch: i64,
    secret: Option<&str>,
    now: i64,
) -> DbResult<LeaseUpdate> {
    let sql = match kind {
        LeaseWrite::Heartbeat => HEARTBEAT_LEASE,
        LeaseWrite::CheckIn => CHECK_IN_LEASE,
    };
    let updated: Option<LeaseRow> = sqlx::query_as(sql)
        .bind(now)
        .bind(lease_id)
        .bind(license_id)
        .bind(epoch)
        .bind(secret.unwrap_or(""))
        .fetch_optional(&mut *conn)
        .await?;
    if let Some(lease) = updated {
        // Always true (the statement compared the hashes): checked again in constant time.
        if lease.secret_matches(secret) {
            return Ok(LeaseUpdate::Done(lease));
        }
        return Err(sqlx::Error::Protocol(
            "a lease write matched a secret that does not match".into(),
        ));
    }
    let lease: Option<LeaseRow> = sqlx::query_as(LEASE_OF_LICENSE)
        .bind(lease_id)
        .bind(license_id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(match lease {
        None => LeaseUpdate::NotFound,
        Some(lease) if !lease.secret_matches(secret) => LeaseUpdate::WrongSecret,
        Some(lease) if lease.epoch != epoch => LeaseUpdate::Fenced(lease),
        Some(lease) => LeaseUpdate::Ended(lease),
    })
}

/// Adds `by` to the count of held leases of `license_id`; the caller holds its write lock.
pub(super) async fn change_held(
    conn: &mut AnyConnection,
    license_id: &str,
    by: i64,
) -> DbResult<()> {
    sqlx::query("UPDATE licenses SET leases_held = leases_held + $1 WHERE id = $2")
        .bind(by)
        .bind(license_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Sets the count of held leases of `license_id` to its leases not released, counted now; the
/// caller holds the license's write lock (so on PostgreSQL the count, a statement after the
/// lock, sees every committed change of the license's leases).
pub(super) async fn recount_held(conn: &mut AnyConnection, license_id: &str) -> DbResult<()> {
    sqlx::query(
        "UPDATE licenses SET leases_held = (SELECT COUNT(*) FROM leases \
         WHERE license_id = $1 AND released_at IS NULL) WHERE id = $1",
    )
    .bind(license_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// `released` leases of `license_id` were released (force-release, the reaper) in a
/// transaction holding the license's write lock.
pub(super) async fn less_held(
    conn: &mut AnyConnection,
    license_id: &str,
    released: u64,
) -> DbResult<()> {
    if released == 0 {
        return Ok(());
    }
    change_held(
        conn,
        license_id,
        -i64::try_from(released).unwrap_or(i64::MAX),
    )
    .await
}

/// The places in a license's line held at `now`, head first (the one rule: `now <
/// expires_at`).
pub(super) async fn places_held(
    conn: &mut AnyConnection,
    license_id: &str,
    now: i64,
) -> DbResult<Vec<QueueRow>> {
    sqlx::query_as(
        "SELECT * FROM seat_queue WHERE license_id = $1 AND expires_at > $2 ORDER BY seq",
    )
    .bind(license_id)
    .bind(now)
    .fetch_all(&mut *conn)
    .await
}
