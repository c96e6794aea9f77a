//! `FloatingLease`: one seat of a floating license held by the core's `LeaseManager`
//! (heartbeats on a background thread, check-in on `check_in` or when released), its loss
//! reported to a `LeaseListener` the app implements.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use licensing_core::Status;
use licensing_core::online::{
    LeaseClock, LeaseClockSource, LeaseConfig, LeaseLoss, LeaseManager, QueuePlace,
};

use crate::{LicensingError, OnlineClient};

/// Why the seat was lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum LeaseLossKind {
    /// The server refused a heartbeat: force-released by an administrator, or lapsed and
    /// possibly given to someone else.
    Released,
    /// The server refused for another reason: the license was suspended, revoked, expired.
    Refused,
    /// The server could not be reached before the lease ran out.
    Unreachable,
    /// The server's answer did not verify.
    Invalid,
    /// The app reported no activity (`activity`) for the license's lease timeout (a lease from
    /// `check_out_while_active`): the seat was checked in for others; the next `activity`
    /// takes one again.
    Idle,
}

impl From<licensing_core::online::LeaseLossKind> for LeaseLossKind {
    fn from(kind: licensing_core::online::LeaseLossKind) -> Self {
        use licensing_core::online::LeaseLossKind as Core;
        match kind {
            Core::Released => LeaseLossKind::Released,
            Core::Refused => LeaseLossKind::Refused,
            Core::Unreachable => LeaseLossKind::Unreachable,
            Core::Invalid => LeaseLossKind::Invalid,
            Core::Idle => LeaseLossKind::Idle,
        }
    }
}

/// The loss of a seat, as the listener receives it.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct LeaseLossInfo {
    /// Why.
    pub kind: LeaseLossKind,
    /// The server's error code (`lease_released`, `license_suspended`, ...) when it refused.
    pub code: Option<String>,
    /// A one-line explanation.
    pub detail: String,
}

impl From<&LeaseLoss> for LeaseLossInfo {
    fn from(loss: &LeaseLoss) -> Self {
        LeaseLossInfo {
            kind: loss.kind().into(),
            code: loss.server_code().map(str::to_owned),
            detail: loss.detail().to_owned(),
        }
    }
}

/// Implemented by the app: told once, on the library's heartbeat thread, that the seat is lost
/// (for a lease held while active: once more each time a seat taken again is lost).
#[uniffi::export(with_foreign)]
pub trait LeaseListener: Send + Sync {
    /// The seat is lost; the app should stop (or ask the user to check out again).
    fn on_lost(&self, loss: LeaseLossInfo);
}

/// A monotonic clock the app provides to a lease held while active (tests inject one):
/// milliseconds since any fixed origin, never going backwards. Called from any thread.
#[uniffi::export(with_foreign)]
pub trait MonotonicClock: Send + Sync {
    /// The clock's time now, in milliseconds.
    fn now_ms(&self) -> u64;
}

/// The app's clock as the core's.
struct ForeignClock {
    clock: Arc<dyn MonotonicClock>,
    latest: std::sync::atomic::AtomicU64,
}

impl LeaseClock for ForeignClock {
    fn now(&self) -> Duration {
        let told = self.clock.now_ms();
        let latest = self
            .latest
            .fetch_max(told, std::sync::atomic::Ordering::SeqCst)
            .max(told);
        Duration::from_millis(latest)
    }
}

/// Implemented by the app to follow a wait in line for a seat: told each place, on the
/// calling thread.
#[uniffi::export(with_foreign)]
pub trait QueueListener: Send + Sync {
    /// The client is `position` (1 for the head of the line) of `waiting`; `message` is the
    /// server's text to show meanwhile. Returns `true` to go on waiting, `false` to stop (the
    /// place is given up).
    fn on_place(&self, position: u64, waiting: u64, message: String) -> bool;
}

/// A seat of a floating license, held while the object lives: heartbeated in the background,
/// checked in by `check_in` or when the object is released.
#[derive(Debug, uniffi::Object)]
pub struct FloatingLease(Mutex<Option<LeaseManager>>);

impl FloatingLease {
    fn with<T>(&self, body: impl FnOnce(Option<&LeaseManager>) -> T) -> T {
        body(self.0.lock().unwrap_or_else(|e| e.into_inner()).as_ref())
    }
}

#[uniffi::export]
impl OnlineClient {
    /// Like `FloatingLease.check_out`, but when no seat is free and the license has a wait
    /// line, waits in line for up to `wait_seconds` (at least 1), asking the server again
    /// every few seconds on the calling thread (not for a UI thread) and telling `places` each
    /// place. Absent when `places` stopped the wait (the place is given up). When the wait is
    /// over, or the license has no line: `LicensingError.Server` with code `no_seats`.
    #[allow(clippy::too_many_arguments)]
    pub fn wait_for_seat(
        self: Arc<Self>,
        license_key: String,
        client_id: String,
        user: String,
        heartbeat_ms: Option<u32>,
        wait_seconds: u32,
        places: Option<Arc<dyn QueueListener>>,
        listener: Option<Arc<dyn LeaseListener>>,
    ) -> Result<Option<Arc<FloatingLease>>, LicensingError> {
        if wait_seconds == 0 {
            return Err(LicensingError::InvalidArgument {
                reason: "`wait_seconds` must be at least 1".into(),
            });
        }
        let manager = LeaseManager::check_out_waiting(
            &self.client(),
            lease_config(license_key, client_id, user, heartbeat_ms),
            Duration::from_secs(u64::from(wait_seconds)),
            &mut |place: &QueuePlace| {
                places.as_ref().is_none_or(|places| {
                    places.on_place(place.position, place.waiting, place.message.clone())
                })
            },
            lost_callback(listener),
        )?;
        Ok(manager.map(|m| Arc::new(FloatingLease(Mutex::new(Some(m))))))
    }
}

