"""SAML 2.0 single sign-on into the console (issue 23) against a REAL identity provider, in a
real headless Chromium driven by Playwright.

Run by scripts/test-console.sh after tests/console/e2e.py (which made the console's first
account, USER below), with the same environment (CONSOLE_URL, CONSOLE_ARTEFACTS, CHROMIUM).

The identity provider is pysaml2's `saml2.server.Server` (signing with Debian's xmlsec1) behind
a small http.server on 127.0.0.1, with an RSA key and self-signed certificate made here with
`cryptography`. It is reached as http://localhost:PORT while the console is
http://127.0.0.1:PORT, so for the browser the IdP is ANOTHER SITE and its POST to the ACS is a
cross-site POST (no SameSite=Strict cookie goes with it), as in a real deployment.

The walk-through: an admin imports the IdP's metadata on the console's SAML settings page (role
attribute `groups`, `licensing-admins` -> admin, `licensing-auditors` -> auditor) and signs out;
the sign-in link goes to the IdP, whose signed Response comes back to the ACS and signs
alice@example.com in as admin (account created just in time); at her next sign-in the IdP
says `licensing-auditors` and she is an auditor; an IdP that signs with RSA-SHA1 (pysaml2's
default), or with another key than the configured one, is refused. Screenshots into CONSOLE_ARTEFACTS (saml-*.png). Each step prints
its name; the first failure names its step, saves a screenshot and the page, and exits 1.
"""

import datetime
import html
import os
import re
import sys
import tempfile
import threading
import traceback
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from playwright.sync_api import sync_playwright
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.config import IdPConfig
from saml2.metadata import create_metadata_string
from saml2.saml import NAMEID_FORMAT_EMAILADDRESS, NameID
from saml2.server import Server
from saml2.xmldsig import DIGEST_SHA1, DIGEST_SHA256, SIG_RSA_SHA1, SIG_RSA_SHA256

URL = os.environ["CONSOLE_URL"].rstrip("/")
ARTEFACTS = os.environ.get("CONSOLE_ARTEFACTS", "target/console-artefacts")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
XMLSEC = os.environ.get("XMLSEC1", "/usr/bin/xmlsec1")
TIMEOUT_MS = 10_000
# The account tests/console/e2e.py made from the bootstrap token.
USER = "operator"
PASSWORD = "correct horse battery staple"
ALICE = "alice@example.com"


class Failure(Exception):
    """A check of the walk-through that did not hold."""


def check(condition, message):
    if not condition:
        raise Failure(message)


def key_and_certificate(directory, name):
    """An RSA-2048 key and a self-signed certificate for it, as PEM files; their paths."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .sign(key, hashes.SHA256())
    )
    key_path = os.path.join(directory, name + ".key")
    cert_path = os.path.join(directory, name + ".crt")
    with open(key_path, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    os.chmod(key_path, 0o600)
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


class Idp:
    """pysaml2's IdP on 127.0.0.1, reached as http://localhost:PORT. Signs in whoever comes
    (ALICE) with the groups in `self.groups`; signs with `self.server`'s key."""

    def __init__(self, directory):
        self.directory = directory
        self.groups = ["licensing-admins"]
        # pysaml2 signs with RSA-SHA1 by default, which the console refuses.
        self.sign_alg = SIG_RSA_SHA256
        self.digest_alg = DIGEST_SHA256
        self.sp_metadata = None
        self.requests = 0
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.base = "http://localhost:%d" % self.httpd.server_address[1]
        self.entity_id = self.base + "/metadata"
        self.key, self.cert = key_and_certificate(directory, "idp")
        self.server = None
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def config(self, key, cert):
        config = IdPConfig()
        config.load(
            {
                "entityid": self.entity_id,
                "xmlsec_binary": XMLSEC,
                "key_file": key,
                "cert_file": cert,
                "metadata": {"inline": [self.sp_metadata]} if self.sp_metadata else {},
                "service": {
                    "idp": {
                        "endpoints": {
                            "single_sign_on_service": [
                                (self.base + "/sso/redirect", BINDING_HTTP_REDIRECT)
                            ]
                        },
                        "name_id_format": [NAMEID_FORMAT_EMAILADDRESS],
                        "want_authn_requests_signed": False,
                        "policy": {"default": {"lifetime": {"minutes": 5}}},
                    }
                },
            }
        )
        return config

    def metadata(self):
        return create_metadata_string(None, config=self.config(self.key, self.cert)).decode()

    def serve(self, sp_metadata, key=None, cert=None):
        """Answer the SP of `sp_metadata`, signing with `key` (default: the IdP's own)."""
        self.sp_metadata = sp_metadata
        self.server = Server(config=self.config(key or self.key, cert or self.cert))

    def _handler(self):
        idp = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                parsed = urllib.parse.urlparse(self.path)
                if parsed.path != "/sso/redirect":
                    self.send_error(404)
                    return
                query = dict(urllib.parse.parse_qsl(parsed.query))
                try:
                    page = idp.answer(query["SAMLRequest"], query.get("RelayState"))
                except Exception:  # the browser shows it; the test then fails on it
                    traceback.print_exc()
                    self.send_error(500, "the IdP failed")
                    return
                body = page.encode()
                self.send_response(200)
                self.send_header("content-type", "text/html; charset=utf-8")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler

    def answer(self, saml_request, relay_state):
        """The IdP's answer to an AuthnRequest: an HTML form POSTing the signed Response."""
        self.requests += 1
        request = self.server.parse_authn_request(saml_request, BINDING_HTTP_REDIRECT)
        args = self.server.response_args(request.message, [BINDING_HTTP_POST])
        response = self.server.create_authn_response(
            {"groups": list(self.groups), "mail": [ALICE]},
            name_id=NameID(format=NAMEID_FORMAT_EMAILADDRESS, text=ALICE),
            authn={
                "class_ref": "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
            },
            sign_assertion=True,
            sign_response=False,
            sign_alg=self.sign_alg,
            digest_alg=self.digest_alg,
            **args,
        )
        info = self.server.apply_binding(
            BINDING_HTTP_POST, str(response), args["destination"], relay_state, response=True
        )
        # pysaml2's page submits itself with a script; the test presses the button instead
        # (the same POST), so the page is also shown as a person sees it.
        fields = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', info["data"]))
        inputs = "".join(
            '<input type="hidden" name="%s" value="%s">' % (html.escape(k), html.escape(v))
            for k, v in fields.items()
        )
        return (
            '<!doctype html><html lang="en"><head><title>Test IdP</title></head><body>'
            "<h1>Test IdP: signed in as %s</h1>"
            '<form method="post" action="%s">%s<button id="idp-continue" type="submit">'
            "Continue</button></form></body></html>"
            % (ALICE, html.escape(args["destination"]), inputs)
        )


