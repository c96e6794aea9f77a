//! `lic_lease`: one seat of a floating license held by the core's `LeaseManager` — checked out,
//! heartbeated on a background thread, checked in on `lic_lease_check_in` / `lic_lease_free`,
//! its loss reported through a C callback.

use std::ffi::{CString, c_char, c_void};
use std::sync::Mutex;
use std::time::Duration;

use licensing_core::Status;
use licensing_core::online::{
    LeaseClock, LeaseClockSource, LeaseConfig, LeaseLoss, LeaseLossKind, LeaseManager, QueuePlace,
};

use crate::abi::{
    Failure, LastError, arg, c_str, copy_last_error, copy_message, free_handle, guard, guard_value,
    handle, lic_result, new_handle, out, owned_string,
};
use crate::online::{lic_client, online_failure};

/// Why a `lic_lease` lost its seat (the callback's `reason`).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum lic_lease_loss {
    /// The server refused a heartbeat: force-released by an administrator, or lapsed and
    /// possibly given to someone else (`server_code` `"lease_released"` / `"lease_not_found"`).
    LIC_LEASE_RELEASED = 1,
    /// The server refused for another reason: the license was suspended, revoked, expired
    /// (`server_code` says which).
    LIC_LEASE_REFUSED = 2,
    /// The server could not be reached before the lease ran out.
    LIC_LEASE_UNREACHABLE = 3,
    /// The server's answer did not verify.
    LIC_LEASE_INVALID = 4,
    /// The app reported no activity (`lic_lease_activity`) for the license's lease timeout
    /// (a lease from `lic_lease_check_out_while_active`): heartbeats stopped and the seat was
    /// checked in for others. The next `lic_lease_activity` takes a seat again.
    LIC_LEASE_IDLE = 5,
}

impl From<LeaseLossKind> for lic_lease_loss {
    fn from(kind: LeaseLossKind) -> Self {
        match kind {
            LeaseLossKind::Released => lic_lease_loss::LIC_LEASE_RELEASED,
            LeaseLossKind::Refused => lic_lease_loss::LIC_LEASE_REFUSED,
            LeaseLossKind::Unreachable => lic_lease_loss::LIC_LEASE_UNREACHABLE,
            LeaseLossKind::Invalid => lic_lease_loss::LIC_LEASE_INVALID,
            LeaseLossKind::Idle => lic_lease_loss::LIC_LEASE_IDLE,
        }
    }
}

/// Called once, on the library's heartbeat thread, when the seat is lost (for a lease held
/// while active: once more each time a seat taken again by `lic_lease_activity` is lost). `server_code` and
/// `detail` are NUL-terminated and valid only during the call (`server_code` is `""` when the
/// server did not refuse). Must not unwind. It may call `lic_lease_status` and the other
/// getters on the lease, also while another thread is in `lic_lease_free`. It may free the lease
/// itself only if no other thread ever frees it: a lease is freed exactly once.
pub type lic_lease_lost_fn = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        reason: lic_lease_loss,
        server_code: *const c_char,
        detail: *const c_char,
    ),
>;

/// A seat of a floating license, held while the handle lives: heartbeated on a background
/// thread, checked in by `lic_lease_check_in` or `lic_lease_free` (a process that exits without
/// either frees its seat only when the lease lapses). Thread-safe. Free with `lic_lease_free`.
pub struct lic_lease {
    manager: Mutex<Option<LeaseManager>>,
    last_error: LastError,
    /// The server's error code of the last `lic_lease_activity` (`""`: not refused).
    last_server_code: LastError,
}

handle!(lic_lease);

/// The caller's callback and its pointer, moved to the heartbeat thread.
struct Callback {
    function: unsafe extern "C" fn(*mut c_void, lic_lease_loss, *const c_char, *const c_char),
    user_data: *mut c_void,
}

// SAFETY: `lic_lease_check_out`'s contract makes `user_data` usable from the heartbeat thread.
unsafe impl Send for Callback {}
// SAFETY: as above; the library calls it from one thread, once.
unsafe impl Sync for Callback {}

