//! [`LeaseManager`] holds one seat of a floating license: it heartbeats on a background
//! thread, checks in when dropped, and reports the loss of the seat through a callback. The
//! calls it makes and the types it shares are `leases.rs`'s.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{JoinHandle, ThreadId};
use std::time::{Duration, Instant};

use super::leases::{LeaseClockSource, LeaseConfig, LeaseGrant, LeaseLoss, QueuePlace, SeatAnswer};
use super::{Client, OnlineError, new_nonce};
use crate::status::Status;

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
