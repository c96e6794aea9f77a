//! The plumbing every export shares: the result codes, the panic boundary, last-error messages,
//! argument checks, and the owned strings and byte buffers handed to the host.

use std::cell::RefCell;
use std::ffi::{CStr, CString, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;

/// What happened to a call: did it work, and if not, why. Numbers are stable: a value is never
/// reused or renumbered, new values are only appended. Whether a license may be used is never a
/// `lic_result`: that is the `lic_status` of a verdict.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum lic_result {
    /// The call succeeded and wrote its out-parameters.
    LIC_OK = 0,
    /// A required pointer argument (handle, string or out-parameter) was NULL.
    LIC_NULL_ARGUMENT = 1,
    /// A string argument is not valid UTF-8.
    LIC_INVALID_UTF8 = 2,
    /// An argument has a value the call does not accept (a version that is not semver, an
    /// unknown scope, a length over `PTRDIFF_MAX`); the last-error message says which.
    LIC_INVALID_ARGUMENT = 3,
    /// The caller's buffer is too small; the needed length was written to the length
    /// out-parameter (the buffer needs one more byte for the terminating NUL).
    LIC_BUFFER_TOO_SMALL = 4,
    /// An index is not below the corresponding count.
    LIC_INDEX_OUT_OF_RANGE = 5,
    /// A string to return contains a NUL byte and cannot be a C string.
    LIC_INTERIOR_NUL = 6,
    /// A key document was refused (not PEM/JWK/JWK Set, not Ed25519, weak or non-canonical key,
    /// private key material, duplicate kid); the trust store is unchanged.
    LIC_KEY_REJECTED = 7,
    /// The verdict holds no verified license to ask (its status says why: the token was not
    /// genuine, or no license is installed).
    LIC_NOT_VERIFIED = 8,
    /// The license store could not be located, read or written (I/O error, no home directory,
    /// corrupt file); the last-error message names the file and the OS error.
    LIC_STORE_ERROR = 9,
    /// A bug: the library panicked. The panic was caught at the boundary, nothing unwound into
    /// the caller, and out-parameters were not written. Please report it.
    LIC_PANIC = 10,
    /// The licensing server could not be reached or did not answer within the limit
    /// (connection refused, DNS, TLS, proxy, timeout).
    LIC_NETWORK_ERROR = 11,
    /// The licensing server answered with an error (a 4xx such as `machine_limit_reached`,
    /// `license_not_found`, `license_revoked`, or a 5xx); `lic_client_last_server_code` has its
    /// code.
    LIC_SERVER_ERROR = 12,
    /// The server's answer was refused: not signed by a trusted key, another token type or
    /// product, a replayed or stale response (nonce), another machine, an expired offline
    /// response, or not the protocol's format. Nothing was stored.
    LIC_BAD_RESPONSE = 13,
    /// The online operation needs an earlier step: no license key is stored (activate first),
    /// or no air-gapped activation request is pending (import).
    LIC_NOT_ACTIVATED = 14,
    /// The caller stopped the operation through its callback (a wait in line for a seat):
    /// nothing is held, out-parameters were not written.
    LIC_STOPPED = 15,
    /// The system refused something the call needs (random numbers for a nonce, a thread for
    /// heartbeats): neither an argument nor the server is at fault; retrying later may work.
    LIC_SYSTEM_ERROR = 16,
    /// The lease was checked in already (`lic_lease_check_in`): it holds no seat and no
    /// token. Check out a new one.
    LIC_CHECKED_IN = 17,
}

impl lic_result {
    fn message(self) -> &'static CStr {
        match self {
            lic_result::LIC_OK => c"ok",
            lic_result::LIC_NULL_ARGUMENT => c"a required pointer argument is NULL",
            lic_result::LIC_INVALID_UTF8 => c"a string argument is not valid UTF-8",
            lic_result::LIC_INVALID_ARGUMENT => c"an argument has a value the call does not accept",
            lic_result::LIC_BUFFER_TOO_SMALL => c"the buffer is too small",
            lic_result::LIC_INDEX_OUT_OF_RANGE => c"index out of range",
            lic_result::LIC_INTERIOR_NUL => c"a string to return contains a NUL byte",
            lic_result::LIC_KEY_REJECTED => c"the key document was rejected",
            lic_result::LIC_NOT_VERIFIED => c"the verdict holds no verified license",
            lic_result::LIC_STORE_ERROR => c"the license store could not be read or written",
            lic_result::LIC_PANIC => c"internal error (panic caught at the C boundary)",
            lic_result::LIC_NETWORK_ERROR => c"the licensing server could not be reached in time",
            lic_result::LIC_SERVER_ERROR => c"the licensing server answered with an error",
            lic_result::LIC_BAD_RESPONSE => c"the licensing server's answer was refused",
            lic_result::LIC_NOT_ACTIVATED => c"no activation (license key or pending request)",
            lic_result::LIC_STOPPED => c"stopped by the caller's callback",
            lic_result::LIC_SYSTEM_ERROR => c"the system refused a resource the call needs",
            lic_result::LIC_CHECKED_IN => c"the lease was checked in already",
        }
    }
}

