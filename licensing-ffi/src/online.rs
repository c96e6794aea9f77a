//! `lic_client`: the online client (core `online::Client`) and the online operations of an
//! app's licensing (core `Licensing::activate`, `validate_online`, `check_online`, ...).

use std::ffi::c_char;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use licensing_core::online::{Client, ClientConfig, OnlineError, OnlineErrorKind};

use crate::abi::{
    Failure, LastError, arg, c_str, copy_last_error, copy_message, free_handle, guard, guard_free,
    guard_value, handle, lic_result, new_handle, optional_c_str, optional_out, out, owned_string,
    text,
};
use crate::keys::lic_trust_store;
use crate::startup::lic_licensing;
use crate::verify::lic_verdict;

/// A client of one licensing server for one product: timeouts, retries with backoff, and a
/// deadline per call; every answer is verified against the app's trust store (never against
/// keys the server publishes). Proxies come from the environment (`HTTPS_PROXY`, `NO_PROXY`).
/// Thread-safe: share it freely. Owned by the caller: free with `lic_client_free`.
///
/// Calls block the calling thread (at most the deadline given to `lic_client_new`, or the
/// limit of `lic_client_check_online`); a failed call's message is in `lic_client_last_error`
/// and, when the server refused, its error code in `lic_client_last_server_code`.
pub struct lic_client {
    /// The core client; `lic_client_set_user` swaps in a copy naming another user, so a call
    /// runs on the client it started with and never holds the lock while it waits for the
    /// server.
    client: RwLock<Arc<Client>>,
    last_error: LastError,
    last_server_code: LastError,
}

handle!(lic_client);

/// The one mapping from an online failure to a result code.
pub(crate) fn online_failure(error: &OnlineError) -> Failure {
    let code = match error.kind() {
        OnlineErrorKind::Network => lic_result::LIC_NETWORK_ERROR,
        OnlineErrorKind::Server => lic_result::LIC_SERVER_ERROR,
        OnlineErrorKind::Config => lic_result::LIC_INVALID_ARGUMENT,
        OnlineErrorKind::System => lic_result::LIC_SYSTEM_ERROR,
        OnlineErrorKind::NotActivated => lic_result::LIC_NOT_ACTIVATED,
        OnlineErrorKind::Store => lic_result::LIC_STORE_ERROR,
        OnlineErrorKind::BadResponse => lic_result::LIC_BAD_RESPONSE,
    };
    Failure::new(code, error.to_string())
}

