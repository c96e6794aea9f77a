"""Python tests of the uniffi bindings, run against the installed wheel (package `licensing`).

    python tests/test_licensing.py [tests/scenarios/scenarios.json]

A plain runner (no pytest needed): prints each failure and `python: N passed, N failed`, and
exits 1 on any failure.
"""

import json
import os
import sys
import tempfile
import traceback

import licensing
from licensing import (
    Context,
    License,
    LicenseModel,
    LicenseStore,
    Licensing,
    LicensingError,
    LicensingOptions,
    MachineFingerprint,
    RawComponents,
    Status,
    TrustStore,
    Verdict,
    Verifier,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
SCENARIOS = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "tests", "scenarios", "scenarios.json")

with open(SCENARIOS, encoding="utf-8") as f:
    FILE = json.load(f)
PRODUCT = FILE["product"]
TRUST = FILE["trust_store"]
TOKENS = FILE["tokens"]
STORE = TrustStore.from_document(TRUST["jwks"])
NOW = next(c for c in FILE["cases"] if c["name"] == "subscription_valid_with_features")["context"]["now"]

passed = 0
failed = 0


def test(name, body):
    global passed, failed
    try:
        body()
        passed += 1
    except Exception:  # noqa: BLE001 - the runner reports every failure
        failed += 1
        print(f"FAIL {name}:\n{traceback.format_exc()}")


def raises(kind, body):
    try:
        body()
    except kind as e:
        return e
    raise AssertionError(f"expected {kind.__name__}")


def fingerprint_of(v):
    if v is None:
        return None
    return MachineFingerprint(
        id=v["id"], components=v["components"], is_virtual=v["is_virtual"], virtualization=v["virtualization"]
    )


def context_of(c):
    return Context(
        now=c["now"],
        app_version=c["app_version"],
        release_date=c["release_date"],
        features=c["features"],
        attributes=c["attributes"],
        fingerprint=fingerprint_of(c["fingerprint"]),
        not_before_leeway=c["not_before_leeway"],
    )


def verdict_json(v: Verdict):
    """The verdict in the scenario file's shape (every field but the reasons)."""
    return {
        "status": licensing.status_name(v.status),
        "status_code": v.status.value,
        "usable": licensing.status_is_usable(v.status),
        "license_id": v.license_id,
        "model": v.model.name.lower() if v.model is not None else None,
        "customer": v.customer,
        "expires_at": v.expires_at,
        "grace_ends_at": v.grace_ends_at,
        "time_left": v.time_left,
        "grace_left": v.grace_left,
        "features": [
            {
                "name": f.name,
                "status": licensing.status_name(f.status),
                "status_code": f.status.value,
                "limit": f.limit,
                "expires_at": f.expires_at,
                "time_left": f.time_left,
            }
            for f in v.features
        ],
    }


# ---- the shared scenarios -------------------------------------------------------------------


def scenario(c):
    def body():
        verifier = Verifier(STORE, c["product"])
        token = TOKENS[c["token"]]
        verdict = verifier.check(token, context_of(c["context"]))
        got = verdict_json(verdict)
        assert got == c["expect"], f"got {got}\nexpected {c['expect']}"
        # verify() agrees: the same license, or the same status as an exception.
        try:
            assert verifier.verify(token).id() == verdict.license_id
        except LicensingError.Rejected as e:
            assert e.status == verdict.status, (e.status, verdict.status)

    return body


for c in FILE["cases"]:
    test(f"scenario {c['name']}", scenario(c))


def fingerprint_case(f):
    def body():
        raw = RawComponents(values=f["values"], virtualization=f["virtualization"])
        got = licensing.fingerprint_from_components(raw, f["salt"])
        assert got == fingerprint_of(f["expect"]), (got, f["expect"])

    return body


for f in FILE["fingerprints"]:
    test(f"fingerprint {f['name']}", fingerprint_case(f))


def bad_document(d):
    return lambda: raises(LicensingError.InvalidKey, lambda: TrustStore.from_document(d["document"]))


for d in FILE["bad_trust_documents"]:
    test(f"bad trust document {d['name']}", bad_document(d))


def stable_status_numbers():
    for s in FILE["statuses"]:
        status = licensing.status_from_code(s["code"])
        assert licensing.status_name(status) == s["name"]
        assert status.value == s["code"] == licensing.status_code(status)
        assert licensing.status_is_usable(status) == s["usable"]
    assert len(Status) == len(FILE["statuses"])
    assert licensing.status_from_code(len(Status)) is None


def status_messages():
    assert licensing.status_message(Status.NO_LICENSE) == "No license is installed."
    assert (
        licensing.status_message(Status.VALID_IN_GRACE)
        == "The license has expired but is inside its grace period; please renew."
    )
    assert (
        licensing.status_message(Status.MACHINE_NOT_ACTIVATED)
        == "This machine is not activated on the license; activate it or transfer the license to it."
    )
    messages = [licensing.status_message(s) for s in Status]
    assert len(set(messages)) == len(Status)
    assert all(m and m.endswith(".") for m in messages)


test("stable status numbers", stable_status_numbers)
test("status messages are the core's end-user sentences", status_messages)


