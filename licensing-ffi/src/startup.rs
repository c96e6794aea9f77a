//! `lic_license_store` and `lic_licensing`: the stored license and the startup check with the
//! clock guard (core `LicenseStore`, `Licensing`).

use std::ffi::c_char;

use licensing_core::store::{LicenseStore, Scope, StoreError};
use licensing_core::{Context, Licensing, Status, unix_now};

use crate::abi::{
    Failure, LastError, arg, c_str, copy_last_error, free_handle, guard, guard_free, guard_value,
    handle, lic_result, new_handle, optional_out, out, owned_string, text,
};
use crate::fingerprint::{fingerprint_handle, lic_fingerprint};
use crate::keys::lic_trust_store;
use crate::verify::{lic_context, lic_verdict};

/// Whose data directory holds a license store (`lic_license_store_for_app`).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum lic_scope {
    /// The user's data directory (`~/.local/share/<app>`, `~/Library/Application Support/<id>`,
    /// `%APPDATA%\<org>\<app>\data`).
    LIC_SCOPE_USER = 0,
    /// The machine-wide directory (`/var/lib/<app>`, `/Library/Application Support/<id>`,
    /// `%ProgramData%\<org>\<app>`); writing it usually needs an installer with privileges.
    LIC_SCOPE_MACHINE = 1,
}

/// A directory holding one app's license token and clock-guard state. Owned by the caller: free
/// with `lic_license_store_free`. Thread-safe; several processes may use the same directory
/// (the files are written atomically under a lock file).
pub struct lic_license_store {
    store: LicenseStore,
    last_error: LastError,
}

/// An app's licensing: trust store, product, license store, the features/version it asks about,
/// and this machine. Thread-safe: share it freely (calls on one store are serialized by its
/// lock file). Owned by the caller: free with `lic_licensing_free`.
pub struct lic_licensing {
    pub(crate) licensing: Licensing,
    pub(crate) not_before_leeway: i64,
    last_error: LastError,
}

handle!(lic_license_store, lic_licensing);

fn store_failure(error: StoreError) -> Failure {
    Failure::new(lic_result::LIC_STORE_ERROR, error.to_string())
}

fn store_handle(store: LicenseStore) -> *mut lic_license_store {
    new_handle(lic_license_store {
        store,
        last_error: LastError::default(),
    })
}

/// Opens (creating it if missing) a license store in the directory `dir`, in `*out_store`.
/// `LIC_STORE_ERROR` when the directory cannot be created (the reason in `lic_last_error`).
///
/// # Safety
/// `dir` is NULL or a NUL-terminated string; `out_store` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_license_store_open(
    dir: *const c_char,
    out_store: *mut *mut lic_license_store,
) -> lic_result {
    guard_free(|| {
        // SAFETY: per this function's contract.
        let dir = unsafe { c_str(dir, "dir") }?;
        let out_store = out(out_store, "out_store")?;
        let store = LicenseStore::at(dir).map_err(store_failure)?;
        out_store.write(store_handle(store));
        Ok(())
    })
}

/// Opens (creating it if missing) the platform's license store for an app, in `*out_store`:
/// `qualifier`, `organization`, `application` name the app as the platform's conventions want
/// them (e.g. `"com"`, `"Example"`, `"CAD"`); `scope` is a `lic_scope`. `LIC_INVALID_ARGUMENT`
/// for an unknown scope; `LIC_STORE_ERROR` when there is no data directory or it cannot be
/// created (the reason in `lic_last_error`).
///
/// # Safety
/// `qualifier`, `organization`, `application` are NULL or NUL-terminated strings; `out_store`
/// is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_license_store_for_app(
    qualifier: *const c_char,
    organization: *const c_char,
    application: *const c_char,
    scope: u32,
    out_store: *mut *mut lic_license_store,
) -> lic_result {
    guard_free(|| {
        // SAFETY: per this function's contract.
        let qualifier = unsafe { c_str(qualifier, "qualifier") }?;
        // SAFETY: per this function's contract.
        let organization = unsafe { c_str(organization, "organization") }?;
        // SAFETY: per this function's contract.
        let application = unsafe { c_str(application, "application") }?;
        let scope = match scope {
            s if s == lic_scope::LIC_SCOPE_USER as u32 => Scope::User,
            s if s == lic_scope::LIC_SCOPE_MACHINE as u32 => Scope::Machine,
            other => {
                return Err(Failure::new(
                    lic_result::LIC_INVALID_ARGUMENT,
                    format!("scope {other} is not a lic_scope"),
                ));
            }
        };
        let out_store = out(out_store, "out_store")?;
        let store = LicenseStore::for_app(qualifier, organization, application, scope)
            .map_err(store_failure)?;
        out_store.write(store_handle(store));
        Ok(())
    })
}

