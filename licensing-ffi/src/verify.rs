//! `lic_context`, `lic_verifier`, `lic_verdict`, `lic_feature`: verifying a token and reading the
//! verdict (core `Context`, `Verifier`, `License`, `Verdict`, `FeatureVerdict`).

use std::ffi::c_char;

use licensing_core::{Context, FeatureVerdict, License, LicenseModel, Status, Verdict, Verifier};

use crate::abi::{
    Failure, LastError, Out, arg, arg_mut, c_str, copy_last_error, free_handle, guard, guard_value,
    handle, lic_result, new_handle, optional_c_str, optional_out, out, owned_string, text,
    write_optional, write_optional_string,
};
use crate::fingerprint::lic_fingerprint;
use crate::keys::lic_trust_store;

/// What the running app knows about itself: now, its version and release date, the features it
/// asks about, site attributes, this machine's fingerprint. Owned by the caller: free with
/// `lic_context_free`. Setters mutate it (one thread at a time); checks only read it, so a
/// context no longer being changed may be used by several threads at once.
pub struct lic_context {
    context: Context,
    last_error: LastError,
}

/// Verifies tokens for one product against a copy of a trust store. Immutable: thread-safe,
/// share it freely. Free with `lic_verifier_free` once no thread uses it.
pub struct lic_verifier {
    verifier: Verifier,
    last_error: LastError,
}

/// The result of a check: a status, its reason and what the license says. Immutable:
/// thread-safe. Owned by the caller: free with `lic_verdict_free`. When the token was genuine
/// (`lic_verifier_check`, `lic_licensing_install`, `lic_licensing_check_at_startup`), it also
/// holds the verified license, which `lic_verdict_feature` and `lic_verdict_version` ask.
pub struct lic_verdict {
    verdict: Verdict,
    license: Option<License>,
    not_before_leeway: i64,
    last_error: LastError,
}

/// The answer for one feature. Immutable: thread-safe. Owned by the caller: free with
/// `lic_feature_free`.
pub struct lic_feature {
    feature: FeatureVerdict,
    last_error: LastError,
}

handle!(lic_context, lic_verifier, lic_verdict, lic_feature);

impl lic_verdict {
    pub(crate) fn new(verdict: Verdict, license: Option<License>, not_before_leeway: i64) -> Self {
        lic_verdict {
            verdict,
            license,
            not_before_leeway,
            last_error: LastError::default(),
        }
    }
}

impl lic_context {
    pub(crate) fn context(&self) -> &Context {
        &self.context
    }
}

fn feature_handle(feature: FeatureVerdict) -> *mut lic_feature {
    new_handle(lic_feature {
        feature,
        last_error: LastError::default(),
    })
}

// ---------------------------------------------------------------------------------------------
// lic_context

/// Creates a context at `now` (seconds since the Unix epoch, from the app's clock or a trusted
/// time) with nothing else set, in `*out_context`.
///
/// # Safety
/// `out_context` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_context_new(
    now: i64,
    out_context: *mut *mut lic_context,
) -> lic_result {
    crate::abi::guard_free(|| {
        out(out_context, "out_context")?.write(new_handle(lic_context {
            context: Context::at(now),
            last_error: LastError::default(),
        }));
        Ok(())
    })
}

/// Sets now (seconds since the Unix epoch).
///
/// # Safety
/// `context` is NULL or a live context not used by another thread during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_context_set_now(context: *mut lic_context, now: i64) -> lic_result {
    guard(context, || {
        // SAFETY: per this function's contract.
        unsafe { arg_mut(context, "context") }?.context.now = now;
        Ok(())
    })
}

/// Sets how many seconds `nbf` may lie in the future to tolerate clock skew (default 0).
///
/// # Safety
/// `context` is NULL or a live context not used by another thread during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_context_set_not_before_leeway(
    context: *mut lic_context,
    seconds: i64,
) -> lic_result {
    guard(context, || {
        // SAFETY: per this function's contract.
        unsafe { arg_mut(context, "context") }?
            .context
            .not_before_leeway = seconds;
        Ok(())
    })
}

