//! Console accounts: an admin invites people (a one-time link, valid 7 days, shown once) and
//! resets a password (the same kind of link; the account's sessions end), the invitee sets
//! their password through the link, and anyone signed in changes their own password.

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::super::extract::{Action, Role};
use super::super::{AppState, now, secrets};
use super::pages::CsrfForm;
use super::session::{self, SESSION_COOKIE, Session};
use super::{ConsoleError, render};

type Page = Result<Response, ConsoleError>;

/// How long an invitation or reset link may be used.
pub(crate) const INVITE_SECS: i64 = 7 * 86_400;

/// The roles a console account may have (an identity provider's `scim` role is for tokens).
const ROLES: [Role; 4] = [
    Role::Admin,
    Role::LicenseManager,
    Role::ItStaff,
    Role::Auditor,
];

fn page(status: StatusCode, html: Html<String>) -> Response {
    (status, html).into_response()
}

/// The one-time link for `secret`, on the address the admin's browser used.
fn invite_link(headers: &HeaderMap, secret: &str) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            h.chars()
                .all(|c| c.is_ascii_alphanumeric() || ".:-[]".contains(c))
        })
        .unwrap_or("");
    format!("http://{host}/console/accept?token={secret}")
}

async fn accounts_page(
    state: &AppState,
    session: &Session,
    status: StatusCode,
    extra: Value,
) -> Page {
    session.caller.require(Action::Administer)?;
    let accounts = state
        .db()
        .list_console_accounts(&session.caller.organization_id)
        .await?;
    let context = json!({
        "accounts": accounts,
        "roles": ROLES.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
        "now": now(),
    });
    let context = super::pages::frame_with(session, "accounts", context, extra);
    Ok(page(status, render("accounts.html", context)?))
}

/// `GET /console/accounts`: the organization's console accounts (admins).
pub(crate) async fn accounts(State(state): State<AppState>, session: Session) -> Page {
    accounts_page(&state, &session, StatusCode::OK, json!({})).await
}

#[derive(Deserialize)]
pub(crate) struct InviteForm {
    csrf: String,
    user_name: String,
    role: String,
}

/// `POST /console/accounts`: invites a person; the page shows the link once.
pub(crate) async fn invite(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
    Form(form): Form<InviteForm>,
) -> Page {
    session.check_csrf(&form.csrf)?;
    session.caller.require(Action::Administer)?;
    let refuse = |message: &str| json!({ "warning": message });
    let Some(role) = Role::parse(&form.role).filter(|r| ROLES.contains(r)) else {
        let extra = refuse("Pick a role: admin, license manager, IT staff or auditor.");
        return accounts_page(&state, &session, StatusCode::UNPROCESSABLE_ENTITY, extra).await;
    };
    let user_name = form.user_name.trim();
    if !licensing_core::claims::is_display_name(user_name) {
        let extra = refuse("The user name must be 1 to 200 characters.");
        return accounts_page(&state, &session, StatusCode::UNPROCESSABLE_ENTITY, extra).await;
    }
    let secret = session::new_secret()?;
    let id = secrets::new_id("acc").map_err(ConsoleError::Internal)?;
    let now = now();
    let created = state
        .db()
        .invite_console_account(
            &id,
            &session.caller.organization_id,
            user_name,
            role.as_str(),
            &secrets::sha256_hex(secret.as_bytes()),
            now + INVITE_SECS,
            now,
        )
        .await?;
    if !created {
        let extra = refuse("That user name is taken.");
        return accounts_page(&state, &session, StatusCode::CONFLICT, extra).await;
    }
    let extra = json!({ "link": invite_link(&headers, &secret), "link_for": user_name });
    accounts_page(&state, &session, StatusCode::CREATED, extra).await
}

