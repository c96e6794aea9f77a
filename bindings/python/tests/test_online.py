"""The online client of the Python binding (`licensing.OnlineClient`) against the real server.

    python tests/test_online.py PATH/TO/licensing-server

Starts `licensing-server serve` on 127.0.0.1 (port 0) in a temp data dir, makes a product, a
policy and a license with the admin API (urllib), then drives the app side through the binding:
activate (naming the app's user: in their directory usage) -> validate -> suspend -> validate
reports suspended (also offline) -> reinstate ->
floating seats (FloatingLease: heartbeats, denial, check-in, force-release to the listener) ->
a seat held while active, on an injected clock (checked in once idle, the idle user's next
activity denied with the exact message while another holds the seat, then taking it again) ->
the wait line (a client served from the line once the seat is checked in, one stopping its
wait) -> a borrowed seat (kept in the store, checked offline, returned early, still valid offline
with the server gone) ->
transfer (one allowed; moving back is transfer_limit_reached) -> an air-gapped machine that
deactivates itself (receipt -> vendor API frees the slot once) ->
revoke -> server stopped: the start falls back offline within its limit -> a server that never
answers costs at most the limit. A plain runner: prints `python-online: N passed, N failed`.

The whole scenario runs twice, each time against a fresh server: over the library's built-in HTTP
stack (`OnlineClient(...)`), then over `UrllibTransport` below, a Python `HttpTransport` handed in
with `OnlineClient.with_transport` (as a mobile app hands in its platform's).
"""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request

from licensing import (
    FloatingLease,
    HttpResponse,
    HttpTransport,
    LeaseListener,
    LeaseLossKind,
    LicenseStore,
    Licensing,
    LicensingError,
    LicensingOptions,
    MonotonicClock,
    OnlineClient,
    QueueListener,
    Status,
    TransportError,
    TrustStore,
    unix_now,
)

PRODUCT = "com.example.cad"
SERVER = sys.argv[1]

passed = 0
failed = 0
# Which transport the scenario runs over, in front of each failure.
mode = ""