/// Sets the running app's version (semver, e.g. `"2.4.0"`), checked against the license's
/// version requirement; NULL clears it. `LIC_INVALID_ARGUMENT` when it is not semver (the
/// context is then unchanged).
///
/// # Safety
/// `context` is NULL or a live context not used by another thread during the call; `version`
/// is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_context_set_version(
    context: *mut lic_context,
    version: *const c_char,
) -> lic_result {
    guard(context, || {
        // SAFETY: per this function's contract.
        let context = unsafe { arg_mut(context, "context") }?;
        // SAFETY: per this function's contract.
        let version = unsafe { optional_c_str(version, "version") }?
            .map(parse_version)
            .transpose()?;
        context.context.app_version = version;
        Ok(())
    })
}

/// The core's version rule (strict semver, nothing trimmed); a refusal is
/// `LIC_INVALID_ARGUMENT`.
fn parse_version(text: &str) -> Result<semver::Version, Failure> {
    licensing_core::parse_version(text)
        .map_err(|e| Failure::new(lic_result::LIC_INVALID_ARGUMENT, e.to_string()))
}

/// Sets (`has_release_date` true) or clears (false; `release_date` is then ignored) the running
/// version's release date, seconds since the Unix epoch, checked against the license's
/// maintenance window.
///
/// # Safety
/// `context` is NULL or a live context not used by another thread during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_context_set_release_date(
    context: *mut lic_context,
    has_release_date: bool,
    release_date: i64,
) -> lic_result {
    guard(context, || {
        // SAFETY: per this function's contract.
        unsafe { arg_mut(context, "context") }?.context.release_date =
            has_release_date.then_some(release_date);
        Ok(())
    })
}

/// Adds a feature to ask about; the verdict holds one answer per feature, in the order added.
///
/// # Safety
/// `context` is NULL or a live context not used by another thread during the call; `name` is
/// NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_context_add_feature(
    context: *mut lic_context,
    name: *const c_char,
) -> lic_result {
    guard(context, || {
        // SAFETY: per this function's contract.
        let context = unsafe { arg_mut(context, "context") }?;
        // SAFETY: per this function's contract.
        let name = unsafe { c_str(name, "name") }?;
        context.context.features.push(name.to_owned());
        Ok(())
    })
}

/// Sets a context attribute checked against site restrictions (e.g. `"country"` = `"DE"`);
/// setting a name again replaces its value.
///
/// # Safety
/// `context` is NULL or a live context not used by another thread during the call; `name` and
/// `value` are NULL or NUL-terminated strings.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_context_add_attribute(
    context: *mut lic_context,
    name: *const c_char,
    value: *const c_char,
) -> lic_result {
    guard(context, || {
        // SAFETY: per this function's contract.
        let context = unsafe { arg_mut(context, "context") }?;
        // SAFETY: per this function's contract.
        let name = unsafe { c_str(name, "name") }?;
        // SAFETY: per this function's contract.
        let value = unsafe { c_str(value, "value") }?;
        context
            .context
            .attributes
            .insert(name.to_owned(), value.to_owned());
        Ok(())
    })
}

/// Sets this machine's fingerprint (copied; node-locked licenses need it); NULL clears it.
///
/// # Safety
/// `context` is NULL or a live context not used by another thread during the call;
/// `fingerprint` is NULL or a live fingerprint.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_context_set_fingerprint(
    context: *mut lic_context,
    fingerprint: *const lic_fingerprint,
) -> lic_result {
    guard(context, || {
        // SAFETY: per this function's contract.
        let context = unsafe { arg_mut(context, "context") }?;
        // SAFETY: per this function's contract.
        let fingerprint = unsafe { fingerprint.as_ref() };
        context.context.fingerprint = fingerprint.map(|f| f.fingerprint().clone());
        Ok(())
    })
}

/// Copies the message of the most recent failed call on `context` into `buf` (see
/// `lic_last_error` for the buffer protocol).
///
/// # Safety
/// `context` is NULL or a live context; `buf` is NULL or writable for `len` bytes; `out_len`
/// is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_context_last_error(
    context: *const lic_context,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> lic_result {
    // SAFETY: per this function's contract.
    unsafe { copy_last_error(context, buf, len, out_len) }
}

/// Frees a context. NULL is a no-op; freeing twice is undefined behaviour.
///
/// # Safety
/// `context` is NULL or a context not freed before and not in use by another thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_context_free(context: *mut lic_context) {
    guard_value((), || {
        // SAFETY: per this function's contract.
        unsafe { free_handle(context) }
    })
}