impl Callback {
    fn call(&self, loss: &LeaseLoss) {
        let reason = lic_lease_loss::from(loss.kind());
        let code = loss.server_code().unwrap_or_default();
        // A NUL inside would cut the C string short; the texts never need one.
        let text = |s: &str| CString::new(s.replace('\0', "")).unwrap_or_default();
        let (code, detail) = (text(code), text(loss.detail()));
        // SAFETY: per `lic_lease_check_out`'s contract; the strings outlive the call.
        unsafe { (self.function)(self.user_data, reason, code.as_ptr(), detail.as_ptr()) }
    }
}

/// Checks out a seat of the floating license `license_key` for this installation (`client_id`,
/// stable across restarts so a lapsed user gets the seat back seamlessly) and `user`, and
/// starts heartbeating it every `heartbeat_ms` (0, or more than the server's interval: the
/// server's, a third of the license's lease timeout). Writes the lease to `*out_lease`.
/// When every seat is taken: `LIC_SERVER_ERROR`, `lic_client_last_server_code` is `"no_seats"`
/// and `lic_client_last_error` ends with the message to show ("No available licenses, please
/// contact IT"). `on_lost` (may be NULL) is called once if the seat is lost later.
///
/// # Safety
/// `client` is NULL or a live handle; `license_key`, `client_id`, `user` are NULL or
/// NUL-terminated strings; `out_lease` is NULL or writable; `user_data` stays usable from
/// another thread until the lease is freed.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn lic_lease_check_out(
    client: *const lic_client,
    license_key: *const c_char,
    client_id: *const c_char,
    user: *const c_char,
    heartbeat_ms: u32,
    on_lost: lic_lease_lost_fn,
    user_data: *mut c_void,
    out_lease: *mut *mut lic_lease,
) -> lic_result {
    guard(client, || {
        // SAFETY: per this function's contract.
        let client = unsafe { arg(client, "client") }?;
        // SAFETY: per this function's contract.
        let license_key = unsafe { c_str(license_key, "license_key") }?;
        // SAFETY: per this function's contract.
        let client_id = unsafe { c_str(client_id, "client_id") }?;
        // SAFETY: per this function's contract.
        let user = unsafe { c_str(user, "user") }?;
        let out_lease = out(out_lease, "out_lease")?;
        let config = lease_config(license_key, client_id, user, heartbeat_ms);
        let manager =
            client.run(|c| LeaseManager::check_out(c, config, lost(on_lost, user_data)))?;
        out_lease.write(held(manager));
        Ok(())
    })
}

/// A monotonic clock the app provides: milliseconds since any fixed origin, never going
/// backwards (a value lower than an earlier one counts as the earlier one). Called with
/// `user_data` from any thread, the library's heartbeat thread included. Must not unwind.
pub type lic_clock_fn = Option<unsafe extern "C" fn(user_data: *mut c_void) -> u64>;

/// The caller's clock and its pointer, and the latest time it told.
struct CClock {
    function: unsafe extern "C" fn(*mut c_void) -> u64,
    user_data: *mut c_void,
    latest: std::sync::atomic::AtomicU64,
}

// SAFETY: `lic_lease_check_out_while_active`'s contract makes `user_data` usable from any
// thread.
unsafe impl Send for CClock {}
// SAFETY: as above.
unsafe impl Sync for CClock {}

impl LeaseClock for CClock {
    fn now(&self) -> Duration {
        // SAFETY: per `lic_lease_check_out_while_active`'s contract.
        let told = unsafe { (self.function)(self.user_data) };
        let latest = self
            .latest
            .fetch_max(told, std::sync::atomic::Ordering::SeqCst)
            .max(told);
        Duration::from_millis(latest)
    }
}