/// Writes the store's directory to `*out_dir`, a new string to free with `lic_string_free`
/// (characters that are not UTF-8 are replaced by U+FFFD).
///
/// # Safety
/// `store` is NULL or a live store; `out_dir` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_license_store_dir(
    store: *const lic_license_store,
    out_dir: *mut *mut c_char,
) -> lic_result {
    guard(store, || {
        // SAFETY: per this function's contract.
        let store = unsafe { arg(store, "store") }?;
        let out_dir = out(out_dir, "out_dir")?;
        let dir = owned_string(&store.store.dir().to_string_lossy())?;
        out_dir.write(dir.into_raw());
        Ok(())
    })
}

/// Removes the stored token and clock state (deactivation). `LIC_STORE_ERROR` on I/O failure.
///
/// # Safety
/// `store` is NULL or a live store.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_license_store_clear(store: *const lic_license_store) -> lic_result {
    guard(store, || {
        // SAFETY: per this function's contract.
        let store = unsafe { arg(store, "store") }?;
        store.store.clear().map_err(store_failure)
    })
}

/// Copies the message of the most recent failed call on `store` into `buf` (see
/// `lic_last_error` for the buffer protocol).
///
/// # Safety
/// `store` is NULL or a live store; `buf` is NULL or writable for `len` bytes; `out_len` is
/// NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_license_store_last_error(
    store: *const lic_license_store,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> lic_result {
    // SAFETY: per this function's contract.
    unsafe { copy_last_error(store, buf, len, out_len) }
}

/// Frees a license store handle (the files stay). NULL is a no-op; freeing twice is undefined
/// behaviour. Licensing handles made from it keep their own copy.
///
/// # Safety
/// `store` is NULL or a store not freed before and not in use by another thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_license_store_free(store: *mut lic_license_store) {
    guard_value((), || {
        // SAFETY: per this function's contract.
        unsafe { free_handle(store) }
    })
}

/// Creates an app's licensing in `*out_licensing`: a copy of `trust_store`, `product_id`, a
/// copy of `store`, and optionally `context` (copied; NULL for none): the version, release
/// date, features and attributes asked at every check (its now and fingerprint are ignored:
/// each check fills them in). The machine is fingerprinted from the OS, or from
/// `LICENSING_FINGERPRINT_OVERRIDE` when set; the clock may lag trusted time by one hour.
///
/// # Safety
/// `trust_store`, `store` are NULL or live handles; `context` is NULL or a live context;
/// `product_id` is NULL or a NUL-terminated string; `out_licensing` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_licensing_new(
    trust_store: *const lic_trust_store,
    product_id: *const c_char,
    store: *const lic_license_store,
    context: *const lic_context,
    out_licensing: *mut *mut lic_licensing,
) -> lic_result {
    guard_free(|| {
        // SAFETY: per this function's contract.
        let trust_store = unsafe { arg(trust_store, "trust_store") }?;
        // SAFETY: per this function's contract.
        let product_id = unsafe { c_str(product_id, "product_id") }?;
        // SAFETY: per this function's contract.
        let store = unsafe { arg(store, "store") }?;
        // SAFETY: per this function's contract.
        let context =
            unsafe { context.as_ref() }.map_or_else(Context::default, |c| c.context().clone());
        let out_licensing = out(out_licensing, "out_licensing")?;
        let not_before_leeway = context.not_before_leeway;
        let licensing =
            Licensing::new(trust_store.store().clone(), product_id, store.store.clone())
                .with_context(context);
        out_licensing.write(new_handle(lic_licensing {
            licensing,
            not_before_leeway,
            last_error: LastError::default(),
        }));
        Ok(())
    })
}

/// Installs a token (from activation or a file; `token_len` bytes of UTF-8, surrounding
/// whitespace trimmed) at `now`: it is verified first, and only a genuine token for this product
/// is stored (starting the clock guard). Writes the verdict of the token to `*out_verdict` (free
/// with `lic_verdict_free`); a token that is not genuine is a verdict, not a failed call, and is
/// not stored. When the token was genuine the verdict also holds the verified license, which
/// `lic_verdict_feature` and `lic_verdict_version` ask. `LIC_STORE_ERROR` when the store cannot
/// be written. Thread-safe.
///
/// # Safety
/// `licensing` is NULL or a live handle; `token` is NULL or readable for `token_len` bytes;
/// `out_verdict` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_licensing_install(
    licensing: *const lic_licensing,
    token: *const c_char,
    token_len: usize,
    now: i64,
    out_verdict: *mut *mut lic_verdict,
) -> lic_result {
    guard(licensing, || {
        // SAFETY: per this function's contract.
        let licensing = unsafe { arg(licensing, "licensing") }?;
        // SAFETY: per this function's contract.
        let token = unsafe { text(token, token_len, "token") }?;
        let out_verdict = out(out_verdict, "out_verdict")?;
        let (verdict, license) = licensing
            .licensing
            .install_license(token, now)
            .map_err(store_failure)?;
        out_verdict.write(new_handle(lic_verdict::new(
            verdict,
            license,
            licensing.not_before_leeway,
        )));
        Ok(())
    })
}

