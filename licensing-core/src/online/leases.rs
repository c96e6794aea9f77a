//! Floating-license seats from the client side: check-out, heartbeat and check-in calls
//! ([`Client::check_out_lease`] ...), and [`LeaseManager`], which holds one seat: it heartbeats
//! on a background thread, checks in when dropped, and reports the loss of the seat through a
//! callback.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{JoinHandle, ThreadId};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Client, OnlineError, answer, new_nonce};
use crate::lease::Lease;
use crate::protocol::{
    CheckOutRequest, ErrorCode, LeaseAnswer, LeaseRequest, LeaveQueueRequest, LeftQueue,
    QueuedAnswer,
};
use crate::status::Status;

/// The server's error code for a check-out denied because every seat is taken
/// ([`ErrorCode::NoSeats`]).
pub const NO_SEATS: &str = "no_seats";

/// A seat granted or extended by the server, its token verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseGrant {
    /// The lease id.
    pub lease_id: String,
    /// The signed `lease+jwt`, verified against the app's trust store for this product.
    pub lease_token: String,
    /// The lease's fencing epoch (heartbeats and check-in present it).
    pub epoch: u64,
    /// When the lease lapses without a heartbeat (server clock, seconds since the epoch).
    pub expires_at: i64,
    /// How often the server asks to be told the app is in use, in seconds.
    pub heartbeat_interval: u64,
    /// Whether the server granted a new seat (`false`: the same lease again, for a retry).
    pub created: bool,
    /// The verified token.
    pub lease: Lease,
    /// The lease's secret, proof that this instance holds it: the server answers it only to
    /// the check-out, and requires it on every heartbeat and check-in. `None` from a server
    /// that has none for this lease (older servers, leases taken before they had secrets).
    pub lease_secret: Option<LeaseSecret>,
}

/// A lease's secret (see [`LeaseGrant::lease_secret`]). Its `Debug` shows no part of it, so
/// it stays out of logs; [`LeaseSecret::expose`] gives the text to send.
#[derive(Clone, PartialEq, Eq)]
pub struct LeaseSecret(String);

impl LeaseSecret {
    /// A secret as the server answered it (or as a store kept it).
    pub fn new(secret: impl Into<String>) -> Self {
        LeaseSecret(secret.into())
    }

    /// The secret's text, to present to the server or keep in a private file.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for LeaseSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LeaseSecret(..)")
    }
}

impl Client {
    /// Checks out a seat of the floating license `license_key`: `POST /v1/client/leases`.
    /// Retrying with the same `request_id` answers the same lease, never a second seat. When
    /// every seat is taken: [`OnlineError::Server`] with code [`NO_SEATS`] and the server's
    /// message (see [`OnlineError::is_no_seats`]).
    pub fn check_out_lease(
        &self,
        license_key: &str,
        client_id: &str,
        user: &str,
        request_id: &str,
    ) -> Result<LeaseGrant, OnlineError> {
        match self.check_out_with(license_key, client_id, user, request_id, None, None, None)? {
            SeatAnswer::Granted(grant) => Ok(grant),
            SeatAnswer::Queued(_) => Err(OnlineError::Mismatch(
                "the server answered a place in line to a check-out that does not wait".into(),
            )),
        }
    }

    /// One check-out that may wait in line: `POST /v1/client/leases` with `queue_seconds`.
    /// When no seat is free and the license has a wait line, the answer is
    /// [`SeatAnswer::Queued`]: ask again with the same `request_id` within
    /// [`QueuePlace::retry_after`] to keep the place (a place not asked for within 30 s is
    /// given up), until the answer is the lease. A license with no line, or a wait that is
    /// over, is denied ([`OnlineError::is_no_seats`]). [`Client::wait_for_lease`] does the
    /// asking.
    pub fn check_out_or_wait(
        &self,
        license_key: &str,
        client_id: &str,
        user: &str,
        request_id: &str,
        wait: Duration,
    ) -> Result<SeatAnswer, OnlineError> {
        // The server takes at most a day (and caps it by the license's longest wait).
        let seconds = whole_seconds(wait, "a wait in line")?.min(MAX_QUEUE_SECONDS);
        self.check_out_with(
            license_key,
            client_id,
            user,
            request_id,
            None,
            Some(seconds),
            None,
        )
    }

    /// Checks out a seat, waiting in line for up to `wait` when none is free: asks again every
    /// few seconds (the server's `retry_after`) with the same `request_id`, and calls
    /// `on_place` with each place in line (a progress display; it returns `false` to stop
    /// waiting). `Ok(Some(grant))` once a seat is free for this client; `Ok(None)` when
    /// `on_place` stopped the wait (the place is given up first, best effort); denied
    /// ([`OnlineError::is_no_seats`]) once the wait is over or when the license has no line.
    /// Once in line, the wait goes on while the server cannot be reached (`on_place` is shown
    /// the last place again at each try, and may stop; the place may lapse meanwhile: the next
    /// answer then starts again at the end of the line, for what is left of the wait); an
    /// unreachable server before any answer, and other errors, end it. A wait longer than a
    /// day is a day.
    pub fn wait_for_lease(
        &self,
        license_key: &str,
        client_id: &str,
        user: &str,
        request_id: &str,
        wait: Duration,
        on_place: &mut dyn FnMut(&QueuePlace) -> bool,
    ) -> Result<Option<LeaseGrant>, OnlineError> {
        let waited = self.wait_in_line(license_key, client_id, user, request_id, wait, on_place)?;
        Ok(waited.map(|(grant, _)| grant))
    }