// ---------------------------------------------------------------------------------------------
// lic_verifier

/// Creates a verifier for `product_id` with a copy of `trust_store`, in `*out_verifier`: tokens
/// whose audience does not name the product are refused (`LIC_STATUS_PRODUCT_MISMATCH`).
///
/// # Safety
/// `trust_store` is NULL or a live trust store; `product_id` is NULL or a NUL-terminated
/// string; `out_verifier` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_verifier_new(
    trust_store: *const lic_trust_store,
    product_id: *const c_char,
    out_verifier: *mut *mut lic_verifier,
) -> lic_result {
    crate::abi::guard_free(|| {
        // SAFETY: per this function's contract.
        let trust_store = unsafe { arg(trust_store, "trust_store") }?;
        // SAFETY: per this function's contract.
        let product_id = unsafe { c_str(product_id, "product_id") }?;
        let out_verifier = out(out_verifier, "out_verifier")?;
        out_verifier.write(new_handle(lic_verifier {
            verifier: Verifier::new(trust_store.store().clone(), product_id),
            last_error: LastError::default(),
        }));
        Ok(())
    })
}

/// Verifies `token` (`token_len` bytes of UTF-8, no NUL needed; surrounding whitespace is not
/// trimmed) and evaluates it against `context`, writing a new verdict to `*out_verdict`.
///
/// A token that is not genuine, not a license, or for another product is not a failed call:
/// the call returns `LIC_OK` and the verdict's status says why. The call fails only on its
/// arguments (`LIC_NULL_ARGUMENT`, `LIC_INVALID_UTF8`, `LIC_INVALID_ARGUMENT` for a
/// `token_len` over `PTRDIFF_MAX`). Thread-safe: any number of threads may
/// check with the same verifier (and the same context, if no thread changes it).
///
/// # Safety
/// `verifier` and `context` are NULL or live handles; `token` is NULL or readable for
/// `token_len` bytes; `out_verdict` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_verifier_check(
    verifier: *const lic_verifier,
    token: *const c_char,
    token_len: usize,
    context: *const lic_context,
    out_verdict: *mut *mut lic_verdict,
) -> lic_result {
    guard(verifier, || {
        // SAFETY: per this function's contract.
        let verifier = unsafe { arg(verifier, "verifier") }?;
        // SAFETY: per this function's contract.
        let token = unsafe { text(token, token_len, "token") }?;
        // SAFETY: per this function's contract.
        let context = unsafe { arg(context, "context") }?.context();
        let out_verdict = out(out_verdict, "out_verdict")?;
        let (verdict, license) = verifier.verifier.check_license(token, context);
        out_verdict.write(new_handle(lic_verdict::new(
            verdict,
            license,
            context.not_before_leeway,
        )));
        Ok(())
    })
}

/// Copies the message of the most recent failed call on `verifier` into `buf` (see
/// `lic_last_error` for the buffer protocol).
///
/// # Safety
/// `verifier` is NULL or a live verifier; `buf` is NULL or writable for `len` bytes; `out_len`
/// is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_verifier_last_error(
    verifier: *const lic_verifier,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> lic_result {
    // SAFETY: per this function's contract.
    unsafe { copy_last_error(verifier, buf, len, out_len) }
}

/// Frees a verifier. NULL is a no-op; freeing twice is undefined behaviour.
///
/// # Safety
/// `verifier` is NULL or a verifier not freed before and not in use by another thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_verifier_free(verifier: *mut lic_verifier) {
    guard_value((), || {
        // SAFETY: per this function's contract.
        unsafe { free_handle(verifier) }
    })
}

// ---------------------------------------------------------------------------------------------
// lic_verdict

/// Runs a verdict getter: checks the handle, then `body` writes the out-parameters.
///
/// # Safety
/// `verdict` is NULL or a live verdict.
unsafe fn verdict_get(
    verdict: *const lic_verdict,
    body: impl FnOnce(&lic_verdict) -> Result<(), Failure>,
) -> lic_result {
    guard(verdict, || {
        // SAFETY: per this function's contract.
        let verdict = unsafe { arg(verdict, "verdict") }?;
        body(verdict)
    })
}