/// Like `lic_lease_check_out`, but the seat is held only while the app is in use: the app
/// reports each user action with `lic_lease_activity` (the check-out counts as one); with no
/// activity for the license's lease timeout (the 5 to 60 minutes its administrator set),
/// heartbeats stop, the seat is checked in for others and `on_lost` is called with
/// `LIC_LEASE_IDLE`. The next `lic_lease_activity` takes a seat again without a new login.
/// `clock` (may be NULL: the system's monotonic clock) measures the time (tests inject one);
/// it is called with `user_data`.
///
/// # Safety
/// As `lic_lease_check_out`; `clock` is NULL or callable with `user_data` from any thread
/// until the lease is freed.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn lic_lease_check_out_while_active(
    client: *const lic_client,
    license_key: *const c_char,
    client_id: *const c_char,
    user: *const c_char,
    heartbeat_ms: u32,
    clock: lic_clock_fn,
    on_lost: lic_lease_lost_fn,
    user_data: *mut c_void,
    out_lease: *mut *mut lic_lease,
) -> lic_result {
    guard(client, || {
        // SAFETY: per this function's contract.
        let client = unsafe { arg(client, "client") }?;
        // SAFETY: per this function's contract.
        let license_key = unsafe { c_str(license_key, "license_key") }?;
        // SAFETY: per this function's contract.
        let client_id = unsafe { c_str(client_id, "client_id") }?;
        // SAFETY: per this function's contract.
        let user = unsafe { c_str(user, "user") }?;
        let out_lease = out(out_lease, "out_lease")?;
        let mut config = lease_config(license_key, client_id, user, heartbeat_ms);
        config.release_when_idle = true;
        if let Some(function) = clock {
            config.clock = LeaseClockSource::custom(std::sync::Arc::new(CClock {
                function,
                user_data,
                latest: std::sync::atomic::AtomicU64::new(0),
            }));
        }
        let manager =
            client.run(|c| LeaseManager::check_out(c, config, lost(on_lost, user_data)))?;
        out_lease.write(held(manager));
        Ok(())
    })
}

/// Tells the lease the app is in use: call it on each user action (a key press, a click, a
/// command); it is cheap while the seat is held. Writes the lease's status to `*out_status`:
/// `LIC_STATUS_VALID` while (or once again) the seat is held. For a lease from
/// `lic_lease_check_out_while_active` whose seat was checked in while idle
/// (`LIC_LEASE_IDLE`), this call takes a seat again, without a new login, on the calling
/// thread (a check-out with a fresh request id, up to the client's deadline). When every seat
/// is taken: `LIC_SERVER_ERROR`, `lic_lease_last_server_code` is `"no_seats"` and
/// `lic_lease_last_error` ends with the message to show ("No available licenses, please
/// contact IT"); the calls within the next 15 seconds answer the same without asking the
/// server. A seat lost otherwise (force-released, refused, unreachable: reported to `on_lost`)
/// is not taken again: `LIC_STATUS_LEASE_EXPIRED` (check out a new one). `LIC_CHECKED_IN` after
/// `lic_lease_check_in`.
///
/// # Safety
/// `lease` is NULL or a live handle; `out_status` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_lease_activity(
    lease: *const lic_lease,
    out_status: *mut Status,
) -> lic_result {
    guard(lease, || {
        // SAFETY: per this function's contract.
        let lease = unsafe { arg(lease, "lease") }?;
        let out_status = out(out_status, "out_status")?;
        let result = lease
            .with(|m| m.map(LeaseManager::activity))
            .ok_or_else(checked_in)?;
        lease.last_server_code.set(
            result
                .as_ref()
                .err()
                .and_then(|e| e.server_code())
                .unwrap_or_default(),
        );
        let status = result.map_err(|e| online_failure(&e))?;
        out_status.write(status);
        Ok(())
    })
}