impl lic_client {
    /// The client as it is now (the user last set).
    fn client(&self) -> Arc<Client> {
        Arc::clone(&self.client.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Runs an online operation: records the server's error code (or clears it).
    pub(crate) fn run<T>(
        &self,
        call: impl FnOnce(&Client) -> Result<T, OnlineError>,
    ) -> Result<T, Failure> {
        let result = call(&self.client());
        self.last_server_code.set(
            result
                .as_ref()
                .err()
                .and_then(OnlineError::server_code)
                .unwrap_or_default(),
        );
        result.map_err(|e| online_failure(&e))
    }
}

/// Creates a client in `*out_client` for the server at `base_url` (e.g.
/// `"https://licensing.example.com"`; `http://` for loopback and private networks) and the
/// product `product_id`, verifying answers with a copy of `trust_store`. `deadline_ms` bounds
/// every call, retries included (0: the default, 20 s); connecting is limited to 5 s and one
/// request to 10 s (less when the deadline is shorter), with 2 retries 250 ms–2 s apart after
/// a connection error, a timeout, a 5xx or a 429 (never after another 4xx).
/// `LIC_INVALID_ARGUMENT` for a URL that is not http(s) or an empty product id.
///
/// # Safety
/// `trust_store` is NULL or a live handle; `base_url`, `product_id` are NULL or NUL-terminated
/// strings; `out_client` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_client_new(
    trust_store: *const lic_trust_store,
    base_url: *const c_char,
    product_id: *const c_char,
    deadline_ms: u32,
    out_client: *mut *mut lic_client,
) -> lic_result {
    guard_free(|| {
        // SAFETY: per this function's contract.
        let trust_store = unsafe { arg(trust_store, "trust_store") }?;
        // SAFETY: per this function's contract.
        let base_url = unsafe { c_str(base_url, "base_url") }?;
        // SAFETY: per this function's contract.
        let product_id = unsafe { c_str(product_id, "product_id") }?;
        let out_client = out(out_client, "out_client")?;
        let mut config = ClientConfig::new(base_url, product_id);
        if deadline_ms > 0 {
            config.deadline = Duration::from_millis(u64::from(deadline_ms));
            config.request_timeout = config.request_timeout.min(config.deadline);
            config.connect_timeout = config.connect_timeout.min(config.deadline);
        }
        let client =
            Client::new(config, trust_store.store().clone()).map_err(|e| online_failure(&e))?;
        out_client.write(new_handle(lic_client {
            client: RwLock::new(Arc::new(client)),
            last_error: LastError::default(),
            last_server_code: LastError::default(),
        }));
        Ok(())
    })
}

/// Names `user` (the person using the app: their login or e-mail address) in the activations
/// and validations `client` sends from now on, so the server links this machine to the
/// directory user of that name in the license's organization (usage per user and department;
/// required on a license with named seats). NULL or `""` clears it: no user is sent. Floating
/// seats name their user themselves (`lic_lease_check_out`). Calls already running keep the
/// user they started with. `LIC_INVALID_ARGUMENT` for a name the server would refuse (only
/// white space, more than 200 characters, a control character or bidirectional override),
/// `LIC_INVALID_UTF8`; the user is unchanged then.
///
/// # Safety
/// `client` is NULL or a live handle; `user` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_client_set_user(
    client: *const lic_client,
    user: *const c_char,
) -> lic_result {
    guard(client, || {
        // SAFETY: per this function's contract.
        let client = unsafe { arg(client, "client") }?;
        // SAFETY: per this function's contract.
        let user = unsafe { optional_c_str(user, "user") }?.map(str::to_owned);
        let mut slot = client.client.write().unwrap_or_else(|e| e.into_inner());
        let mut next = Client::clone(&slot);
        next.set_user(user).map_err(|e| online_failure(&e))?;
        *slot = Arc::new(next);
        Ok(())
    })
}

/// Activates this machine with `license_key` at `now` and installs the license token the
/// server answers in `licensing`'s store (with the key and the machine token, for later
/// validations). Writes the installed license's verdict to `*out_verdict` (free with
/// `lic_verdict_free`). `LIC_SERVER_ERROR` when the server refuses (e.g.
/// `machine_limit_reached`, `license_not_found`, `license_suspended`: see
/// `lic_client_last_server_code`), `LIC_NETWORK_ERROR`, `LIC_BAD_RESPONSE`, `LIC_STORE_ERROR`.
///
/// # Safety
/// `client`, `licensing` are NULL or live handles; `license_key` is NULL or a NUL-terminated
/// string; `out_verdict` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_client_activate(
    client: *const lic_client,
    licensing: *const lic_licensing,
    license_key: *const c_char,
    now: i64,
    out_verdict: *mut *mut lic_verdict,
) -> lic_result {
    guard(client, || {
        // SAFETY: per this function's contract.
        let client = unsafe { arg(client, "client") }?;
        // SAFETY: per this function's contract.
        let licensing = unsafe { arg(licensing, "licensing") }?;
        // SAFETY: per this function's contract.
        let license_key = unsafe { c_str(license_key, "license_key") }?;
        let out_verdict = out(out_verdict, "out_verdict")?;
        let activated = client.run(|c| licensing.licensing.activate(c, license_key, now))?;
        out_verdict.write(new_handle(lic_verdict::new(
            activated.verdict,
            activated.license,
            licensing.not_before_leeway,
        )));
        Ok(())
    })
}