/// Writes the verdict's status to `*out_status`: the one value a host acts on.
///
/// # Safety
/// `verdict` is NULL or a live verdict; `out_status` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_verdict_status(
    verdict: *const lic_verdict,
    out_status: *mut Status,
) -> lic_result {
    // SAFETY: per this function's contract.
    unsafe {
        verdict_get(verdict, |v| {
            out(out_status, "out_status")?.write(v.verdict.status);
            Ok(())
        })
    }
}

/// Whether the software may run (status `LIC_STATUS_VALID` or `LIC_STATUS_VALID_IN_GRACE`).
/// False for NULL.
///
/// # Safety
/// `verdict` is NULL or a live verdict.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_verdict_is_usable(verdict: *const lic_verdict) -> bool {
    guard_value(false, || {
        // SAFETY: per this function's contract.
        unsafe { verdict.as_ref() }.is_some_and(|v| v.verdict.is_usable())
    })
}

/// Writes the human-readable reason (safe to show or log, no secrets) to `*out_reason`, a new
/// string to free with `lic_string_free`.
///
/// # Safety
/// `verdict` is NULL or a live verdict; `out_reason` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_verdict_reason(
    verdict: *const lic_verdict,
    out_reason: *mut *mut c_char,
) -> lic_result {
    // SAFETY: per this function's contract.
    unsafe {
        verdict_get(verdict, |v| {
            let out_reason = out(out_reason, "out_reason")?;
            out_reason.write(owned_string(&v.verdict.reason)?.into_raw());
            Ok(())
        })
    }
}

/// Writes the license id (`sub`) to `*out_license_id`, a new string to free with
/// `lic_string_free`, or NULL when the token was not genuine.
///
/// # Safety
/// `verdict` is NULL or a live verdict; `out_license_id` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_verdict_license_id(
    verdict: *const lic_verdict,
    out_license_id: *mut *mut c_char,
) -> lic_result {
    // SAFETY: per this function's contract.
    unsafe {
        verdict_get(verdict, |v| {
            let target = out(out_license_id, "out_license_id")?;
            write_optional_string(target, v.verdict.license_id.as_deref())
        })
    }
}

/// Writes the customer's display name to `*out_customer`, a new string to free with
/// `lic_string_free`, or NULL when the license names none (or the token was not genuine).
///
/// # Safety
/// `verdict` is NULL or a live verdict; `out_customer` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_verdict_customer(
    verdict: *const lic_verdict,
    out_customer: *mut *mut c_char,
) -> lic_result {
    // SAFETY: per this function's contract.
    unsafe {
        verdict_get(verdict, |v| {
            let target = out(out_customer, "out_customer")?;
            write_optional_string(target, v.verdict.customer.as_deref())
        })
    }
}

/// Writes whether the verdict names a model to `*out_has_model` and the model to `*out_model`
/// (`LIC_MODEL_PERPETUAL`, i.e. 0, when it has none: the token was not genuine).
///
/// # Safety
/// `verdict` is NULL or a live verdict; the out-parameters are NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_verdict_model(
    verdict: *const lic_verdict,
    out_has_model: *mut bool,
    out_model: *mut LicenseModel,
) -> lic_result {
    // SAFETY: per this function's contract.
    unsafe {
        verdict_get(verdict, |v| {
            let has = out(out_has_model, "out_has_model")?;
            let model = out(out_model, "out_model")?;
            has.write(v.verdict.model.is_some());
            model.write(v.verdict.model.unwrap_or(LicenseModel::Perpetual));
            Ok(())
        })
    }
}

/// Writes an optional value of a feature answer as a has-value flag and the value; the twin of
/// `verdict_optional`.
///
/// # Safety
/// `feature` is NULL or a live feature; the out-parameters are NULL or writable.
unsafe fn feature_optional<T: Default>(
    feature: *const lic_feature,
    (out_has_value, has_name): (*mut bool, &str),
    (out_value, value_name): (*mut T, &str),
    pick: impl FnOnce(&FeatureVerdict) -> Option<T>,
) -> lic_result {
    // SAFETY: per this function's contract.
    unsafe {
        feature_get(feature, |f| {
            let has: Out<bool> = out(out_has_value, has_name)?;
            let value = out(out_value, value_name)?;
            write_optional(has, value, pick(f));
            Ok(())
        })
    }
}