/// Every result code, in numeric order.
const ALL_RESULTS: [lic_result; 18] = [
    lic_result::LIC_OK,
    lic_result::LIC_NULL_ARGUMENT,
    lic_result::LIC_INVALID_UTF8,
    lic_result::LIC_INVALID_ARGUMENT,
    lic_result::LIC_BUFFER_TOO_SMALL,
    lic_result::LIC_INDEX_OUT_OF_RANGE,
    lic_result::LIC_INTERIOR_NUL,
    lic_result::LIC_KEY_REJECTED,
    lic_result::LIC_NOT_VERIFIED,
    lic_result::LIC_STORE_ERROR,
    lic_result::LIC_PANIC,
    lic_result::LIC_NETWORK_ERROR,
    lic_result::LIC_SERVER_ERROR,
    lic_result::LIC_BAD_RESPONSE,
    lic_result::LIC_NOT_ACTIVATED,
    lic_result::LIC_STOPPED,
    lic_result::LIC_SYSTEM_ERROR,
    lic_result::LIC_CHECKED_IN,
];

/// A failed call: its code and a message for the last-error slots.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) code: lic_result,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn new(code: lic_result, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
        }
    }

    pub(crate) fn null(name: &str) -> Self {
        Failure::new(
            lic_result::LIC_NULL_ARGUMENT,
            format!("argument `{name}` is NULL"),
        )
    }

    pub(crate) fn index(index: usize, count: usize) -> Self {
        Failure::new(
            lic_result::LIC_INDEX_OUT_OF_RANGE,
            format!("index {index} is out of range (count {count})"),
        )
    }
}

/// The message of a handle's most recent failed call. Behind a mutex so handles documented as
/// shareable stay so.
#[derive(Debug, Default)]
pub(crate) struct LastError(Mutex<String>);

impl LastError {
    pub(crate) fn set(&self, message: &str) {
        let mut slot = self.0.lock().unwrap_or_else(|e| e.into_inner());
        slot.clear();
        slot.push_str(message);
    }

    pub(crate) fn get(&self) -> String {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// A handle type: it carries a last-error slot.
pub(crate) trait Handle {
    fn last_error(&self) -> &LastError;
}

/// For calls that take no handle.
pub(crate) enum NoHandle {}

impl Handle for NoHandle {
    fn last_error(&self) -> &LastError {
        match *self {}
    }
}

thread_local! {
    static THREAD_LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("non-string panic payload")
}

/// The panic boundary of every export returning `lic_result`: runs `body`; a failure (or a
/// caught panic) is recorded for the calling thread and on `handle` when it is not NULL.
/// `handle` is only dereferenced after `body` has returned, so `body` may hold it mutably.
pub(crate) fn guard<H: Handle>(
    handle: *const H,
    body: impl FnOnce() -> Result<(), Failure>,
) -> lic_result {
    let failure = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => return lic_result::LIC_OK,
        Ok(Err(failure)) => failure,
        Err(payload) => Failure::new(
            lic_result::LIC_PANIC,
            format!(
                "internal error: the library panicked ({}); please report it",
                panic_text(payload.as_ref())
            ),
        ),
    };
    let recorded = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the caller guarantees `handle` is NULL or a live handle; `body` is done
        // with it.
        if let Some(handle) = unsafe { handle.as_ref() } {
            handle.last_error().set(&failure.message);
        }
        THREAD_LAST_ERROR.with(|slot| {
            if let Ok(mut slot) = slot.try_borrow_mut() {
                slot.clear();
                slot.push_str(&failure.message);
            }
        });
    }));
    match recorded {
        Ok(()) => failure.code,
        Err(_) => lic_result::LIC_PANIC,
    }
}

