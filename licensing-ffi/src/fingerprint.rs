//! `lic_fingerprint`: this machine's fingerprint (core `MachineFingerprint`, `machine`).

use std::ffi::c_char;

use licensing_core::MachineFingerprint;
use licensing_core::machine;

use crate::abi::{
    Failure, LastError, arg, c_str, copy_last_error, free_handle, guard, guard_free, guard_value,
    handle, lic_result, new_handle, out, owned_string, text, write_bytes,
};

/// A machine's fingerprint: a combined id and salted per-component hashes (nothing of the
/// machine's raw identity). Immutable: thread-safe. Owned by the caller: free with
/// `lic_fingerprint_free`.
pub struct lic_fingerprint {
    fingerprint: MachineFingerprint,
    last_error: LastError,
}

handle!(lic_fingerprint);

impl lic_fingerprint {
    pub(crate) fn fingerprint(&self) -> &MachineFingerprint {
        &self.fingerprint
    }
}

pub(crate) fn fingerprint_handle(fingerprint: MachineFingerprint) -> *mut lic_fingerprint {
    new_handle(lic_fingerprint {
        fingerprint,
        last_error: LastError::default(),
    })
}

/// Computes this machine's fingerprint salted with `salt` (the product id, or a vendor salt)
/// into `*out_fingerprint`. Honours the `LICENSING_FINGERPRINT_OVERRIDE` environment variable
/// (containers, cloud nodes: its value replaces the hardware components). The hardware is read
/// once per process; later calls only hash. Thread-safe.
///
/// # Safety
/// `salt` is NULL or a NUL-terminated string; `out_fingerprint` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_fingerprint_this_machine(
    salt: *const c_char,
    out_fingerprint: *mut *mut lic_fingerprint,
) -> lic_result {
    guard_free(|| {
        // SAFETY: per this function's contract.
        let salt = unsafe { c_str(salt, "salt") }?;
        let out_fingerprint = out(out_fingerprint, "out_fingerprint")?;
        out_fingerprint.write(fingerprint_handle(machine::this_machine(salt)));
        Ok(())
    })
}

/// Reads a fingerprint from its JSON form (`json_len` bytes of UTF-8): what
/// `lic_fingerprint_to_json` and `licensing-server machine fingerprint --json` write, e.g. one an
/// end user sent for offline activation, or one a host computed itself. Strict JSON (duplicate
/// names refused); a malformed document gives `LIC_INVALID_ARGUMENT` with the reason in
/// `lic_last_error`. Thread-safe.
///
/// # Safety
/// `json` is NULL or points to `json_len` readable bytes; `out_fingerprint` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_fingerprint_from_json(
    json: *const c_char,
    json_len: usize,
    out_fingerprint: *mut *mut lic_fingerprint,
) -> lic_result {
    guard_free(|| {
        // SAFETY: per this function's contract.
        let json = unsafe { text(json, json_len, "json") }?;
        let out_fingerprint = out(out_fingerprint, "out_fingerprint")?;
        let fingerprint = MachineFingerprint::from_json(json)
            .map_err(|e| Failure::new(lic_result::LIC_INVALID_ARGUMENT, e))?;
        out_fingerprint.write(fingerprint_handle(fingerprint));
        Ok(())
    })
}

/// Computes this machine's fingerprint salted with `salt` from a vendor-supplied identity
/// `override_value` instead of the hardware (what `LICENSING_FINGERPRINT_OVERRIDE` does, for
/// hosts that get the value elsewhere); an empty value means the hardware. Virtualization
/// signals are still read from the machine. Thread-safe.
///
/// # Safety
/// `salt` and `override_value` are NULL or NUL-terminated strings; `out_fingerprint` is NULL
/// or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_fingerprint_with_override(
    salt: *const c_char,
    override_value: *const c_char,
    out_fingerprint: *mut *mut lic_fingerprint,
) -> lic_result {
    guard_free(|| {
        // SAFETY: per this function's contract.
        let salt = unsafe { c_str(salt, "salt") }?;
        // SAFETY: per this function's contract.
        let override_value = unsafe { c_str(override_value, "override_value") }?;
        let out_fingerprint = out(out_fingerprint, "out_fingerprint")?;
        let fingerprint =
            machine::fingerprint_with(&machine::SystemComponents, salt, Some(override_value));
        out_fingerprint.write(fingerprint_handle(fingerprint));
        Ok(())
    })
}

/// Runs a fingerprint getter.
///
/// # Safety
/// `fingerprint` is NULL or a live fingerprint.
unsafe fn fingerprint_get(
    fingerprint: *const lic_fingerprint,
    body: impl FnOnce(&MachineFingerprint) -> Result<(), Failure>,
) -> lic_result {
    guard(fingerprint, || {
        // SAFETY: per this function's contract.
        body(&unsafe { arg(fingerprint, "fingerprint") }?.fingerprint)
    })
}

