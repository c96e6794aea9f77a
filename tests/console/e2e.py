"""The admin console end to end (issue 23), in a real headless Chromium driven by Playwright.

Run by scripts/test-console.sh, which starts the real server and passes, in the environment:
  CONSOLE_URL        the server's base URL (http://127.0.0.1:PORT)
  CONSOLE_TOKEN      the admin API token the server printed at its first start
  CONSOLE_ARTEFACTS  where the screenshots go (target/console-artefacts)
  CHROMIUM           the browser's executable (/usr/bin/chromium)

The walk-through: the first console account from the bootstrap token, sign-out and sign-in (and
a wrong password); a product, a floating policy with one seat and a license over the admin API;
an SDK client's check-out, shown on the license page and logged out from it (the client's next
heartbeat is refused); a second client denied and the denial counted on the overview; the lease
timeout out of spec (a warning) and in spec (a notice); the audit chain verified. Every page is
also checked at a phone-sized viewport (no horizontal scroll), every console response carries
the security headers, and the browser logs no error. Each step prints its name; the first
failure names its step, saves a screenshot and the page's HTML, and exits 1.
"""

import json
import os
import re
import sys
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
import uuid
from contextlib import contextmanager

from playwright.sync_api import expect, sync_playwright

URL = os.environ["CONSOLE_URL"].rstrip("/")
TOKEN = os.environ["CONSOLE_TOKEN"]
ARTEFACTS = os.environ.get("CONSOLE_ARTEFACTS", "target/console-artefacts")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
TIMEOUT_MS = 10_000
HTTP_TIMEOUT_S = 10
USER = "operator"
PASSWORD = "correct horse battery staple"


class Failure(Exception):
    """A check of the walk-through that did not hold."""


def check(condition, message):
    if not condition:
        raise Failure(message)