/// [`guard`] for calls without a handle.
pub(crate) fn guard_free(body: impl FnOnce() -> Result<(), Failure>) -> lic_result {
    guard(std::ptr::null::<NoHandle>(), body)
}

/// The panic boundary of exports that return a value instead of a `lic_result`: `fallback` on
/// panic. Nothing is recorded.
pub(crate) fn guard_value<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(fallback)
}

/// A checked out-parameter: not NULL, written once on success.
pub(crate) struct Out<T>(*mut T);

impl<T> Out<T> {
    pub(crate) fn write(self, value: T) {
        // SAFETY: checked non-NULL in `out`; the caller guarantees it is writable and aligned.
        // `write` does not read or drop the previous (possibly uninitialised) value.
        unsafe { self.0.write(value) }
    }
}

/// Checks an out-parameter.
pub(crate) fn out<T>(pointer: *mut T, name: &str) -> Result<Out<T>, Failure> {
    if pointer.is_null() {
        Err(Failure::null(name))
    } else {
        Ok(Out(pointer))
    }
}

/// An out-parameter the caller may pass as NULL when it does not want the value.
pub(crate) fn optional_out<T>(pointer: *mut T) -> Option<Out<T>> {
    (!pointer.is_null()).then_some(Out(pointer))
}

/// A handle argument, borrowed.
///
/// # Safety
/// `pointer` is NULL or points to a live handle created by this library.
pub(crate) unsafe fn arg<'a, T>(pointer: *const T, name: &str) -> Result<&'a T, Failure> {
    // SAFETY: per this function's contract.
    unsafe { pointer.as_ref() }.ok_or_else(|| Failure::null(name))
}

/// A handle argument, borrowed mutably.
///
/// # Safety
/// `pointer` is NULL or points to a live handle no other thread uses during the call.
pub(crate) unsafe fn arg_mut<'a, T>(pointer: *mut T, name: &str) -> Result<&'a mut T, Failure> {
    // SAFETY: per this function's contract.
    unsafe { pointer.as_mut() }.ok_or_else(|| Failure::null(name))
}

fn utf8_failure(name: &str) -> Failure {
    Failure::new(
        lic_result::LIC_INVALID_UTF8,
        format!("argument `{name}` is not valid UTF-8"),
    )
}

/// A NUL-terminated UTF-8 string argument.
///
/// # Safety
/// `pointer` is NULL or points to a NUL-terminated string readable for the call.
pub(crate) unsafe fn c_str<'a>(pointer: *const c_char, name: &str) -> Result<&'a str, Failure> {
    if pointer.is_null() {
        return Err(Failure::null(name));
    }
    // SAFETY: non-NULL and NUL-terminated per this function's contract.
    unsafe { CStr::from_ptr(pointer) }
        .to_str()
        .map_err(|_| utf8_failure(name))
}

/// A NUL-terminated UTF-8 string argument that may be NULL.
///
/// # Safety
/// As [`c_str`].
pub(crate) unsafe fn optional_c_str<'a>(
    pointer: *const c_char,
    name: &str,
) -> Result<Option<&'a str>, Failure> {
    if pointer.is_null() {
        Ok(None)
    } else {
        // SAFETY: per this function's contract.
        unsafe { c_str(pointer, name) }.map(Some)
    }
}

/// A UTF-8 text argument passed with its length (no NUL needed).
///
/// # Safety
/// `pointer` is NULL or points to `len` readable bytes.
pub(crate) unsafe fn text<'a>(
    pointer: *const c_char,
    len: usize,
    name: &str,
) -> Result<&'a str, Failure> {
    if pointer.is_null() {
        return Err(Failure::null(name));
    }
    if len > isize::MAX as usize {
        return Err(Failure::new(
            lic_result::LIC_INVALID_ARGUMENT,
            format!("argument `{name}`: length {len} exceeds PTRDIFF_MAX"),
        ));
    }
    // SAFETY: non-NULL, `len` readable bytes per this function's contract, len <= isize::MAX.
    let bytes = unsafe { std::slice::from_raw_parts(pointer.cast::<u8>(), len) };
    std::str::from_utf8(bytes).map_err(|_| utf8_failure(name))
}