/// Writes an optional instant or duration of the verdict.
///
/// # Safety
/// `verdict` is NULL or a live verdict.
unsafe fn verdict_optional(
    verdict: *const lic_verdict,
    out_has_value: *mut bool,
    out_value: *mut i64,
    pick: impl FnOnce(&Verdict) -> Option<i64>,
) -> lic_result {
    // SAFETY: per this function's contract.
    unsafe {
        verdict_get(verdict, |v| {
            let has: Out<bool> = out(out_has_value, "out_has_value")?;
            let value = out(out_value, "out_value")?;
            write_optional(has, value, pick(&v.verdict));
            Ok(())
        })
    }
}

/// Writes whether the license expires to `*out_has_value` and its expiry (`exp`, seconds since
/// the Unix epoch; 0 when none) to `*out_value`.
///
/// # Safety
/// `verdict` is NULL or a live verdict; the out-parameters are NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_verdict_expires_at(
    verdict: *const lic_verdict,
    out_has_value: *mut bool,
    out_value: *mut i64,
) -> lic_result {
    // SAFETY: per this function's contract.
    unsafe { verdict_optional(verdict, out_has_value, out_value, |v| v.expires_at) }
}

/// Writes whether the license has an end of grace to `*out_has_value` and it (`exp` + grace
/// period: the last usable instant; 0 when none) to `*out_value`.
///
/// # Safety
/// `verdict` is NULL or a live verdict; the out-parameters are NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_verdict_grace_ends_at(
    verdict: *const lic_verdict,
    out_has_value: *mut bool,
    out_value: *mut i64,
) -> lic_result {
    // SAFETY: per this function's contract.
    unsafe { verdict_optional(verdict, out_has_value, out_value, |v| v.grace_ends_at) }
}

/// Writes whether the license stops being usable to `*out_has_value` and the seconds until it
/// does (end of grace) to `*out_value` (0 when it never does).
///
/// # Safety
/// `verdict` is NULL or a live verdict; the out-parameters are NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_verdict_time_left(
    verdict: *const lic_verdict,
    out_has_value: *mut bool,
    out_value: *mut i64,
) -> lic_result {
    // SAFETY: per this function's contract.
    unsafe { verdict_optional(verdict, out_has_value, out_value, |v| v.time_left) }
}

/// Writes whether the license is in its grace period to `*out_has_value` and the seconds of
/// grace left to `*out_value` (0 when not in grace).
///
/// # Safety
/// `verdict` is NULL or a live verdict; the out-parameters are NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_verdict_grace_left(
    verdict: *const lic_verdict,
    out_has_value: *mut bool,
    out_value: *mut i64,
) -> lic_result {
    // SAFETY: per this function's contract.
    unsafe { verdict_optional(verdict, out_has_value, out_value, |v| v.grace_left) }
}

/// Writes the number of feature answers (one per feature added to the context, in order) to
/// `*out_count`.
///
/// # Safety
/// `verdict` is NULL or a live verdict; `out_count` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_verdict_feature_count(
    verdict: *const lic_verdict,
    out_count: *mut usize,
) -> lic_result {
    // SAFETY: per this function's contract.
    unsafe {
        verdict_get(verdict, |v| {
            out(out_count, "out_count")?.write(v.verdict.features.len());
            Ok(())
        })
    }
}

/// Writes a new copy of the answer for the feature at `index` (in the order the context asked)
/// to `*out_feature`; free it with `lic_feature_free`. `LIC_INDEX_OUT_OF_RANGE` when `index` is
/// not below the feature count.
///
/// # Safety
/// `verdict` is NULL or a live verdict; `out_feature` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_verdict_feature_at(
    verdict: *const lic_verdict,
    index: usize,
    out_feature: *mut *mut lic_feature,
) -> lic_result {
    // SAFETY: per this function's contract.
    unsafe {
        verdict_get(verdict, |v| {
            let out_feature = out(out_feature, "out_feature")?;
            let features = &v.verdict.features;
            let feature = features
                .get(index)
                .ok_or_else(|| Failure::index(index, features.len()))?;
            out_feature.write(feature_handle(feature.clone()));
            Ok(())
        })
    }
}

fn verified(verdict: &lic_verdict) -> Result<&License, Failure> {
    verdict.license.as_ref().ok_or_else(|| {
        Failure::new(
            lic_result::LIC_NOT_VERIFIED,
            "the verdict holds no verified license (see its status)",
        )
    })
}