# --- The admin API and the SDK client's protocol, over plain HTTP (urllib) -------------------


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def http(method, path, body=None, token=None, follow=True, cookie=None):
    """One request; returns (status, headers, parsed JSON body or text). Never raises on a status."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(URL + path, data=data, method=method)
    if data is not None:
        req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", "Bearer " + token)
    if cookie:
        req.add_header("cookie", cookie)
    opener = urllib.request.build_opener() if follow else urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(req, timeout=HTTP_TIMEOUT_S) as resp:
            status, headers, raw = resp.status, resp.headers, resp.read(1 << 20)
    except urllib.error.HTTPError as err:
        status, headers, raw = err.code, err.headers, err.read(1 << 20)
    text = raw.decode("utf-8", "replace")
    try:
        parsed = json.loads(text) if text else None
    except ValueError:
        parsed = text
    return status, headers, parsed


def api(method, path, body=None, want=(200, 201)):
    status, _, parsed = http(method, path, body, token=TOKEN)
    check(status in want, f"{method} {path}: HTTP {status} (wanted {want}): {parsed}")
    return parsed


def check_out(key, client, request_id):
    """POST /v1/client/leases as the SDK (and scripts/demo.sh) sends it."""
    body = {
        "license_key": key,
        "client_id": client,
        "user": client,
        "request_id": request_id,
        "lease_secret_supported": True,
    }
    return http("POST", "/v1/client/leases", body)


def heartbeat(key, lease):
    body = {"license_key": key, "epoch": lease["epoch"], "lease_secret": lease["lease_secret"]}
    return http("POST", f"/v1/client/leases/{lease['lease_id']}/heartbeat", body)


def location_path(headers):
    return urllib.parse.urlsplit(urllib.parse.urljoin(URL + "/", headers.get("location", ""))).path


# --- The browser ---------------------------------------------------------------------------


class Console:
    """One browser page on the console, with the checks every page gets."""

    def __init__(self, page):
        self.page = page
        self.errors = []  # browser console errors and uncaught exceptions
        self.notes = []  # the refused form's own 4xx status, which Chromium logs as an error
        self.refusal_expected = False
        self.header_failures = []
        self.checked_headers = 0
        page.set_default_timeout(TIMEOUT_MS)
        page.set_default_navigation_timeout(TIMEOUT_MS)
        page.on("console", self._on_console)
        page.on("pageerror", lambda err: self.errors.append(f"uncaught exception: {err}"))
        page.on("response", self._on_response)
        # A "really log out?" confirm() is accepted (Playwright would dismiss it).
        page.on("dialog", lambda dialog: dialog.accept())

    def _on_console(self, msg):
        if msg.type == "error":
            where = msg.location.get("url", "") if msg.location else ""
            line = f"console error: {msg.text} ({where} on {self.page.url})"
            # A refused sign-in or setting may answer its page with a 4xx status (401, 422),
            # which Chromium logs as "Failed to load resource"; allowed for that document only.
            if (
                self.refusal_expected
                and urllib.parse.urlsplit(where).path.startswith("/console")
                and re.match(r"Failed to load resource: .* status of 4\d\d", msg.text)
            ):
                self.notes.append(line)
            else:
                self.errors.append(line)

    def _on_response(self, resp):
        """Every console page (a document under /console, not a redirect) carries the headers."""
        try:
            if resp.request.resource_type != "document" or 300 <= resp.status < 400:
                return
            if not urllib.parse.urlsplit(resp.url).path.startswith("/console"):
                return
            headers = resp.headers  # lower-case names
        except Exception as err:  # the page may be gone; count it as unchecked
            self.header_failures.append(f"{resp.url}: headers unreadable: {err}")
            return
        self.checked_headers += 1
        problems = security_header_problems(headers)
        if problems:
            self.header_failures.append(f"{resp.url} (HTTP {resp.status}): " + "; ".join(problems))

    def assert_clean(self):
        check(not self.errors, "the browser logged errors:\n  " + "\n  ".join(self.errors))
        check(
            not self.header_failures,
            "security headers missing or weak:\n  " + "\n  ".join(self.header_failures),
        )

    def goto(self, path):
        resp = self.page.goto(URL + path, wait_until="load")
        check(resp is not None, f"GET {path}: no response")
        check(resp.ok, f"GET {path}: HTTP {resp.status}")
        return resp

    def path(self):
        return urllib.parse.urlsplit(self.page.url).path

    def expect_path(self, want):
        self.page.wait_for_url(lambda u: urllib.parse.urlsplit(u).path == want)

    def submit(self, button="#submit", refused=False):
        """Clicks a submit button and waits for the page it leads to (`refused`: the server is
        expected to refuse the form, and may answer with a 4xx status)."""
        self.refusal_expected = refused
        try:
            with self.page.expect_navigation(wait_until="load"):
                self.page.click(button)
        finally:
            self.refusal_expected = False

    def shot(self, name):
        """A desktop screenshot, then the same page at a phone's size: no horizontal scroll."""
        os.makedirs(ARTEFACTS, exist_ok=True)
        self.page.screenshot(path=os.path.join(ARTEFACTS, f"{name}.png"), full_page=True)
        self.page.set_viewport_size(PHONE)
        try:
            widths = self.page.evaluate(
                "() => [document.scrollingElement.scrollWidth, window.innerWidth]"
            )
            self.page.screenshot(path=os.path.join(ARTEFACTS, f"{name}-phone.png"), full_page=True)
            check(
                widths[0] <= widths[1] + 1,
                f"{name} ({self.path()}) scrolls sideways on a {PHONE['width']}x{PHONE['height']} "
                f"screen: scrollWidth {widths[0]} > innerWidth {widths[1]}",
            )
        finally:
            self.page.set_viewport_size(DESKTOP)

    def count(self, selector):
        return self.page.locator(selector).count()

    def text(self, selector):
        return self.page.locator(selector).first.inner_text()