/// Writes the combined id (what a node-locked license binds) to `*out_id`, a new string to free
/// with `lic_string_free`.
///
/// # Safety
/// `fingerprint` is NULL or a live fingerprint; `out_id` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_fingerprint_id(
    fingerprint: *const lic_fingerprint,
    out_id: *mut *mut c_char,
) -> lic_result {
    // SAFETY: per this function's contract.
    unsafe {
        fingerprint_get(fingerprint, |f| {
            let out_id = out(out_id, "out_id")?;
            out_id.write(owned_string(&f.id)?.into_raw());
            Ok(())
        })
    }
}

/// Writes the number of components (`machine_id`, `hostname`, `cpu`, ... or the single
/// `override`) to `*out_count`.
///
/// # Safety
/// `fingerprint` is NULL or a live fingerprint; `out_count` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_fingerprint_component_count(
    fingerprint: *const lic_fingerprint,
    out_count: *mut usize,
) -> lic_result {
    // SAFETY: per this function's contract.
    unsafe {
        fingerprint_get(fingerprint, |f| {
            out(out_count, "out_count")?.write(f.components.len());
            Ok(())
        })
    }
}

/// Writes the name and salted hash (base64url) of the component at `index` (components ordered
/// by name) to `*out_name` and `*out_hash`, two new strings to free with `lic_string_free`.
/// `LIC_INDEX_OUT_OF_RANGE` when `index` is not below the component count.
///
/// # Safety
/// `fingerprint` is NULL or a live fingerprint; `out_name` and `out_hash` are NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_fingerprint_component(
    fingerprint: *const lic_fingerprint,
    index: usize,
    out_name: *mut *mut c_char,
    out_hash: *mut *mut c_char,
) -> lic_result {
    // SAFETY: per this function's contract.
    unsafe {
        fingerprint_get(fingerprint, |f| {
            let out_name = out(out_name, "out_name")?;
            let out_hash = out(out_hash, "out_hash")?;
            let (name, hash) = f
                .components
                .iter()
                .nth(index)
                .ok_or_else(|| Failure::index(index, f.components.len()))?;
            let (name, hash) = (owned_string(name)?, owned_string(hash)?);
            out_name.write(name.into_raw());
            out_hash.write(hash.into_raw());
            Ok(())
        })
    }
}

/// Writes whether the machine looks like a virtual machine or container to `*out_is_virtual`.
///
/// # Safety
/// `fingerprint` is NULL or a live fingerprint; `out_is_virtual` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_fingerprint_is_virtual(
    fingerprint: *const lic_fingerprint,
    out_is_virtual: *mut bool,
) -> lic_result {
    // SAFETY: per this function's contract.
    unsafe {
        fingerprint_get(fingerprint, |f| {
            out(out_is_virtual, "out_is_virtual")?.write(f.is_virtual);
            Ok(())
        })
    }
}

/// Writes the fingerprint as a JSON document (UTF-8, not NUL-terminated: what an end user
/// sends for offline activation, the format `licensing-server license verify
/// --fingerprint-file` reads) to `*out_data`, and its length to `*out_len`. Free it with
/// `lic_bytes_free(data, len)`.
///
/// # Safety
/// `fingerprint` is NULL or a live fingerprint; `out_data` and `out_len` are NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_fingerprint_to_json(
    fingerprint: *const lic_fingerprint,
    out_data: *mut *mut u8,
    out_len: *mut usize,
) -> lic_result {
    // SAFETY: per this function's contract.
    unsafe {
        fingerprint_get(fingerprint, |f| {
            let out_data = out(out_data, "out_data")?;
            let out_len = out(out_len, "out_len")?;
            // A map of strings always serializes; a failure would be a bug (LIC_PANIC).
            let Ok(json) = serde_json::to_vec_pretty(f) else {
                unreachable!("a fingerprint always serializes to JSON")
            };
            write_bytes(out_data, out_len, json);
            Ok(())
        })
    }
}

/// Copies the message of the most recent failed call on `fingerprint` into `buf` (see
/// `lic_last_error` for the buffer protocol).
///
/// # Safety
/// `fingerprint` is NULL or a live fingerprint; `buf` is NULL or writable for `len` bytes;
/// `out_len` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_fingerprint_last_error(
    fingerprint: *const lic_fingerprint,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> lic_result {
    // SAFETY: per this function's contract.
    unsafe { copy_last_error(fingerprint, buf, len, out_len) }
}

/// Frees a fingerprint. NULL is a no-op; freeing twice is undefined behaviour. Contexts it was
/// set on keep their own copy.
///
/// # Safety
/// `fingerprint` is NULL or a fingerprint not freed before and not in use by another thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_fingerprint_free(fingerprint: *mut lic_fingerprint) {
    guard_value((), || {
        // SAFETY: per this function's contract.
        unsafe { free_handle(fingerprint) }
    })
}