/// Asks the verified license about any feature at `now`, whether or not the context asked
/// about it, writing a new answer to `*out_feature` (free with `lic_feature_free`).
/// `LIC_NOT_VERIFIED` when the verdict holds no verified license: the token was not genuine, or
/// (startup check) no license is installed.
///
/// # Safety
/// `verdict` is NULL or a live verdict; `name` is NULL or a NUL-terminated string;
/// `out_feature` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_verdict_feature(
    verdict: *const lic_verdict,
    name: *const c_char,
    now: i64,
    out_feature: *mut *mut lic_feature,
) -> lic_result {
    let body = |v: &lic_verdict| {
        // SAFETY: per this function's contract.
        let name = unsafe { c_str(name, "name") }?;
        let out_feature = out(out_feature, "out_feature")?;
        let feature = verified(v)?.check_feature(name, now, v.not_before_leeway);
        out_feature.write(feature_handle(feature));
        Ok(())
    };
    // SAFETY: per this function's contract.
    unsafe { verdict_get(verdict, body) }
}

/// Asks the verified license whether it covers a version: `version` (semver, or NULL for none)
/// and a release date (when `has_release_date`). Writes `LIC_STATUS_VALID` or
/// `LIC_STATUS_VERSION_NOT_ENTITLED` to `*out_status` and, when `out_reason` is not NULL, the
/// reason to `*out_reason` (a new string to free with `lic_string_free`).
/// `LIC_NOT_VERIFIED` as for `lic_verdict_feature`; `LIC_INVALID_ARGUMENT` when `version` is
/// not semver.
///
/// # Safety
/// `verdict` is NULL or a live verdict; `version` is NULL or a NUL-terminated string;
/// `out_status` is NULL or writable; `out_reason` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_verdict_version(
    verdict: *const lic_verdict,
    version: *const c_char,
    has_release_date: bool,
    release_date: i64,
    out_status: *mut Status,
    out_reason: *mut *mut c_char,
) -> lic_result {
    let body = |v: &lic_verdict| {
        // SAFETY: per this function's contract.
        let version = unsafe { optional_c_str(version, "version") }?
            .map(parse_version)
            .transpose()?;
        let out_status = out(out_status, "out_status")?;
        let out_reason = optional_out(out_reason);
        let check =
            verified(v)?.check_version(version.as_ref(), has_release_date.then_some(release_date));
        let reason = out_reason
            .as_ref()
            .map(|_| owned_string(&check.reason))
            .transpose()?;
        out_status.write(check.status);
        if let (Some(target), Some(reason)) = (out_reason, reason) {
            target.write(reason.into_raw());
        }
        Ok(())
    };
    // SAFETY: per this function's contract.
    unsafe { verdict_get(verdict, body) }
}

/// Copies the message of the most recent failed call on `verdict` into `buf` (see
/// `lic_last_error` for the buffer protocol).
///
/// # Safety
/// `verdict` is NULL or a live verdict; `buf` is NULL or writable for `len` bytes; `out_len`
/// is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_verdict_last_error(
    verdict: *const lic_verdict,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> lic_result {
    // SAFETY: per this function's contract.
    unsafe { copy_last_error(verdict, buf, len, out_len) }
}

/// Frees a verdict. NULL is a no-op; freeing twice is undefined behaviour. Features taken from
/// it are copies and stay valid.
///
/// # Safety
/// `verdict` is NULL or a verdict not freed before and not in use by another thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_verdict_free(verdict: *mut lic_verdict) {
    guard_value((), || {
        // SAFETY: per this function's contract.
        unsafe { free_handle(verdict) }
    })
}

// ---------------------------------------------------------------------------------------------
// lic_feature

/// Runs a feature getter.
///
/// # Safety
/// `feature` is NULL or a live feature.
unsafe fn feature_get(
    feature: *const lic_feature,
    body: impl FnOnce(&FeatureVerdict) -> Result<(), Failure>,
) -> lic_result {
    guard(feature, || {
        // SAFETY: per this function's contract.
        body(&unsafe { arg(feature, "feature") }?.feature)
    })
}