/// Moves the activation of the machine whose fingerprint id is `from_fingerprint` (the old
/// machine) to this machine with `license_key` at `now` (`POST /v1/client/transfer`: one
/// transaction on the server, counted against the policy's `max_transfers`), and installs the
/// answer in `licensing`'s store as `lic_client_activate` does. Writes the installed license's
/// verdict to `*out_verdict` (free with `lic_verdict_free`). `LIC_SERVER_ERROR` when the server
/// refuses (see `lic_client_last_server_code`: `transfer_limit_reached`, `machine_not_found`
/// for a `from_fingerprint` not activated, `machine_already_activated`, `license_not_found`,
/// `license_suspended`, ...); network, response and store errors as `lic_client_activate`.
///
/// # Safety
/// `client`, `licensing` are NULL or live handles; `license_key`, `from_fingerprint` are NULL
/// or NUL-terminated strings; `out_verdict` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_client_transfer(
    client: *const lic_client,
    licensing: *const lic_licensing,
    license_key: *const c_char,
    from_fingerprint: *const c_char,
    now: i64,
    out_verdict: *mut *mut lic_verdict,
) -> lic_result {
    guard(client, || {
        // SAFETY: per this function's contract.
        let client = unsafe { arg(client, "client") }?;
        // SAFETY: per this function's contract.
        let licensing = unsafe { arg(licensing, "licensing") }?;
        // SAFETY: per this function's contract.
        let license_key = unsafe { c_str(license_key, "license_key") }?;
        // SAFETY: per this function's contract.
        let from_fingerprint = unsafe { c_str(from_fingerprint, "from_fingerprint") }?;
        let out_verdict = out(out_verdict, "out_verdict")?;
        let activated = client.run(|c| {
            licensing
                .licensing
                .transfer(c, license_key, from_fingerprint, now)
        })?;
        out_verdict.write(new_handle(lic_verdict::new(
            activated.verdict,
            activated.license,
            licensing.not_before_leeway,
        )));
        Ok(())
    })
}

/// Validates online with the stored license key at `now`: a fresh nonce, a signed answer
/// verified against the trust store, the refreshed token stored, the server time fed to the
/// clock guard, a suspension or revocation kept for later offline starts
/// (`LIC_STATUS_SUSPENDED`, `LIC_STATUS_REVOKED`). Writes the verdict to `*out_verdict`.
/// `LIC_NOT_ACTIVATED` when no key is stored; `LIC_NETWORK_ERROR`, `LIC_SERVER_ERROR`,
/// `LIC_BAD_RESPONSE` (e.g. a replayed response), `LIC_STORE_ERROR`.
///
/// # Safety
/// `client`, `licensing` are NULL or live handles; `out_verdict` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_client_validate(
    client: *const lic_client,
    licensing: *const lic_licensing,
    now: i64,
    out_verdict: *mut *mut lic_verdict,
) -> lic_result {
    guard(client, || {
        // SAFETY: per this function's contract.
        let client = unsafe { arg(client, "client") }?;
        // SAFETY: per this function's contract.
        let licensing = unsafe { arg(licensing, "licensing") }?;
        let out_verdict = out(out_verdict, "out_verdict")?;
        let check = client.run(|c| licensing.licensing.validate_online(c, now))?;
        out_verdict.write(new_handle(lic_verdict::new(
            check.verdict,
            check.license,
            licensing.not_before_leeway,
        )));
        Ok(())
    })
}

