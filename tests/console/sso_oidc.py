"""Console single sign-on through OpenID Connect, in a real headless Chromium, against a real
OpenID Connect provider (Authlib, tests/console/oidc_provider.py) started here on 127.0.0.1.

Run by scripts/test-console.sh after tests/console/e2e.py, against the same server and with the
same environment (CONSOLE_URL, CONSOLE_TOKEN, CONSOLE_ARTEFACTS, CHROMIUM); the conventions
(steps, checks, screenshots, browser errors, security headers) are e2e.py's. The walk-through:
the admin signs in with a password (the account e2e.py made, or made here when run alone) and
configures the provider on the settings page (the redirect URI registered at the provider is
the one the page shows); signs out; signs in through the sign-in page's single sign-on form with
a work e-mail, which goes to the provider and back (authorization code with PKCE S256, the
provider's `groups` claim mapped to the admin role); the console shows the new account with its
role; the provider's callback replayed is refused with a page that says so. Screenshots go to
CONSOLE_ARTEFACTS as sso-*.png.
"""

import os
import sys
import time
import traceback
import urllib.parse

from playwright.sync_api import sync_playwright

from e2e import (
    ARTEFACTS,
    CHROMIUM,
    DESKTOP,
    PASSWORD,
    TOKEN,
    URL,
    USER,
    STEP,
    Console,
    Failure,
    check,
    http,
    step,
)
from oidc_provider import CLIENT_ID, CLIENT_SECRET, Provider, User

EMAIL = "alice@example.test"


def walk_through(c, idp):
    page = c.page

    with step("sso 1. the admin signs in with a password"):
        status, headers, _ = http("GET", "/console/", follow=False)
        if urllib.parse.urlsplit(headers.get("location", "")).path == "/console/setup":
            c.goto("/console/setup")
            page.fill("input[name=token]", TOKEN)
            page.fill("input[name=user_name]", USER)
            page.fill("input[name=password]", PASSWORD)
            c.submit()
        else:
            c.goto("/console/sign-in")
            page.fill("#user_name", USER)
            page.fill("#password", PASSWORD)
            c.submit()
        check(c.path() == "/console/", f"after sign-in the browser is on {c.path()}")

    with step("sso 2. the admin configures the provider on the settings page"):
        check(c.count("#nav-sso") == 1, "no Single sign-on link in an admin's nav")
        page.click("#nav-sso")
        c.expect_path("/console/settings/sso")
        callback = page.locator("#callback-url").inner_text().strip()
        want = f"{URL}/console/sso/oidc/"
        check(
            callback.startswith(want) and callback.endswith("/callback"),
            f"the callback URL shown is {callback!r}, wanted {want}<org>/callback",
        )
        # What an administrator does at the provider: register the redirect URI shown.
        idp.client.redirect_uris = [callback]
        page.fill("#issuer_url", idp.issuer)
        page.fill("#client_id", CLIENT_ID)
        page.fill("#client_secret", CLIENT_SECRET)
        page.fill("#scopes", "openid email profile")
        page.fill("#role_claim", "groups")
        page.fill("#role_map", '{"licensing-admins": "admin", "licensing-readers": "auditor"}')
        page.select_option("#default_role", "")
        page.fill("#email_domains", "example.test")
        c.submit("#save-oidc")
        notice = page.locator(".notice, .warning").first.inner_text()
        check("discovery document was fetched" in notice, f"after saving: {notice!r}")
        check(c.count("#secret-set") == 1, "the stored secret is not shown as (set)")
        check(
            page.input_value("#client_secret") == "" and CLIENT_SECRET not in page.content(),
            "the client secret is rendered back",
        )
        c.shot("sso-settings")

    with step("sso 3. sign out; the sign-in page offers single sign-on"):
        c.submit("#sign-out")
        c.expect_path("/console/sign-in")
        check(c.count("#who") == 1, "no single sign-on field on the sign-in page")
        c.shot("sso-sign-in")

    seen = []
    page.on("request", lambda req: seen.append(req.url))
    with step("sso 4. sign in through the provider (authorization code, PKCE S256)"):
        page.fill("#who", EMAIL)
        page.click("#sso-submit")
        # To the provider, back to the callback, on to the overview.
        page.wait_for_url(lambda u: urllib.parse.urlsplit(u).path == "/console/")
        who = page.locator("#nav-account").inner_text()
        check(f"{EMAIL} (admin)" in who, f"signed in as {who!r}, wanted {EMAIL} (admin)")
        authorize = [u for u in seen if u.startswith(idp.issuer + "/authorize")]
        check(authorize, f"the browser never went to the provider: {seen}")
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(authorize[-1]).query)
        check(query.get("code_challenge_method") == ["S256"], f"authorize request: {query}")
        check("code_challenge" in query and "nonce" in query and "state" in query, f"{query}")
        check(("token-request", True) in idp.log, f"no token request with a verifier: {idp.log}")
        check(
            not any(CLIENT_SECRET in u for u in seen), "the client secret went through the browser"
        )
        c.shot("sso-signed-in")

    with step("sso 5. the provider's answer replayed is refused"):
        callbacks = [u for u in seen if "/callback?" in u]
        check(callbacks, f"no callback seen: {seen}")
        c.refusal_expected = True
        try:
            resp = page.goto(callbacks[-1], wait_until="load")
        finally:
            c.refusal_expected = False
        check(resp is not None and resp.status == 400, f"replayed callback: HTTP {resp and resp.status}")
        body = page.locator("main").inner_text()
        check("Single sign-on failed" in body and "already used" in body, f"replay page: {body!r}")
        c.shot("sso-replay-refused")
        # The session of the real sign-in is still there.
        c.goto("/console/")
        check(EMAIL in page.locator("#nav-account").inner_text(), "the session ended")

    with step("sso 6. the browser logged no error; every console page had its headers"):
        c.assert_clean()
        check(c.checked_headers > 0, "no console page was checked for its security headers")


