//! One seat write inside the batch transaction: a check-out (retry, own lease, grant, denial,
//! wait line, borrowing).

use sqlx::AnyConnection;

use super::super::leases::{
    BORROW_LEASE, Borrow, CheckOutOutcome, LeaseRow, Line, OwnedCheckOut, QUEUE_POLL_WINDOW,
    QueueRow, Waiting, places_held,
};
use super::super::{DbResult, Engine};
use super::held::Seen;
#[cfg(test)]
use super::test_support::PANIC_FOR_TESTS;

/// Check-out inside the batch transaction: idempotent retry by request id (any request id
/// answered with a lease finds it: its own, or one tied to it in `lease_requests`); a check-out
/// presenting the secret of a live lease of the same client and user gets that lease
/// (borrowing it, if asked) and ties its request id to it; then grants a seat if fewer than
/// `seats` leases are live, else records the denial. The same client and user without the
/// secret is another instance of the app: it takes a seat of its own. A borrowing also needs
/// fewer than the license's cap of leases borrowed at once.
pub(super) async fn check_out(
    conn: &mut AnyConnection,
    engine: Engine,
    seen: &mut Seen,
    c: &OwnedCheckOut,
) -> DbResult<CheckOutOutcome> {
    #[cfg(test)]
    if c.client_id == PANIC_FOR_TESTS {
        panic!("a seat write panicked (test of the batch's isolation)");
    }
    // Serializes check-outs of this license across replicas until the commit.
    seen.hold(conn, engine, &c.license_id).await?;
    // This request id's lease (a retry) and, when the check-out presents a secret, the
    // client's live leases for this user, in one statement. Leases lapsed but not reaped yet
    // are not counted anywhere below, so the reaper (on the server's clock) releases them
    // without a check-out having to.
    let mine: Vec<MineRow> = sqlx::query_as(
        "SELECT leases.*, CASE WHEN request_id = $3 OR id IN (SELECT lease_id FROM \
         lease_requests WHERE license_id = $1 AND client_id = $2 AND request_id = $3) \
         THEN 1 ELSE 0 END AS by_request FROM leases WHERE license_id = $1 AND client_id = $2 \
         AND (request_id = $3 OR id IN (SELECT lease_id FROM lease_requests \
         WHERE license_id = $1 AND client_id = $2 AND request_id = $3) \
         OR ($6 = 1 AND user_name = $4 AND released_at IS NULL AND expires_at > $5)) \
         ORDER BY created_at, id",
    )
    .bind(&c.license_id)
    .bind(&c.client_id)
    .bind(&c.request_id)
    .bind(&c.user)
    .bind(c.now)
    .bind(i64::from(c.presented_hash.is_some()))
    .fetch_all(&mut *conn)
    .await?;
    let presented = c.presented_hash.as_deref();
    if let Some(MineRow { lease, .. }) = mine.iter().find(|m| m.by_request == 1) {
        if lease.user_name != c.user {
            return Ok(CheckOutOutcome::RequestIdConflict);
        }
        if !lease.is_live_at(c.now) {
            return Ok(CheckOutOutcome::Ended(lease.clone()));
        }
        if lease.secret_hash.is_some() && lease.secret_matches(presented) {
            return Ok(CheckOutOutcome::Existing(lease.clone()));
        }
        let Some(secret_hash) = &c.secret_hash else {
            // A check-out that keeps no secret: a lease without one is answered as it is (an
            // older SDK's retry); a lease with one is never answered nor downgraded by it.
            if lease.secret_hash.is_some() {
                return Ok(CheckOutOutcome::SecretRequired);
            }
            return Ok(CheckOutOutcome::Existing(lease.clone()));
        };
        // The instance that sent this request id lost the answer: a fresh secret replaces the
        // one it never received, so at most one instance holds the lease.
        let renewed: Option<LeaseRow> = sqlx::query_as(RENEW_SECRET)
            .bind(secret_hash)
            .bind(&lease.id)
            .fetch_optional(&mut *conn)
            .await?;
        return Ok(CheckOutOutcome::Existing(
            renewed.unwrap_or_else(|| lease.clone()),
        ));
    }
    let held = mine
        .into_iter()
        .map(|m| m.lease)
        .find(|lease| lease.secret_hash.is_some() && lease.secret_matches(presented));
    if let Some(lease) = held {
        let outcome = match c.borrow {
            Some(borrow) if !lease.is_borrowed() => borrow_held(conn, c, borrow, &lease).await?,
            _ => Some(CheckOutOutcome::Existing(lease)),
        };
        if let Some(outcome) = outcome {
            if let CheckOutOutcome::Existing(lease) = &outcome {
                tie_request(conn, seen, c, &lease.id).await?;
            }
            return Ok(outcome);
        }
        // It ended meanwhile (a force-release on another connection): a new lease.
    }
    // With a wait line, a free seat goes to whoever waits first: this check-out takes one only
    // if more seats are free than places ahead of it.
    let (ahead, line) = match &c.queue {
        None => (0, None),
        Some(line) => {
            let waiting = places_held(conn, &c.license_id, c.now).await?;
            let mine = waiting
                .iter()
                .position(|place| place.client_id == c.client_id && place.user_name == c.user);
            let ahead = i64::try_from(mine.unwrap_or(waiting.len())).unwrap_or(i64::MAX);
            (ahead, Some((line, waiting, mine)))
        }
    };
    // Every live lease is held, so fewer held leases than seats proves the seats free without
    // counting; only when they are all held (some may have lapsed) are the live ones counted.
    let seat_for_me = c.seats.saturating_sub(seen.held(&c.license_id)) > ahead
        || c.seats.saturating_sub(seen.live(conn, c).await?) > ahead;
    if !seat_for_me {
        if let Some((line, waiting, mine)) = line
            && line.wait > 0
        {
            return wait_in_line(conn, c, line, &waiting, mine).await;
        }
        record_denial(conn, c).await?;
        return Ok(CheckOutOutcome::Denied);
    }
    if line.is_some() {
        // Its turn: its place in line (held or lapsed) is given up, with the grant, or with a
        // refused borrowing (which must not keep the line waiting behind it).
        sqlx::query(
            "DELETE FROM seat_queue WHERE license_id = $1 AND client_id = $2 AND user_name = $3",
        )
        .bind(&c.license_id)
        .bind(&c.client_id)
        .bind(&c.user)
        .execute(&mut *conn)
        .await?;
    }
    if let Some(borrow) = c.borrow
        && borrowed_leases(conn, &c.license_id, c.now).await? >= borrow.max_leases
    {
        return Ok(CheckOutOutcome::BorrowLimit);
    }
    // The timeout read in the same statement as the insert: one round trip. No NULL
    // parameters where PostgreSQL cannot type them: a lease that does not borrow binds 0
    // (`secret_hash` goes straight into its TEXT column, a typed NULL for a lease without one).
    let lease: LeaseRow = sqlx::query_as(
        "INSERT INTO leases (id, license_id, client_id, user_name, request_id, epoch, \
         created_at, heartbeat_at, expires_at, borrowed, secret_hash, user_id) \
         SELECT $1, id, $2, $3, $4, 1, $5, $5, \
         CASE WHEN $7 = 1 THEN $8 ELSE $5 + lease_timeout END, $7, $9, $10 FROM licenses \
         WHERE id = $6 RETURNING *",
    )
    .bind(&c.lease_id)
    .bind(&c.client_id)
    .bind(&c.user)
    .bind(&c.request_id)
    .bind(c.now)
    .bind(&c.license_id)
    .bind(i64::from(c.borrow.is_some()))
    .bind(c.borrow.map_or(0, |b| b.until))
    .bind(&c.secret_hash)
    .bind(&c.user_id)
    .fetch_one(&mut *conn)
    .await?;
    seen.granted(c, false);
    Ok(CheckOutOutcome::Granted(lease))
}