/// Writes the feature's name to `*out_name`, a new string to free with `lic_string_free`.
///
/// # Safety
/// `feature` is NULL or a live feature; `out_name` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_feature_name(
    feature: *const lic_feature,
    out_name: *mut *mut c_char,
) -> lic_result {
    // SAFETY: per this function's contract.
    unsafe {
        feature_get(feature, |f| {
            let out_name = out(out_name, "out_name")?;
            out_name.write(owned_string(&f.name)?.into_raw());
            Ok(())
        })
    }
}

/// Writes the feature's status to `*out_status`: `LIC_STATUS_VALID`/`LIC_STATUS_VALID_IN_GRACE`
/// when it may be used, `LIC_STATUS_FEATURE_NOT_ENTITLED`, `LIC_STATUS_FEATURE_EXPIRED`, or the
/// license's own status when the license is not usable.
///
/// # Safety
/// `feature` is NULL or a live feature; `out_status` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_feature_status(
    feature: *const lic_feature,
    out_status: *mut Status,
) -> lic_result {
    // SAFETY: per this function's contract.
    unsafe {
        feature_get(feature, |f| {
            out(out_status, "out_status")?.write(f.status);
            Ok(())
        })
    }
}

/// Writes the human-readable reason to `*out_reason`, a new string to free with
/// `lic_string_free`.
///
/// # Safety
/// `feature` is NULL or a live feature; `out_reason` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_feature_reason(
    feature: *const lic_feature,
    out_reason: *mut *mut c_char,
) -> lic_result {
    // SAFETY: per this function's contract.
    unsafe {
        feature_get(feature, |f| {
            let out_reason = out(out_reason, "out_reason")?;
            out_reason.write(owned_string(&f.reason)?.into_raw());
            Ok(())
        })
    }
}

/// Writes whether the feature has a numeric limit to `*out_has_limit` and the limit to
/// `*out_limit` (0 when none).
///
/// # Safety
/// `feature` is NULL or a live feature; the out-parameters are NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_feature_limit(
    feature: *const lic_feature,
    out_has_limit: *mut bool,
    out_limit: *mut u64,
) -> lic_result {
    // SAFETY: per this function's contract.
    unsafe {
        feature_optional(
            feature,
            (out_has_limit, "out_has_limit"),
            (out_limit, "out_limit"),
            |f| f.limit,
        )
    }
}

/// Writes whether the feature stops to `*out_has_value` and when (its own expiry or the
/// license's end, whichever is first; seconds since the Unix epoch, 0 when never) to
/// `*out_value`.
///
/// # Safety
/// `feature` is NULL or a live feature; the out-parameters are NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_feature_expires_at(
    feature: *const lic_feature,
    out_has_value: *mut bool,
    out_value: *mut i64,
) -> lic_result {
    // SAFETY: per this function's contract.
    unsafe {
        feature_optional(
            feature,
            (out_has_value, "out_has_value"),
            (out_value, "out_value"),
            |f| f.expires_at,
        )
    }
}

/// Writes whether the feature stops to `*out_has_value` and the seconds until it does to
/// `*out_value` (0 when never).
///
/// # Safety
/// `feature` is NULL or a live feature; the out-parameters are NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_feature_time_left(
    feature: *const lic_feature,
    out_has_value: *mut bool,
    out_value: *mut i64,
) -> lic_result {
    // SAFETY: per this function's contract.
    unsafe {
        feature_optional(
            feature,
            (out_has_value, "out_has_value"),
            (out_value, "out_value"),
            |f| f.time_left,
        )
    }
}

/// Copies the message of the most recent failed call on `feature` into `buf` (see
/// `lic_last_error` for the buffer protocol).
///
/// # Safety
/// `feature` is NULL or a live feature; `buf` is NULL or writable for `len` bytes; `out_len`
/// is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_feature_last_error(
    feature: *const lic_feature,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> lic_result {
    // SAFETY: per this function's contract.
    unsafe { copy_last_error(feature, buf, len, out_len) }
}

/// Frees a feature answer. NULL is a no-op; freeing twice is undefined behaviour.
///
/// # Safety
/// `feature` is NULL or a feature not freed before and not in use by another thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_feature_free(feature: *mut lic_feature) {
    guard_value((), || {
        // SAFETY: per this function's contract.
        unsafe { free_handle(feature) }
    })
}
