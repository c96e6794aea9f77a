//! Console sign-in: local accounts with argon2id password hashes, sessions in an `HttpOnly`,
//! `SameSite=Strict` cookie (`Secure` once the console is served over TLS), a CSRF token per
//! session checked on every state change, idle and absolute timeouts, and a lockout after
//! repeated failed sign-ins. A signed-in session acts as a [`Caller`] with the account's role
//! and organization, so the console passes the same role checks as the API.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use super::super::audit::{AuditEvent, action};
use super::super::db::console::ConsoleSession;
use super::super::extract::{Caller, Role};
use super::super::{AppState, now, secrets};
use super::ConsoleError;

/// The session cookie.
pub(crate) const SESSION_COOKIE: &str = "lic_session";
/// The pre-session cookie that carries the CSRF token of the sign-in and setup forms (login
/// CSRF: a forged form cannot know it).
pub(crate) const PRE_COOKIE: &str = "lic_pre";

/// A session ends after this long without a request.
pub(crate) const IDLE_TIMEOUT_SECS: i64 = 30 * 60;
/// A session ends this long after sign-in, used or not.
pub(crate) const ABSOLUTE_TIMEOUT_SECS: i64 = 12 * 3600;
/// Failed sign-ins in a row that lock an account.
pub(crate) const MAX_FAILED_SIGN_INS: i64 = 5;
/// How long a locked account refuses sign-ins.
pub(crate) const LOCKOUT_SECS: i64 = 15 * 60;
/// The shortest password.
pub(crate) const MIN_PASSWORD_CHARS: usize = 12;
/// The longest password (argon2 takes any length; this bounds the work of one request).
pub(crate) const MAX_PASSWORD_CHARS: usize = 256;
/// Sessions' last-seen time is written at most this often (a page view is not a write).
const TOUCH_EVERY_SECS: i64 = 60;

/// The argon2id PHC string of `password` with a fresh salt.
pub(crate) fn hash_password(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| format!("CSPRNG: {e}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| e.to_string())
}

/// Whether `password` matches the stored PHC string (constant time in argon2).
pub(crate) fn password_matches(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored).is_ok_and(|hash| {
        Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok()
    })
}

/// A password's problem, if any, for the form.
pub(crate) fn password_problem(password: &str) -> Option<String> {
    let chars = password.chars().count();
    (!(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&chars)).then(|| {
        format!("The password must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters.")
    })
}

/// A new random secret for a cookie or a CSRF token (200 random bits).
pub(crate) fn new_secret() -> Result<String, ConsoleError> {
    secrets::new_api_token()
        .map(|t| t.trim_start_matches("lst_").to_owned())
        .map_err(ConsoleError::Internal)
}

/// The value of cookie `name` in the request.
pub(crate) fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value for the console's cookies: path `/console`, `HttpOnly`,
/// `SameSite=Strict`; `max_age` 0 deletes it.
pub(crate) fn set_cookie(name: &str, value: &str, max_age: i64) -> String {
    format!("{name}={value}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={max_age}")
}