    /// [`Client::wait_for_lease`], with the instant the granting request was sent (the
    /// lease's local deadline counts from it).
    fn wait_in_line(
        &self,
        license_key: &str,
        client_id: &str,
        user: &str,
        request_id: &str,
        wait: Duration,
        on_place: &mut dyn FnMut(&QueuePlace) -> bool,
    ) -> Result<Option<(LeaseGrant, Instant)>, OnlineError> {
        let started = Instant::now();
        // The server ends the wait (it answers `no_seats`); this bound only stops a client
        // whose server keeps answering places past it.
        let give_up = wait.saturating_add(QUEUE_SLACK);
        // The place last answered: while the server cannot be reached, the caller is shown it
        // again (and may stop); before any answer, an unreachable server ends the call.
        let mut last: Option<QueuePlace> = None;
        loop {
            // What is left of the wait, so a place taken again (after an outage) does not
            // start a whole new wait on the server.
            let waited = Duration::from_secs(started.elapsed().as_secs());
            let left = wait.saturating_sub(waited).max(Duration::from_secs(1));
            let sent = Instant::now();
            let pause = match self.check_out_or_wait(license_key, client_id, user, request_id, left)
            {
                Ok(SeatAnswer::Granted(grant)) => return Ok(Some((grant, sent))),
                Ok(SeatAnswer::Queued(place)) => {
                    if !on_place(&place) {
                        let _ = self.leave_queue(license_key, &place.queue_id);
                        return Ok(None);
                    }
                    if started.elapsed() >= give_up {
                        let _ = self.leave_queue(license_key, &place.queue_id);
                        return Err(OnlineError::Mismatch(format!(
                            "the server still answers a place in line after the {} s wait",
                            wait.as_secs()
                        )));
                    }
                    let pause = place.retry_after;
                    last = Some(place);
                    pause
                }
                Err(error) if error.is_unreachable() && started.elapsed() < wait => {
                    let Some(place) = &last else {
                        return Err(error);
                    };
                    if !on_place(place) {
                        let _ = self.leave_queue(license_key, &place.queue_id);
                        return Ok(None);
                    }
                    place.retry_after
                }
                Err(error) => return Err(error),
            };
            std::thread::sleep(pause);
        }
    }

    /// Gives up the place `queue_id` in the license's wait line: `POST
    /// /v1/client/queue/{id}/leave`. Whether the place was still held.
    pub fn leave_queue(&self, license_key: &str, queue_id: &str) -> Result<bool, OnlineError> {
        let (_, body) = self.http.post(
            &self.config,
            &format!("/v1/client/queue/{queue_id}/leave"),
            &LeaveQueueRequest {
                license_key: license_key.to_owned(),
            },
            self.config.deadline,
        )?;
        let answer: LeftQueue = answer::parse(body, "leaving the line")?;
        Ok(answer.left)
    }

    /// Borrows a seat of the floating license `license_key` for `duration` (whole seconds, at
    /// least 1): `POST /v1/client/leases` with `borrow_seconds`. The lease needs no heartbeat
    /// and its token (`borrowed`: true) lets the app run offline until its `exp`, which the
    /// server may set earlier than asked (never past the license's own expiry). This is a
    /// check-out of its own (another instance): to borrow the seat this instance holds, use
    /// [`Client::borrow_lease_holding`] with that lease's secret. Refused with
    /// code `borrowing_not_allowed`, `borrow_limit` (the license's cap of borrowed seats) or
    /// [`NO_SEATS`]. Return it early with [`Client::check_in_lease`].
    pub fn borrow_lease(
        &self,
        license_key: &str,
        client_id: &str,
        user: &str,
        request_id: &str,
        duration: Duration,
    ) -> Result<LeaseGrant, OnlineError> {
        self.borrow_lease_holding(license_key, client_id, user, request_id, duration, None)
    }

    /// [`Client::borrow_lease`] presenting the secret of a live lease this instance holds
    /// (the same client and user): that lease is the one borrowed (or answered, if borrowed
    /// already), not a second seat. Without it, a check-out is another instance of the app.
    pub fn borrow_lease_holding(
        &self,
        license_key: &str,
        client_id: &str,
        user: &str,
        request_id: &str,
        duration: Duration,
        held: Option<&LeaseSecret>,
    ) -> Result<LeaseGrant, OnlineError> {
        let seconds = whole_seconds(duration, "a borrowing")?;
        let grant = match self.check_out_with(
            license_key,
            client_id,
            user,
            request_id,
            Some(seconds),
            None,
            held,
        )? {
            SeatAnswer::Granted(grant) => grant,
            SeatAnswer::Queued(_) => {
                return Err(OnlineError::Mismatch(
                    "the server answered a place in line to a borrowing that does not wait".into(),
                ));
            }
        };
        if !grant.lease.claims().borrowed {
            return Err(OnlineError::Mismatch(
                "asked to borrow a seat, the server answered a lease that is not borrowed".into(),
            ));
        }
        Ok(grant)
    }

    #[allow(clippy::too_many_arguments)] // The check-out's fields, private; one caller each.
    fn check_out_with(
        &self,
        license_key: &str,
        client_id: &str,
        user: &str,
        request_id: &str,
        borrow_seconds: Option<u64>,
        queue_seconds: Option<u64>,
        held: Option<&LeaseSecret>,
    ) -> Result<SeatAnswer, OnlineError> {
        let (status, body) = self.http.post(
            &self.config,
            "/v1/client/leases",
            &CheckOutRequest {
                license_key: license_key.to_owned(),
                client_id: client_id.to_owned(),
                user: user.to_owned(),
                request_id: request_id.to_owned(),
                borrow_seconds: borrow_seconds.map(wire_i64),
                queue_seconds: queue_seconds.map(wire_i64),
                lease_secret: held.map(|secret| secret.expose().to_owned()),
                // This SDK keeps the lease's secret and presents it on heartbeat and check-in:
                // the server gives the lease one and requires it (without it, the lease has
                // none, as for SDKs older than lease secrets).
                lease_secret_supported: true,
            },
            self.config.deadline,
        )?;
        if status == 202 {
            return Ok(SeatAnswer::Queued(queue_place(body)?));
        }
        let mut grant = self.lease_grant(body, status == 201)?;
        // A server answering the lease this check-out presented may leave its secret out.
        if grant.lease_secret.is_none() {
            grant.lease_secret = held.cloned();
        }
        let claims = grant.lease.claims();
        if claims.client_id != client_id || claims.user != user {
            return Err(OnlineError::Mismatch(format!(
                "lease for client `{}` and user `{}`, not this one",
                claims.client_id, claims.user
            )));
        }
        Ok(SeatAnswer::Granted(grant))
    }

