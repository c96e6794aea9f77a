//! `lic_trust_store`: the public keys an app trusts (core `TrustStore`).

use std::ffi::c_char;

use licensing_core::{KeyError, KeyErrorKind, TrustStore};

use crate::abi::{
    Failure, LastError, arg, arg_mut, copy_last_error, free_handle, guard, guard_free, handle,
    lic_result, new_handle, out, owned_string, text,
};

/// The one mapping from a key error to a result code: a refused document is
/// `LIC_KEY_REJECTED`; a failure that is not the document's fault is `LIC_SYSTEM_ERROR`.
fn key_failure(error: KeyError) -> Failure {
    let code = match error.kind() {
        KeyErrorKind::Rejected => lic_result::LIC_KEY_REJECTED,
        KeyErrorKind::System => lic_result::LIC_SYSTEM_ERROR,
    };
    Failure::new(code, error.to_string())
}

/// The public keys an app trusts, chosen by `kid`. Built from SPKI PEM, JWK or JWK Set text the
/// app ships. Owned by the caller: free with `lic_trust_store_free`. Adding keys mutates it (one
/// thread at a time); once built it may be read from several threads, and `lic_verifier_new`
/// copies it, so it may be freed as soon as the verifiers are made.
pub struct lic_trust_store {
    store: TrustStore,
    last_error: LastError,
}

handle!(lic_trust_store);

/// Creates an empty trust store in `*out`.
///
/// # Safety
/// `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_trust_store_new(out_store: *mut *mut lic_trust_store) -> lic_result {
    guard_free(|| {
        let out_store = out(out_store, "out_store")?;
        out_store.write(new_handle(lic_trust_store {
            store: TrustStore::new(),
            last_error: LastError::default(),
        }));
        Ok(())
    })
}

/// Adds the keys of one document, `len` bytes of UTF-8 (no NUL needed): an SPKI PEM
/// (`-----BEGIN PUBLIC KEY-----`), a single JWK, or a JWK Set (`{"keys":[...]}`). Every key must
/// be a canonical, non-weak Ed25519 public key whose kid is not already in the store.
///
/// `LIC_KEY_REJECTED` (the reason in `lic_trust_store_last_error`) leaves the store unchanged.
/// Not thread-safe on the same store.
///
/// # Safety
/// `store` is NULL or a live trust store; `document` is NULL or readable for `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_trust_store_add_document(
    store: *mut lic_trust_store,
    document: *const c_char,
    len: usize,
) -> lic_result {
    guard(store, || {
        // SAFETY: per this function's contract.
        let store = unsafe { arg_mut(store, "store") }?;
        // SAFETY: per this function's contract.
        let document = unsafe { text(document, len, "document") }?;
        // Added to a copy, so a document refused half-way leaves the store as it was.
        let mut updated = store.store.clone();
        updated.add_document(document).map_err(key_failure)?;
        store.store = updated;
        Ok(())
    })
}

/// Writes the number of trusted keys to `*out_count`. Thread-safe.
///
/// # Safety
/// `store` is NULL or a live trust store; `out_count` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_trust_store_key_count(
    store: *const lic_trust_store,
    out_count: *mut usize,
) -> lic_result {
    guard(store, || {
        // SAFETY: per this function's contract.
        let store = unsafe { arg(store, "store") }?;
        out(out_count, "out_count")?.write(store.store.len());
        Ok(())
    })
}

/// Writes the kid (RFC 7638 thumbprint) of the key at `index` (keys ordered by kid) to
/// `*out_kid`, a new string to free with `lic_string_free`. `LIC_INDEX_OUT_OF_RANGE` when
/// `index` is not below the key count. Thread-safe.
///
/// # Safety
/// `store` is NULL or a live trust store; `out_kid` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_trust_store_kid(
    store: *const lic_trust_store,
    index: usize,
    out_kid: *mut *mut c_char,
) -> lic_result {
    guard(store, || {
        // SAFETY: per this function's contract.
        let store = unsafe { arg(store, "store") }?;
        let out_kid = out(out_kid, "out_kid")?;
        let key = store
            .store
            .keys()
            .nth(index)
            .ok_or_else(|| Failure::index(index, store.store.len()))?;
        out_kid.write(owned_string(key.kid())?.into_raw());
        Ok(())
    })
}

/// Copies the message of the most recent failed call on `store` into `buf` (see
/// `lic_last_error` for the buffer protocol). `""` when none failed.
///
/// # Safety
/// `store` is NULL or a live trust store; `buf` is NULL or writable for `len` bytes;
/// `out_len` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_trust_store_last_error(
    store: *const lic_trust_store,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> lic_result {
    // SAFETY: per this function's contract.
    unsafe { copy_last_error(store, buf, len, out_len) }
}

/// Frees a trust store. NULL is a no-op; freeing twice is undefined behaviour. Verifiers and
/// licensing handles made from it keep their own copy.
///
/// # Safety
/// `store` is NULL or a trust store not freed before and not in use by another thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_trust_store_free(store: *mut lic_trust_store) {
    crate::abi::guard_value((), || {
        // SAFETY: per this function's contract.
        unsafe { free_handle(store) }
    })
}

impl lic_trust_store {
    pub(crate) fn store(&self) -> &TrustStore {
        &self.store
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_errors_map_by_their_core_class() {
        assert_eq!(
            key_failure(KeyError::Weak).code,
            lic_result::LIC_KEY_REJECTED
        );
        assert_eq!(
            key_failure(KeyError::Unrecognized("text".into())).code,
            lic_result::LIC_KEY_REJECTED
        );
        // Not the document's fault: the same class as in the bindings (`System`).
        let failure = key_failure(KeyError::Internal("no random numbers".into()));
        assert_eq!(failure.code, lic_result::LIC_SYSTEM_ERROR);
        assert!(failure.message.contains("no random numbers"));
    }
}