/// Marks every cookie the console sets `Secure` when the client reached the server over TLS
/// (served here, or at a proxy the operator declared with `--behind-tls-proxy`), so a browser
/// never sends it over plain HTTP.
pub(crate) async fn secure_cookies(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let secure = request
        .extensions()
        .get::<crate::server::conn::SecureTransport>()
        .is_some();
    let mut response = next.run(request).await;
    if secure {
        let headers = response.headers_mut();
        let cookies: Vec<_> = headers
            .get_all(axum::http::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(|v| format!("{v}; Secure"))
            .collect();
        if !cookies.is_empty() {
            headers.remove(axum::http::header::SET_COOKIE);
            for cookie in cookies {
                if let Ok(value) = cookie.parse() {
                    headers.append(axum::http::header::SET_COOKIE, value);
                }
            }
        }
    }
    response
}

/// Compares two secrets in constant time.
pub(crate) fn same_secret(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// A signed-in console session: the extractor of every signed-in page. Without a live session
/// it answers a redirect to the sign-in page (or to the setup page while no account exists).
pub(crate) struct Session {
    /// The session as stored.
    pub stored: ConsoleSession,
    /// The caller the session acts as: the account's role and organization.
    pub caller: Caller,
}

impl Session {
    /// 403 unless `csrf` is this session's CSRF token.
    pub(crate) fn check_csrf(&self, csrf: &str) -> Result<(), ConsoleError> {
        if same_secret(csrf, &self.stored.csrf) {
            Ok(())
        } else {
            Err(ConsoleError::Forbidden(
                "The form is stale or was not sent by this console. Reload the page and try again."
                    .into(),
            ))
        }
    }
}

impl FromRequestParts<AppState> for Session {
    type Rejection = ConsoleError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ConsoleError> {
        let Some(secret) = cookie(parts, SESSION_COOKIE) else {
            return Err(not_signed_in(state).await);
        };
        let id_hash = secrets::sha256_hex(secret.as_bytes());
        let db = state.db();
        let Some(stored) = db.console_session(&id_hash).await? else {
            return Err(not_signed_in(state).await);
        };
        let now = now();
        if now.saturating_sub(stored.last_seen_at) > IDLE_TIMEOUT_SECS
            || now.saturating_sub(stored.created_at) > ABSOLUTE_TIMEOUT_SECS
        {
            db.delete_console_session(&id_hash).await?;
            return Err(ConsoleError::SignIn);
        }
        if now.saturating_sub(stored.last_seen_at) >= TOUCH_EVERY_SECS {
            db.touch_console_session(&id_hash, now).await?;
        }
        let role = Role::parse(&stored.role)
            .ok_or_else(|| ConsoleError::Internal(format!("stored role `{}`", stored.role)))?;
        let caller = Caller {
            token_id: stored.account_id.clone(),
            organization_id: stored.organization_id.clone(),
            operator: stored.operator != 0,
            role,
        };
        // A state-changing console request is recorded in the audit trail as this account.
        if let Some(slot) = parts.extensions.get::<super::super::audit::AuditSlot>() {
            slot.set(&caller);
        }
        Ok(Session { stored, caller })
    }
}

/// Where a request without a session goes.
async fn not_signed_in(state: &AppState) -> ConsoleError {
    match state.db().console_account_count().await {
        Ok(0) => ConsoleError::Setup,
        Ok(_) => ConsoleError::SignIn,
        Err(e) => ConsoleError::Internal(e.to_string()),
    }
}

/// The outcome of a sign-in attempt.
pub(crate) enum SignIn {
    /// Signed in: the cookie's secret.
    Started(String),
    /// Wrong name or password (one answer for both: no account enumeration).
    Refused,
    /// Too many failures: locked until then.
    Locked,
}

/// Checks `user_name` and `password` and starts a session.
pub(crate) async fn sign_in(
    state: &AppState,
    user_name: &str,
    password: &str,
) -> Result<SignIn, ConsoleError> {
    let db = state.db();
    let now = now();
    let Some(account) = db.console_account_by_name(user_name).await? else {
        // The same work as a real check, so timing tells nothing about the name.
        let _ = password_matches(password, DUMMY_HASH);
        return Ok(SignIn::Refused);
    };
    let record = |action, detail: &str| {
        state.audit().record_event(
            AuditEvent::new(
                &account.organization_id,
                account.id.as_str(),
                action,
                &account.id,
            )
            .detail(detail),
        );
    };
    if account.locked_until.is_some_and(|until| until > now) {
        record(action::CONSOLE_SIGN_IN_REFUSED, "locked");
        return Ok(SignIn::Locked);
    }
    let matches = password.chars().count() <= MAX_PASSWORD_CHARS
        && account
            .password_hash
            .as_deref()
            .is_some_and(|stored| password_matches(password, stored));
    if !matches {
        let lock =
            (account.failed_sign_ins + 1 >= MAX_FAILED_SIGN_INS).then_some(now + LOCKOUT_SECS);
        db.console_sign_in_failed(&account.id, lock, now).await?;
        record(
            action::CONSOLE_SIGN_IN_REFUSED,
            if lock.is_some() {
                "wrong password; locked"
            } else {
                "wrong password"
            },
        );
        return Ok(if lock.is_some() {
            SignIn::Locked
        } else {
            SignIn::Refused
        });
    }
    let started = start_session(state, &account.id).await?;
    record(action::CONSOLE_SIGNED_IN, "password");
    Ok(SignIn::Started(started))
}

/// Starts a session of `account_id`; the cookie's secret.
pub(crate) async fn start_session(
    state: &AppState,
    account_id: &str,
) -> Result<String, ConsoleError> {
    let secret = new_secret()?;
    let csrf = new_secret()?;
    state
        .db()
        .insert_console_session(
            &secrets::sha256_hex(secret.as_bytes()),
            account_id,
            &csrf,
            now(),
        )
        .await?;
    Ok(secret)
}

/// An argon2id hash of a random password: checked against when the name is unknown.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$2ePvLDZCnzSXa8aqXmrVHfU8dGbHSe+yS20Uhg0Xsz0";

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_password_hash_is_argon2id_and_checks_only_its_password() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(password_matches("correct horse battery", &hash));
        assert!(!password_matches("correct horse batterz", &hash));
        assert!(!password_matches("correct horse battery", "not a hash"));
        // Two hashes of one password differ (salted).
        assert_ne!(hash, hash_password("correct horse battery").unwrap());
        // The dummy parses, so an unknown name costs a real check.
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
    }

    #[test]
    fn passwords_are_bounded() {
        assert!(password_problem("short").is_some());
        assert!(password_problem(&"x".repeat(12)).is_none());
        assert!(password_problem(&"x".repeat(257)).is_some());
    }

    #[test]
    fn secrets_compare_only_equal() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
    }
}