    /// Extends the lease `held`: `POST /v1/client/leases/{id}/heartbeat`. Refused with HTTP
    /// 409/410 and code `lease_released` once the seat is gone (force-released, lapsed).
    pub fn heartbeat_lease(
        &self,
        license_key: &str,
        held: &LeaseGrant,
    ) -> Result<LeaseGrant, OnlineError> {
        self.heartbeat_lease_within(license_key, held, self.config.deadline)
    }

    fn heartbeat_lease_within(
        &self,
        license_key: &str,
        held: &LeaseGrant,
        limit: Duration,
    ) -> Result<LeaseGrant, OnlineError> {
        let (_, body) = self.http.post(
            &self.config,
            &format!("/v1/client/leases/{}/heartbeat", held.lease_id),
            &lease_request(license_key, held.epoch, held.lease_secret.as_ref()),
            limit,
        )?;
        let mut grant = self.lease_grant(body, false)?;
        // A heartbeat's answer carries no secret: the lease keeps the one it has.
        grant.lease_secret = held.lease_secret.clone();
        let (old, new) = (held.lease.claims(), grant.lease.claims());
        if new.sub != old.sub
            || new.license_id != old.license_id
            || new.client_id != old.client_id
            || new.user != old.user
        {
            return Err(OnlineError::Mismatch(
                "the heartbeat answered another lease".into(),
            ));
        }
        Ok(grant)
    }

    /// Checks the lease in: `POST /v1/client/leases/{id}/release` with its epoch and secret;
    /// the seat is free at once.
    pub fn check_in_lease(&self, license_key: &str, held: &LeaseGrant) -> Result<(), OnlineError> {
        self.check_in(license_key, held.lease.claims(), held.lease_secret.as_ref())
    }

    /// Checks in the lease these verified claims name (its id and epoch), presenting its
    /// secret.
    pub(crate) fn check_in(
        &self,
        license_key: &str,
        lease: &crate::lease::LeaseClaims,
        secret: Option<&LeaseSecret>,
    ) -> Result<(), OnlineError> {
        self.http.post(
            &self.config,
            &format!("/v1/client/leases/{}/release", lease.sub),
            &lease_request(license_key, lease.epoch, secret),
            self.config.deadline,
        )?;
        Ok(())
    }

    /// Reads a lease answer and verifies its token: `lease+jwt`, trusted key, this product,
    /// and the same lease id, epoch and expiry as the answer's plain fields.
    fn lease_grant(&self, body: Value, created: bool) -> Result<LeaseGrant, OnlineError> {
        let answer: LeaseAnswer = answer::parse(body, "lease")?;
        let LeaseAnswer {
            lease_id,
            lease_token,
            epoch,
            heartbeat_interval,
            ..
        } = answer;
        let lease_secret = match answer.lease_secret {
            None => None,
            Some(secret) if !secret.is_empty() => Some(LeaseSecret::new(secret)),
            Some(_) => {
                return Err(OnlineError::BadResponse(
                    "`lease_secret` is not a non-empty string".into(),
                ));
            }
        };
        let lease = self
            .verifier
            .verify_lease(&lease_token)
            .map_err(OnlineError::Token)?;
        let claims = lease.claims();
        if claims.sub != lease_id || claims.epoch != epoch {
            return Err(OnlineError::Mismatch(
                "the lease token names another lease or epoch than the answer".into(),
            ));
        }
        Ok(LeaseGrant {
            lease_id,
            epoch,
            expires_at: claims.exp,
            heartbeat_interval,
            created,
            lease_token,
            lease,
            lease_secret,
        })
    }
}

/// `duration` in whole seconds, at least one (the server counts in seconds); `what` names it in
/// the error.
fn whole_seconds(duration: Duration, what: &str) -> Result<u64, OnlineError> {
    match duration.as_secs() {
        0 => Err(OnlineError::Config(format!(
            "{what} lasts at least one second"
        ))),
        seconds => Ok(seconds),
    }
}

/// The longest wait in line the server accepts, in seconds (one day).
const MAX_QUEUE_SECONDS: u64 = 86_400;

/// How much longer than the wait asked for [`Client::wait_for_lease`] goes on asking, for a
/// server that keeps answering places (it should answer `no_seats` at the end of the wait).
const QUEUE_SLACK: Duration = Duration::from_secs(60);

/// A place in a floating license's wait line (see [`Client::check_out_or_wait`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuePlace {
    /// The place's id (to give it up: [`Client::leave_queue`]).
    pub queue_id: String,
    /// 1 for the head of the line.
    pub position: u64,
    /// Places in line, this one included.
    pub waiting: u64,
    /// When the place was taken (server clock, seconds since the epoch).
    pub queued_at: i64,
    /// When the wait ends (server clock): a check-out after it without a seat is denied.
    pub wait_until: i64,
    /// Ask again after this long to keep the place.
    pub retry_after: Duration,
    /// The server's message to show meanwhile ("No available licenses, please contact IT").
    pub message: String,
}

