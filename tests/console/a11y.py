"""The admin console's accessibility (issue 23, "Quality bar"), in a real headless Chromium.

Run by scripts/test-console.sh against a fresh server of its own (the setup page is one of the
pages checked, and it is only shown before the first account), with, in the environment:
  CONSOLE_URL        the server's base URL (http://127.0.0.1:PORT)
  CONSOLE_TOKEN      the admin API token the server printed at its first start
  CONSOLE_ARTEFACTS  where the screenshots go (target/console-artefacts)
  CHROMIUM           the browser's executable (/usr/bin/chromium)

1. axe-core (vendored: tests/console/vendor/axe-core, its SHA-256 checked here) runs on every
   console page (setup, sign-in with and without an error, overview, licenses, a license page
   with a lease and a denial, products, people, audit with the chain verified, accounts with an
   invitation link, your account, API tokens with a new token, an error page, the invitation's
   accept page) at a desktop and a phone-sized viewport; any violation of impact `serious` or
   `critical` fails, named with its rule, the page, the viewport and the nodes.
2. Keyboard only: the first Tab stop of a page is the visible "Skip to content" link; sign-in,
   and suspend and reinstate of a license, done with Tab, Enter and Space alone; every element
   that takes the focus on the way shows a focus indicator (an outline or a box shadow).
3. The browser logs no error on any of these pages.

The pages for axe are opened in a browser context with `bypass_csp` (the console's
Content-Security-Policy forbids every script, the injected axe too); the keyboard walk-through
runs in a context with the console's CSP in force.
"""

import hashlib
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

from playwright.sync_api import sync_playwright

URL = os.environ["CONSOLE_URL"].rstrip("/")
TOKEN = os.environ["CONSOLE_TOKEN"]
ARTEFACTS = os.environ.get("CONSOLE_ARTEFACTS", "target/console-artefacts")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
AXE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vendor", "axe-core", "axe.min.js")
AXE_SHA256 = "29348999450cdf2849a8e70b7912fc2da85a849da39c0d0d5394f51d4a9ed95c"

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
TIMEOUT_MS = 10_000
HTTP_TIMEOUT_S = 10
USER = "a11y-admin"
PASSWORD = "correct horse battery staple"
FAILING_IMPACTS = ("serious", "critical")
# The most Tab presses to reach one element (the longest page has fewer stops).
MAX_TABS = 80


class Failure(Exception):
    """A check that did not hold."""


def check(condition, message):
    if not condition:
        raise Failure(message)


def http(method, path, body=None, token=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(URL + path, data=data, method=method)
    if data is not None:
        req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT_S) as resp:
            status, raw = resp.status, resp.read(1 << 20)
    except urllib.error.HTTPError as err:
        status, raw = err.code, err.read(1 << 20)
    text = raw.decode("utf-8", "replace")
    try:
        return status, json.loads(text) if text else None
    except ValueError:
        return status, text


def api(method, path, body=None):
    status, parsed = http(method, path, body, token=TOKEN)
    check(status in (200, 201), f"{method} {path}: HTTP {status}: {parsed}")
    return parsed


def check_out(key, client):
    return http(
        "POST",
        "/v1/client/leases",
        {
            "license_key": key,
            "client_id": client,
            "user": client,
            "request_id": str(uuid.uuid4()),
            "lease_secret_supported": True,
        },
    )


def axe_source():
    with open(AXE, "rb") as f:
        source = f.read()
    digest = hashlib.sha256(source).hexdigest()
    check(digest == AXE_SHA256, f"{AXE}: SHA-256 {digest}, the vendored file is {AXE_SHA256}")
    return source.decode("utf-8")


class Browser:
    """A page that records the browser's errors; a page's own 4xx status may be expected."""

    def __init__(self, context):
        self.page = context.new_page()
        self.errors = []
        self.allowed_status = False
        self.page.set_default_timeout(TIMEOUT_MS)
        self.page.set_default_navigation_timeout(TIMEOUT_MS)
        self.page.on("console", self._on_console)
        self.page.on("pageerror", lambda err: self.errors.append(f"uncaught exception: {err}"))

    def _on_console(self, msg):
        if msg.type != "error":
            return
        where = msg.location.get("url", "") if msg.location else ""
        # A page answered with its own 4xx status (the error page, a refused form) is logged
        # by Chromium as "Failed to load resource"; allowed where the step expects it.
        if self.allowed_status and re.match(
            r"Failed to load resource: .* status of 4\d\d", msg.text
        ):
            return
        self.errors.append(f"console error: {msg.text} ({where} on {self.page.url})")

    def goto(self, path, status=200):
        self.allowed_status = status != 200
        try:
            resp = self.page.goto(URL + path, wait_until="load")
        finally:
            self.allowed_status = False
        check(resp is not None, f"GET {path}: no response")
        check(resp.status == status, f"GET {path}: HTTP {resp.status}, wanted {status}")

    def submit(self, selector, allowed_status=False):
        self.allowed_status = allowed_status
        try:
            with self.page.expect_navigation(wait_until="load"):
                self.page.click(selector)
        finally:
            self.allowed_status = False

    def path(self):
        return urllib.parse.urlsplit(self.page.url).path