def wait_visible(locator):
    """Whether the locator's first element shows up within the timeout."""
    try:
        locator.first.wait_for(state="visible", timeout=TIMEOUT_MS)
        return True
    except Exception:
        return False


def security_header_problems(headers):
    problems = []
    csp = headers.get("content-security-policy")
    if not csp:
        problems.append("no Content-Security-Policy")
    else:
        directives = {}
        for part in csp.split(";"):
            words = part.strip().split()
            if words:
                directives.setdefault(words[0].lower(), words[1:])
        scripts = directives.get("script-src", directives.get("default-src"))
        if scripts is None:
            problems.append(f"CSP restricts no scripts (no script-src or default-src): {csp}")
        elif any(w.lower() in ("'unsafe-inline'", "'unsafe-eval'", "*") for w in scripts):
            problems.append(f"CSP allows inline or any script: {csp}")
    if (headers.get("x-frame-options") or "").strip().upper() != "DENY":
        problems.append(f"X-Frame-Options is {headers.get('x-frame-options')!r}, not DENY")
    if not headers.get("referrer-policy"):
        problems.append("no Referrer-Policy")
    return problems


# --- Steps ---------------------------------------------------------------------------------

STEP = {"name": "starting"}


@contextmanager
def step(name):
    STEP["name"] = name
    started = time.monotonic()
    print(f"==> {name}", flush=True)
    yield
    print(f"    ok ({time.monotonic() - started:.1f} s)", flush=True)