/// What a check-out that may wait answered.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // Answered once per check-out; boxing buys nothing.
pub enum SeatAnswer {
    /// A seat: the lease.
    Granted(LeaseGrant),
    /// No seat yet: the place in line.
    Queued(QueuePlace),
}

/// Reads a 202 answer: the place in line.
fn queue_place(body: Value) -> Result<QueuePlace, OnlineError> {
    let answer: QueuedAnswer = answer::parse(body, "place in line")?;
    let count = |name: &str, n: u64| {
        if n >= 1 {
            Ok(n)
        } else {
            Err(OnlineError::BadResponse(format!("`{name}` is not a count")))
        }
    };
    let (position, waiting) = (
        count("position", answer.position)?,
        count("waiting", answer.waiting)?,
    );
    if position > waiting {
        return Err(OnlineError::BadResponse(format!(
            "place {position} of a line of {waiting}"
        )));
    }
    // Bounded both ways: a server cannot make the client ask in a tight loop, nor wait so long
    // that its place lapses (the server keeps a place 30 s after the last ask).
    let retry_after = Duration::from_secs(count("retry_after", answer.retry_after)?.min(15));
    Ok(QueuePlace {
        queue_id: answer.queue_id,
        position,
        waiting,
        queued_at: answer.queued_at,
        wait_until: answer.wait_until,
        retry_after,
        message: answer.message,
    })
}

/// The body of a heartbeat or a check-in.
fn lease_request(license_key: &str, epoch: u64, secret: Option<&LeaseSecret>) -> LeaseRequest {
    LeaseRequest {
        license_key: license_key.to_owned(),
        epoch: wire_i64(epoch),
        lease_secret: secret.map(|secret| secret.expose().to_owned()),
    }
}

/// A count for the wire, where the server reads a signed 64-bit integer (saturating: the
/// server refuses anything that large by its own rule).
fn wire_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl OnlineError {
    /// Whether a check-out was denied because every seat is taken; the detail is then the
    /// message to show ("No available licenses, please contact IT").
    pub fn is_no_seats(&self) -> bool {
        self.server_code().map(ErrorCode::parse) == Some(ErrorCode::NoSeats)
    }
}

/// What a [`LeaseManager`] asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseConfig {
    /// The floating license's key.
    pub license_key: String,
    /// This installation's stable id (the same after a restart, so a lapsed user gets the
    /// seat back seamlessly).
    pub client_id: String,
    /// The user of the app.
    pub user: String,
    /// Heartbeat at most this far apart; the server's interval (a third of the timeout) is
    /// used when it is shorter or when this is `None`.
    pub heartbeat_interval: Option<Duration>,
    /// Wait in line for up to this long when no seat is free (on a license with a wait line;
    /// see [`Client::wait_for_lease`]); `None`: denied at once.
    pub queue_wait: Option<Duration>,
    /// Hold the seat only while the app is in use: once the app has reported no activity
    /// ([`LeaseManager::activity`]; the check-out counts as one) for the license's lease
    /// timeout (the 5 to 60 minutes its administrator set), heartbeats stop, the seat is checked
    /// in for others and the loss is reported as [`LeaseLoss::Idle`]; the next activity takes a
    /// seat again. `false` (the default): the seat is held as long as the manager lives.
    pub release_when_idle: bool,
    /// The clock the manager measures time with (lease deadline, inactivity): the system's
    /// monotonic clock unless the app injects one (tests).
    pub clock: LeaseClockSource,
}

impl LeaseConfig {
    /// A configuration with the server's heartbeat interval.
    pub fn new(
        license_key: impl Into<String>,
        client_id: impl Into<String>,
        user: impl Into<String>,
    ) -> Self {
        LeaseConfig {
            license_key: license_key.into(),
            client_id: client_id.into(),
            user: user.into(),
            heartbeat_interval: None,
            queue_wait: None,
            release_when_idle: false,
            clock: LeaseClockSource::default(),
        }
    }
}

/// A monotonic clock for a [`LeaseManager`]: how much time passed since a fixed origin. It
/// never goes backwards. Inject one through [`LeaseConfig::clock`] to test inactivity and lease
/// deadlines without waiting for them.
pub trait LeaseClock: Send + Sync {
    /// The time elapsed since this clock's origin.
    fn now(&self) -> Duration;
}

/// The system's monotonic clock (origin: its creation).
struct SystemClock(Instant);

impl LeaseClock for SystemClock {
    fn now(&self) -> Duration {
        self.0.elapsed()
    }
}

/// The clock of a [`LeaseConfig`]: the system's monotonic clock ([`Default`]), or one the app
/// injects ([`LeaseClockSource::custom`]). Two sources are equal when they are the same clock.
#[derive(Clone)]
pub struct LeaseClockSource(Arc<dyn LeaseClock>);

impl LeaseClockSource {
    /// The system's monotonic clock.
    pub fn system() -> Self {
        LeaseClockSource(Arc::new(SystemClock(Instant::now())))
    }

    /// A clock the app provides (tests).
    pub fn custom(clock: Arc<dyn LeaseClock>) -> Self {
        LeaseClockSource(clock)
    }

    /// The clock's time now.
    pub fn now(&self) -> Duration {
        self.0.now()
    }
}

impl Default for LeaseClockSource {
    fn default() -> Self {
        Self::system()
    }
}

impl std::fmt::Debug for LeaseClockSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LeaseClockSource")
    }
}

impl PartialEq for LeaseClockSource {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::addr_eq(Arc::as_ptr(&self.0), Arc::as_ptr(&other.0))
    }
}