/// The startup check with the server, never longer than `limit_ms`: validates online as
/// `lic_client_validate`; when the server cannot be reached in time (or its answer is
/// refused, or nothing is activated) the stored token is checked offline as
/// `lic_licensing_check_at_startup` (its check-in deadline gives `LIC_STATUS_VALID`, then
/// `LIC_STATUS_VALID_IN_GRACE`, then `LIC_STATUS_CHECK_IN_REQUIRED`). Writes the verdict to
/// `*out_verdict` and, when `out_online` is not NULL, whether the server answered to
/// `*out_online` (when false, `lic_client_last_error` says why). Fails only with
/// `LIC_STORE_ERROR` (and argument errors).
///
/// # Safety
/// `client`, `licensing` are NULL or live handles; `out_verdict` is NULL or writable;
/// `out_online` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_client_check_online(
    client: *const lic_client,
    licensing: *const lic_licensing,
    now: i64,
    limit_ms: u32,
    out_verdict: *mut *mut lic_verdict,
    out_online: *mut bool,
) -> lic_result {
    guard(client, || {
        // SAFETY: per this function's contract.
        let client = unsafe { arg(client, "client") }?;
        // SAFETY: per this function's contract.
        let licensing = unsafe { arg(licensing, "licensing") }?;
        let out_verdict = out(out_verdict, "out_verdict")?;
        let out_online = optional_out(out_online);
        let limit = Duration::from_millis(u64::from(limit_ms));
        let check = licensing
            .licensing
            .check_online(&client.client(), now, limit)
            .map_err(|e| Failure::new(lic_result::LIC_STORE_ERROR, e.to_string()))?;
        // Why the check was offline, readable although the call succeeded.
        match &check.offline_reason {
            Some(reason) => {
                client.last_error.set(&reason.to_string());
                client
                    .last_server_code
                    .set(reason.server_code().unwrap_or_default());
            }
            None => client.last_server_code.set(""),
        }
        if let Some(out_online) = out_online {
            out_online.write(check.offline_reason.is_none());
        }
        out_verdict.write(new_handle(lic_verdict::new(
            check.verdict,
            check.license,
            licensing.not_before_leeway,
        )));
        Ok(())
    })
}

/// Releases this machine's activation on the server (with the stored key), then clears
/// `licensing`'s store. Writes whether an activation was removed to `*out_deactivated` when
/// not NULL. `LIC_NOT_ACTIVATED` when no key is stored; network, server and store errors as
/// `lic_client_validate`.
///
/// # Safety
/// `client`, `licensing` are NULL or live handles; `out_deactivated` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_client_deactivate(
    client: *const lic_client,
    licensing: *const lic_licensing,
    out_deactivated: *mut bool,
) -> lic_result {
    guard(client, || {
        // SAFETY: per this function's contract.
        let client = unsafe { arg(client, "client") }?;
        // SAFETY: per this function's contract.
        let licensing = unsafe { arg(licensing, "licensing") }?;
        let out_deactivated = optional_out(out_deactivated);
        let answer = client.run(|c| licensing.licensing.deactivate(c))?;
        if let Some(out_deactivated) = out_deactivated {
            out_deactivated.write(answer.deactivated);
        }
        Ok(())
    })
}

/// Borrows a seat of the floating license `license_key` for `seconds` (at least 1) for `user`
/// of this installation (`client_id`): the seat is taken offline, with no heartbeat, and its
/// lease token is kept in `licensing`'s store, where `lic_licensing_check_borrowed_seat` finds
/// it with no network until it ends. Writes the lease's end (server clock, seconds since the
/// epoch; the server may set it earlier than asked, never past the license's expiry) to
/// `*out_expires_at` when not NULL. `LIC_SERVER_ERROR` when the server refuses (see
/// `lic_client_last_server_code`: `borrowing_not_allowed`, `borrow_limit`, `no_seats`);
/// network, response and store errors as `lic_client_validate`.
///
/// # Safety
/// `client`, `licensing` are NULL or live handles; `license_key`, `client_id`, `user` are NULL
/// or NUL-terminated strings; `out_expires_at` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_client_borrow_seat(
    client: *const lic_client,
    licensing: *const lic_licensing,
    license_key: *const c_char,
    client_id: *const c_char,
    user: *const c_char,
    seconds: u64,
    out_expires_at: *mut i64,
) -> lic_result {
    guard(client, || {
        // SAFETY: per this function's contract.
        let client = unsafe { arg(client, "client") }?;
        // SAFETY: per this function's contract.
        let licensing = unsafe { arg(licensing, "licensing") }?;
        // SAFETY: per this function's contract.
        let license_key = unsafe { c_str(license_key, "license_key") }?;
        // SAFETY: per this function's contract.
        let client_id = unsafe { c_str(client_id, "client_id") }?;
        // SAFETY: per this function's contract.
        let user = unsafe { c_str(user, "user") }?;
        let out_expires_at = optional_out(out_expires_at);
        let duration = Duration::from_secs(seconds);
        let grant = client.run(|c| {
            licensing
                .licensing
                .borrow_seat(c, license_key, client_id, user, duration)
        })?;
        if let Some(out_expires_at) = out_expires_at {
            out_expires_at.write(grant.expires_at);
        }
        Ok(())
    })
}