def main():
    os.makedirs(ARTEFACTS, exist_ok=True)
    errors = []
    step_name = "start"
    with tempfile.TemporaryDirectory() as work, sync_playwright() as pw:
        idp = Idp(work)
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.on("pageerror", lambda e: errors.append(str(e)))

        def console_message(message):
            where = (message.location or {}).get("url", URL)
            # The refusals' own 403 is expected (Chromium logs every error status).
            expected = "status of 403" in message.text and where.endswith("/acs")
            if message.type == "error" and URL in where and not expected:
                errors.append("%s (%s)" % (message.text, where))

        page.on("console", console_message)

        def step(name):
            nonlocal step_name
            step_name = name
            print("saml:", name, flush=True)

        def shot(name):
            page.screenshot(path=os.path.join(ARTEFACTS, "saml-%s.png" % name), full_page=True)

        def sign_in_through_idp():
            page.goto(start)
            page.wait_for_url(re.compile(r"^http://localhost:\d+/sso/redirect"))
            page.click("#idp-continue")
            page.wait_for_url(URL + "/console/")
            return page.inner_text("#nav-account")

        try:
            step("an admin imports the IdP's metadata on the SAML settings page")
            page.goto(URL + "/console/sign-in")
            page.fill("#user_name", USER)
            page.fill("#password", PASSWORD)
            page.click("#submit")
            page.wait_for_url(URL + "/console/")
            page.goto(URL + "/console/settings/sso/saml")
            page.fill("#saml-metadata", idp.metadata())
            page.fill("#saml-role-attribute", "groups")
            page.fill(
                "#saml-role-map", '{"licensing-admins":"admin","licensing-auditors":"auditor"}'
            )
            page.click("#saml-save")
            check(
                "SAML single sign-on is configured" in page.inner_text("main"),
                "no notice: " + page.inner_text("main"),
            )
            check(
                page.input_value("#saml-entity-id") == idp.entity_id,
                "entity id " + page.input_value("#saml-entity-id"),
            )
            shot("settings")
            start = URL + page.get_attribute("#saml-start", "href")
            metadata_url = URL + page.get_attribute("#sp-metadata", "href")
            with urllib.request.urlopen(metadata_url, timeout=10) as resp:
                idp.serve(resp.read().decode())
            page.click("#sign-out")
            page.wait_for_url(URL + "/console/sign-in")

            step("alice signs in through the IdP, as admin from her group")
            who = sign_in_through_idp()
            check(who == ALICE + " (admin)", "signed in as " + who)
            shot("signed-in-admin")
            page.click("#sign-out")

            step("her group changed at the IdP: her next sign-in is an auditor's")
            idp.groups = ["licensing-auditors"]
            who = sign_in_through_idp()
            check(who == ALICE + " (auditor)", "signed in as " + who)
            check(page.locator("#nav-tokens").count() == 0, "an auditor sees the tokens link")
            shot("signed-in-auditor")
            page.click("#sign-out")

            def refused(name, reason):
                page.goto(start)
                page.wait_for_url(re.compile(r"^http://localhost:\d+/sso/redirect"))
                with page.expect_response(lambda r: r.url.endswith("/acs")) as acs:
                    page.click("#idp-continue")
                check(acs.value.status == 403, "the ACS answered %d" % acs.value.status)
                text = page.inner_text("main")
                check("Single sign-on refused" in text and reason in text, "refusal: " + text)
                shot(name)
                page.goto(URL + "/console/")
                check(page.url == URL + "/console/sign-in", "signed in after a refusal: " + page.url)

            step("an IdP signing with RSA-SHA1 is refused")
            idp.sign_alg, idp.digest_alg = SIG_RSA_SHA1, DIGEST_SHA1
            refused("refused-sha1", "algorithm is not allowed")
            idp.sign_alg, idp.digest_alg = SIG_RSA_SHA256, DIGEST_SHA256

            step("an IdP signing with another key is refused")
            other_key, other_cert = key_and_certificate(work, "other")
            idp.serve(idp.sp_metadata, other_key, other_cert)
            refused("refused-other-key", "certificate mismatch")

            check(idp.requests == 4, "the IdP saw %d requests" % idp.requests)
            check(not errors, "browser errors: %s" % errors)
        except Exception as error:
            print("saml: FAILED at step: %s: %s" % (step_name, error), file=sys.stderr)
            traceback.print_exc()
            try:
                shot("failure")
                with open(os.path.join(ARTEFACTS, "saml-failure.html"), "w") as f:
                    f.write(page.content())
            except Exception:
                pass
            return 1
        finally:
            browser.close()
            idp.httpd.shutdown()
    print("saml: passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