impl Eq for LeaseClockSource {}

/// Why a [`LeaseManager`] no longer holds its seat (reported once, through the callback).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LeaseLoss {
    /// The server refused a heartbeat: the seat was force-released by an administrator, or
    /// lapsed and may have gone to someone else (code `lease_released`, or `lease_not_found`).
    Released {
        /// The server's error code.
        code: String,
        /// The server's explanation.
        detail: String,
    },
    /// The server refused for another reason: the license was suspended, revoked, expired...
    Refused {
        /// The HTTP status.
        status: u16,
        /// The server's error code (`license_suspended`, ...).
        code: String,
        /// The server's explanation.
        detail: String,
    },
    /// The server could not be reached before the lease ran out.
    Unreachable {
        /// The last error.
        detail: String,
    },
    /// The server's answer did not verify (wrong key, another lease, malformed).
    Invalid {
        /// What was wrong.
        detail: String,
    },
    /// The app reported no activity for the license's lease timeout
    /// ([`LeaseConfig::release_when_idle`]): heartbeats stopped and the seat was checked in for
    /// others. The next [`LeaseManager::activity`] takes a seat again when one is free.
    Idle {
        /// How long the app was idle, and what happens next.
        detail: String,
    },
}

impl LeaseLoss {
    fn from_error(error: OnlineError) -> Self {
        match error {
            OnlineError::Server {
                code,
                detail,
                status,
            } => {
                if matches!(
                    ErrorCode::parse(&code),
                    ErrorCode::LeaseReleased | ErrorCode::LeaseNotFound
                ) {
                    LeaseLoss::Released { code, detail }
                } else {
                    LeaseLoss::Refused {
                        status,
                        code,
                        detail,
                    }
                }
            }
            other => LeaseLoss::Invalid {
                detail: other.to_string(),
            },
        }
    }

    /// A one-line explanation.
    pub fn detail(&self) -> &str {
        match self {
            LeaseLoss::Released { detail, .. }
            | LeaseLoss::Refused { detail, .. }
            | LeaseLoss::Unreachable { detail }
            | LeaseLoss::Invalid { detail }
            | LeaseLoss::Idle { detail } => detail,
        }
    }

    /// The class of the loss, the one every boundary (C, the bindings) reports.
    pub fn kind(&self) -> LeaseLossKind {
        match self {
            LeaseLoss::Released { .. } => LeaseLossKind::Released,
            LeaseLoss::Refused { .. } => LeaseLossKind::Refused,
            LeaseLoss::Unreachable { .. } => LeaseLossKind::Unreachable,
            LeaseLoss::Invalid { .. } => LeaseLossKind::Invalid,
            LeaseLoss::Idle { .. } => LeaseLossKind::Idle,
        }
    }

    /// The server's error code when the server refused ([`LeaseLossKind::Released`] and
    /// [`LeaseLossKind::Refused`]).
    pub fn server_code(&self) -> Option<&str> {
        match self {
            LeaseLoss::Released { code, .. } | LeaseLoss::Refused { code, .. } => Some(code),
            LeaseLoss::Unreachable { .. } | LeaseLoss::Invalid { .. } | LeaseLoss::Idle { .. } => {
                None
            }
        }
    }
}

/// Why a seat was lost: the class of a [`LeaseLoss`], without its details. The numbers are
/// stable (the C ABI's `lic_lease_loss` has them); new classes are only appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum LeaseLossKind {
    /// The server refused a heartbeat: force-released, or lapsed and possibly given away.
    Released = 1,
    /// The server refused for another reason (suspended, revoked, expired).
    Refused = 2,
    /// The server could not be reached before the lease ran out.
    Unreachable = 3,
    /// The server's answer did not verify.
    Invalid = 4,
    /// The app reported no activity for the license's lease timeout.
    Idle = 5,
}

impl LeaseLossKind {
    /// Every class, in numeric order.
    pub const ALL: [LeaseLossKind; 5] = [
        LeaseLossKind::Released,
        LeaseLossKind::Refused,
        LeaseLossKind::Unreachable,
        LeaseLossKind::Invalid,
        LeaseLossKind::Idle,
    ];
}

impl std::fmt::Display for LeaseLoss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self {
            LeaseLoss::Released { .. } => "seat released",
            LeaseLoss::Refused { .. } => "seat refused",
            LeaseLoss::Unreachable { .. } => "server unreachable past the lease",
            LeaseLoss::Invalid { .. } => "invalid answer",
            LeaseLoss::Idle { .. } => "seat checked in while idle",
        };
        write!(f, "{what}: {}", self.detail())
    }
}

/// Called from the heartbeat thread when the seat is lost: once, or once more for each seat
/// taken again after an idle release ([`LeaseLoss::Idle`], [`LeaseManager::activity`]).
pub type LeaseCallback = Box<dyn Fn(&LeaseLoss) + Send + Sync>;

/// After a failed attempt to take a seat again ([`LeaseManager::activity`]), the activity calls
/// within this pause (on the manager's clock) answer the same failure without asking the
/// server: an app that reports every key press neither fills the server's denial log nor waits
/// for an unreachable server at each one.
pub const RETAKE_PAUSE: Duration = Duration::from_secs(15);