/// `POST /console/accounts/{id}/reset`: an admin's password reset: a new link, shown once.
pub(crate) async fn reset(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Page {
    session.check_csrf(&form.csrf)?;
    session.caller.require(Action::Administer)?;
    let secret = session::new_secret()?;
    let now = now();
    let reset = state
        .db()
        .reset_console_account(
            &session.caller.organization_id,
            &id,
            &secrets::sha256_hex(secret.as_bytes()),
            now + INVITE_SECS,
            now,
        )
        .await?;
    if !reset {
        return Err(ConsoleError::Api(super::super::routes::not_found().await));
    }
    let extra = json!({ "link": invite_link(&headers, &secret), "link_for": id });
    accounts_page(&state, &session, StatusCode::OK, extra).await
}

#[derive(Deserialize)]
pub(crate) struct AcceptQuery {
    token: Option<String>,
}

/// `GET /console/accept?token=`: the invitee sets a password.
pub(crate) async fn accept_form(Query(q): Query<AcceptQuery>) -> Page {
    let token = q.token.unwrap_or_default();
    Ok(page(
        StatusCode::OK,
        render("accept.html", json!({ "token": token }))?,
    ))
}

#[derive(Deserialize)]
pub(crate) struct AcceptForm {
    token: String,
    password: String,
}

/// `POST /console/accept`: spends the link, sets the password, signs in. (The link's secret is
/// the form's proof: no other CSRF token is needed, and a forged form cannot know it.)
pub(crate) async fn accept(State(state): State<AppState>, Form(form): Form<AcceptForm>) -> Page {
    let again = |message: &str| -> Page {
        let context = json!({ "token": form.token, "error": message });
        Ok(page(
            StatusCode::UNPROCESSABLE_ENTITY,
            render("accept.html", context)?,
        ))
    };
    if let Some(problem) = session::password_problem(&form.password) {
        return again(&problem);
    }
    let hash = session::hash_password(&form.password).map_err(ConsoleError::Internal)?;
    let accepted = state
        .db()
        .accept_console_invite(&secrets::sha256_hex(form.token.as_bytes()), &hash, now())
        .await?;
    let Some(account) = accepted else {
        return again("This link is not valid any more: ask an admin for a new one.");
    };
    let secret = session::start_session(&state, &account).await?;
    Ok(super::pages::signed_in(&secret))
}

/// `GET /console/account`: the signed-in account, and its password change.
pub(crate) async fn account(session: Session) -> Page {
    let context = super::pages::frame(&session, "account", json!({}));
    Ok(page(StatusCode::OK, render("account.html", context)?))
}

#[derive(Deserialize)]
pub(crate) struct PasswordForm {
    csrf: String,
    current: String,
    password: String,
}

/// `POST /console/account`: changes the password (the current one first); the account's
/// other sessions end.
pub(crate) async fn change_password(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
    Form(form): Form<PasswordForm>,
) -> Page {
    session.check_csrf(&form.csrf)?;
    let answer = |status: StatusCode, key: &str, message: &str| -> Page {
        let context = super::pages::frame(&session, "account", json!({ key: message }));
        Ok(page(status, render("account.html", context)?))
    };
    let db = state.db();
    let stored = db.console_password_hash(&session.stored.account_id).await?;
    if !stored.is_some_and(|h| session::password_matches(&form.current, &h)) {
        return answer(
            StatusCode::UNPROCESSABLE_ENTITY,
            "warning",
            "The current password is wrong.",
        );
    }
    if let Some(problem) = session::password_problem(&form.password) {
        return answer(StatusCode::UNPROCESSABLE_ENTITY, "warning", &problem);
    }
    let hash = session::hash_password(&form.password).map_err(ConsoleError::Internal)?;
    let parts = super::pages::parts_of(headers);
    let keep = session::cookie(&parts, SESSION_COOKIE)
        .map(|s| secrets::sha256_hex(s.as_bytes()))
        .unwrap_or_default();
    db.set_console_password(&session.stored.account_id, &hash, &keep, now())
        .await?;
    answer(
        StatusCode::OK,
        "notice",
        "The password is changed; your other sessions are signed out.",
    )
}