def walk_through(c):
    page = c.page
    state = {}

    with step("0. before any account: / and /console/ lead to the setup page"):
        status, headers, _ = http("GET", "/", follow=False)
        check(status == 303, f"GET /: HTTP {status}, wanted 303")
        check(location_path(headers) == "/console/", f"GET / redirects to {headers.get('location')}")
        status, headers, _ = http("GET", "/console/", follow=False)
        check(status == 303, f"GET /console/ without a session: HTTP {status}, wanted 303")
        check(
            location_path(headers) == "/console/setup",
            f"GET /console/ before any account redirects to {headers.get('location')}, "
            "wanted /console/setup",
        )
        c.goto("/")
        c.expect_path("/console/setup")
        c.shot("setup")

    with step("1a. setup: the first console account from the admin API token"):
        page.fill("input[name=token]", TOKEN)
        page.fill("input[name=user_name]", USER)
        page.fill("input[name=password]", PASSWORD)
        c.submit()
        check(c.path() == "/console/", f"after setup the browser is on {c.path()}, not /console/")
        for nav, href in (
            ("#nav-overview", "/console/"),
            ("#nav-licenses", "/console/licenses"),
            ("#nav-audit", "/console/audit"),
        ):
            got = page.get_attribute(nav, "href")
            check(got is not None, f"no {nav} link in the nav")
            check(
                urllib.parse.urlsplit(urllib.parse.urljoin(page.url, got)).path == href,
                f"{nav} links to {got}, wanted {href}",
            )
        check(c.count("#sign-out") == 1, "no #sign-out button")
        status, _, _ = http("GET", "/console/setup", follow=False)
        check(status != 200, "the setup page still answers 200 once an account exists")

    with step("1b. the session cookie is HttpOnly and SameSite; sign-out ends the session"):
        cookies = page.context.cookies(URL + "/console/")
        check(cookies, "no cookie is set after setup (no session?)")
        check(
            any(cookie["httpOnly"] for cookie in cookies),
            f"no HttpOnly cookie: {[cookie['name'] for cookie in cookies]}",
        )
        for cookie in cookies:
            check(
                cookie["sameSite"] in ("Strict", "Lax"),
                f"cookie {cookie['name']} has SameSite={cookie['sameSite']}",
            )
        print(f"    cookies: {[(k['name'], k['httpOnly'], k['sameSite']) for k in cookies]}")
        c.submit("#sign-out")
        status, headers, _ = http("GET", "/console/", follow=False)
        check(status == 303, f"GET /console/ without a session: HTTP {status}, wanted 303")
        # The attack: the signed-out session's cookies replayed (the server must have ended the
        # session, not only asked the browser to forget it).
        replay = "; ".join(f"{k['name']}={k['value']}" for k in cookies)
        status, _, _ = http("GET", "/console/", follow=False, cookie=replay)
        check(status == 303, f"the signed-out session's cookies still open /console/ (HTTP {status})")
        check(
            location_path(headers) == "/console/sign-in",
            f"GET /console/ without a session redirects to {headers.get('location')}",
        )
        c.goto("/console/licenses")
        c.expect_path("/console/sign-in")
        check(c.count("#licenses") == 0, "the licenses table is shown without a session")
        c.shot("sign-in")

    with step("1c. a wrong password shows .error and stays on the sign-in page"):
        page.fill("input[name=user_name]", USER)
        page.fill("input[name=password]", PASSWORD + " but wrong")
        c.submit(refused=True)
        check(c.path() == "/console/sign-in", f"a failed sign-in went to {c.path()}")
        page.wait_for_selector(".error")
        c.shot("sign-in-error")

    with step("1d. sign in with the right password"):
        page.fill("input[name=user_name]", USER)
        page.fill("input[name=password]", PASSWORD)
        c.submit()
        check(c.path() == "/console/", f"after sign-in the browser is on {c.path()}, not /console/")

    with step("2. admin API: a product, a floating policy with 1 seat, a floating license"):
        product = "com.example.console-e2e"
        api("POST", "/v1/products", {"id": product, "name": "Console E2E"})
        policy = api(
            "POST",
            "/v1/policies",
            {"product_id": product, "name": "Floating", "model": "floating", "seats": 1},
        )
        license_ = api("POST", "/v1/licenses", {"policy_id": policy["id"]})
        state["id"], state["key"] = license_["id"], license_["key"]
        print(f"    license {state['id']}")

    lid, key = state["id"], state["key"]

    with step("3. an SDK client checks out the seat; the license page shows its lease"):
        status, _, alice = check_out(key, "alice-laptop", str(uuid.uuid4()))
        check(status == 201, f"check-out: HTTP {status}: {alice}")
        state["alice"] = alice
        page.click("#nav-licenses")
        c.expect_path("/console/licenses")
        page.wait_for_selector("#licenses")
        c.shot("licenses")
        link = page.locator(f"#licenses a.license[href$='/console/licenses/{lid}']")
        check(link.count() >= 1, f"no a.license to /console/licenses/{lid} in #licenses")
        # The search: by the license's id (it stays), and by a string nothing matches (it goes).
        page.fill("input[name=q]", lid)
        with page.expect_navigation(wait_until="load"):
            page.press("input[name=q]", "Enter")
        check(link.count() >= 1, f"searching for {lid} does not list it")
        page.fill("input[name=q]", "no-such-license-zzzz")
        with page.expect_navigation(wait_until="load"):
            page.press("input[name=q]", "Enter")
        check(link.count() == 0, "searching for a string nothing matches still lists the license")
        c.goto("/console/licenses")
        with page.expect_navigation(wait_until="load"):
            link.first.click()
        c.expect_path(f"/console/licenses/{lid}")
        for section in ("#machines", "#leases", "#denials", "#assignments", "#audit"):
            check(c.count(section) == 1, f"the license page has no {section} section")
        row = f"tr[data-lease='{alice['lease_id']}']"
        check(c.count(row) == 1, f"the license page shows no {row}")
        c.shot("license")

    with step("4. log the lease out from the console; the client's next heartbeat learns it"):
        with page.expect_navigation(wait_until="load"):
            page.click(f"{row} button.log-out")
        check(
            c.path() == f"/console/licenses/{lid}",
            f"after log-out the browser is on {c.path()}, not the license page",
        )
        check(c.count(row) == 0, f"{row} is still shown after its log-out")
        leases = api("GET", f"/v1/licenses/{lid}/leases")["leases"]
        check(leases == [], f"the API still lists live leases after the log-out: {leases}")
        status, _, body = heartbeat(key, alice)
        check(
            status == 409 and isinstance(body, dict) and body.get("error") == "lease_released",
            f"the released client's heartbeat: HTTP {status} {body}, wanted 409 lease_released",
        )
        c.shot("license-logged-out")

    with step("5. a second client is denied; the overview counts the denial"):
        status, _, again = check_out(key, "alice-laptop", str(uuid.uuid4()))
        check(status == 201, f"the first client's new check-out: HTTP {status}: {again}")
        status, _, denied = check_out(key, "bob-desktop", str(uuid.uuid4()))
        check(
            status == 409 and isinstance(denied, dict) and denied.get("error") == "no_seats",
            f"the second client's check-out: HTTP {status} {denied}, wanted 409 no_seats",
        )
        page.click("#nav-overview")
        c.expect_path("/console/")
        for section in ("#alerts", "#utilisation", "#expiring", "#denials"):
            check(c.count(section) == 1, f"the overview has no {section} section")
        check(c.count("#utilisation svg") >= 1, "#utilisation has no <svg> chart")
        check(c.count("#denials svg") >= 1, "#denials has no <svg> chart")
        total = page.get_attribute("#denials", "data-total")
        check(
            total is not None and re.fullmatch(r"\d+", total.strip()) and int(total) >= 1,
            f"#denials data-total is {total!r}, wanted >= 1",
        )
        since = int(time.time()) - 60 * 86400
        counted = api("GET", f"/v1/denials/report?from={since}")["total"]
        check(int(total) == counted, f"#denials data-total is {total}, the admin API counts {counted}")
        print(f"    #denials data-total = {total} (the admin API: {counted})")
        c.shot("overview")

    with step("6. the lease timeout: 2 minutes is refused with a warning, 10 minutes is set"):
        c.goto(f"/console/licenses/{lid}")
        before = api("GET", f"/v1/licenses/{lid}/leases")["lease_timeout"]
        page.fill("#lease-timeout-form input[name=minutes]", "2")
        c.submit("#lease-timeout-submit", refused=True)
        bounds = page.locator(".warning", has_text="5 to 60 minutes")
        if not wait_visible(bounds):
            shown = page.locator(".warning").all_inner_texts()
            raise Failure(f"no .warning with `5 to 60 minutes` after 2 minutes; .warning: {shown}")
        after = api("GET", f"/v1/licenses/{lid}/leases")["lease_timeout"]
        check(after == before, f"the out-of-spec timeout changed the license: {before} -> {after}")
        c.shot("license-timeout-warning")
        page.fill("#lease-timeout-form input[name=minutes]", "10")
        c.submit("#lease-timeout-submit")
        page.wait_for_selector(".notice")
        check(bounds.count() == 0, "the `5 to 60 minutes` .warning is shown after 10 minutes")
        after = api("GET", f"/v1/licenses/{lid}/leases")["lease_timeout"]
        check(after == 600, f"the license's lease timeout is {after} s after setting 10 minutes")
        c.shot("license-timeout-notice")

    with step("7. the audit trail: verify the chain"):
        page.click("#nav-audit")
        c.expect_path("/console/audit")
        page.wait_for_selector("#audit-entries")
        check(c.count("#audit-entries tr") >= 2, "#audit-entries lists no entries")
        page.click("#verify")
        status_el = page.locator("#chain-status")
        try:
            # Polls across a reload (a form) or an in-page update (a script) alike.
            expect(status_el).to_contain_text("intact", ignore_case=True, timeout=TIMEOUT_MS)
        except AssertionError:
            shown = status_el.all_inner_texts()
            raise Failure(f"#chain-status does not say `intact` after #verify: {shown}") from None
        print(f"    #chain-status: {' '.join(status_el.inner_text().split())}")
        c.shot("audit")

    with step("7b. people: the directory page and the idle seats"):
        page.click("#nav-people")
        c.expect_path("/console/people")
        page.wait_for_selector("#people")
        check(c.count("#idle-seats") == 1, "no #idle-seats section")
        c.shot("people")

    console_actions(c)

    with step("8. no browser errors, and the security headers on every console page"):
        c.assert_clean()
        check(c.checked_headers >= 8, f"only {c.checked_headers} console pages were checked")
        print(f"    {c.checked_headers} console responses had the security headers")
        for note in c.notes:
            print(f"    (allowed: the refused form's status: {note})")