# --- 1. axe on every page ------------------------------------------------------------------


class Axe:
    def __init__(self, source):
        self.source = source
        self.violations = []  # (page, viewport, rule, impact, help, nodes)
        self.pages = 0

    def run(self, b, name):
        """axe on the current page at the desktop and the phone viewport."""
        page = b.page
        for label, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
            page.set_viewport_size(viewport)
            if not page.evaluate("() => typeof window.axe === 'object'"):
                page.add_script_tag(content=self.source)
            result = page.evaluate(
                """async () => {
                    const r = await axe.run(document, { resultTypes: ['violations'] });
                    return r.violations.map(v => ({
                        id: v.id, impact: v.impact, help: v.help,
                        nodes: v.nodes.map(n => ({
                            target: n.target.join(' '), html: n.html.slice(0, 200),
                            summary: (n.failureSummary || '').slice(0, 300),
                        })),
                    }));
                }"""
            )
            for v in result:
                entry = (name, b.path(), label, v["id"], v["impact"], v["help"], v["nodes"])
                if v["impact"] in FAILING_IMPACTS:
                    self.violations.append(entry)
                else:
                    print(f"    (axe, {v['impact']}, not failing: {v['id']} on {name} {label})")
            os.makedirs(ARTEFACTS, exist_ok=True)
            page.screenshot(path=os.path.join(ARTEFACTS, f"a11y-{name}-{label}.png"), full_page=True)
        page.set_viewport_size(DESKTOP)
        self.pages += 1
        serious = [v for v in self.violations if v[0] == name]
        print(f"    axe: {name} ({b.path()}): {len(serious)} serious or critical violation(s)")

    def report(self):
        lines = []
        for name, path, viewport, rule, impact, help_, nodes in self.violations:
            lines.append(f"{impact}: `{rule}` ({help_}) on {name} ({path}, {viewport}):")
            for n in nodes[:5]:
                lines.append(f"    node {n['target']}: {n['html']}")
                if n["summary"]:
                    lines.append("      " + " ".join(n["summary"].split()))
            if len(nodes) > 5:
                lines.append(f"    ... and {len(nodes) - 5} more node(s)")
        return "\n".join(lines)