/// Returns the seat borrowed with `lic_client_borrow_seat` early (the seat is free on the
/// server at once) and removes its token from `licensing`'s store. Writes whether one was
/// returned to `*out_returned` when not NULL (false: none was stored).
///
/// # Safety
/// `client`, `licensing` are NULL or live handles; `license_key` is NULL or a NUL-terminated
/// string; `out_returned` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_client_return_seat(
    client: *const lic_client,
    licensing: *const lic_licensing,
    license_key: *const c_char,
    out_returned: *mut bool,
) -> lic_result {
    guard(client, || {
        // SAFETY: per this function's contract.
        let client = unsafe { arg(client, "client") }?;
        // SAFETY: per this function's contract.
        let licensing = unsafe { arg(licensing, "licensing") }?;
        // SAFETY: per this function's contract.
        let license_key = unsafe { c_str(license_key, "license_key") }?;
        let out_returned = optional_out(out_returned);
        let returned = client.run(|c| licensing.licensing.return_seat(c, license_key))?;
        if let Some(out_returned) = out_returned {
            out_returned.write(returned);
        }
        Ok(())
    })
}

/// Makes an air-gapped activation request for this machine and `license_key` at `now`: writes
/// its JSON (the file to hand to the vendor) to `*out_json` (free with `lic_string_free`) and
/// keeps it pending in `licensing`'s store, so only the response to it is accepted.
///
/// # Safety
/// `client`, `licensing` are NULL or live handles; `license_key` is NULL or a NUL-terminated
/// string; `out_json` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_client_offline_request(
    client: *const lic_client,
    licensing: *const lic_licensing,
    license_key: *const c_char,
    now: i64,
    out_json: *mut *mut c_char,
) -> lic_result {
    guard(client, || {
        // SAFETY: per this function's contract.
        let client = unsafe { arg(client, "client") }?;
        // SAFETY: per this function's contract.
        let licensing = unsafe { arg(licensing, "licensing") }?;
        // SAFETY: per this function's contract.
        let license_key = unsafe { c_str(license_key, "license_key") }?;
        let out_json = out(out_json, "out_json")?;
        let json = client.run(|c| {
            licensing
                .licensing
                .offline_activation_request(c, license_key, now)
        })?;
        out_json.write(owned_string(&json)?.into_raw());
        Ok(())
    })
}

/// Imports the vendor's air-gapped activation response (`response_len` bytes of UTF-8, the
/// file's text) at `now`: verified against the pending request (signature, product, nonce,
/// this machine, not expired) and applied like `lic_client_validate`. Writes the verdict to
/// `*out_verdict`. `LIC_NOT_ACTIVATED` when no request is pending; `LIC_BAD_RESPONSE` when the
/// response is refused (nothing is stored then).
///
/// # Safety
/// `client`, `licensing` are NULL or live handles; `response` is NULL or readable for
/// `response_len` bytes; `out_verdict` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_client_import_offline_response(
    client: *const lic_client,
    licensing: *const lic_licensing,
    response: *const c_char,
    response_len: usize,
    now: i64,
    out_verdict: *mut *mut lic_verdict,
) -> lic_result {
    guard(client, || {
        // SAFETY: per this function's contract.
        let client = unsafe { arg(client, "client") }?;
        // SAFETY: per this function's contract.
        let licensing = unsafe { arg(licensing, "licensing") }?;
        // SAFETY: per this function's contract.
        let response = unsafe { text(response, response_len, "response") }?;
        let out_verdict = out(out_verdict, "out_verdict")?;
        let check = client.run(|c| {
            licensing
                .licensing
                .import_offline_response(c, response, now)
        })?;
        out_verdict.write(new_handle(lic_verdict::new(
            check.verdict,
            check.license,
            licensing.not_before_leeway,
        )));
        Ok(())
    })
}