def check(name, condition, detail=""):
    global passed, failed
    if condition:
        passed += 1
    else:
        failed += 1
        print(f"FAIL {mode}{name} {detail}")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """The API never redirects, and a redirect could carry the license key elsewhere: a 3xx is
    answered as it is."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


class UrllibTransport(HttpTransport):
    """An `HttpTransport` on urllib (proxies from the environment, the system's CA store): it only
    sends; the library builds each request and checks every answer."""

    def __init__(self):
        self.opener = urllib.request.build_opener(_NoRedirect)
        self.lock = threading.Lock()
        self.calls = 0

    def send(self, request):
        with self.lock:
            self.calls += 1
        req = urllib.request.Request(
            request.url, data=bytes(request.body), method=request.method, headers=dict(request.headers)
        )
        try:
            try:
                response = self.opener.open(req, timeout=request.timeout_ms / 1000)
            except urllib.error.HTTPError as e:
                response = e  # 4xx/5xx (and 3xx): its body carries the server's error
            with response:
                # At most the cap + 1 bytes: enough for the library to see a body is too long.
                body = response.read(request.max_body_bytes + 1)
                return HttpResponse(
                    status=response.getcode(), headers=dict(response.headers.items()), body=body
                )
        except TimeoutError as e:
            raise TransportError.Timeout(str(e)) from e
        except urllib.error.URLError as e:
            if isinstance(e.reason, TimeoutError):
                raise TransportError.Timeout(str(e)) from e
            raise TransportError.Network(str(e)) from e
        except OSError as e:
            raise TransportError.Network(str(e)) from e


class Server:
    def __init__(self, data_dir):
        self.proc = subprocess.Popen(
            [SERVER, "serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.url = None
        self.token = None
        lines = []

        def read():
            for line in self.proc.stdout:
                lines.append(line.strip())

        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and self.url is None:
            for line in list(lines):
                prefix = "admin API token (shown once, only its hash is stored): "
                if line.startswith(prefix):
                    self.token = line[len(prefix):]
                if line.startswith("listening on "):
                    self.url = line[len("listening on "):]
            time.sleep(0.05)
        if self.url is None or self.token is None:
            raise RuntimeError(f"server did not start: {lines}")

    def api(self, method, path, body=None):
        request = urllib.request.Request(
            self.url + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read() or b"null")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)


def main():
    global mode, failed
    for name, transport in (("", None), ("[urllib] ", UrllibTransport())):
        mode = name
        with tempfile.TemporaryDirectory() as tmp:
            server = Server(os.path.join(tmp, "data"))
            try:
                run(server, tmp, transport)
            except Exception:  # noqa: BLE001 - the runner reports every failure
                failed += 1
                print(f"FAIL {mode}(exception):\n{traceback.format_exc()}")
            finally:
                if server.proc.poll() is None:
                    server.proc.kill()
                    server.proc.wait()
        if transport is not None:
            check("every request went through the app's transport", transport.calls > 20, transport.calls)


class Listener(LeaseListener):
    """Collects the losses the heartbeat thread reports."""

    def __init__(self):
        self.losses = []
        self.lost = threading.Event()

    def on_lost(self, loss):
        self.losses.append(loss)
        self.lost.set()


def wait_for(condition, seconds=30):
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return condition()


def floating_seats(server, client):
    """One seat: heartbeats in the background, the exact denial, check-in frees it, a
    force-release reaches the listener."""
    policy = server.api("POST", "/v1/policies", {
        "product_id": PRODUCT, "name": "py-floating", "model": "floating", "seats": 1,
    })
    license = server.api("POST", "/v1/licenses", {"policy_id": policy["id"]})
    key, license_id = license["key"], license["id"]
    ada = FloatingLease.check_out(client, key, "py-seat-a", "ada", 100, None)
    check("lease: valid", ada.status() == Status.VALID, ada.status())
    check("lease: a lease token", (ada.token() or "").startswith("eyJ"))
    check("lease: heartbeats in the background", wait_for(lambda: ada.heartbeats() >= 2), ada.heartbeats())
    try:
        FloatingLease.check_out(client, key, "py-seat-b", "bob", 100, None)
        check("lease: second seat denied", False)
    except LicensingError.Server as e:
        check("lease: denied with no_seats", e.code == "no_seats" and e.http_status == 409, e)
        check("lease: the exact message", e.reason.endswith(": No available licenses, please contact IT"), e)
    ada.check_in()
    check("lease: checked in", ada.status() == Status.LEASE_EXPIRED and ada.token() is None)
    listener = Listener()
    bob = FloatingLease.check_out(client, key, "py-seat-b", "bob", 100, listener)
    check("lease: the seat is free after check-in", bob.status() == Status.VALID)
    server.api("POST", f"/v1/licenses/{license_id}/leases/{bob.lease_id()}/release", {})
    check("lease: force-release reported", listener.lost.wait(30), listener.losses)
    loss = listener.losses[0] if listener.losses else None
    check("lease: released, lease_released",
          loss is not None and loss.kind == LeaseLossKind.RELEASED and loss.code == "lease_released", loss)
    check("lease: lost -> lease_expired", bob.status() == Status.LEASE_EXPIRED)
    time.sleep(0.3)
    check("lease: reported once", len(listener.losses) == 1, listener.losses)
    bob.check_in()
    check("lease: none live", server.api("GET", f"/v1/licenses/{license_id}/leases")["leases"] == [])


class FakeClock(MonotonicClock):
    """The injected clock: milliseconds the test moves by hand, read on any thread."""

    def __init__(self):
        self.ms = 1_000_000
        self.lock = threading.Lock()

    def now_ms(self):
        with self.lock:
            return self.ms

    def advance(self, seconds):
        with self.lock:
            self.ms += seconds * 1000


def idle_seats(server, client):
    """The customer's rule, "after a period of inactivity, the license will become available to
    others", on an injected clock: a one-seat license whose lease timeout is 900 s."""
    policy = server.api("POST", "/v1/policies", {
        "product_id": PRODUCT, "name": "py-idle", "model": "floating", "seats": 1,
    })
    license = server.api("POST", "/v1/licenses", {"policy_id": policy["id"]})
    key, license_id = license["key"], license["id"]
    clock, listener = FakeClock(), Listener()
    ada = FloatingLease.check_out_while_active(client, key, "py-idle-a", "ada", 100, clock, listener)

    def two_more_heartbeats():
        seen = ada.heartbeats()
        return wait_for(lambda: ada.heartbeats() >= seen + 2)

    check("idle: heartbeats", two_more_heartbeats(), ada.heartbeats())
    # In use: 600 s after the check-out, then 600 s after an activity (longer than the
    # timeout in all), the seat is held and heartbeated.
    clock.advance(600)
    check("idle: held 600 s after the check-out", two_more_heartbeats(), ada.heartbeats())
    check("idle: activity while held", ada.activity() == Status.VALID)
    clock.advance(600)
    check("idle: held 600 s after the activity", two_more_heartbeats(), ada.heartbeats())
    check("idle: nothing lost yet", listener.losses == [] and ada.status() == Status.VALID, listener.losses)
    # Idle for the whole timeout: checked in, the app told.
    clock.advance(301)
    check("idle: reported", listener.lost.wait(30), listener.losses)
    loss = listener.losses[0] if listener.losses else None
    check("idle: kind IDLE", loss is not None and loss.kind == LeaseLossKind.IDLE and loss.code is None, loss)
    check("idle: lease_expired", ada.status() == Status.LEASE_EXPIRED)
    check("idle: the seat is free",
          server.api("GET", f"/v1/licenses/{license_id}/leases")["leases"] == [])
    bob = FloatingLease.check_out(client, key, "py-idle-b", "bob", 0, None)
    # The idle user comes back while bob holds the seat: the exact denial.
    try:
        ada.activity()
        check("idle: activity denied", False)
    except LicensingError.Server as e:
        check("idle: denied with no_seats", e.code == "no_seats" and e.http_status == 409, e)
        check("idle: the exact message", e.reason.endswith(": No available licenses, please contact IT"), e)
    bob.check_in()
    # After the pause, the next activity takes the free seat again, without a new login.
    clock.advance(15)
    check("idle: activity takes the seat again", ada.activity() == Status.VALID)
    check("idle: valid again", ada.status() == Status.VALID)
    check("idle: heartbeats again", two_more_heartbeats(), ada.heartbeats())
    leases = server.api("GET", f"/v1/licenses/{license_id}/leases")["leases"]
    check("idle: ada holds the seat", [l["client_id"] for l in leases] == ["py-idle-a"], leases)
    ada.check_in()
    check("idle: after check-in, activity says lease_expired", ada.activity() == Status.LEASE_EXPIRED)
    check("idle: reported once", len(listener.losses) == 1, listener.losses)


class Places(QueueListener):
    """Follows a wait in line: records each place; checks `holder` in at the first one (so the
    seat comes back), and goes on waiting or not."""

    def __init__(self, keep_waiting, holder=None):
        self.places = []
        self.keep_waiting = keep_waiting
        self.holder = holder

    def on_place(self, position, waiting, message):
        self.places.append((position, waiting, message))
        if self.holder is not None:
            self.holder.check_in()
            self.holder = None
        return self.keep_waiting


def wait_line(server, client):
    """One seat and a wait line: denied at once before the vendor sets a line; then served from
    the line once the seat is checked in; a third client stops waiting and gets None."""
    policy = server.api("POST", "/v1/policies", {
        "product_id": PRODUCT, "name": "py-line", "model": "floating", "seats": 1,
    })
    license = server.api("POST", "/v1/licenses", {"policy_id": policy["id"]})
    key, license_id = license["key"], license["id"]
    ada = FloatingLease.check_out(client, key, "py-line-a", "ada", 0, None)
    try:
        client.wait_for_seat(key, "py-line-b", "bob", 0, 60, Places(True), None)
        check("line: no line yet, denied", False)
    except LicensingError.Server as e:
        check("line: no line yet, denied with no_seats", e.code == "no_seats", e)
    try:
        client.wait_for_seat(key, "py-line-b", "bob", 0, 0, None, None)
        check("line: a zero wait is refused", False)
    except LicensingError.InvalidArgument:
        check("line: a zero wait is refused", True)
    server.api("PUT", f"/v1/licenses/{license_id}/queue", {"max_seconds": 600})
    places = Places(True, holder=ada)
    bob = client.wait_for_seat(key, "py-line-b", "bob", 0, 120, places, None)
    check("line: served once the seat came back", bob is not None and bob.status() == Status.VALID, bob)
    check("line: one place, first of one", [p[:2] for p in places.places] == [(1, 1)], places.places)
    check("line: the message meanwhile",
          places.places and places.places[0][2] == "No available licenses, please contact IT", places.places)
    stopper = Places(False)
    cy = client.wait_for_seat(key, "py-line-c", "cy", 0, 120, stopper, None)
    check("line: stopped waiting -> None", cy is None and len(stopper.places) == 1, stopper.places)
    leases = server.api("GET", f"/v1/licenses/{license_id}/leases")
    check("line: nobody left in line", leases["queue"]["waiting"] == [], leases["queue"])
    check("line: bob holds the seat", [l["client_id"] for l in leases["leases"]] == ["py-line-b"], leases)
    bob.check_in()


def borrow_seats(server, client, laptop):
    """The one seat of a floating license borrowed for a day by `laptop` (a Licensing): kept in
    its store and valid offline, the seat taken for others, returned early, borrowed again."""
    policy = server.api("POST", "/v1/policies", {
        "product_id": PRODUCT, "name": "py-borrow", "model": "floating", "seats": 1,
    })
    license = server.api("POST", "/v1/licenses", {"policy_id": policy["id"]})
    key, license_id = license["key"], license["id"]
    now = unix_now()
    try:
        client.borrow_seat(laptop, key, "py-laptop", "ada", 86400)
        check("borrow: refused before the vendor allows it", False)
    except LicensingError.Server as e:
        check("borrow: borrowing_not_allowed", e.code == "borrowing_not_allowed", e)
    terms = {"max_seconds": 7 * 86400, "max_leases": 1}
    check("borrow: terms set", server.api("PUT", f"/v1/licenses/{license_id}/borrowing", terms) == terms)
    check("borrow: none yet", laptop.check_borrowed_seat(now).status == Status.LEASE_REQUIRED)
    ends = client.borrow_seat(laptop, key, "py-laptop", "ada", 86400)
    check("borrow: ends in a day", now + 86400 <= ends <= unix_now() + 86400, ends)
    seat = laptop.check_borrowed_seat(now)
    check("borrow: valid offline", seat.status == Status.VALID and seat.expires_at == ends, seat)
    check("borrow: over at its end", laptop.check_borrowed_seat(ends).status == Status.LEASE_EXPIRED)
    check("borrow: clock set back", laptop.check_borrowed_seat(now - 2 * 86400).status == Status.CLOCK_TAMPERED)
    try:
        FloatingLease.check_out(client, key, "py-seat-z", "zoe", 0, None)
        check("borrow: the seat is taken", False)
    except LicensingError.Server as e:
        check("borrow: the seat is taken (no_seats)", e.code == "no_seats", e)
    check("borrow: returned", client.return_seat(laptop, key) is True)
    check("borrow: gone from the store", laptop.check_borrowed_seat(now).status == Status.LEASE_REQUIRED)
    check("borrow: nothing more to return", client.return_seat(laptop, key) is False)
    zoe = FloatingLease.check_out(client, key, "py-seat-z", "zoe", 0, None)
    check("borrow: the seat is free after the return", zoe.status() == Status.VALID)
    zoe.check_in()
    client.borrow_seat(laptop, key, "py-laptop", "ada", 3600)


def transfer_and_offline_deactivation(server, client, app):
    policy = server.api("POST", "/v1/policies", {
        "product_id": PRODUCT, "name": "py-transfer", "model": "subscription",
        "duration": 365 * 86400, "max_machines": 1, "max_transfers": 1,
    })
    key = server.api("POST", "/v1/licenses", {"policy_id": policy["id"]})["key"]
    old, new = app("py-old"), app("py-new")
    check("transfer: old machine activates", client.activate(old, key, unix_now()).status == Status.VALID)
    verdict = client.transfer(new, key, old.fingerprint().id, unix_now())
    check("transfer: new machine valid", verdict.status == Status.VALID, verdict)
    check("transfer: new machine validates", client.validate(new, unix_now()).verdict.status == Status.VALID)
    try:
        client.transfer(old, key, new.fingerprint().id, unix_now())
        check("transfer back refused", False)
    except LicensingError.Server as e:
        check("transfer back: transfer_limit_reached", e.code == "transfer_limit_reached", e)
        check("  and its HTTP status", e.http_status == 409, e)

    # The new machine (activated by the transfer) deactivates itself offline.
    receipt = client.offline_deactivate(new, unix_now())
    check("offline deactivation: receipt kind",
          json.loads(receipt)["kind"] == "licensing.offline_deactivation_receipt")
    check("offline deactivation: no license", new.check_at_startup(unix_now()).status == Status.NO_LICENSE)
    check("offline deactivation: same receipt again", client.offline_deactivate(new, unix_now()) == receipt)
    freed = server.api("POST", "/v1/offline/deactivate", json.loads(receipt))
    check("offline deactivation: slot freed", freed["deactivated"] is True, freed)
    try:
        server.api("POST", "/v1/offline/deactivate", json.loads(receipt))
        check("offline deactivation: replay refused", False)
    except urllib.error.HTTPError as e:
        check("offline deactivation: replay is 404", e.code == 404, e)
    # The freed slot is pending like after a client deactivation: another machine in it is a
    # move, counted against max_transfers (used up above); the same machine comes back free.
    try:
        client.activate(app("py-third"), key, unix_now())
        check("offline deactivation: a move to another machine is a transfer", False)
    except LicensingError.Server as e:
        check("offline deactivation: a move to another machine is a transfer",
              e.code == "transfer_limit_reached", e)
    check("offline deactivation: the same machine activates again",
          client.activate(new, key, unix_now()).status == Status.VALID)


def run(server, tmp, transport=None):
    """`transport`: the app's HTTP stack; None for the library's built-in one."""
    server.api("POST", "/v1/products", {"id": PRODUCT, "name": "CAD"})
    policy = server.api("POST", "/v1/policies", {
        "product_id": PRODUCT, "name": "py", "model": "subscription",
        "duration": 365 * 86400, "grace_period": 7 * 86400, "max_machines": 1,
    })
    license = server.api("POST", "/v1/licenses", {"policy_id": policy["id"]})
    key, license_id = license["key"], license["id"]
    # The app ships the vendor's public keys; fetched once here for the test.
    with urllib.request.urlopen(server.url + "/.well-known/jwks.json", timeout=10) as r:
        trust = TrustStore.from_document(r.read().decode())

    def app(machine):
        options = LicensingOptions(fingerprint_override=machine)
        store = LicenseStore.at(os.path.join(tmp, machine))
        return Licensing(trust, PRODUCT, store, options)

    def online_client(url, deadline_ms):
        if transport is None:
            return OnlineClient(trust, url, PRODUCT, deadline_ms)
        return OnlineClient.with_transport(trust, url, PRODUCT, deadline_ms, transport)

    client = online_client(server.url, 10_000)
    a = app("py-box-a")

    try:
        client.validate(a, unix_now())
        check("validate before activation raises", False)
    except LicensingError.NotActivated:
        check("validate before activation raises NotActivated", True)

    # The app's user: the activation names a directory user, whose usage then lists the machine.
    ada = server.api("POST", "/v1/directory/users", {"user_name": "ada@example.com"})
    try:
        client.set_user("x" * 201)
        check("set_user: over 200 characters raises", False)
    except LicensingError.InvalidArgument:
        check("set_user: over 200 characters raises InvalidArgument", True)
    client.set_user("ada@example.com")
    verdict = client.activate(a, key, unix_now())
    check("activate: valid", verdict.status == Status.VALID, verdict)
    usage = server.api("GET", f"/v1/directory/users/{ada['id']}/usage")
    check("activate naming the user: in the user's usage", len(usage["machines"]) == 1, usage)
    client.set_user(None)
    try:
        client.activate(app("py-box-b"), key, unix_now())
        check("second machine refused", False)
    except LicensingError.Server as e:
        check("second machine refused with its code", e.code == "machine_limit_reached", e)
        check("  and its HTTP status", e.http_status == 409, e)

    result = client.validate(a, unix_now())
    check("validate: online", result.online and result.server_status == "active", result)
    check("validate: valid", result.verdict.status == Status.VALID, result)
    check("validate: server time", abs(result.server_time - unix_now()) < 60, result)

    server.api("POST", f"/v1/licenses/{license_id}/suspend", {})
    result = client.validate(a, unix_now())
    check("suspended: server says so", result.server_status == "suspended", result)
    check("suspended: verdict", result.verdict.status == Status.SUSPENDED, result)
    check("suspended: offline start too", a.check_at_startup(unix_now()).status == Status.SUSPENDED)

    server.api("POST", f"/v1/licenses/{license_id}/reinstate", {})
    result = client.check_online(a, unix_now(), 5_000)
    check("reinstated: valid online", result.online and result.verdict.status == Status.VALID, result)

    # Air-gapped activation on a second license: request file -> vendor API -> import; then
    # deactivation frees the slot and clears the store.
    license2 = server.api("POST", "/v1/licenses", {"policy_id": policy["id"]})
    c = app("py-box-c")
    request = client.offline_request(c, license2["key"], unix_now())
    check("air-gapped request kind", json.loads(request)["kind"] == "licensing.offline_activation_request")
    response = server.api("POST", "/v1/offline/activate", json.loads(request))
    result = client.import_offline_response(c, json.dumps(response), unix_now())
    check("air-gapped import: valid", result.verdict.status == Status.VALID, result)
    check("air-gapped next start: valid", c.check_at_startup(unix_now()).status == Status.VALID)
    try:
        client.import_offline_response(c, json.dumps(response), unix_now())
        check("air-gapped import twice raises", False)
    except LicensingError.NotActivated:
        check("air-gapped import twice raises NotActivated", True)
    check("deactivate", client.deactivate(c) is True)
    check("deactivated: no license", c.check_at_startup(unix_now()).status == Status.NO_LICENSE)

    transfer_and_offline_deactivation(server, client, app)

    # A listener that never answers: the start is back within the limit, offline.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    silent_client = online_client(f"http://127.0.0.1:{silent.getsockname()[1]}", None)
    started = time.monotonic()
    result = silent_client.check_online(a, unix_now(), 600)
    took = time.monotonic() - started
    check("silent server: offline", not result.online and result.offline_reason, result)
    check("silent server: within the limit", took < 0.9, f"took {took:.3f} s")
    check("silent server: stored token valid", result.verdict.status == Status.VALID, result)
    silent.close()

    floating_seats(server, client)
    idle_seats(server, client)
    wait_line(server, client)
    laptop = app("py-laptop")
    borrow_seats(server, client, laptop)

    server.api("POST", f"/v1/licenses/{license_id}/revoke", {})
    result = client.validate(a, unix_now())
    check("revoked: verdict", result.verdict.status == Status.REVOKED, result)
    server.stop()
    result = client.check_online(a, unix_now(), 2_000)
    check("server gone: offline", not result.online, result)
    check("server gone: still revoked", result.verdict.status == Status.REVOKED, result)
    try:
        client.validate(a, unix_now())
        check("server gone: validate raises", False)
    except LicensingError.Network:
        check("server gone: validate raises Network", True)
    seat = laptop.check_borrowed_seat(unix_now())
    check("server gone: the borrowed seat runs offline", seat.status == Status.VALID, seat)


main()
print(f"python-online: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