/// Copies the server's error code from the most recent `lic_lease_activity` on `lease` (e.g.
/// `"no_seats"`) into `buf` (buffer protocol of `lic_last_error`); `""` when that call was not
/// refused by the server.
///
/// # Safety
/// `lease` is NULL or a live handle; `buf` is NULL or writable for `len` bytes; `out_len` is
/// NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_lease_last_server_code(
    lease: *const lic_lease,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> lic_result {
    // SAFETY: per this function's contract.
    let Some(lease) = (unsafe { lease.as_ref() }) else {
        return lic_result::LIC_NULL_ARGUMENT;
    };
    let code = guard_value(None, || Some(lease.last_server_code.get()));
    match code {
        // SAFETY: per this function's contract.
        Some(code) => unsafe { copy_message(&code, buf, len, out_len) },
        None => lic_result::LIC_PANIC,
    }
}

/// Called on the calling thread with each place in a floating license's wait line while
/// `lic_lease_check_out_waiting` waits: `position` (1 for the head of the line) of `waiting`,
/// and `message`, the server's text to show meanwhile (NUL-terminated, valid only during the
/// call). Returns `true` to go on waiting, `false` to stop (the place is given up). Must not
/// unwind.
pub type lic_queue_place_fn = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        position: u64,
        waiting: u64,
        message: *const c_char,
    ) -> bool,
>;

/// Like `lic_lease_check_out`, but when no seat is free and the license has a wait line,
/// waits in line for up to `wait_seconds` (at least 1): the calling thread asks the server
/// again every few seconds and calls `on_place` (may be NULL) with each place in line; the
/// seat goes to whoever waits first. Writes the lease to `*out_lease` once a seat is free for
/// this client. When the wait is over, or the license has no line: `LIC_SERVER_ERROR` with
/// `lic_client_last_server_code` `"no_seats"`, as `lic_lease_check_out`. `LIC_STOPPED` when
/// `on_place` returned false (the place is given up). Blocks for up to the wait: not for a UI
/// thread. `user_data` goes to both callbacks.
///
/// # Safety
/// As `lic_lease_check_out`; `on_place` is NULL or callable on the calling thread with
/// `user_data` during the call.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn lic_lease_check_out_waiting(
    client: *const lic_client,
    license_key: *const c_char,
    client_id: *const c_char,
    user: *const c_char,
    heartbeat_ms: u32,
    wait_seconds: u32,
    on_place: lic_queue_place_fn,
    on_lost: lic_lease_lost_fn,
    user_data: *mut c_void,
    out_lease: *mut *mut lic_lease,
) -> lic_result {
    guard(client, || {
        // SAFETY: per this function's contract.
        let client = unsafe { arg(client, "client") }?;
        // SAFETY: per this function's contract.
        let license_key = unsafe { c_str(license_key, "license_key") }?;
        // SAFETY: per this function's contract.
        let client_id = unsafe { c_str(client_id, "client_id") }?;
        // SAFETY: per this function's contract.
        let user = unsafe { c_str(user, "user") }?;
        let out_lease = out(out_lease, "out_lease")?;
        if wait_seconds == 0 {
            return Err(Failure::new(
                lic_result::LIC_INVALID_ARGUMENT,
                "`wait_seconds` must be at least 1",
            ));
        }
        let config = lease_config(license_key, client_id, user, heartbeat_ms);
        let mut on_place = |place: &QueuePlace| match on_place {
            None => true,
            Some(function) => {
                let message = CString::new(place.message.replace('\0', "")).unwrap_or_default();
                // SAFETY: per this function's contract; the message outlives the call.
                unsafe { function(user_data, place.position, place.waiting, message.as_ptr()) }
            }
        };
        let manager = client.run(|c| {
            LeaseManager::check_out_waiting(
                c,
                config,
                Duration::from_secs(u64::from(wait_seconds)),
                &mut on_place,
                lost(on_lost, user_data),
            )
        })?;
        let manager = manager.ok_or_else(|| {
            Failure::new(
                lic_result::LIC_STOPPED,
                "stopped waiting in line for a seat",
            )
        })?;
        out_lease.write(held(manager));
        Ok(())
    })
}