def axe_pages(browser, axe):
    context = browser.new_context(viewport=DESKTOP, bypass_csp=True)
    b = Browser(context)
    page = b.page

    b.goto("/console/setup")
    axe.run(b, "setup")
    page.fill("#token", TOKEN)
    page.fill("#user_name", USER)
    page.fill("#password", PASSWORD)
    b.submit("#submit")
    check(b.path() == "/console/", f"after setup the browser is on {b.path()}")

    # Data for the pages: a floating license with one seat, its lease, a denial.
    product = "com.example.a11y"
    api("POST", "/v1/products", {"id": product, "name": "Accessibility"})
    policy = api(
        "POST",
        "/v1/policies",
        {"product_id": product, "name": "Floating", "model": "floating", "seats": 1},
    )
    license_ = api("POST", "/v1/licenses", {"policy_id": policy["id"]})
    status, body = check_out(license_["key"], "alice-laptop")
    check(status == 201, f"check-out: HTTP {status}: {body}")
    status, body = check_out(license_["key"], "bob-desktop")
    check(status == 409, f"the second check-out: HTTP {status}: {body}, wanted 409")

    b.goto("/console/")
    axe.run(b, "overview")
    b.goto("/console/licenses")
    axe.run(b, "licenses")
    b.goto(f"/console/licenses/{license_['id']}")
    check(b.page.locator("button.log-out").count() == 1, "the license page shows no lease")
    axe.run(b, "license")
    page.fill("#minutes", "2")
    b.submit("#lease-timeout-submit", allowed_status=True)
    axe.run(b, "license-warning")
    b.goto("/console/catalog")
    axe.run(b, "catalog")
    b.goto("/console/people")
    axe.run(b, "people")
    b.goto("/console/audit?verify=1")
    check(b.page.locator("#chain-status").count() == 1, "no #chain-status after verify=1")
    axe.run(b, "audit")
    b.goto("/console/settings/tokens")
    page.fill("#token-label", "a11y")
    b.submit("#create-token", allowed_status=True)
    check(b.page.locator("#new-token").count() == 1, "no #new-token after creating a token")
    axe.run(b, "tokens")
    b.goto("/console/accounts")
    page.fill("#invite-name", "a11y-invitee")
    b.submit("#invite", allowed_status=True)
    link = b.page.locator("#invite-link").inner_text().strip()
    axe.run(b, "accounts")
    b.goto("/console/account")
    axe.run(b, "account")
    # The settings and directory pages added with single sign-on, the key rotation and the
    # seat actions.
    b.goto("/console/settings/sso")
    axe.run(b, "sso-settings")
    b.goto("/console/settings/sso/saml")
    axe.run(b, "saml-settings")
    b.goto("/console/settings/keys")
    axe.run(b, "keys")
    person = api("POST", "/v1/directory/users", {"user_name": "a11y.person", "display_name": "A11y Person"})
    b.goto(f"/console/people/{person['id']}")
    axe.run(b, "person")
    b.goto("/console/licenses/no-such-license", status=404)
    axe.run(b, "error")
    b.goto("/console/account")
    b.submit("#sign-out")
    b.goto("/console/sign-in")
    axe.run(b, "sign-in")
    page.fill("#user_name", USER)
    page.fill("#password", PASSWORD + " but wrong")
    b.submit("#submit", allowed_status=True)
    check(b.page.locator(".error").count() == 1, "no .error after a wrong password")
    axe.run(b, "sign-in-error")
    b.goto(urllib.parse.urlsplit(link)._replace(scheme="", netloc="").geturl())
    axe.run(b, "accept-invite")
    context.close()
    return b.errors


# --- 2. keyboard only ----------------------------------------------------------------------

FOCUS_STATE = """() => {
    const e = document.activeElement;
    if (!e || e === document.body) return null;
    const s = getComputedStyle(e);
    const r = e.getBoundingClientRect();
    return {
        tag: e.tagName.toLowerCase(), id: e.id, cls: e.className, text: (e.innerText || e.value || '').slice(0, 40),
        href: e.getAttribute('href'),
        outline: s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0,
        shadow: s.boxShadow !== 'none',
        shown: r.width > 0 && r.height > 0 && r.right > 0 && r.bottom > 0
               && r.left < window.innerWidth && r.top < window.innerHeight,
        describe: s.outlineStyle + ' ' + s.outlineWidth + ' / ' + s.boxShadow,
    };
}"""


class Keyboard:
    def __init__(self, b):
        self.b = b
        self.page = b.page
        self.stops = 0

    def focused(self):
        return self.page.evaluate(FOCUS_STATE)

    def visible_focus(self, state, why):
        check(state is not None, f"{why}: nothing has the focus")
        check(
            state["outline"] or state["shadow"],
            f"{why}: the focused <{state['tag']} id={state['id']!r} class={state['cls']!r}> "
            f"({state['text']!r}) shows no focus indicator ({state['describe']})",
        )
        check(
            state["shown"],
            f"{why}: the focused <{state['tag']} id={state['id']!r}> is off the screen",
        )

    def tab_to(self, matches, what):
        """Presses Tab until the focused element matches; each stop on the way must show its
        focus. Returns the element's focus state."""
        for _ in range(MAX_TABS):
            self.page.keyboard.press("Tab")
            self.stops += 1
            state = self.focused()
            if state is None:
                continue
            self.visible_focus(state, f"Tab towards {what}")
            if matches(state):
                return state
        raise Failure(f"{what}: not reached in {MAX_TABS} Tab presses")

    def press(self, key, allowed_status=False):
        """A key that submits a form or follows a link, and the page it leads to."""
        self.b.allowed_status = allowed_status
        try:
            with self.page.expect_navigation(wait_until="load"):
                self.page.keyboard.press(key)
        finally:
            self.b.allowed_status = False