def main():
    os.makedirs(ARTEFACTS, exist_ok=True)
    started = time.monotonic()
    idp = Provider(User("sub-alice", EMAIL, ["licensing-admins"])).start()
    print(f"OpenID Connect provider (Authlib) at {idp.issuer}", flush=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox"], timeout=30_000
            )
            try:
                context = browser.new_context(viewport=DESKTOP)
                c = Console(context.new_page())
                try:
                    walk_through(c, idp)
                except Exception as err:
                    print(f"\nFAILED at step `{STEP['name']}`:", file=sys.stderr)
                    if isinstance(err, Failure):
                        print(f"  {err}", file=sys.stderr)
                    else:
                        ours = [
                            f
                            for f in traceback.extract_tb(err.__traceback__)
                            if f.filename == os.path.abspath(__file__)
                        ]
                        if ours:
                            print(f"  at sso_oidc.py:{ours[-1].lineno}: {ours[-1].line}", file=sys.stderr)
                        message = "\n    ".join(str(err).splitlines()[:8])
                        print(f"  {type(err).__name__}: {message}", file=sys.stderr)
                    if c.errors:
                        print("  browser errors:\n    " + "\n    ".join(c.errors), file=sys.stderr)
                    print(f"  provider log: {idp.log}", file=sys.stderr)
                    try:
                        c.page.screenshot(
                            path=os.path.join(ARTEFACTS, "sso-failure.png"), full_page=True
                        )
                        with open(os.path.join(ARTEFACTS, "sso-failure.html"), "w") as out:
                            out.write(c.page.content())
                    except Exception as shot_err:
                        print(f"  (no failure screenshot: {shot_err})", file=sys.stderr)
                    return 1
            finally:
                browser.close()
    finally:
        idp.stop()
    print(
        f"console sso (OpenID Connect): all steps passed in {time.monotonic() - started:.1f} s; "
        f"screenshots in {ARTEFACTS}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