/// The core's loss callback calling the C one, if any, with `user_data`.
fn lost(
    on_lost: lic_lease_lost_fn,
    user_data: *mut c_void,
) -> licensing_core::online::LeaseCallback {
    let callback = on_lost.map(|function| Callback {
        function,
        user_data,
    });
    Box::new(move |loss| {
        if let Some(callback) = &callback {
            callback.call(loss);
        }
    })
}

/// A new handle holding the seat of `manager`.
fn held(manager: LeaseManager) -> *mut lic_lease {
    new_handle(lic_lease {
        manager: Mutex::new(Some(manager)),
        last_error: LastError::default(),
        last_server_code: LastError::default(),
    })
}

/// The lease configuration of the C calls: `heartbeat_ms` 0 for the server's interval.
fn lease_config(license_key: &str, client_id: &str, user: &str, heartbeat_ms: u32) -> LeaseConfig {
    LeaseConfig {
        heartbeat_interval: (heartbeat_ms > 0)
            .then(|| Duration::from_millis(u64::from(heartbeat_ms))),
        ..LeaseConfig::new(license_key, client_id, user)
    }
}

impl lic_lease {
    fn with<T>(&self, body: impl FnOnce(Option<&LeaseManager>) -> T) -> T {
        let manager = self.manager.lock().unwrap_or_else(|e| e.into_inner());
        body(manager.as_ref())
    }
}

/// `LIC_STATUS_VALID` while the seat is held and its lease has not run out on this machine's
/// clock; `LIC_STATUS_LEASE_EXPIRED` once it was lost, ran out or was checked in.
/// `LIC_STATUS_LEASE_REQUIRED` for a NULL lease.
///
/// # Safety
/// `lease` is NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_lease_status(lease: *const lic_lease) -> Status {
    guard_value(Status::LeaseRequired, || {
        // SAFETY: per this function's contract.
        match unsafe { lease.as_ref() } {
            None => Status::LeaseRequired,
            Some(lease) => lease.with(|m| m.map_or(Status::LeaseExpired, LeaseManager::status)),
        }
    })
}

/// Writes the current `lease+jwt` (refreshed by each heartbeat) to `*out_token` (free with
/// `lic_string_free`). `LIC_CHECKED_IN` after `lic_lease_check_in`.
///
/// # Safety
/// `lease` is NULL or a live handle; `out_token` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_lease_token(
    lease: *const lic_lease,
    out_token: *mut *mut c_char,
) -> lic_result {
    guard(lease, || {
        // SAFETY: per this function's contract.
        let lease = unsafe { arg(lease, "lease") }?;
        let out_token = out(out_token, "out_token")?;
        let token = lease
            .with(|m| m.map(LeaseManager::lease_token))
            .ok_or_else(checked_in)?;
        out_token.write(owned_string(&token)?.into_raw());
        Ok(())
    })
}

/// Writes how many heartbeats the server accepted so far to `*out_count`.
///
/// # Safety
/// `lease` is NULL or a live handle; `out_count` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_lease_heartbeats(
    lease: *const lic_lease,
    out_count: *mut u64,
) -> lic_result {
    guard(lease, || {
        // SAFETY: per this function's contract.
        let lease = unsafe { arg(lease, "lease") }?;
        let out_count = out(out_count, "out_count")?;
        out_count.write(lease.with(|m| m.map_or(0, LeaseManager::heartbeats)));
        Ok(())
    })
}

/// Stops heartbeating and checks the lease in: the seat is free at once (a seat already lost
/// is not checked in again). The handle stays valid (status `LIC_STATUS_LEASE_EXPIRED`) until
/// `lic_lease_free`. Network and server errors as `lic_client_validate` (the seat then lapses
/// by itself); `LIC_CHECKED_IN` when already checked in.
///
/// # Safety
/// `lease` is NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_lease_check_in(lease: *const lic_lease) -> lic_result {
    guard(lease, || {
        // SAFETY: per this function's contract.
        let lease = unsafe { arg(lease, "lease") }?;
        let manager = lease
            .manager
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .ok_or_else(checked_in)?;
        manager.check_in().map_err(|e| online_failure(&e))
    })
}