def keyboard_only(browser):
    # The console's own CSP in force: no bypass here.
    context = browser.new_context(viewport=DESKTOP)
    b = Browser(context)
    kb = Keyboard(b)
    page = b.page

    # A license of its own to suspend and reinstate.
    policies = api("GET", "/v1/policies")["policies"]
    license_ = api("POST", "/v1/licenses", {"policy_id": policies[0]["id"]})
    lid = license_["id"]

    b.goto("/console/sign-in")
    page.keyboard.press("Tab")
    first = kb.focused()
    check(
        first is not None and first["cls"] == "skip" and first["href"] == "#main",
        f"the first Tab stop is {first}, not the `Skip to content` link to #main",
    )
    check(
        "skip to content" in first["text"].lower(),
        f"the first Tab stop says {first['text']!r}, not `Skip to content`",
    )
    kb.visible_focus(first, "the skip link")
    page.keyboard.press("Enter")
    check(
        urllib.parse.urlsplit(page.url).fragment == "main",
        f"Enter on the skip link leads to {page.url}, not #main",
    )
    page.screenshot(path=os.path.join(ARTEFACTS, "keyboard-skip-link.png"))

    # Sign in: Tab to the fields, type, Enter.
    b.goto("/console/sign-in")
    kb.tab_to(lambda s: s["id"] == "user_name", "the user name field")
    page.keyboard.type(USER)
    kb.tab_to(lambda s: s["id"] == "password", "the password field")
    page.keyboard.type(PASSWORD)
    kb.press("Enter")
    check(b.path() == "/console/", f"signed in by keyboard, the browser is on {b.path()}")

    # To the license: the nav link, then the license's row in the list, by Enter.
    kb.tab_to(lambda s: s["id"] == "nav-licenses", "the Licenses link")
    kb.press("Enter")
    check(b.path() == "/console/licenses", f"Enter on Licenses led to {b.path()}")
    kb.tab_to(
        lambda s: s["tag"] == "a" and (s["href"] or "").endswith(f"/console/licenses/{lid}"),
        f"the link to license {lid}",
    )
    kb.press("Enter")
    check(b.path() == f"/console/licenses/{lid}", f"Enter on the license led to {b.path()}")

    # Suspend with Enter, reinstate with Space.
    kb.tab_to(lambda s: s["id"] == "suspend", "the Suspend button")
    page.screenshot(path=os.path.join(ARTEFACTS, "keyboard-suspend-focused.png"))
    kb.press("Enter")
    check(
        "suspended" in page.locator(".notice").first.inner_text(),
        "no `suspended` notice after Enter on Suspend",
    )
    check(api("GET", f"/v1/licenses/{lid}")["status"] == "suspended", "the license is not suspended")
    kb.tab_to(lambda s: s["id"] == "reinstate", "the Reinstate button")
    kb.press("Space")
    check(
        "active" in page.locator(".notice").first.inner_text(),
        "no `active` notice after Space on Reinstate",
    )
    check(api("GET", f"/v1/licenses/{lid}")["status"] == "active", "the license is not active again")
    print(f"    signed in, suspended and reinstated {lid} in {kb.stops} Tab presses")
    context.close()
    return b.errors


def main():
    os.makedirs(ARTEFACTS, exist_ok=True)
    started = time.monotonic()
    stage = "reading axe-core"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], timeout=30_000)
        try:
            axe = Axe(axe_source())
            stage = "axe on every page"
            print(f"==> {stage}", flush=True)
            errors = axe_pages(browser, axe)
            check(
                not axe.violations,
                f"axe found serious or critical violations on {axe.pages} pages:\n" + axe.report(),
            )
            print(f"    ok: {axe.pages} pages, desktop and phone, no serious violation")
            stage = "keyboard only: skip link, sign-in, suspend and reinstate"
            print(f"==> {stage}", flush=True)
            errors += keyboard_only(browser)
            print("    ok")
            stage = "no browser errors"
            check(not errors, "the browser logged errors:\n  " + "\n  ".join(errors))
        except Exception as err:
            print(f"\nFAILED at `{stage}`:", file=sys.stderr)
            if isinstance(err, Failure):
                print(f"  {err}", file=sys.stderr)
            else:
                ours = [f for f in traceback.extract_tb(err.__traceback__)
                        if f.filename == os.path.abspath(__file__)]
                if ours:
                    print(f"  at a11y.py:{ours[-1].lineno}: {ours[-1].line}", file=sys.stderr)
                message = "\n    ".join(str(err).splitlines()[:8])
                print(f"  {type(err).__name__}: {message}", file=sys.stderr)
            return 1
        finally:
            browser.close()
    print(f"console a11y: passed in {time.monotonic() - started:.1f} s; screenshots in {ARTEFACTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
