#!/usr/bin/env python3
"""The CEF export (issue 24) read by an independent parser: pycef (PyPI, pinned by
scripts/test-audit.sh), against the real server at AUDIT_URL with the admin token AUDIT_TOKEN.

Makes admin entries and client events whose user names hold every character CEF escapes in an
extension value (`=`, `\\`, and `|`, which needs none there), downloads GET /v1/audit/cef, parses
every line with pycef.parse (None means "not CEF") and compares each field with the JSON the
admin API answers for the same entry (GET /v1/audit, GET /v1/audit/events). Then pages through
GET /v1/audit/cef/feed by its cursor header. Exits 1 on the first difference, naming it.
pycef splits the fields but does not unescape them: unescape() below is CEF's rule.
"""

import json
import os
import sys
import time
import urllib.error
import urllib.request
import uuid

import pycef

URL = os.environ["AUDIT_URL"].rstrip("/")
TOKEN = os.environ["AUDIT_TOKEN"]
TIMEOUT_S = 10
# A user name with `=`, `\`, `|`, doubled spaces, and one ending in an escape.
TRICKY = ["ann=lee \\ o|hara  x=1", "bob \\|=\\\\ end\\"]


def fail(message):
    print(f"cef_check: FAILED: {message}", file=sys.stderr)
    sys.exit(1)


def http(method, path, body=None, token=TOKEN):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(URL + path, data=data, method=method)
    if data is not None:
        req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:
            return resp.status, resp.headers, resp.read(64 << 20)
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read(1 << 20)


def api(method, path, body=None, want=(200, 201), token=TOKEN):
    status, _, raw = http(method, path, body, token)
    if status not in want:
        fail(f"{method} {path}: HTTP {status}: {raw[:300]!r}")
    return json.loads(raw) if raw else None


def unescape(value):
    """CEF extension-value unescaping: \\\\ \\= \\n \\r."""
    out, i = [], 0
    while i < len(value):
        c = value[i]
        if c == "\\" and i + 1 < len(value):
            nxt = value[i + 1]
            out.append({"n": "\n", "r": "\r"}.get(nxt, nxt))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def expect(line, parsed, key, want):
    got = parsed.get(key)
    if got is None and want in (None, ""):
        return
    if got is None or unescape(got) != str(want):
        fail(f"{key}: pycef read {got!r} (unescaped {unescape(got or '')!r}), the API says {want!r}\n  {line}")


def main():
    # A floating license with one seat: a check-out, then a denial, each naming a tricky user.
    api("POST", "/v1/products", {"id": "com.example.cef", "name": "CEF | = \\ test"})
    policy = api("POST", "/v1/policies",
                 {"product_id": "com.example.cef", "name": "Floating", "model": "floating", "seats": 1})
    license_ = api("POST", "/v1/licenses", {"policy_id": policy["id"]})
    for user, want in zip(TRICKY, (201, 409)):
        body = {"license_key": license_["key"], "client_id": str(uuid.uuid4()), "user": user,
                "request_id": str(uuid.uuid4()), "lease_secret_supported": True}
        status, _, raw = http("POST", "/v1/client/leases", body, token=None)
        if status != want:
            fail(f"check-out as {user!r}: HTTP {status}, wanted {want}: {raw[:300]!r}")
    api("POST", f"/v1/licenses/{license_['id']}/suspend")

    # The events are written by the server's audit writer in batches: wait for both (bounded).
    deadline = time.monotonic() + 10
    while True:
        events = api("GET", "/v1/audit/events?limit=1000")["events"]
        if len(events) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    entries = api("GET", "/v1/audit?limit=1000")["entries"]
    subjects = sorted(e.get("subject") or "" for e in events)
    if len(events) != 2 or subjects != sorted(TRICKY):
        fail(f"expected the two events naming the tricky users, got {events}")

    status, headers, raw = http("GET", "/v1/audit/cef")
    if status != 200:
        fail(f"GET /v1/audit/cef: HTTP {status}")
    if not headers.get("content-type", "").startswith("text/plain"):
        fail(f"content-type {headers.get('content-type')!r}")
    if not headers.get("content-disposition", "").startswith('attachment; filename="audit-'):
        fail(f"content-disposition {headers.get('content-disposition')!r}")
    lines = raw.decode("utf-8").splitlines()
    if len(lines) != len(entries) + len(events):
        fail(f"{len(lines)} lines for {len(entries)} entries and {len(events)} events")
    by_key = {("audit_log", e["seq"]): e for e in entries}
    by_key.update({("audit_events", e["seq"]): e for e in events})
    seen = set()
    for line in lines:
        parsed = pycef.parse(line)
        if parsed is None:
            fail(f"pycef does not read this line as CEF:\n  {line}")
        for key, want in (("CEFVersion", "0"), ("DeviceVendor", "licensing"),
                          ("DeviceProduct", "licensing-server")):
            if parsed.get(key) != want:
                fail(f"{key} = {parsed.get(key)!r}, wanted {want!r}\n  {line}")
        if not 0 <= int(parsed["Severity"]) <= 10:
            fail(f"severity {parsed['Severity']!r}")
        chain = parsed.get("chain")
        key = (chain, int(parsed["externalId"]))
        record = by_key.get(key)
        if record is None or key in seen:
            fail(f"no single API record for {key}\n  {line}")
        seen.add(key)
        expect(line, parsed, "DeviceEventClassID", record["action"])
        expect(line, parsed, "rt", record["at"] * 1000)
        expect(line, parsed, "suser", record["actor"])
        expect(line, parsed, "act", record["action"])
        expect(line, parsed, "organization", record["organization_id"])
        expect(line, parsed, "hash", record["hash"])
        if chain == "audit_log":
            expect(line, parsed, "request", record["target"])
            expect(line, parsed, "httpStatus", record["status"])
            expect(line, parsed, "targetId", record.get("target_id") or "")
            expect(line, parsed, "outcome", "success")
        else:
            expect(line, parsed, "duser", record.get("subject") or "")
            expect(line, parsed, "targetId", record["target_id"])
            expect(line, parsed, "licenseId", record.get("license_id") or "")
            expect(line, parsed, "detail", record["detail"])
            want = "failure" if record["action"] == "lease.denied" else "success"
            expect(line, parsed, "outcome", want)
    if len(seen) != len(by_key):
        fail("some API records have no CEF line")
    print(f"cef_check: {len(lines)} lines read by pycef, every field as the API answers it")

    # The feed: two lines a call, the cursor in Licensing-Next-After, until nothing is new.
    after, fed, calls = 0, [], 0
    while True:
        calls += 1
        if calls > 100:
            fail("the feed never ends")
        status, headers, raw = http("GET", f"/v1/audit/cef/feed?after={after}&limit=2")
        if status != 200:
            fail(f"feed: HTTP {status}")
        page = raw.decode("utf-8").splitlines()
        nxt = int(headers["licensing-next-after"])
        if not page:
            if nxt != after:
                fail(f"an empty page moved the cursor from {after} to {nxt}")
            break
        if len(page) > 2:
            fail(f"the feed answered {len(page)} lines for limit=2")
        for line in page:
            if pycef.parse(line) is None:
                fail(f"feed line not CEF: {line}")
        fed.extend(page)
        after = nxt
    # The feed's own GETs are not recorded; every admin entry came once, in order.
    if [int(pycef.parse(l)["externalId"]) for l in fed] != [e["seq"] for e in entries]:
        fail("the feed's lines are not the admin entries, once each, in order")
    print(f"cef_check: the feed gave {len(fed)} lines in {calls} calls")


if __name__ == "__main__":
    main()