fn checked_in() -> Failure {
    Failure::new(
        lic_result::LIC_CHECKED_IN,
        "the lease was checked in already",
    )
}

/// Copies the message of the most recent failed call on `lease` into `buf` (buffer protocol
/// of `lic_last_error`).
///
/// # Safety
/// `lease` is NULL or a live handle; `buf` is NULL or writable for `len` bytes; `out_len` is
/// NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_lease_last_error(
    lease: *const lic_lease,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> lic_result {
    // SAFETY: per this function's contract.
    unsafe { copy_last_error(lease, buf, len, out_len) }
}

/// Frees a lease, checking it in first if it is still held (best effort, within the client's
/// deadline). NULL is a no-op; freeing twice is undefined behaviour.
///
/// # Safety
/// `lease` is NULL or a handle not freed before and not in use by another thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_lease_free(lease: *mut lic_lease) {
    guard_value((), || {
        // The manager is taken out and dropped (which checks in and waits for the heartbeat
        // thread) while the handle is only shared: a loss callback running meanwhile may still
        // read the lease (`lic_lease_status` sees it checked in). Only then is the box freed.
        // SAFETY: per this function's contract.
        if let Some(shared) = unsafe { lease.as_ref() } {
            let manager = shared
                .manager
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            drop(manager);
        }
        // SAFETY: per this function's contract; nothing borrows the handle any more.
        unsafe { free_handle(lease) }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn loss_reasons_are_stable() {
        use lic_lease_loss::*;
        let numbers = [
            LIC_LEASE_RELEASED,
            LIC_LEASE_REFUSED,
            LIC_LEASE_UNREACHABLE,
            LIC_LEASE_INVALID,
            LIC_LEASE_IDLE,
        ]
        .map(|reason| reason as u32);
        assert_eq!(numbers, [1, 2, 3, 4, 5]);
    }

    /// The app's clock in milliseconds; a value lower than an earlier one counts as the
    /// earlier one.
    #[test]
    fn an_injected_clock_never_goes_backwards() {
        unsafe extern "C" fn told(user_data: *mut c_void) -> u64 {
            // SAFETY: the test passes a live AtomicU64.
            let ms = unsafe { &*user_data.cast::<std::sync::atomic::AtomicU64>() };
            ms.load(std::sync::atomic::Ordering::SeqCst)
        }
        let ms = std::sync::atomic::AtomicU64::new(5_000);
        let clock = CClock {
            function: told,
            user_data: std::ptr::from_ref(&ms).cast_mut().cast(),
            latest: std::sync::atomic::AtomicU64::new(0),
        };
        assert_eq!(clock.now(), Duration::from_secs(5));
        ms.store(2_000, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(clock.now(), Duration::from_secs(5));
        ms.store(7_500, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(clock.now(), Duration::from_millis(7_500));
    }
}

#[cfg(test)]
mod loss_tests {
    use super::*;

    /// `lic_lease_loss` is the C copy of the core's `LeaseLossKind` (cbindgen cannot derive
    /// its variant names): the same number for each class.
    #[test]
    fn every_core_loss_class_has_its_c_value() {
        for kind in LeaseLossKind::ALL {
            assert_eq!(lic_lease_loss::from(kind) as u32, kind as u32, "{kind:?}");
        }
        let header = include_str!("../../include/licensing.h");
        for (name, number) in [
            ("LIC_LEASE_RELEASED", 1),
            ("LIC_LEASE_REFUSED", 2),
            ("LIC_LEASE_UNREACHABLE", 3),
            ("LIC_LEASE_INVALID", 4),
            ("LIC_LEASE_IDLE", 5),
        ] {
            assert!(header.contains(&format!("{name} = {number},")), "{name}");
        }
    }
}
