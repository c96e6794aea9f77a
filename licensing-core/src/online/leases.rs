//! Floating-license seats from the client side: the check-out, heartbeat and check-in calls
//! ([`Client::check_out_lease`] ...), their answers, the lease configuration and clock, and why
//! a seat was lost ([`LeaseLoss`]). Holding a seat over time is `lease_manager.rs`'s.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Client, OnlineError, answer};
use crate::lease::Lease;
use crate::protocol::{
    CheckOutRequest, ErrorCode, LeaseAnswer, LeaseRequest, LeaveQueueRequest, LeftQueue,
    QueuedAnswer,
};

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
    pub(super) fn wait_in_line(
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
    pub(super) fn check_out_with(
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

    pub(super) fn heartbeat_lease_within(
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

/// What a [`LeaseManager`](super::LeaseManager) asks for.
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
    /// ([`LeaseManager::activity`](super::LeaseManager::activity); the check-out counts as one) for the license's lease
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

/// A monotonic clock for a [`LeaseManager`](super::LeaseManager): how much time passed since a fixed origin. It
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

/// Why a [`LeaseManager`](super::LeaseManager) no longer holds its seat (reported once, through the callback).
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
    /// others. The next [`LeaseManager::activity`](super::LeaseManager::activity) takes a seat again when one is free.
    Idle {
        /// How long the app was idle, and what happens next.
        detail: String,
    },
}

impl LeaseLoss {
    pub(super) fn from_error(error: OnlineError) -> Self {
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