def console_actions(c):
    """The console's actions: a product renamed on the catalog page, an out-of-spec wait line
    refused with a warning on the license page, the signing keys page."""
    page = c.page
    with step("7c. actions: a product renamed, an out-of-spec wait line warned, the signing keys"):
        c.goto("/console/catalog")
        page.click("details.edit summary")
        page.fill("form.edit-product input[name=name]", "Renamed in the browser")
        c.submit("form.edit-product button[type=submit]")
        page.wait_for_selector(".notice")
        names = [p["name"] for p in api("GET", "/v1/products")["products"]]
        check("Renamed in the browser" in names, f"the product is not renamed: {names}")
        lid = api("GET", "/v1/licenses?limit=1")["licenses"][0]["id"]
        c.goto(f"/console/licenses/{lid}")
        page.fill("#queue-minutes", "5000")
        c.submit("#queue-submit", refused=True)
        warning = page.locator(".warning", has_text="Out of spec")
        if not wait_visible(warning):
            shown = page.locator(".warning").all_inner_texts()
            raise Failure(f"no .warning with `Out of spec` after a 5000-minute line: {shown}")
        queue = api("GET", f"/v1/licenses/{lid}/leases")["queue"]["max_seconds"]
        check(queue == 0, f"the out-of-spec wait line changed the license: {queue} s")
        c.shot("license-settings-warning")
        page.click("#nav-keys")
        c.expect_path("/console/settings/keys")
        page.wait_for_selector("#keys")
        check(c.count(".key-current") == 1, "no current key on the signing keys page")
        c.shot("keys")