/// Deactivates this air-gapped machine by itself at `now`: writes an offline deactivation
/// receipt (MAC'd with the deactivation key the server issued at activation) to `*out_json`
/// (free with `lic_string_free`; the file to hand to the vendor, who frees the machine's slot
/// with `licensing-server offline deactivate --receipt FILE` or `POST /v1/offline/deactivate`),
/// keeps a copy in `licensing`'s store and removes the license from it (the startup check then
/// says `LIC_STATUS_NO_LICENSE`). Called again with nothing installed, it writes the receipt
/// kept before. `LIC_NOT_ACTIVATED` when there is neither an activation nor a receipt;
/// `LIC_INVALID_ARGUMENT` when the activation carries no deactivation key (made by an older
/// server); `LIC_STORE_ERROR`. No network.
///
/// # Safety
/// `client`, `licensing` are NULL or live handles; `out_json` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_client_offline_deactivate(
    client: *const lic_client,
    licensing: *const lic_licensing,
    now: i64,
    out_json: *mut *mut c_char,
) -> lic_result {
    guard(client, || {
        // SAFETY: per this function's contract.
        let client = unsafe { arg(client, "client") }?;
        // SAFETY: per this function's contract.
        let licensing = unsafe { arg(licensing, "licensing") }?;
        let out_json = out(out_json, "out_json")?;
        let json = client.run(|_| licensing.licensing.offline_deactivate(now))?;
        out_json.write(owned_string(&json)?.into_raw());
        Ok(())
    })
}

/// Copies the message of the most recent failed call on `client` (or the reason the last
/// `lic_client_check_online` was offline) into `buf` (see `lic_last_error` for the buffer
/// protocol).
///
/// # Safety
/// `client` is NULL or a live handle; `buf` is NULL or writable for `len` bytes; `out_len` is
/// NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_client_last_error(
    client: *const lic_client,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> lic_result {
    // SAFETY: per this function's contract.
    unsafe { copy_last_error(client, buf, len, out_len) }
}

/// Copies the server's error code from the most recent online call on `client` (e.g.
/// `"machine_limit_reached"`, `"license_not_found"`) into `buf` (buffer protocol of
/// `lic_last_error`); `""` when that call was not refused by the server.
///
/// # Safety
/// `client` is NULL or a live handle; `buf` is NULL or writable for `len` bytes; `out_len` is
/// NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_client_last_server_code(
    client: *const lic_client,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> lic_result {
    // SAFETY: per this function's contract.
    let Some(client) = (unsafe { client.as_ref() }) else {
        return lic_result::LIC_NULL_ARGUMENT;
    };
    let code = guard_value(None, || Some(client.last_server_code.get()));
    match code {
        // SAFETY: per this function's contract.
        Some(code) => unsafe { copy_message(&code, buf, len, out_len) },
        None => lic_result::LIC_PANIC,
    }
}

/// Frees a client. NULL is a no-op; freeing twice is undefined behaviour.
///
/// # Safety
/// `client` is NULL or a handle not freed before and not in use by another thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lic_client_free(client: *mut lic_client) {
    guard_value((), || {
        // SAFETY: per this function's contract.
        unsafe { free_handle(client) }
    })
}