/// The state shared with the heartbeat thread. Times are on the manager's clock.
struct State {
    grant: LeaseGrant,
    /// When the lease runs out: the time the request was sent plus the lease's remaining life
    /// (`exp - iat`, both server seconds), so neither a wrong wall clock nor a slow answer
    /// makes it last longer.
    deadline: Duration,
    lost: Option<LeaseLoss>,
    stop: bool,
    heartbeats: u64,
    /// The app's last reported activity (the check-out counts as one).
    last_activity: Duration,
    /// The heartbeat thread is checking in a seat released while idle: taking a seat again
    /// waits for it, so the server cannot answer with the lease being checked in.
    checking_in: bool,
    /// The last failed attempt to take a seat again, answered again until the time given.
    retake_failed: Option<(Duration, OnlineError)>,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    clock: LeaseClockSource,
    release_when_idle: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic in a callback must not take the seat's bookkeeping down with it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// When the seat turns idle, when it is held only while the app is in use: the last
    /// activity plus the license's lease timeout (the life the server gives a lease it grants
    /// or extends: its token's `exp - iat`).
    fn idle_at(&self, state: &State) -> Option<Duration> {
        self.release_when_idle
            .then(|| state.last_activity.saturating_add(lease_life(&state.grant)))
    }

    /// [`LeaseManager::status`] of `state` at `now`.
    fn status(state: &State, now: Duration) -> Status {
        if state.lost.is_none() && now < state.deadline {
            Status::Valid
        } else {
            Status::LeaseExpired
        }
    }
}

/// Holds one seat of a floating license: checked out on creation, heartbeated on a background
/// thread, checked in by [`LeaseManager::check_in`] or on drop. The loss of the seat (a refused
/// heartbeat, a force-release, the server unreachable until the lease ran out) is reported
/// once through the callback, and [`LeaseManager::status`] turns to [`Status::LeaseExpired`].
/// With [`LeaseConfig::release_when_idle`], the seat is held only while the app reports
/// activity ([`LeaseManager::activity`]): idle for the license's lease timeout, it is checked
/// in ([`LeaseLoss::Idle`]), and the next activity takes one again.
pub struct LeaseManager {
    shared: Arc<Shared>,
    client: Client,
    license_key: String,
    /// What to check out again after an idle release.
    config: LeaseConfig,
    /// One attempt at a time to take a seat again.
    retaking: Mutex<()>,
    thread: Option<JoinHandle<()>>,
    thread_id: Option<ThreadId>,
}

impl std::fmt::Debug for LeaseManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.shared.lock();
        f.debug_struct("LeaseManager")
            .field("lease_id", &state.grant.lease_id)
            .field("epoch", &state.grant.epoch)
            .field("lost", &state.lost)
            .finish_non_exhaustive()
    }
}

impl LeaseManager {
    /// Checks out a seat (with a fresh request id, retried safely by the client) and starts
    /// heartbeating. With [`LeaseConfig::queue_wait`], waits in line first when no seat is
    /// free. A denial is [`OnlineError::is_no_seats`].
    pub fn check_out(
        client: &Client,
        config: LeaseConfig,
        on_lost: LeaseCallback,
    ) -> Result<LeaseManager, OnlineError> {
        let request_id = new_nonce()?;
        let (grant, sent) = match config.queue_wait {
            Some(wait) => {
                let (grant, sent) = client
                    .wait_in_line(
                        &config.license_key,
                        &config.client_id,
                        &config.user,
                        &request_id,
                        wait,
                        &mut |_| true,
                    )?
                    // Never: the wait above is never stopped by its callback.
                    .ok_or_else(|| OnlineError::Config("stopped waiting for a seat".into()))?;
                (grant, on_clock(&config.clock, sent))
            }
            None => {
                let sent = config.clock.now();
                let grant = client.check_out_lease(
                    &config.license_key,
                    &config.client_id,
                    &config.user,
                    &request_id,
                )?;
                (grant, sent)
            }
        };
        Self::start(client, config, sent, grant, on_lost)
    }

    /// Like [`LeaseManager::check_out`] waiting in line for up to `wait` when no seat is free,
    /// with `on_place` told each place in line (it returns `false` to stop waiting: then
    /// `Ok(None)`). See [`Client::wait_for_lease`].
    pub fn check_out_waiting(
        client: &Client,
        config: LeaseConfig,
        wait: Duration,
        on_place: &mut dyn FnMut(&QueuePlace) -> bool,
        on_lost: LeaseCallback,
    ) -> Result<Option<LeaseManager>, OnlineError> {
        let request_id = new_nonce()?;
        let waited = client.wait_in_line(
            &config.license_key,
            &config.client_id,
            &config.user,
            &request_id,
            wait,
            on_place,
        )?;
        waited
            .map(|(grant, sent)| {
                let sent = on_clock(&config.clock, sent);
                Self::start(client, config, sent, grant, on_lost)
            })
            .transpose()
    }