/// The lease configuration of the bindings: `heartbeat_ms` absent or 0 for the server's.
fn lease_config(
    license_key: String,
    client_id: String,
    user: String,
    heartbeat_ms: Option<u32>,
) -> LeaseConfig {
    LeaseConfig {
        heartbeat_interval: heartbeat_ms
            .filter(|ms| *ms > 0)
            .map(|ms| Duration::from_millis(u64::from(ms))),
        ..LeaseConfig::new(license_key, client_id, user)
    }
}

/// The core's loss callback calling the app's listener, if any.
fn lost_callback(
    listener: Option<Arc<dyn LeaseListener>>,
) -> licensing_core::online::LeaseCallback {
    Box::new(move |loss| {
        if let Some(listener) = &listener {
            listener.on_lost(loss.into());
        }
    })
}

#[uniffi::export]
impl FloatingLease {
    /// Checks out a seat of the floating license `license_key` for this installation
    /// (`client_id`, stable across restarts) and `user`; heartbeats every `heartbeat_ms` (absent,
    /// or longer than the server's: the server's interval). When every seat is taken:
    /// `LicensingError.Server` with code `no_seats` and the message to show.
    #[uniffi::constructor]
    pub fn check_out(
        client: Arc<OnlineClient>,
        license_key: String,
        client_id: String,
        user: String,
        heartbeat_ms: Option<u32>,
        listener: Option<Arc<dyn LeaseListener>>,
    ) -> Result<Self, LicensingError> {
        let manager = LeaseManager::check_out(
            &client.client(),
            lease_config(license_key, client_id, user, heartbeat_ms),
            lost_callback(listener),
        )?;
        Ok(FloatingLease(Mutex::new(Some(manager))))
    }

    /// Like `check_out`, but the seat is held only while the app is in use: the app reports
    /// each user action with `activity` (the check-out counts as one); with no activity for the
    /// license's lease timeout (the 5 to 60 minutes its administrator set), heartbeats stop,
    /// the seat is checked in for others and the listener is told (`LeaseLossKind.IDLE`). The
    /// next `activity` takes a seat again without a new login. `clock` (absent: the system's
    /// monotonic clock) measures the time; tests inject one.
    #[uniffi::constructor]
    pub fn check_out_while_active(
        client: Arc<OnlineClient>,
        license_key: String,
        client_id: String,
        user: String,
        heartbeat_ms: Option<u32>,
        clock: Option<Arc<dyn MonotonicClock>>,
        listener: Option<Arc<dyn LeaseListener>>,
    ) -> Result<Self, LicensingError> {
        let mut config = lease_config(license_key, client_id, user, heartbeat_ms);
        config.release_when_idle = true;
        if let Some(clock) = clock {
            config.clock = LeaseClockSource::custom(Arc::new(ForeignClock {
                clock,
                latest: std::sync::atomic::AtomicU64::new(0),
            }));
        }
        let manager = LeaseManager::check_out(&client.client(), config, lost_callback(listener))?;
        Ok(FloatingLease(Mutex::new(Some(manager))))
    }

    /// Tells the lease the app is in use: call it on each user action; it is cheap while the
    /// seat is held. `VALID` while (or once again) the seat is held. For a lease held while
    /// active whose seat was checked in while idle, this call takes a seat again (a check-out
    /// on the calling thread, up to the client's deadline); when every seat is taken it raises
    /// `LicensingError.Server` with code `no_seats` and the message to show ("No available
    /// licenses, please contact IT"), and the calls within the next 15 seconds raise it again
    /// without asking the server. A seat lost otherwise (force-released, refused, unreachable)
    /// is not taken again: `LEASE_EXPIRED` (check out anew), as after `check_in`.
    pub fn activity(&self) -> Result<Status, LicensingError> {
        self.with(|m| match m {
            Some(manager) => Ok(manager.activity()?),
            None => Ok(Status::LeaseExpired),
        })
    }

    /// `VALID` while the seat is held and its lease has not run out on this machine's clock;
    /// `LEASE_EXPIRED` once it was lost, ran out or was checked in.
    pub fn status(&self) -> Status {
        self.with(|m| m.map_or(Status::LeaseExpired, LeaseManager::status))
    }

    /// The current `lease+jwt` (fresh after each heartbeat); absent after `check_in`.
    pub fn token(&self) -> Option<String> {
        self.with(|m| m.map(LeaseManager::lease_token))
    }

    /// The lease id; absent after `check_in`.
    pub fn lease_id(&self) -> Option<String> {
        self.with(|m| m.map(|m| m.grant().lease_id))
    }

    /// How many heartbeats the server accepted.
    pub fn heartbeats(&self) -> u64 {
        self.with(|m| m.map_or(0, LeaseManager::heartbeats))
    }

    /// Stops heartbeating and checks in: the seat is free at once. Again: no-op.
    pub fn check_in(&self) -> Result<(), LicensingError> {
        // Taken out of the lock first: the listener may be reading `status` meanwhile.
        let manager = self.0.lock().unwrap_or_else(|e| e.into_inner()).take();
        match manager {
            Some(manager) => Ok(manager.check_in()?),
            None => Ok(()),
        }
    }
}