def main():
    os.makedirs(ARTEFACTS, exist_ok=True)
    started = time.monotonic()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], timeout=30_000)
        try:
            context = browser.new_context(viewport=DESKTOP)
            c = Console(context.new_page())
            try:
                walk_through(c)
            except Exception as err:
                print(f"\nFAILED at step `{STEP['name']}`:", file=sys.stderr)
                if isinstance(err, Failure):
                    print(f"  {err}", file=sys.stderr)
                else:
                    # A browser wait that timed out, or an unexpected error: this file's line
                    # and the error's own message (Playwright's names the selector).
                    ours = [f for f in traceback.extract_tb(err.__traceback__)
                            if f.filename == os.path.abspath(__file__)]
                    if ours:
                        print(f"  at e2e.py:{ours[-1].lineno}: {ours[-1].line}", file=sys.stderr)
                    message = "\n    ".join(str(err).splitlines()[:8])
                    print(f"  {type(err).__name__}: {message}", file=sys.stderr)
                if c.errors:
                    print("  browser errors so far:\n    " + "\n    ".join(c.errors), file=sys.stderr)
                try:
                    c.page.screenshot(path=os.path.join(ARTEFACTS, "failure.png"), full_page=True)
                    with open(os.path.join(ARTEFACTS, "failure.html"), "w") as out:
                        out.write(c.page.content())
                    print(
                        f"  the page ({c.page.url}) is saved in {ARTEFACTS}/failure.png and .html",
                        file=sys.stderr,
                    )
                except Exception as shot_err:
                    print(f"  (no failure screenshot: {shot_err})", file=sys.stderr)
                return 1
        finally:
            browser.close()
    print(f"console e2e: all steps passed in {time.monotonic() - started:.1f} s; "
          f"screenshots in {ARTEFACTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