    /// Holds the seat `grant` (asked for at `sent`, on the config's clock): starts the
    /// heartbeat thread.
    fn start(
        client: &Client,
        config: LeaseConfig,
        sent: Duration,
        grant: LeaseGrant,
        on_lost: LeaseCallback,
    ) -> Result<LeaseManager, OnlineError> {
        let deadline = local_deadline(sent, &grant);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                grant,
                deadline,
                lost: None,
                stop: false,
                heartbeats: 0,
                last_activity: sent,
                checking_in: false,
                retake_failed: None,
            }),
            wake: Condvar::new(),
            clock: config.clock.clone(),
            release_when_idle: config.release_when_idle,
        });
        let thread = {
            let shared = Arc::clone(&shared);
            let client = client.clone();
            let key = config.license_key.clone();
            let mine = config.heartbeat_interval;
            std::thread::Builder::new()
                .name("licensing-lease".into())
                .spawn(move || heartbeat_loop(&shared, &client, &key, mine, &*on_lost))
                .map_err(|e| OnlineError::System(format!("heartbeat thread: {e}")))?
        };
        let thread_id = Some(thread.thread().id());
        Ok(LeaseManager {
            shared,
            client: client.clone(),
            license_key: config.license_key.clone(),
            config,
            retaking: Mutex::new(()),
            thread: Some(thread),
            thread_id,
        })
    }

    /// The lease as last granted or extended.
    pub fn grant(&self) -> LeaseGrant {
        self.shared.lock().grant.clone()
    }

    /// The current `lease+jwt` (fresh after each heartbeat).
    pub fn lease_token(&self) -> String {
        self.shared.lock().grant.lease_token.clone()
    }

    /// Why the seat was lost, once it was (until an idle seat is taken again).
    pub fn lost(&self) -> Option<LeaseLoss> {
        self.shared.lock().lost.clone()
    }

    /// How many heartbeats the server accepted.
    pub fn heartbeats(&self) -> u64 {
        self.shared.lock().heartbeats
    }

    /// [`Status::Valid`] while the seat is held and the lease has not run out on the manager's
    /// clock; [`Status::LeaseExpired`] once it is lost (idle included) or ran out.
    pub fn status(&self) -> Status {
        let now = self.shared.clock.now();
        Shared::status(&self.shared.lock(), now)
    }

    /// Tells the manager the app is in use: call it on each user action (a key press, a click,
    /// a command); it is cheap while the seat is held. With [`LeaseConfig::release_when_idle`]
    /// the seat is held only while these calls keep coming within the license's lease
    /// timeout. After an idle release ([`LeaseLoss::Idle`]) this call takes a seat again,
    /// without a new login: a check-out with a fresh request id, on the calling thread (up to
    /// the client's deadline). `Ok(`[`Status::Valid`]`)` while (or once again) the seat is
    /// held; when every seat is taken, the server's denial ([`OnlineError::is_no_seats`]; its
    /// detail is the message to show, "No available licenses, please contact IT"), and the
    /// calls within [`RETAKE_PAUSE`] answer it again without asking the server. A seat lost
    /// otherwise (force-released, refused, unreachable past the lease) is not taken again:
    /// `Ok(`[`Status::LeaseExpired`]`)`, as [`LeaseManager::status`] says (check out anew).
    pub fn activity(&self) -> Result<Status, OnlineError> {
        let now = self.shared.clock.now();
        {
            let mut state = self.shared.lock();
            state.last_activity = state.last_activity.max(now);
            if !matches!(state.lost, Some(LeaseLoss::Idle { .. })) || state.stop {
                return Ok(Shared::status(&state, now));
            }
        }
        self.retake()
    }

    /// Takes a seat again after an idle release.
    fn retake(&self) -> Result<Status, OnlineError> {
        // One attempt at a time: a concurrent caller waits and sees its outcome.
        let _one = self.retaking.lock().unwrap_or_else(PoisonError::into_inner);
        let released = {
            let state = self.shared.lock();
            let state = self
                .shared
                .wake
                .wait_while(state, |s| s.checking_in)
                .unwrap_or_else(PoisonError::into_inner);
            let now = self.shared.clock.now();
            if !matches!(state.lost, Some(LeaseLoss::Idle { .. })) || state.stop {
                return Ok(Shared::status(&state, now));
            }
            if let Some((until, failure)) = &state.retake_failed
                && now < *until
                && let Some(again) = replay(failure)
            {
                return Err(again);
            }
            state.grant.lease_secret.clone()
        };
        let request_id = new_nonce()?;
        let sent = self.shared.clock.now();
        // The released lease's secret too: when its check-in did not reach the server, the
        // lease is still live and this instance takes it back instead of a second seat (or a
        // denial on a full license); the server ignores a secret of a lease that has ended.
        let result = self
            .client
            .check_out_with(
                &self.config.license_key,
                &self.config.client_id,
                &self.config.user,
                &request_id,
                None,
                None,
                released.as_ref(),
            )
            .and_then(|answer| match answer {
                SeatAnswer::Granted(grant) => Ok(grant),
                SeatAnswer::Queued(_) => Err(OnlineError::Mismatch(
                    "the server answered a place in line to a check-out that does not wait".into(),
                )),
            });
        let mut state = self.shared.lock();
        match result {
            Ok(grant) => {
                state.deadline = local_deadline(sent, &grant);
                state.grant = grant;
                state.lost = None;
                state.retake_failed = None;
                state.last_activity = state.last_activity.max(sent);
                drop(state);
                // The heartbeat thread waits for this.
                self.shared.wake.notify_all();
                Ok(Status::Valid)
            }
            Err(error) => {
                state.retake_failed = replay(&error)
                    .map(|again| (self.shared.clock.now().saturating_add(RETAKE_PAUSE), again));
                Err(error)
            }
        }
    }

    /// Stops heartbeating and checks the lease in (the seat is free at once). A seat already
    /// lost (or released while idle) is not checked in again.
    pub fn check_in(mut self) -> Result<(), OnlineError> {
        self.stop_and_check_in()
    }

    fn stop_and_check_in(&mut self) -> Result<(), OnlineError> {
        {
            self.shared.lock().stop = true;
            self.shared.wake.notify_all();
        }
        if let Some(thread) = self.thread.take() {
            // Freed from its own callback: the thread ends by itself right after.
            if Some(std::thread::current().id()) != self.thread_id {
                let _ = thread.join();
            }
        }
        let (grant, lost) = {
            let mut state = self.shared.lock();
            let lost = state.lost.is_some();
            state.lost.get_or_insert(LeaseLoss::Released {
                code: "checked_in".into(),
                detail: "checked in by the app".into(),
            });
            (state.grant.clone(), lost)
        };
        if lost {
            return Ok(());
        }
        self.client.check_in_lease(&self.license_key, &grant)
    }
}

impl Drop for LeaseManager {
    fn drop(&mut self) {
        if self.thread.is_some() {
            // Best effort: an unreachable server frees the seat when the lease lapses.
            let _ = self.stop_and_check_in();
        }
    }
}