/// The startup check at `now` (the wall clock, seconds since the Unix epoch; see
/// `lic_unix_now`): loads the stored token, fingerprints the machine, verifies, evaluates, and
/// runs the clock-rollback guard. Writes the verdict to `*out_verdict` (free with
/// `lic_verdict_free`): `LIC_STATUS_NO_LICENSE` when none is installed,
/// `LIC_STATUS_CLOCK_TAMPERED` when the clock was set back. When the stored token was genuine
/// the verdict also holds the verified license, which `lic_verdict_feature` and
/// `lic_verdict_version` ask (they answer what the license says; act on the verdict's status
/// first). `LIC_STORE_ERROR` only when the store cannot be read or written. Thread-safe.
///
/// # Safety
/// `licensing` is NULL or a live handle; `out_verdict` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_licensing_check_at_startup(
    licensing: *const lic_licensing,
    now: i64,
    out_verdict: *mut *mut lic_verdict,
) -> lic_result {
    guard(licensing, || {
        // SAFETY: per this function's contract.
        let licensing = unsafe { arg(licensing, "licensing") }?;
        let out_verdict = out(out_verdict, "out_verdict")?;
        let (verdict, license) = licensing
            .licensing
            .check_at_startup_license(now)
            .map_err(store_failure)?;
        out_verdict.write(new_handle(lic_verdict::new(
            verdict,
            license,
            licensing.not_before_leeway,
        )));
        Ok(())
    })
}

/// The seat borrowed from a floating license (`lic_client_borrow_seat`), checked at `now` with
/// no network: writes `LIC_STATUS_VALID` while it is borrowed, `LIC_STATUS_LEASE_EXPIRED` from
/// its end on, `LIC_STATUS_LEASE_REQUIRED` when none is stored (or its token does not verify,
/// or is for another license than the one installed), `LIC_STATUS_CLOCK_TAMPERED` when the
/// clock is behind time already seen, to `*out_status`; and the lease's end (seconds since the
/// epoch; 0 when none) to `*out_expires_at` when not NULL. `LIC_STORE_ERROR` only when the
/// store cannot be read. Thread-safe.
///
/// # Safety
/// `licensing` is NULL or a live handle; `out_status` is NULL or writable; `out_expires_at` is
/// NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_licensing_check_borrowed_seat(
    licensing: *const lic_licensing,
    now: i64,
    out_status: *mut Status,
    out_expires_at: *mut i64,
) -> lic_result {
    guard(licensing, || {
        // SAFETY: per this function's contract.
        let licensing = unsafe { arg(licensing, "licensing") }?;
        let out_status = out(out_status, "out_status")?;
        let out_expires_at = optional_out(out_expires_at);
        let seat = licensing
            .licensing
            .check_borrowed_seat(now)
            .map_err(store_failure)?;
        out_status.write(seat.status);
        if let Some(out_expires_at) = out_expires_at {
            out_expires_at.write(seat.lease.map_or(0, |lease| lease.claims().exp));
        }
        Ok(())
    })
}

/// Writes this machine's fingerprint for this product (what offline activation sends) to
/// `*out_fingerprint`; free it with `lic_fingerprint_free`. Thread-safe.
///
/// # Safety
/// `licensing` is NULL or a live handle; `out_fingerprint` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_licensing_fingerprint(
    licensing: *const lic_licensing,
    out_fingerprint: *mut *mut lic_fingerprint,
) -> lic_result {
    guard(licensing, || {
        // SAFETY: per this function's contract.
        let licensing = unsafe { arg(licensing, "licensing") }?;
        let out_fingerprint = out(out_fingerprint, "out_fingerprint")?;
        out_fingerprint.write(fingerprint_handle(licensing.licensing.fingerprint()));
        Ok(())
    })
}

/// Copies the message of the most recent failed call on `licensing` into `buf` (see
/// `lic_last_error` for the buffer protocol). With several threads on one handle it is the
/// message of whichever call failed last.
///
/// # Safety
/// `licensing` is NULL or a live handle; `buf` is NULL or writable for `len` bytes; `out_len`
/// is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_licensing_last_error(
    licensing: *const lic_licensing,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> lic_result {
    // SAFETY: per this function's contract.
    unsafe { copy_last_error(licensing, buf, len, out_len) }
}

/// Frees a licensing handle. NULL is a no-op; freeing twice is undefined behaviour.
///
/// # Safety
/// `licensing` is NULL or a handle not freed before and not in use by another thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_licensing_free(licensing: *mut lic_licensing) {
    guard_value((), || {
        // SAFETY: per this function's contract.
        unsafe { free_handle(licensing) }
    })
}

/// Seconds since the Unix epoch from the system clock (0 if the clock is before 1970), for the
/// `now` arguments. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn lic_unix_now() -> i64 {
    guard_value(0, unix_now)
}