/// A lease found by [`check_out`]'s lookup, and whether it was found by the check-out's request
/// id (1) rather than by the secret it presented (0).
#[derive(sqlx::FromRow)]
struct MineRow {
    #[sqlx(flatten)]
    lease: LeaseRow,
    by_request: i64,
}

/// Replaces the secret of the lease `$2` with the one whose SHA-256 hex is `$1`.
const RENEW_SECRET: &str = "UPDATE leases SET secret_hash = $1 WHERE id = $2 RETURNING *";

/// Ties the request id of the check-out `c` to the lease `lease_id` it was answered with, so a
/// retry of it finds that lease (and 410 once it has ended), never a new seat. The license's
/// row is written with the batch, as for a lease taken ([`grant_in_one_statement`] relies on
/// every change of what a request id finds showing as a new row version).
async fn tie_request(
    conn: &mut AnyConnection,
    seen: &mut Seen,
    c: &OwnedCheckOut,
    lease_id: &str,
) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO lease_requests (license_id, client_id, request_id, lease_id, created_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (license_id, client_id, request_id) DO NOTHING",
    )
    .bind(&c.license_id)
    .bind(&c.client_id)
    .bind(&c.request_id)
    .bind(lease_id)
    .bind(c.now)
    .execute(&mut *conn)
    .await?;
    seen.held_changed(&c.license_id, 0);
    Ok(())
}