/// The failures an attempt to take a seat again answers again during [`RETAKE_PAUSE`]: the
/// server's refusals and an unreachable server.
fn replay(error: &OnlineError) -> Option<OnlineError> {
    match error {
        OnlineError::Server {
            status,
            code,
            detail,
        } => Some(OnlineError::Server {
            status: *status,
            code: code.clone(),
            detail: detail.clone(),
        }),
        OnlineError::Network(detail) => Some(OnlineError::Network(detail.clone())),
        OnlineError::Timeout(limit) => Some(OnlineError::Timeout(*limit)),
        _ => None,
    }
}

/// The instant `sent` on `clock`.
fn on_clock(clock: &LeaseClockSource, sent: Instant) -> Duration {
    clock.now().saturating_sub(sent.elapsed())
}

/// The life the server gave the lease when it granted or extended it (`exp - iat`).
fn lease_life(grant: &LeaseGrant) -> Duration {
    let claims = grant.lease.claims();
    Duration::from_secs(u64::try_from(claims.exp.saturating_sub(claims.iat)).unwrap_or(0))
}

fn local_deadline(sent: Duration, grant: &LeaseGrant) -> Duration {
    sent.saturating_add(lease_life(grant))
}

fn heartbeat_interval(mine: Option<Duration>, grant: &LeaseGrant) -> Duration {
    let server = Duration::from_secs(grant.heartbeat_interval.max(1));
    match mine {
        Some(mine) if mine < server => mine.max(Duration::from_millis(10)),
        _ => server,
    }
}

/// What the heartbeat thread does next.
enum Next {
    /// Heartbeat this lease, which runs out at the given time.
    Beat(LeaseGrant, Duration),
    /// Check in this lease: the app was idle (the loss is recorded already).
    Idle(LeaseGrant, LeaseLoss),
}

/// Sleeps the heartbeat interval (or until stopped), heartbeats; on an unreachable server keeps
/// trying more often until the lease runs out; any refusal ends the loop with the callback.
/// When the seat is held only while in use, an idle app's seat is checked in instead (reported
/// as [`LeaseLoss::Idle`]) and the loop waits for the app's next activity to take one again.
fn heartbeat_loop(
    shared: &Shared,
    client: &Client,
    license_key: &str,
    mine: Option<Duration>,
    on_lost: &(dyn Fn(&LeaseLoss) + Send + Sync),
) {
    let mut beat_at = Instant::now() + heartbeat_interval(mine, &shared.lock().grant);
    loop {
        let next = {
            let mut state = shared.lock();
            loop {
                if state.stop {
                    return;
                }
                if state.lost.is_some() {
                    // Released while idle: wait for the app's next activity to take a seat.
                    state = shared
                        .wake
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner);
                    if state.lost.is_none() {
                        beat_at = Instant::now() + heartbeat_interval(mine, &state.grant);
                    }
                    continue;
                }
                let now = shared.clock.now();
                let idle_at = shared.idle_at(&state);
                if let Some(idle_at) = idle_at
                    && now >= idle_at
                {
                    let idle = now.saturating_sub(state.last_activity).as_secs();
                    let loss = LeaseLoss::Idle {
                        detail: format!(
                            "no activity for {idle} s (the license's lease timeout is {} s): \
                             the seat was checked in for others; the next activity takes one \
                             again",
                            lease_life(&state.grant).as_secs()
                        ),
                    };
                    state.lost = Some(loss.clone());
                    state.checking_in = true;
                    break Next::Idle(state.grant.clone(), loss);
                }
                let until_beat = beat_at.saturating_duration_since(Instant::now());
                if until_beat.is_zero() {
                    break Next::Beat(state.grant.clone(), state.deadline);
                }
                let pause = idle_at.map_or(until_beat, |at| until_beat.min(at.saturating_sub(now)));
                state = shared
                    .wake
                    .wait_timeout(state, pause)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
        };
        let (grant, deadline) = match next {
            Next::Idle(grant, loss) => {
                // Best effort: an unreachable server frees the seat when the lease lapses.
                let _ = client.check_in_lease(license_key, &grant);
                let stopped = {
                    let mut state = shared.lock();
                    state.checking_in = false;
                    state.stop
                };
                shared.wake.notify_all();
                if stopped {
                    return;
                }
                on_lost(&loss);
                continue;
            }
            Next::Beat(grant, deadline) => (grant, deadline),
        };
        let sent = shared.clock.now();
        let left = deadline.saturating_sub(sent);
        let result = if left.is_zero() {
            Err(OnlineError::Timeout(Duration::ZERO))
        } else {
            client.heartbeat_lease_within(license_key, &grant, left)
        };
        let loss = match result {
            Ok(new) => {
                let mut state = shared.lock();
                state.deadline = local_deadline(sent, &new);
                state.grant = new;
                state.heartbeats += 1;
                beat_at = Instant::now() + heartbeat_interval(mine, &state.grant);
                continue;
            }
            Err(error) if error.is_unreachable() => {
                let left = deadline.saturating_sub(shared.clock.now());
                if !left.is_zero() {
                    // Try again soon, but not in a tight loop.
                    let interval = heartbeat_interval(mine, &grant);
                    let pause = (interval / 4).max(Duration::from_millis(10)).min(left);
                    beat_at = Instant::now() + pause;
                    continue;
                }
                LeaseLoss::Unreachable {
                    detail: error.to_string(),
                }
            }
            Err(error) => LeaseLoss::from_error(error),
        };
        {
            let mut state = shared.lock();
            if state.stop {
                return;
            }
            state.lost = Some(loss.clone());
        }
        on_lost(&loss);
        return;
    }
}