def startup_steps():
    s = FILE["startup"]
    options = s["options"]
    with tempfile.TemporaryDirectory() as tmp:
        lic = Licensing(
            STORE,
            s["product"],
            LicenseStore.at(tmp),
            LicensingOptions(
                app_version=options["app_version"],
                features=options["features"],
                components=RawComponents(**options["components"]),
            ),
        )
        for step in s["steps"]:
            if step["action"] == "install":
                verdict = lic.install(TOKENS[step["token"]], step["now"])
            else:
                verdict = lic.check_at_startup(step["now"])
            assert licensing.status_name(verdict.status) == step["expect"], (step, verdict)
        assert lic.store_dir() == tmp


test("startup steps (no license, install, clock rollback)", startup_steps)

# ---- the rest of the surface ----------------------------------------------------------------


def trust_store():
    assert STORE.kids() == [TRUST["kid"]]
    assert TrustStore.from_document(TRUST["spki_pem"]).kids() == STORE.kids()
    assert TrustStore.from_documents([TRUST["jwks"]]).kids() == STORE.kids()
    assert TRUST["kid"] in STORE.to_jwks()
    e = raises(LicensingError.InvalidKey, lambda: TrustStore.from_documents([TRUST["jwks"], TRUST["spki_pem"]]))
    assert "already" in e.reason, e.reason


test("trust store", trust_store)


def queries():
    lic: License = Verifier(STORE, PRODUCT).verify(TOKENS["subscription"])
    assert lic.id() == "lic_subscription"
    assert lic.kid() == TRUST["kid"]
    assert lic.model() == LicenseModel.SUBSCRIPTION
    assert lic.feature_names() == ["export", "simulation"]
    assert json.loads(lic.claims_json())["sub"] == "lic_subscription"
    export = lic.check_feature("export", NOW, 0)
    assert export.status == Status.VALID and export.limit == 10
    assert lic.check_feature("render", NOW, 0).status == Status.FEATURE_NOT_ENTITLED
    assert lic.check_version("2.4.0", None).status == Status.VALID
    assert lic.check_version("3.0.0", None).status == Status.VERSION_NOT_ENTITLED
    assert lic.check_version(None, None).status == Status.VERSION_NOT_ENTITLED
    assert lic.check_time(lic.expires_at(), 0).status == Status.VALID_IN_GRACE
    assert lic.check_site({}).status == Status.VALID
    assert lic.check_machine(None).status == Status.VALID
    assert lic.evaluate(Context(now=NOW, app_version="2.4.0")).status == Status.VALID
    assert lic.usable_until() > lic.expires_at()


test("verify, feature and version queries", queries)


def errors():
    verifier = Verifier(STORE, PRODUCT)
    e = raises(
        LicensingError.InvalidArgument,
        lambda: verifier.check(TOKENS["subscription"], Context(now=NOW, app_version="two")),
    )
    assert "semver" in e.reason
    # The core's version rule: strict semver, surrounding whitespace refused (as in C).
    raises(
        LicensingError.InvalidArgument,
        lambda: verifier.check(TOKENS["subscription"], Context(now=NOW, app_version="2.4.0\n")),
    )
    e = raises(LicensingError.Rejected, lambda: verifier.verify(TOKENS["tampered_signature"]))
    assert e.status == Status.SIGNATURE_INVALID
    assert isinstance(e, LicensingError)
    with tempfile.NamedTemporaryFile() as not_a_dir:
        raises(LicensingError.Storage, lambda: LicenseStore.at(os.path.join(not_a_dir.name, "store")))


test("errors are LicensingError", errors)


def panic():
    e = raises(licensing.InternalError, lambda: licensing.panic_for_test("boom from python"))
    assert "boom from python" in str(e), str(e)
    # The library still works afterwards.
    assert licensing.status_name(Status.VALID) == "valid"


test("a Rust panic arrives as InternalError", panic)


def fingerprint():
    a = licensing.this_machine_fingerprint(PRODUCT)
    assert a.id and a.components, a
    assert licensing.this_machine_fingerprint(PRODUCT) == a
    assert licensing.this_machine_fingerprint("com.example.viewer").id != a.id
    o = licensing.this_machine_fingerprint_with_override(PRODUCT, "cluster-node-7")
    assert set(o.components) == {"override"}
    expected = licensing.fingerprint_from_components(RawComponents(values={"override": "cluster-node-7"}), PRODUCT)
    assert o.id == expected.id
    assert licensing.fingerprint_override_env() == "LICENSING_FINGERPRINT_OVERRIDE"


test("fingerprint: this machine, stable, salted, override", fingerprint)


def package():
    assert licensing.sdk_version()
    assert licensing.unix_now() > 1_700_000_000
    # Installed as a package: the module and the library sit side by side in site-packages.
    here = os.path.dirname(licensing.__file__)
    assert any(n.startswith(("liblicensing_uniffi.", "licensing_uniffi.dll")) for n in os.listdir(here)), here


test("package layout", package)

print(f"python: {passed} passed, {failed} failed")
sys.exit(0 if failed == 0 and passed > 0 else 1)