#[cfg(test)]
mod user_tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::ffi::CString;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::ptr;
    use std::sync::mpsc;

    use licensing_core::store::LicenseStore;
    use serde_json::Value;

    use super::*;
    use crate::keys::{lic_trust_store_free, lic_trust_store_new};
    use crate::startup::{
        lic_license_store_free, lic_license_store_open, lic_licensing_free, lic_licensing_new,
    };

    const PRODUCT: &str = "com.example.cad";

    /// A stand-in server on 127.0.0.1 for `count` requests: hands each request's path and JSON
    /// body to the test, and refuses it (404 `license_not_found`: a 4xx is never retried).
    fn refusing_server(count: usize) -> (String, mpsc::Receiver<(String, Value)>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (sent, received) = mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming().take(count) {
                let mut stream = stream.unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request_line = String::new();
                reader.read_line(&mut request_line).unwrap();
                let path = request_line
                    .split(' ')
                    .nth(1)
                    .unwrap_or_default()
                    .to_owned();
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    let line = line.trim_end();
                    if line.is_empty() {
                        break;
                    }
                    if let Some((name, value)) = line.split_once(':')
                        && name.eq_ignore_ascii_case("content-length")
                    {
                        length = value.trim().parse().unwrap();
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                sent.send((path, serde_json::from_slice(&body).unwrap()))
                    .unwrap();
                let answer = r#"{"error":"license_not_found","detail":"no such license"}"#;
                write!(
                    stream,
                    "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                    answer.len()
                )
                .unwrap();
            }
        });
        (url, received)
    }

    /// A client of `url` and an app's licensing on a store in `dir` holding a license key (so
    /// validations are sent); the caller frees both.
    fn client_and_licensing(
        url: &str,
        dir: &std::path::Path,
    ) -> (*mut lic_client, *mut lic_licensing) {
        LicenseStore::at(dir)
            .unwrap()
            .write_license_key("AAAAA-BBBBB")
            .unwrap();
        let url = CString::new(url).unwrap();
        let product = CString::new(PRODUCT).unwrap();
        let dir = CString::new(dir.to_str().unwrap()).unwrap();
        let mut trust = ptr::null_mut();
        let mut store = ptr::null_mut();
        let mut client = ptr::null_mut();
        let mut licensing = ptr::null_mut();
        // SAFETY: live handles and NUL-terminated strings, writable out-parameters.
        unsafe {
            assert_eq!(lic_trust_store_new(&mut trust), lic_result::LIC_OK);
            assert_eq!(
                lic_license_store_open(dir.as_ptr(), &mut store),
                lic_result::LIC_OK
            );
            assert_eq!(
                lic_client_new(trust, url.as_ptr(), product.as_ptr(), 10_000, &mut client),
                lic_result::LIC_OK
            );
            assert_eq!(
                lic_licensing_new(trust, product.as_ptr(), store, ptr::null(), &mut licensing),
                lic_result::LIC_OK
            );
            lic_license_store_free(store);
            lic_trust_store_free(trust);
        }
        (client, licensing)
    }

    /// The user `lic_client_set_user` sets reaches the server in the activate and validate
    /// request bodies; once cleared (`""` or NULL) no `user` is sent.
    #[test]
    fn the_user_set_reaches_activations_and_validations_until_cleared() {
        let (url, received) = refusing_server(5);
        let dir = tempfile::tempdir().unwrap();
        let (client, licensing) = client_and_licensing(&url, dir.path());
        let key = CString::new("AAAAA-BBBBB").unwrap();
        let ada = CString::new("Ada Lovelace").unwrap();
        let empty = CString::new("").unwrap();
        let mut verdict = ptr::null_mut();
        let request = || received.try_recv().unwrap();
        // SAFETY: live handles and NUL-terminated strings, writable out-parameters.
        unsafe {
            let activate = |verdict: &mut *mut lic_verdict| {
                lic_client_activate(client, licensing, key.as_ptr(), 1_790_000_000, verdict)
            };
            let validate = |verdict: &mut *mut lic_verdict| {
                lic_client_validate(client, licensing, 1_790_000_000, verdict)
            };
            assert_eq!(activate(&mut verdict), lic_result::LIC_SERVER_ERROR);
            let (path, body) = request();
            assert_eq!(path, "/v1/client/activate");
            assert!(body.get("user").is_none(), "{body}");

            assert_eq!(
                lic_client_set_user(client, ada.as_ptr()),
                lic_result::LIC_OK
            );
            assert_eq!(activate(&mut verdict), lic_result::LIC_SERVER_ERROR);
            let (path, body) = request();
            assert_eq!(path, "/v1/client/activate");
            assert_eq!(body["user"], "Ada Lovelace");
            assert_eq!(validate(&mut verdict), lic_result::LIC_SERVER_ERROR);
            let (path, body) = request();
            assert_eq!(path, "/v1/client/validate");
            assert_eq!(body["user"], "Ada Lovelace");

            assert_eq!(
                lic_client_set_user(client, empty.as_ptr()),
                lic_result::LIC_OK
            );
            assert_eq!(validate(&mut verdict), lic_result::LIC_SERVER_ERROR);
            let (_, body) = request();
            assert!(body.get("user").is_none(), "{body}");

            assert_eq!(
                lic_client_set_user(client, ada.as_ptr()),
                lic_result::LIC_OK
            );
            assert_eq!(lic_client_set_user(client, ptr::null()), lic_result::LIC_OK);
            assert_eq!(validate(&mut verdict), lic_result::LIC_SERVER_ERROR);
            let (_, body) = request();
            assert!(body.get("user").is_none(), "{body}");
            assert!(verdict.is_null(), "no verdict is written on failure");

            lic_licensing_free(licensing);
            lic_client_free(client);
        }
    }

    /// NULL client, invalid UTF-8 and names the server would refuse (over 200 characters,
    /// control characters, only white space) are refused with the existing results, the
    /// message naming the rule, and the user unchanged.
    #[test]
    fn bad_users_are_refused_and_change_nothing() {
        let (url, received) = refusing_server(1);
        let dir = tempfile::tempdir().unwrap();
        let (client, licensing) = client_and_licensing(&url, dir.path());
        let ada = CString::new("ada").unwrap();
        let longest = CString::new("é".repeat(200)).unwrap();
        // SAFETY: live handles, NUL-terminated strings, writable out-parameters.
        unsafe {
            assert_eq!(
                lic_client_set_user(ptr::null(), ada.as_ptr()),
                lic_result::LIC_NULL_ARGUMENT
            );
            assert_eq!(
                lic_client_set_user(client, longest.as_ptr()),
                lic_result::LIC_OK
            );
            assert_eq!(
                lic_client_set_user(client, ada.as_ptr()),
                lic_result::LIC_OK
            );
            let invalid_utf8 = [0x61u8, 0xff, 0x62, 0];
            assert_eq!(
                lic_client_set_user(client, invalid_utf8.as_ptr().cast()),
                lic_result::LIC_INVALID_UTF8
            );
            for bad in [
                "é".repeat(201),
                "a\u{1}b".into(),
                "a\tb".into(),
                "   ".into(),
            ] {
                let bad = CString::new(bad).unwrap();
                assert_eq!(
                    lic_client_set_user(client, bad.as_ptr()),
                    lic_result::LIC_INVALID_ARGUMENT,
                    "{bad:?}"
                );
                let mut text = [0 as c_char; 256];
                let mut len = 0;
                assert_eq!(
                    lic_client_last_error(client, text.as_mut_ptr(), text.len(), &mut len),
                    lic_result::LIC_OK
                );
                let text = std::ffi::CStr::from_ptr(text.as_ptr()).to_str().unwrap();
                assert!(text.contains("1 to 200 characters"), "{text}");
            }
            // Still "ada".
            let mut verdict = ptr::null_mut();
            assert_eq!(
                lic_client_validate(client, licensing, 1_790_000_000, &mut verdict),
                lic_result::LIC_SERVER_ERROR
            );
            let (_, body) = received.try_recv().unwrap();
            assert_eq!(body["user"], "ada");
            lic_licensing_free(licensing);
            lic_client_free(client);
        }
    }
}