/// A string for the host, to be freed with `lic_string_free`. Built before any out-parameter
/// is written, so a failure writes nothing.
pub(crate) fn owned_string(value: &str) -> Result<CString, Failure> {
    CString::new(value).map_err(|_| {
        Failure::new(
            lic_result::LIC_INTERIOR_NUL,
            "the string contains a NUL byte and cannot be returned as a C string",
        )
    })
}

/// Writes an optional string: NULL when absent.
pub(crate) fn write_optional_string(
    target: Out<*mut c_char>,
    value: Option<&str>,
) -> Result<(), Failure> {
    let value = value.map(owned_string).transpose()?;
    target.write(value.map_or(std::ptr::null_mut(), CString::into_raw));
    Ok(())
}

/// Writes an optional value as a has-value flag and the value (0 when absent).
pub(crate) fn write_optional<T: Default>(has_value: Out<bool>, target: Out<T>, value: Option<T>) {
    has_value.write(value.is_some());
    target.write(value.unwrap_or_default());
}

/// Moves a value to the heap for the host.
pub(crate) fn new_handle<T>(value: T) -> *mut T {
    Box::into_raw(Box::new(value))
}

/// Frees a handle; NULL is a no-op.
///
/// # Safety
/// `pointer` is NULL or a handle from [`new_handle`] not freed before.
pub(crate) unsafe fn free_handle<T>(pointer: *mut T) {
    if !pointer.is_null() {
        // SAFETY: per this function's contract.
        drop(unsafe { Box::from_raw(pointer) });
    }
}

/// Copies `message` into a caller buffer (the `*_last_error` functions). Never records a
/// failure, so reading an error does not replace it.
///
/// # Safety
/// `buf` is NULL or writable for `len` bytes; `out_len` is NULL or writable.
pub(crate) unsafe fn copy_message(
    message: &str,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> lic_result {
    guard_value(lic_result::LIC_PANIC, || {
        if out_len.is_null() || (buf.is_null() && len > 0) {
            return lic_result::LIC_NULL_ARGUMENT;
        }
        let bytes = message.as_bytes();
        if bytes.len() >= len {
            // SAFETY: checked non-NULL; writable per this function's contract.
            unsafe { out_len.write(bytes.len()) };
            return lic_result::LIC_BUFFER_TOO_SMALL;
        }
        // SAFETY: `buf` holds `len > bytes.len()` bytes, so the text and its NUL fit.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf.cast::<u8>(), bytes.len());
            buf.add(bytes.len()).write(0);
            out_len.write(bytes.len());
        }
        lic_result::LIC_OK
    })
}

/// Copies a handle's last-error message into a caller buffer.
///
/// # Safety
/// As [`copy_message`]; `handle` is NULL or a live handle.
pub(crate) unsafe fn copy_last_error<H: Handle>(
    handle: *const H,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> lic_result {
    // SAFETY: per this function's contract.
    let Some(handle) = (unsafe { handle.as_ref() }) else {
        return lic_result::LIC_NULL_ARGUMENT;
    };
    let message = guard_value(None, || Some(handle.last_error().get()));
    match message {
        // SAFETY: per this function's contract.
        Some(message) => unsafe { copy_message(&message, buf, len, out_len) },
        None => lic_result::LIC_PANIC,
    }
}

/// Implements [`Handle`] for handle structs with a `last_error` field.
macro_rules! handle {
    ($($name:ident),* $(,)?) => {
        $(impl $crate::abi::Handle for $name {
            fn last_error(&self) -> &$crate::abi::LastError {
                &self.last_error
            }
        })*
    };
}
pub(crate) use handle;

/// The library's version, `"MAJOR.MINOR.PATCH"`, as built (compare with `LIC_VERSION_STRING`).
///
/// Returns a static string: never free it. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn lic_version() -> *const c_char {
    const VERSION: &CStr =
        match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
            Ok(version) => version,
            Err(_) => c"unknown",
        };
    guard_value(c"unknown".as_ptr(), || VERSION.as_ptr())
}

/// A short English description of a `lic_result` code; `"unknown result code"` for numbers
/// this build does not know.
///
/// Returns a static string: never free it. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn lic_result_message(code: u32) -> *const c_char {
    guard_value(c"unknown result code".as_ptr(), || {
        ALL_RESULTS
            .into_iter()
            .find(|r| *r as u32 == code)
            .map_or(c"unknown result code", lic_result::message)
            .as_ptr()
    })
}