/// Records the denial of the check-out `c`, once per request: a retry of a denied request
/// (the same denial id, see `secrets::denial_id`) adds nothing.
async fn record_denial(conn: &mut AnyConnection, c: &OwnedCheckOut) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO denials (id, license_id, client_id, user_name, at, user_id) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
    )
    .bind(&c.denial_id)
    .bind(&c.license_id)
    .bind(&c.client_id)
    .bind(&c.user)
    .bind(c.now)
    .bind(&c.user_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// No seat is free for the check-out `c`, which may wait: it keeps its place in line (`mine`,
/// an index in `waiting`, the places held at `c.now` head first), or takes one at the end
/// (recording its denial once, then), or, when the wait it asked for is over, gives its place
/// up.
async fn wait_in_line(
    conn: &mut AnyConnection,
    c: &OwnedCheckOut,
    line: &Line,
    waiting: &[QueueRow],
    mine: Option<usize>,
) -> DbResult<CheckOutOutcome> {
    let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    if let Some(index) = mine
        && let Some(place) = waiting.get(index)
    {
        // The place may be gone meanwhile: its client left, an administrator removed it, or
        // another replica's reaper (on a clock a little ahead) gave it up. Such a check-out
        // then takes a new place below, as it would a moment later.
        let kept: Option<QueueRow> = sqlx::query_as(
            "UPDATE seat_queue SET polled_at = $1, expires_at = CASE WHEN wait_until < $2 \
             THEN wait_until ELSE $2 END WHERE id = $3 RETURNING *",
        )
        .bind(c.now)
        .bind(c.now.saturating_add(QUEUE_POLL_WINDOW))
        .bind(&place.id)
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(place) = kept {
            return Ok(CheckOutOutcome::Queued(Waiting {
                place,
                position: count(index).saturating_add(1),
                waiting: count(waiting.len()),
            }));
        }
    }
    // Not in line at `c.now`: its place (if any) lapsed. If the client kept asking until the
    // wait it asked for ran out, the wait is over; otherwise (it stopped asking for longer
    // than the poll window) it starts again at the end of the line.
    let lapsed: Option<QueueRow> = sqlx::query_as(
        "DELETE FROM seat_queue WHERE license_id = $1 AND client_id = $2 AND user_name = $3 \
         RETURNING *",
    )
    .bind(&c.license_id)
    .bind(&c.client_id)
    .bind(&c.user)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(place) = lapsed
        && place.wait_until <= c.now
        && c.now < place.polled_at.saturating_add(QUEUE_POLL_WINDOW)
    {
        return Ok(CheckOutOutcome::WaitOver);
    }
    record_denial(conn, c).await?;
    let wait_until = c.now.saturating_add(line.wait);
    let place: QueueRow = sqlx::query_as(
        "INSERT INTO seat_queue (id, license_id, client_id, user_name, seq, queued_at, \
         polled_at, wait_until, expires_at) \
         SELECT $1, $2, $3, $4, COALESCE(MAX(seq), 0) + 1, $5, $5, $6, $7 \
         FROM seat_queue WHERE license_id = $2 RETURNING *",
    )
    .bind(&line.place_id)
    .bind(&c.license_id)
    .bind(&c.client_id)
    .bind(&c.user)
    .bind(c.now)
    .bind(wait_until)
    .bind(wait_until.min(c.now.saturating_add(QUEUE_POLL_WINDOW)))
    .fetch_one(&mut *conn)
    .await?;
    // Behind every other place held (its own, if it vanished above, is not one of them).
    let others = waiting.len().saturating_sub(usize::from(mine.is_some()));
    let waiting = count(others).saturating_add(1);
    Ok(CheckOutOutcome::Queued(Waiting {
        place,
        position: waiting,
        waiting,
    }))
}

/// The leases of a license borrowed and live at `now`.
async fn borrowed_leases(conn: &mut AnyConnection, license_id: &str, now: i64) -> DbResult<i64> {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM leases WHERE license_id = $1 AND released_at IS NULL \
         AND expires_at > $2 AND borrowed = 1",
    )
    .bind(license_id)
    .bind(now)
    .fetch_one(&mut *conn)
    .await
}

/// Borrows the live lease the same client and user hold: it keeps its seat and id, and now
/// runs until `borrow.until` (or later, if it already did). `None` if it ended meanwhile.
async fn borrow_held(
    conn: &mut AnyConnection,
    c: &OwnedCheckOut,
    borrow: Borrow,
    lease: &LeaseRow,
) -> DbResult<Option<CheckOutOutcome>> {
    if borrowed_leases(conn, &c.license_id, c.now).await? >= borrow.max_leases {
        return Ok(Some(CheckOutOutcome::BorrowLimit));
    }
    let borrowed: Option<LeaseRow> = sqlx::query_as(BORROW_LEASE)
        .bind(c.now)
        .bind(lease.expires_at.max(borrow.until))
        .bind(&lease.id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(borrowed.map(CheckOutOutcome::Existing))
}