/// Copies the message of the calling thread's most recent failed call (on any handle, or
/// with none: constructors, NULL handles) into `buf`, NUL-terminated. `""` when no call on this
/// thread has failed yet. Successful calls do not clear it; reading it does not change it.
///
/// On `LIC_OK` writes the message and its length (without the NUL) to `*out_len`. When `len` is
/// not more than the length, returns `LIC_BUFFER_TOO_SMALL` and writes only `*out_len` (pass
/// `buf = NULL, len = 0` to ask for the length). `LIC_NULL_ARGUMENT` when `out_len` is NULL or
/// `buf` is NULL with `len > 0`.
///
/// # Safety
/// `buf` is NULL or writable for `len` bytes; `out_len` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_last_error(
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> lic_result {
    let message = guard_value(None, || {
        THREAD_LAST_ERROR.with(|slot| slot.try_borrow().ok().map(|s| s.clone()))
    });
    match message {
        // SAFETY: per this function's contract.
        Some(message) => unsafe { copy_message(&message, buf, len, out_len) },
        None => lic_result::LIC_PANIC,
    }
}

/// Frees a string returned by this library (every `char **out_*` parameter). NULL is a no-op.
/// Freeing a string twice, or a string not from this library, is undefined behaviour.
///
/// # Safety
/// `string` is NULL or a string returned by this library and not freed before.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_string_free(string: *mut c_char) {
    guard_value((), || {
        if !string.is_null() {
            // SAFETY: per this function's contract it came from `CString::into_raw`.
            drop(unsafe { CString::from_raw(string) });
        }
    })
}

/// Frees a byte buffer returned by this library (`uint8_t **out_data` with `size_t *out_len`),
/// passing the length it was returned with. NULL is a no-op. Freeing twice, or with another
/// length, is undefined behaviour.
///
/// # Safety
/// `data` is NULL or a buffer returned by this library with length `len`, not freed before.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_bytes_free(data: *mut u8, len: usize) {
    guard_value((), || {
        if !data.is_null() {
            // SAFETY: per this function's contract it came from `Box<[u8]>::into_raw`
            // with this length.
            drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(data, len)) });
        }
    })
}

/// Moves bytes to the heap for the host, to be freed with `lic_bytes_free`.
pub(crate) fn write_bytes(data: Out<*mut u8>, len: Out<usize>, bytes: Vec<u8>) {
    let boxed = bytes.into_boxed_slice();
    len.write(boxed.len());
    data.write(Box::into_raw(boxed).cast::<u8>());
}

/// TEST ONLY: panics inside the panic boundary, to prove that a panic never unwinds into the
/// caller. Always returns `LIC_PANIC` (and prints the panic message to stderr). Never call it
/// in an application.
#[unsafe(no_mangle)]
pub extern "C" fn lic_test_panic() -> lic_result {
    guard_free(|| panic!("lic_test_panic was called"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_codes_are_stable() {
        for (number, code) in ALL_RESULTS.into_iter().enumerate() {
            assert_eq!(code as usize, number);
        }
        assert_eq!(lic_result::LIC_OK as u32, 0);
        assert_eq!(lic_result::LIC_PANIC as u32, 10);
    }

    #[test]
    fn panic_is_caught_and_recorded() {
        assert_eq!(lic_test_panic(), lic_result::LIC_PANIC);
        let mut buf = [0 as c_char; 256];
        let mut len = 0;
        // SAFETY: valid buffer and out-pointer.
        let code = unsafe { lic_last_error(buf.as_mut_ptr(), buf.len(), &mut len) };
        assert_eq!(code, lic_result::LIC_OK);
        // SAFETY: NUL-terminated by lic_last_error.
        let text = unsafe { CStr::from_ptr(buf.as_ptr()) }
            .to_str()
            .unwrap_or("");
        assert!(text.contains("lic_test_panic was called"), "{text}");
        assert_eq!(len, text.len());
    }

    #[test]
    fn too_small_buffer_reports_the_length() {
        assert_eq!(lic_test_panic(), lic_result::LIC_PANIC);
        let mut needed = 0;
        // SAFETY: NULL buffer with length 0 is a size query.
        let code = unsafe { lic_last_error(std::ptr::null_mut(), 0, &mut needed) };
        assert_eq!(code, lic_result::LIC_BUFFER_TOO_SMALL);
        assert!(needed > 10);
    }
}
