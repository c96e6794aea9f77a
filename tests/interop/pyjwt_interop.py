#!/usr/bin/env python3
"""Interop of the licensing-server CLI with an independent JOSE implementation.

PyJWT + cryptography verify what our CLI issues and issue what our CLI verifies; jsonschema
checks docs/license.schema.json against the sample claims and against the CLI's own claim
validation (issuing and verifying); machine fingerprints and the clock-guard seal are recomputed
from their description in docs/FORMAT.md; the worked example of docs/FORMAT.md is reproduced
byte for byte.

Usage: pyjwt_interop.py LICENSING_SERVER_BIN TMPDIR EXAMPLES_LICENSES_DIR

Prints one line per check and `N passed, N failed`; exits 1 on any failure, 3 when a required
Python module is missing.
"""

import base64
import copy
import hashlib
import hmac
import json
import os
import re
import struct
import subprocess
import sys
import time
import traceback
import uuid
from pathlib import Path

INSTALL_HINT = "python3 -m pip install -r tests/interop/requirements.txt"

_missing = []
try:
    import jwt
except ImportError:
    _missing.append("jwt (PyJWT)")
try:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa, x25519
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )
except ImportError:
    _missing.append("cryptography")
try:
    import jsonschema
except ImportError:
    _missing.append("jsonschema")
if _missing:
    print(
        f"error: missing Python modules: {', '.join(_missing)}; run `{INSTALL_HINT}`",
        file=sys.stderr,
    )
    sys.exit(3)

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = ROOT / "docs" / "license.schema.json"
FORMAT_PATH = ROOT / "docs" / "FORMAT.md"
PRODUCT = "com.example.cad"
# Evaluation instant for CLI checks: inside every sample's validity, independent of the clock.
AT = "2027-06-01T00:00:00Z"

# The worked example of docs/FORMAT.md: the RFC 8037 Appendix A.1 key, subscription.json with
# these iat/jti.
RFC8037_D = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
RFC8037_X = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
RFC8037_KID = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
EXAMPLE_IAT = 1767225600
EXAMPLE_JTI = "5f0c6a2e9b1d4c3f8e7a6b5c4d3e2f10"

# Per sample: extra `license verify` arguments and the expected status at AT.
SAMPLE_CONTEXT = {
    "floating.json": ([], "valid"),
    # Without a machine fingerprint a node-locked license is not usable: the genuine token must
    # still get as far as the machine rule (matching is checked in pyjwt_minted_node_lock).
    "node_locked.json": ([], "fingerprint_mismatch"),
    "perpetual.json": (
        ["--version", "2.4.0", "--release-date", "2029-06-01", "--feature", "render"],
        "valid",
    ),
    "site.json": (["--attribute", "country=DE", "--attribute", "department=R&D"], "valid"),
    "subscription.json": (["--feature", "core", "--feature", "export_step"], "valid"),
    "trial.json": (["--feature", "export_step"], "valid"),
}


# ----------------------------------------------------------------------------- helpers


def b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def thumbprint(raw_public: bytes) -> str:
    """RFC 7638 thumbprint of an Ed25519 OKP key, computed independently of the project."""
    canonical = json.dumps(
        {"crv": "Ed25519", "kty": "OKP", "x": b64e(raw_public)},
        separators=(",", ":"),
        sort_keys=True,
    )
    return b64e(hashlib.sha256(canonical.encode("utf-8")).digest())


def raw_public(key) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def header_of(token: str) -> dict:
    return json.loads(b64d(token.split(".")[0]))


def hand_token(private_key, header: dict, payload) -> str:
    """A compact JWS built with cryptography alone (for headers PyJWT will not produce).
    `payload` is a dict, or the exact payload bytes."""
    if isinstance(payload, dict):
        payload = json.dumps(payload, separators=(",", ":")).encode()
    signing_input = b64e(json.dumps(header, separators=(",", ":")).encode()) + "." + b64e(payload)
    return signing_input + "." + b64e(private_key.sign(signing_input.encode("ascii")))


# Machine fingerprints and the clock-guard seal, implemented from docs/FORMAT.md sections 11-12.
FINGERPRINT_DOMAIN = b"licensing fingerprint v1"
CLOCK_DOMAIN = b"licensing clock guard v1"


def lp(data: bytes) -> bytes:
    """Length-prefixed: 8-byte big-endian length, then the bytes."""
    return struct.pack(">Q", len(data)) + data


def component_hash(salt: str, name: str, value: str) -> str:
    data = lp(FINGERPRINT_DOMAIN) + lp(salt.encode()) + lp(name.encode()) + lp(value.encode())
    return b64e(hashlib.sha256(data).digest())


def combined_id(salt: str, components: dict) -> str:
    data = FINGERPRINT_DOMAIN + lp(salt.encode())
    for name in sorted(components, key=lambda n: n.encode()):
        data += lp(name.encode()) + components[name].encode("ascii")
    return b64e(hashlib.sha256(data).digest())


def clock_key(product: str, machine_key: str) -> bytes:
    data = lp(CLOCK_DOMAIN) + lp(product.encode()) + lp(machine_key.encode())
    return hashlib.sha256(data).digest()


def clock_mac_input(mark: int) -> bytes:
    return b"v1 mark " + struct.pack(">q", mark)


def clock_seal(product: str, machine_key: str, mark: int) -> str:
    tag = hmac.new(clock_key(product, machine_key), clock_mac_input(mark), hashlib.sha256)
    return json.dumps({"v": 1, "mark": mark, "mac": b64e(tag.digest())}, separators=(",", ":"))


class Ctx:
    """Shared state: the CLI binary, the temp dir, the generated key pair."""

    def __init__(self, binary: Path, tmp: Path, examples: Path):
        self.bin = binary
        self.tmp = tmp
        self.examples = examples
        self.keys = tmp / "keys"
        self.kid = ""
        self.private_key = None
        self.public_key = None
        self.counter = 0

    def run(self, *args, stdin=None, env=None):
        return subprocess.run(
            [str(self.bin), *map(str, args)],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )

    def file(self, name: str, content) -> Path:
        self.counter += 1
        path = self.tmp / f"{self.counter:03}_{name}"
        if isinstance(content, (dict, list)):
            content = json.dumps(content, indent=2)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        return path

    def issue(self, private_key_path: Path, claims) -> str:
        if not isinstance(claims, Path):
            claims = self.file("claims.json", claims)
        r = self.run("license", "issue", "--private-key", private_key_path, "--claims", claims)
        assert r.returncode == 0, f"license issue exit {r.returncode}: {r.stderr.strip()}"
        token = r.stdout.strip()
        assert token.count(".") == 2 and "\n" not in token, f"not one compact JWS: {r.stdout!r}"
        return token

    def verify(self, token: str, *extra, keys=None):
        """Runs `license verify --json`; returns (exit code, verdict)."""
        key_args = []
        for key in keys or [self.keys / "public.pem"]:
            key_args += ["--public-key", key]
        token_file = self.file("token.jwt", token + "\n")
        # `license verify` asks for the product (or --any-product); default to the samples'.
        if "--product" not in extra and "--any-product" not in extra:
            extra = ("--product", PRODUCT, *extra)
        r = self.run("license", "verify", *key_args, "--token", token_file, "--json", *extra)
        assert r.returncode in (0, 1), f"license verify exit {r.returncode}: {r.stderr.strip()}"
        try:
            verdict = json.loads(r.stdout)
        except json.JSONDecodeError as e:
            raise AssertionError(f"verify --json printed no JSON ({e}): {r.stdout!r}") from e
        return r.returncode, verdict

    def expect_status(self, token: str, status: str, *extra, keys=None):
        code, verdict = self.verify(token, *extra, keys=keys)
        usable = status in ("valid", "valid_in_grace")
        assert verdict["status"] == status, (
            f"status {verdict['status']!r} ({verdict.get('reason')}), expected {status!r}"
        )
        assert code == (0 if usable else 1), f"exit {code} with status {status}"
        assert verdict["usable"] is usable
        return verdict

    def samples(self):
        files = sorted(self.examples.glob("*.json"))
        assert files, f"no samples in {self.examples}"
        return [(f, json.loads(f.read_text())) for f in files]

    def pyjwt_mint(self, claims: dict, key=None, headers=None, algorithm="EdDSA") -> str:
        key = key if key is not None else self.private_key
        headers = {"kid": self.kid, "typ": "license+jwt"} if headers is None else headers
        return jwt.encode(claims, key, algorithm=algorithm, headers=headers)


def with_iat_jti(claims: dict) -> dict:
    out = copy.deepcopy(claims)
    out.setdefault("iat", int(time.time()))
    out.setdefault("jti", uuid.uuid4().hex)
    return out


# ----------------------------------------------------------------------------- checks

CHECKS = []


def check(fn):
    CHECKS.append(fn)
    return fn


@check
def keys_generate_matches_cryptography(c: Ctx):
    r = c.run("keys", "generate", "--out", c.keys)
    assert r.returncode == 0, f"keys generate exit {r.returncode}: {r.stderr.strip()}"
    c.kid = r.stdout.strip()
    c.private_key = serialization.load_pem_private_key(
        (c.keys / "private.pem").read_bytes(), password=None
    )
    assert isinstance(c.private_key, Ed25519PrivateKey)
    c.public_key = serialization.load_pem_public_key((c.keys / "public.pem").read_bytes())
    assert isinstance(c.public_key, Ed25519PublicKey)
    assert raw_public(c.public_key) == raw_public(c.private_key.public_key()), "key halves differ"
    assert c.kid == thumbprint(raw_public(c.public_key)), "printed kid is not the RFC 7638 thumbprint"
    jwks = json.loads((c.keys / "jwks.json").read_text())
    assert jwks == {
        "keys": [
            {
                "kty": "OKP",
                "crv": "Ed25519",
                "x": b64e(raw_public(c.public_key)),
                "kid": c.kid,
                "alg": "EdDSA",
                "use": "sig",
            }
        ]
    }, f"unexpected jwks.json: {jwks}"
    # PKCS#8 v1 without the embedded public key: re-serializing with cryptography is identical.
    pem = c.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    assert pem.decode().strip() == (c.keys / "private.pem").read_text().strip()
    spki = c.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert spki.decode().strip() == (c.keys / "public.pem").read_text().strip()


@check
def cli_issued_samples_verify_with_pyjwt(c: Ctx):
    jwks = json.loads((c.keys / "jwks.json").read_text())
    pyjwk = jwt.PyJWK(jwks["keys"][0])
    assert pyjwk.key_id == c.kid, f"PyJWK kid {pyjwk.key_id}"
    for path, sample in c.samples():
        before = int(time.time())
        token = c.issue(c.keys / "private.pem", path)
        after = int(time.time())
        header = jwt.get_unverified_header(token)
        assert header == {"alg": "EdDSA", "kid": c.kid, "typ": "license+jwt"}, (
            f"{path.name}: header {header}"
        )
        for label, key in (("public.pem", c.public_key), ("jwks.json", pyjwk)):
            try:
                claims = jwt.decode(token, key, algorithms=["EdDSA"], audience=PRODUCT)
            except jwt.PyJWTError as e:
                raise AssertionError(f"{path.name}: PyJWT ({label}) refused: {e!r}") from e
            iat, jti = claims.pop("iat", None), claims.pop("jti", None)
            assert isinstance(iat, int) and before <= iat <= after + 1, f"{path.name}: iat {iat}"
            assert isinstance(jti, str) and re.fullmatch(r"[0-9a-f]{32}", jti), f"jti {jti!r}"
            assert claims == sample, f"{path.name} ({label}): claims differ:\n{claims}\n{sample}"


@check
def cli_issued_tokens_refused_by_pyjwt_when_tampered(c: Ctx):
    token = c.issue(c.keys / "private.pem", c.examples / "subscription.json")
    h, p, s = token.split(".")
    payload = json.loads(b64d(p))
    payload["lic"]["features"]["everything"] = {}
    forged = h + "." + b64e(json.dumps(payload).encode()) + "." + s
    try:
        jwt.decode(forged, c.public_key, algorithms=["EdDSA"], audience=PRODUCT)
    except jwt.InvalidSignatureError:
        pass
    else:
        raise AssertionError("PyJWT accepted a tampered token")
    c.expect_status(forged, "signature_invalid")


@check
def pyjwt_minted_header_is_exactly_alg_kid_typ(c: Ctx):
    token = c.pyjwt_mint(with_iat_jti({"iss": "x", "sub": "y", "aud": PRODUCT, "lic": {}}))
    raw = b64d(token.split(".")[0])
    assert json.loads(raw) == {"alg": "EdDSA", "kid": c.kid, "typ": "license+jwt"}, raw
    # PyJWT sorts header members and writes compact JSON: the same bytes as our issuer.
    expected = json.dumps(
        {"alg": "EdDSA", "kid": c.kid, "typ": "license+jwt"}, separators=(",", ":")
    )
    assert raw.decode() == expected, raw


@check
def pyjwt_minted_samples_verify_with_cli(c: Ctx):
    for path, sample in c.samples():
        extra, status = SAMPLE_CONTEXT[path.name]
        claims = with_iat_jti(sample)
        token = c.pyjwt_mint(claims)
        for keys in ([c.keys / "public.pem"], [c.keys / "jwks.json"]):
            verdict = c.expect_status(
                token, status, "--product", PRODUCT, "--at", AT, *extra, keys=keys
            )
            assert verdict["license_id"] == sample["sub"], verdict
            assert verdict["model"] == sample["lic"]["model"], verdict
            assert verdict.get("expires_at") == sample.get("exp"), verdict
    # Feature limits come through.
    sub = json.loads((c.examples / "subscription.json").read_text())
    verdict = c.expect_status(
        c.pyjwt_mint(with_iat_jti(sub)), "valid", "--at", AT, "--feature", "export_step"
    )
    assert verdict["features"][0]["limit"] == sub["lic"]["features"]["export_step"]["limit"]


@check
def pyjwt_minted_edges_evaluate_as_specified(c: Ctx):
    sub = c.pyjwt_mint(with_iat_jti(json.loads((c.examples / "subscription.json").read_text())))
    trial = c.pyjwt_mint(with_iat_jti(json.loads((c.examples / "trial.json").read_text())))
    perp = c.pyjwt_mint(with_iat_jti(json.loads((c.examples / "perpetual.json").read_text())))
    site = c.pyjwt_mint(with_iat_jti(json.loads((c.examples / "site.json").read_text())))
    # nbf 2026-01-01T00:00:00Z, exp 2099-01-01T00:00:00Z, grace 14 days.
    c.expect_status(sub, "not_yet_valid", "--at", "2025-12-31T23:59:59Z")
    c.expect_status(sub, "valid", "--at", "2025-12-31T23:59:59Z", "--not-before-leeway", "1")
    c.expect_status(sub, "valid", "--at", "2026-01-01T00:00:00Z")
    c.expect_status(sub, "valid", "--at", "2098-12-31T23:59:59Z")
    c.expect_status(sub, "valid_in_grace", "--at", "2099-01-01T00:00:00Z")
    c.expect_status(sub, "valid_in_grace", "--at", "2099-01-14T23:59:59Z")
    c.expect_status(sub, "expired", "--at", "2099-01-15T00:00:00Z")
    c.expect_status(trial, "valid", "--at", "2098-12-31T23:59:59Z")
    c.expect_status(trial, "trial_expired", "--at", "2099-01-01T00:00:00Z")
    # cloud_sync has its own exp 2030-01-01T00:00:00Z.
    c.expect_status(sub, "valid", "--at", "2029-12-31T23:59:59Z", "--feature", "cloud_sync")
    c.expect_status(sub, "feature_expired", "--at", "2030-01-01T00:00:00Z", "--feature", "cloud_sync")
    c.expect_status(sub, "feature_not_entitled", "--at", AT, "--feature", "render")
    # Perpetual: req ">=1.0.0, <3.0.0", maintenance_until 2030-01-01T00:00:00Z inclusive.
    ok = ["--at", AT, "--version", "2.9.9"]
    c.expect_status(perp, "valid", *ok, "--release-date", "2030-01-01T00:00:00Z")
    c.expect_status(perp, "version_not_entitled", *ok, "--release-date", "2030-01-01T00:00:01Z")
    c.expect_status(perp, "version_not_entitled", "--at", AT, "--version", "3.0.0",
                    "--release-date", "2029-01-01")
    c.expect_status(perp, "version_not_entitled", *ok)  # no release date passed
    c.expect_status(site, "site_restricted", "--at", AT, "--attribute", "country=US",
                    "--attribute", "department=R&D")
    c.expect_status(site, "site_restricted", "--at", AT, "--attribute", "country=de",
                    "--attribute", "department=R&D")
    c.expect_status(site, "site_restricted", "--at", AT, "--attribute", "country=DE")
    c.expect_status(sub, "product_mismatch", "--at", AT, "--product", "com.example.other")


@check
def pyjwt_minted_node_lock(c: Ctx):
    sample = json.loads((c.examples / "node_locked.json").read_text())
    token = c.pyjwt_mint(with_iat_jti(sample))
    c.expect_status(token, "fingerprint_mismatch", "--at", AT)
    help_text = c.run("license", "verify", "--help").stdout
    if "--fingerprint-file" not in help_text:
        print("     (license verify has no --fingerprint-file: node-lock matching not exercised)")
        return
    bound = sample["lic"]["node_lock"]["fingerprints"][0]
    policy = sample["lic"]["node_lock"]["match"]  # required machine_id, 5 of 7

    def machine(changed=(), is_virtual=False, id_="fp_other_machine"):
        components = {
            name: (value + "-changed" if name in changed else value)
            for name, value in bound["components"].items()
        }
        return c.file("fingerprint.json",
                      {"id": id_, "components": components, "is_virtual": is_virtual})

    assert policy == {"required": ["machine_id"], "min_matching": 5}, policy
    c.expect_status(token, "valid", "--at", AT, "--fingerprint-file", machine())
    c.expect_status(token, "valid", "--at", AT, "--fingerprint-file", machine(("cpu", "mac")))
    c.expect_status(token, "fingerprint_mismatch", "--at", AT,
                    "--fingerprint-file", machine(("cpu", "mac", "disk")))
    c.expect_status(token, "fingerprint_mismatch", "--at", AT,
                    "--fingerprint-file", machine(("machine_id",)))
    c.expect_status(token, "virtual_machine_not_allowed", "--at", AT,
                    "--fingerprint-file", machine(is_virtual=True))
    # Without a match policy the combined id must match exactly.
    exact = copy.deepcopy(sample)
    del exact["lic"]["node_lock"]["match"]
    token = c.pyjwt_mint(with_iat_jti(exact))
    c.expect_status(token, "valid", "--at", AT, "--fingerprint-file", machine(id_=bound["id"]))
    c.expect_status(token, "fingerprint_mismatch", "--at", AT, "--fingerprint-file", machine())


# The worked example of docs/FORMAT.md section 11.6 / 12.2.
EXAMPLE_MACHINE = {
    "machine_id": "4c4c4544-0051-3510-8048-b4c04f4e4d32",
    "hostname": "cad-ws-17",
    "os": "linux",
}
EXAMPLE_MARK = 1767225600
# Python's platform names -> Rust's std::env::consts::OS (the `os` component).
RUST_OS = {"linux": "linux", "darwin": "macos", "win32": "windows"}


def machine_fingerprint(c: Ctx, product=None, override=None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "LICENSING_FINGERPRINT_OVERRIDE"}
    if override is not None:
        env["LICENSING_FINGERPRINT_OVERRIDE"] = override
    args = ["machine", "fingerprint", "--json"]
    if product is not None:
        args += ["--product", product]
    r = c.run(*args, env=env)
    assert r.returncode == 0, f"machine fingerprint exit {r.returncode}: {r.stderr.strip()}"
    fp = json.loads(r.stdout)
    assert set(fp) <= {"id", "components", "is_virtual", "virtualization"}, fp
    assert isinstance(fp["is_virtual"], bool) and fp["is_virtual"] == bool(fp.get("virtualization"))
    for value in [fp["id"], *fp["components"].values()]:
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}", value), f"not 32 bytes of base64url: {value!r}"
    return fp


@check
def machine_fingerprint_matches_format_md(c: Ctx):
    text = FORMAT_PATH.read_text()
    # The documented example, recomputed from the documented algorithm.
    hashes = {n: component_hash(PRODUCT, n, v) for n, v in EXAMPLE_MACHINE.items()}
    for name, value in {**hashes, "id": combined_id(PRODUCT, hashes)}.items():
        assert re.search(rf"^{name} +{re.escape(value)}$", text, re.M), (
            f"docs/FORMAT.md 11.6 does not show {name} {value}"
        )
    # The CLI with an override: one component, the trimmed value hashed.
    fp = machine_fingerprint(c, PRODUCT, override="  node-17 ")
    expected = {"override": component_hash(PRODUCT, "override", "node-17")}
    assert fp["components"] == expected, fp
    assert fp["id"] == combined_id(PRODUCT, expected), fp
    assert expected["override"] in text and fp["id"] in text, "11.6 override example is stale"
    # The CLI on this machine's hardware: the id combines the printed component hashes, and the
    # components this test can read itself hash as documented.
    hw = machine_fingerprint(c, PRODUCT)
    assert "override" not in hw["components"] and hw["components"], hw
    assert hw["id"] == combined_id(PRODUCT, hw["components"]), hw
    if sys.platform in RUST_OS:
        assert hw["components"]["os"] == component_hash(PRODUCT, "os", RUST_OS[sys.platform])
    hostname = Path("/proc/sys/kernel/hostname")
    if sys.platform == "linux" and hostname.exists() and hostname.read_text().strip():
        assert hw["components"]["hostname"] == component_hash(
            PRODUCT, "hostname", hostname.read_text().strip()
        )
    assert machine_fingerprint(c, PRODUCT, override="  ") == hw, "a blank override is no override"
    # The salt is the product: another product (or none) sees unrelated hashes.
    for other in ("com.example.viewer", None):
        fp = machine_fingerprint(c, other)
        assert set(fp["components"]) == set(hw["components"]), fp
        assert fp["id"] != hw["id"], fp
        assert not set(fp["components"].values()) & set(hw["components"].values()), fp
        assert fp["id"] == combined_id(other or "", fp["components"]), fp

    # What `machine fingerprint --json` prints is what `license verify --fingerprint-file` reads.
    hw_file = c.file("this_machine.json", hw)
    node_file = c.file("node.json", machine_fingerprint(c, PRODUCT, override="node-17"))
    bound = {"id": hw["id"], "components": hw["components"]}

    def node_locked(node_lock):
        return with_iat_jti(base_claims(model="node_locked", node_lock=node_lock))

    token = c.pyjwt_mint(node_locked({"fingerprints": [bound]}))
    c.expect_status(token, "valid", "--at", AT, "--fingerprint-file", hw_file)
    c.expect_status(token, "fingerprint_mismatch", "--at", AT, "--fingerprint-file", node_file)
    token = c.pyjwt_mint(node_locked({"fingerprints": [bound], "allow_virtual": False}))
    c.expect_status(token, "virtual_machine_not_allowed" if hw["is_virtual"] else "valid",
                    "--at", AT, "--fingerprint-file", hw_file)
    if "machine_id" in hw["components"]:
        # A policy requiring machine_id never matches an override fingerprint.
        token = c.pyjwt_mint(node_locked({
            "fingerprints": [bound], "match": {"required": ["machine_id"], "min_matching": 1},
        }))
        c.expect_status(token, "valid", "--at", AT, "--fingerprint-file", hw_file)
        c.expect_status(token, "fingerprint_mismatch", "--at", AT, "--fingerprint-file", node_file)


@check
def clock_seal_matches_format_md(c: Ctx):
    text = FORMAT_PATH.read_text()
    machine_key = component_hash(PRODUCT, "machine_id", EXAMPLE_MACHINE["machine_id"])
    sealed = clock_seal(PRODUCT, machine_key, EXAMPLE_MARK)
    assert clock_key(PRODUCT, machine_key).hex() in text, "12.2: K is stale"
    assert clock_mac_input(EXAMPLE_MARK).hex() in text, "12.2: HMAC input is stale"
    assert re.search(rf"^{re.escape(sealed)}$", text, re.M), f"12.2 does not show {sealed}"


@check
def non_integer_spellings_are_invalid_claims(c: Ctx):
    """Integer claims are written without fraction or exponent, and zero is `0`, not `-0`."""
    header = {"alg": "EdDSA", "kid": c.kid, "typ": "license+jwt"}
    for spelling in ("1767225600.0", "1.7672256e9", "17672256E2", "-0"):
        payload = (
            '{"iss":"https://licensing.example.com","sub":"lic_x","aud":"' + PRODUCT + '",'
            '"iat":1767225600,"nbf":' + spelling + ',"lic":{"model":"perpetual"}}'
        )
        token = hand_token(c.private_key, header, payload.encode())
        verdict = c.expect_status(token, "invalid_claims", "--at", AT)
        assert names_field(verdict["reason"], "nbf"), verdict["reason"]
        path = c.file("spelling.json", payload)
        r = c.run("license", "issue", "--private-key", c.keys / "private.pem", "--claims", path)
        assert r.returncode == 1 and names_field(r.stderr, "nbf"), f"{spelling}: {r.stderr}"
    # The canonical spelling of the same instant is fine.
    token = hand_token(c.private_key, header, {**base_claims(model="perpetual"),
                                               "iat": 1767225600, "nbf": 0})
    c.expect_status(token, "valid", "--at", AT)


@check
def untrusted_key_is_unknown_key(c: Ctx):
    stranger = Ed25519PrivateKey.generate()
    stranger_kid = thumbprint(raw_public(stranger.public_key()))
    claims = with_iat_jti(json.loads((c.examples / "subscription.json").read_text()))
    token = c.pyjwt_mint(claims, key=stranger, headers={"kid": stranger_kid, "typ": "license+jwt"})
    verdict = c.expect_status(token, "unknown_key", "--at", AT)
    assert stranger_kid in verdict["reason"], verdict
    # A stranger's signature under our kid is not genuine.
    token = c.pyjwt_mint(claims, key=stranger)
    c.expect_status(token, "signature_invalid", "--at", AT)


@check
def pyjwt_default_typ_is_wrong_token_type(c: Ctx):
    claims = with_iat_jti(json.loads((c.examples / "subscription.json").read_text()))
    token = c.pyjwt_mint(claims, headers={"kid": c.kid, "typ": "JWT"})
    assert jwt.get_unverified_header(token)["typ"] == "JWT"
    c.expect_status(token, "wrong_token_type", "--at", AT)
    # PyJWT's default header (typ JWT) as well, and the reserved kinds.
    c.expect_status(c.pyjwt_mint(claims, headers={"kid": c.kid}), "wrong_token_type", "--at", AT)
    # `typ` is compared exactly: no case folding, no `application/` prefix (FORMAT.md section 3).
    for typ in ("lease+jwt", "machine+jwt", "response+jwt", "application/license+jwt",
                "License+JWT", "license+JWT"):
        token = c.pyjwt_mint(claims, headers={"kid": c.kid, "typ": typ})
        c.expect_status(token, "wrong_token_type", "--at", AT)
    # Without typ at all: malformed, not a token of another kind.
    token = hand_token(c.private_key, {"alg": "EdDSA", "kid": c.kid}, claims)
    c.expect_status(token, "malformed", "--at", AT)


@check
def other_algorithms_and_headers_are_refused(c: Ctx):
    claims = with_iat_jti(json.loads((c.examples / "subscription.json").read_text()))
    typed = {"kid": c.kid, "typ": "license+jwt"}
    # HMAC keyed with the public key bytes: the classic algorithm-confusion forgery.
    hs = jwt.encode(claims, raw_public(c.public_key) * 2, algorithm="HS256", headers=typed)
    c.expect_status(hs, "unsupported_algorithm", "--at", AT)
    none = jwt.encode(claims, None, algorithm="none", headers=typed)
    c.expect_status(none, "unsupported_algorithm", "--at", AT)
    # RFC 9864's fully-specified name is accepted (PyJWT cannot produce it; cryptography can).
    ed = hand_token(c.private_key, {"alg": "Ed25519", "kid": c.kid, "typ": "license+jwt"}, claims)
    c.expect_status(ed, "valid", "--at", AT)
    for extra in ({"cty": "JWT"}, {"jwk": {"kty": "OKP"}}, {"crit": ["exp"]}, {"b64": False}):
        token = c.pyjwt_mint(claims, headers={**typed, **extra})
        c.expect_status(token, "malformed", "--at", AT)
    # Padding is not canonical base64url.
    good = c.pyjwt_mint(claims)
    h, p, s = good.split(".")
    c.expect_status(good, "valid", "--at", AT)
    c.expect_status(h + "=." + p + "." + s, "malformed", "--at", AT)
    c.expect_status(h + "." + p + "." + s + "==", "malformed", "--at", AT)
    c.expect_status(good + ".", "malformed", "--at", AT)


@check
def cryptography_generated_key_issues_for_pyjwt(c: Ctx):
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    private_path = c.file("cryptography_private.pem", pem)
    public_path = c.file(
        "cryptography_public.pem",
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    )
    kid = thumbprint(raw_public(key.public_key()))
    for path, sample in c.samples():
        token = c.issue(private_path, path)
        assert jwt.get_unverified_header(token) == {
            "alg": "EdDSA",
            "kid": kid,
            "typ": "license+jwt",
        }, jwt.get_unverified_header(token)
        claims = jwt.decode(token, key.public_key(), algorithms=["EdDSA"], audience=PRODUCT)
        claims.pop("iat")
        claims.pop("jti")
        assert claims == sample, f"{path.name}: {claims}"
    # Our verifier takes cryptography's SPKI PEM and a bare JWK (no kid/alg/use) as well.
    token = c.issue(private_path, c.examples / "subscription.json")
    c.expect_status(token, "valid", "--at", AT, keys=[public_path])
    jwk = c.file(
        "bare.jwk", {"kty": "OKP", "crv": "Ed25519", "x": b64e(raw_public(key.public_key()))}
    )
    c.expect_status(token, "valid", "--at", AT, keys=[jwk])
    # An encrypted PKCS#8 key is a usage error, not a crash.
    encrypted = c.file(
        "encrypted.pem",
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"pw"),
        ),
    )
    r = c.run("license", "issue", "--private-key", encrypted, "--claims",
              c.examples / "subscription.json")
    assert r.returncode == 2, f"encrypted key: exit {r.returncode} {r.stderr}"


@check
def jwk_private_material_and_wrong_kid_refused(c: Ctx):
    token = c.issue(c.keys / "private.pem", c.examples / "subscription.json")
    x = b64e(raw_public(c.public_key))
    d = b64e(
        c.private_key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
    )
    bad = {
        "private": {"kty": "OKP", "crv": "Ed25519", "x": x, "d": d},
        "wrong kid": {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "key-1"},
        "wrong alg": {"kty": "OKP", "crv": "Ed25519", "x": x, "alg": "ES256"},
        "wrong use": {"kty": "OKP", "crv": "Ed25519", "x": x, "use": "enc"},
        "X25519": {"kty": "OKP", "crv": "X25519", "x": x},
        "padded x": {"kty": "OKP", "crv": "Ed25519", "x": x + "="},
    }
    for name, jwk in bad.items():
        # Alone in a set, or next to the good key: a bad Ed25519 JWK (or any private key)
        # refuses the whole document. An X25519 key alone leaves no Ed25519 key at all.
        sets = [[jwk]] if name == "X25519" else [[jwk], [jwk, json.loads(
            (c.keys / "jwks.json").read_text())["keys"][0]]]
        for keys in sets:
            path = c.file("bad.jwks", {"keys": keys})
            r = c.run("license", "verify", "--public-key", path, "--product", PRODUCT,
                      "--token", "-", stdin=token)
            assert r.returncode == 2, f"{name}: exit {r.returncode}: {r.stdout} {r.stderr}"
        # A single JWK document is one key: it must be an Ed25519 public key.
        path = c.file("bad.jwk", jwk)
        r = c.run("license", "verify", "--public-key", path, "--product", PRODUCT,
                      "--token", "-", stdin=token)
        assert r.returncode == 2, f"{name} (single JWK): exit {r.returncode}: {r.stderr}"


def rsa_public_jwk(key) -> dict:
    numbers = key.public_key().public_numbers()

    def uint(n: int) -> str:
        return b64e(n.to_bytes((n.bit_length() + 7) // 8, "big"))

    return {"kty": "RSA", "n": uint(numbers.n), "e": uint(numbers.e), "alg": "RS256",
            "use": "sig", "kid": "rsa-1"}


@check
def jwks_skips_other_key_types_but_not_private_keys(c: Ctx):
    """RFC 7517 §5: keys of types the verifier does not use are skipped; `d` is never allowed."""
    token = c.issue(c.keys / "private.pem", c.examples / "subscription.json")
    ed = json.loads((c.keys / "jwks.json").read_text())["keys"][0]
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa_jwk = rsa_public_jwk(rsa_key)
    xkey = x25519.X25519PrivateKey.generate()
    x25519_jwk = {"kty": "OKP", "crv": "X25519", "x": b64e(raw_public(xkey.public_key())),
                  "use": "enc"}
    ec_numbers = ec.generate_private_key(ec.SECP256R1()).public_key().public_numbers()
    ec_jwk = {"kty": "EC", "crv": "P-256", "x": b64e(ec_numbers.x.to_bytes(32, "big")),
              "y": b64e(ec_numbers.y.to_bytes(32, "big"))}
    ed448_jwk = {"kty": "OKP", "crv": "Ed448", "x": b64e(bytes(57))}
    mixed = {
        "RSA + Ed25519": [rsa_jwk, ed],
        "Ed25519 + X25519": [ed, x25519_jwk],
        "EC + Ed448 + Ed25519 + RSA": [ec_jwk, ed448_jwk, ed, rsa_jwk],
    }
    for name, keys in mixed.items():
        path = c.file("mixed.jwks", {"keys": keys})
        verdict = c.expect_status(token, "valid", "--at", AT, keys=[path])
        assert verdict["license_id"] == "lic_subscription_0001", f"{name}: {verdict}"
        # PyJWT reads the same set and verifies the same token with its Ed25519 member.
        pyjwk = jwt.PyJWKSet.from_dict({"keys": keys})[c.kid]
        jwt.decode(token, pyjwk, algorithms=["EdDSA"], audience=PRODUCT)
    # No Ed25519 key left after skipping: a usage error, exit 2.
    for name, keys in {"X25519 only": [x25519_jwk], "RSA only": [rsa_jwk], "empty": []}.items():
        path = c.file("no_ed25519.jwks", {"keys": keys})
        r = c.run("license", "verify", "--public-key", path, "--product", PRODUCT,
                      "--token", "-", stdin=token)
        assert r.returncode == 2, f"{name}: exit {r.returncode}: {r.stdout} {r.stderr}"
        assert "no Ed25519 public key found" in r.stderr, f"{name}: {r.stderr.strip()}"
    # Private material of a skipped type still refuses the whole set.
    rsa_private = {**rsa_jwk, "d": b64e(rsa_key.private_numbers().d.to_bytes(256, "big"))}
    x25519_private = {**x25519_jwk, "d": b64e(xkey.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
        serialization.NoEncryption()))}
    for name, keys in {"RSA d": [rsa_private, ed], "X25519 d": [ed, x25519_private]}.items():
        path = c.file("private.jwks", {"keys": keys})
        r = c.run("license", "verify", "--public-key", path, "--product", PRODUCT,
                      "--token", "-", stdin=token)
        assert r.returncode == 2, f"{name}: exit {r.returncode}: {r.stdout} {r.stderr}"
        assert "private key material" in r.stderr, f"{name}: {r.stderr.strip()}"


def schema_validator():
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@check
def samples_and_issued_payloads_match_schema(c: Ctx):
    validator = schema_validator()
    for path, sample in c.samples():
        errors = [e.message for e in validator.iter_errors(with_iat_jti(sample))]
        assert not errors, f"{path.name}: {errors}"
        token = c.issue(c.keys / "private.pem", path)
        payload = json.loads(b64d(token.split(".")[1]))
        errors = [e.message for e in validator.iter_errors(payload)]
        assert not errors, f"issued {path.name}: {errors}"


def base_claims(**lic):
    return {"iss": "https://licensing.example.com", "sub": "lic_x", "aud": PRODUCT, "lic": lic}


# name -> (claims without iat/jti, field the CLI must name)
INVALID = {
    "perpetual with exp": (
        {**base_claims(model="perpetual"), "exp": 4070908800},
        "exp",
    ),
    "trial with grace_period > 0": (
        {**base_claims(model="trial", grace_period=86400), "exp": 4070908800},
        "lic.grace_period",
    ),
    "floating without seats": (
        {**base_claims(model="floating"), "exp": 4070908800},
        "lic.seats",
    ),
    "floating with seats 0": (
        {**base_claims(model="floating", seats=0), "exp": 4070908800},
        "lic.seats",
    ),
    "unknown model": (base_claims(model="enterprise"), "lic.model"),
    "subscription without exp": (base_claims(model="subscription"), "exp"),
    "node_locked without node_lock": (base_claims(model="node_locked"), "lic.node_lock"),
    "site without site": (base_claims(model="site"), "lic.site"),
    "grace without exp": (base_claims(model="floating", seats=1, grace_period=1), "lic.grace_period"),
    "empty iss": ({**base_claims(model="perpetual"), "iss": ""}, "iss"),
    "empty aud list": ({**base_claims(model="perpetual"), "aud": []}, "aud"),
    "missing lic": ({k: v for k, v in base_claims().items() if k != "lic"}, "lic"),
    "exp out of range": (
        {**base_claims(model="subscription"), "exp": 253402300800},
        "exp",
    ),
    "negative nbf": ({**base_claims(model="perpetual"), "nbf": -1}, "nbf"),
    "seats not an integer": (
        {**base_claims(model="floating", seats="10"), "exp": 4070908800},
        "lic.seats",
    ),
    "empty feature name": (base_claims(model="perpetual", features={"": {}}), "lic.features"),
    "version without req or window": (base_claims(model="perpetual", version={}), "lic.version"),
    "empty site restriction": (
        base_claims(model="site", site={"restrictions": {"country": []}}),
        "lic.site.restrictions.country",
    ),
    "node_lock without fingerprints": (
        base_claims(model="node_locked", node_lock={"fingerprints": []}),
        "lic.node_lock.fingerprints",
    ),
    "min_matching 0": (
        base_claims(
            model="node_locked",
            node_lock={
                "fingerprints": [{"id": "fp", "components": {"cpu": "a"}}],
                "match": {"min_matching": 0},
            },
        ),
        "lic.node_lock.match.min_matching",
    ),
    # A site (any model that carries one) must restrict at least one attribute.
    "site without restrictions": (base_claims(model="site", site={}), "lic.site.restrictions"),
    "site with a name only": (
        base_claims(model="site", site={"name": "HQ"}),
        "lic.site.restrictions",
    ),
    "site with empty restrictions": (
        base_claims(model="site", site={"restrictions": {}}),
        "lic.site.restrictions",
    ),
    "empty site on a perpetual": (base_claims(model="perpetual", site={}), "lic.site.restrictions"),
    # Unknown members are refused inside `lic` and all its sub-objects (not in `metadata`).
    "unknown member in lic": (base_claims(model="perpetual", future={"x": 1}), "lic.future"),
    "unknown member in customer": (
        base_claims(model="perpetual", customer={"id": "c", "tier": "gold"}),
        "lic.customer.tier",
    ),
    "unknown member in a feature": (
        base_claims(model="perpetual", features={"core": {"limit": 1, "max": 2}}),
        "lic.features.core.max",
    ),
    "unknown member in version": (
        base_claims(model="perpetual", version={"req": "^1", "min": "1.0.0"}),
        "lic.version.min",
    ),
    "unknown member in node_lock": (
        base_claims(model="node_locked", node_lock={"fingerprints": [{"id": "fp"}],
                                                    "allow_vm": False}),
        "lic.node_lock.allow_vm",
    ),
    "unknown member in a bound fingerprint": (
        base_claims(model="node_locked", node_lock={"fingerprints": [{"id": "fp", "hash": "x"}]}),
        "lic.node_lock.fingerprints[0].hash",
    ),
    "unknown member in match": (
        base_claims(
            model="node_locked",
            node_lock={
                "fingerprints": [{"id": "fp", "components": {"cpu": "a"}}],
                "match": {"min_matching": 1, "optional": ["cpu"]},
            },
        ),
        "lic.node_lock.match.optional",
    ),
    "misspelt site restrictions": (
        base_claims(model="site", site={"restriction": {"country": ["DE"]}}),
        "lic.site.restriction",
    ),
    # Optional members are omitted, never null.
    "exp null on a perpetual": ({**base_claims(model="perpetual"), "exp": None}, "exp"),
    "nbf null": ({**base_claims(model="perpetual"), "nbf": None}, "nbf"),
    "jti null": ({**base_claims(model="perpetual"), "jti": None}, "jti"),
    "lic null": ({**base_claims(), "lic": None}, "lic"),
    "model null": (base_claims(model=None), "lic.model"),
    "customer null": (base_claims(model="perpetual", customer=None), "lic.customer"),
    "customer name null": (
        base_claims(model="perpetual", customer={"name": None}),
        "lic.customer.name",
    ),
    "seats null": (base_claims(model="perpetual", seats=None), "lic.seats"),
    "features null": (base_claims(model="perpetual", features=None), "lic.features"),
    "feature null": (base_claims(model="perpetual", features={"core": None}), "lic.features.core"),
    "feature exp null": (
        base_claims(model="perpetual", features={"core": {"exp": None}}),
        "lic.features.core.exp",
    ),
    "version req null": (
        base_claims(model="perpetual", version={"req": None, "maintenance_until": 1893456000}),
        "lic.version.req",
    ),
    "match null": (
        base_claims(model="node_locked", node_lock={"fingerprints": [{"id": "fp"}], "match": None}),
        "lic.node_lock.match",
    ),
    "allow_virtual null": (
        base_claims(model="node_locked", node_lock={"fingerprints": [{"id": "fp"}],
                                                    "allow_virtual": None}),
        "lic.node_lock.allow_virtual",
    ),
    "site name null": (
        base_claims(model="site", site={"name": None, "restrictions": {"country": ["DE"]}}),
        "lic.site.name",
    ),
    "metadata null": (base_claims(model="perpetual", metadata=None), "lic.metadata"),
    # Structs are JSON objects only: no positional arrays in their place.
    "lic as an array": ({**base_claims(), "lic": ["perpetual"]}, "lic"),
    "customer as an array": (base_claims(model="perpetual", customer=["cus_1"]), "lic.customer"),
    "feature as an array": (
        base_claims(model="perpetual", features={"core": []}),
        "lic.features.core",
    ),
    "version as an array": (base_claims(model="perpetual", version=["^1"]), "lic.version"),
    "bound fingerprint as an array": (
        base_claims(model="node_locked", node_lock={"fingerprints": [["fp"]]}),
        "lic.node_lock.fingerprints[0]",
    ),
    "site as an array": (
        base_claims(model="site", site=["HQ", {"country": ["DE"]}]),
        "lic.site",
    ),
    # Server check-in: both members, in range, nothing else.
    "check_in without grace": (
        base_claims(model="perpetual", check_in={"until": 1893456000}),
        "lic.check_in.grace",
    ),
    "check_in negative grace": (
        base_claims(model="perpetual", check_in={"until": 1893456000, "grace": -1}),
        "lic.check_in.grace",
    ),
    "check_in until out of range": (
        base_claims(model="perpetual", check_in={"until": 253402300800, "grace": 0}),
        "lic.check_in.until",
    ),
    "check_in unknown member": (
        base_claims(model="perpetual", check_in={"until": 1893456000, "grace": 0, "every": 1}),
        "lic.check_in.every",
    ),
    "check_in null": (base_claims(model="perpetual", check_in=None), "lic.check_in"),
    # The model is a JSON string only.
    "model in map form": (base_claims(model={"perpetual": None}), "lic.model"),
    "model as an array": (base_claims(model=["perpetual"]), "lic.model"),
}


# Edge cases the code accepts: the schema must not be stricter.
VALID_VARIANTS = {
    "aud array": {**base_claims(model="perpetual"), "aud": [PRODUCT, "com.example.viewer"]},
    "trial with grace_period 0": {
        **base_claims(model="trial", grace_period=0), "exp": 4070908800,
    },
    "seats on a subscription": {**base_claims(model="subscription", seats=3), "exp": 4070908800},
    "node_lock on a subscription": {
        **base_claims(model="subscription", node_lock={"fingerprints": [{"id": "fp"}]}),
        "exp": 4070908800,
    },
    "site with restrictions only": base_claims(
        model="site", site={"restrictions": {"country": ["DE"]}}
    ),
    "site restrictions on a perpetual": base_claims(
        model="perpetual", site={"name": "HQ", "restrictions": {"department": ["R&D", ""]}}
    ),
    "maintenance window only": base_claims(
        model="perpetual", version={"maintenance_until": 1893456000}
    ),
    "caret requirement": base_claims(model="perpetual", version={"req": "1.2"}),
    "limit 0 and max u64": base_claims(
        model="perpetual", features={"a": {"limit": 0}, "b": {"limit": 2**64 - 1}}
    ),
    "max timestamps": {
        **base_claims(model="subscription", grace_period=253402300799),
        "nbf": 0,
        "exp": 253402300799,
    },
    # Unknown top-level claims are ignored (the reference issuer drops them); `metadata` is
    # free-form at any depth, nulls and arrays included.
    "unknown top-level claims and free-form metadata": {
        **base_claims(
            model="perpetual",
            customer={"id": "c"},
            metadata={"tier": "gold", "future": {"x": [1, None, {"y": True}]}, "none": None},
        ),
        "vendor_claim": True,
        "x-extra": {"a": [None]},
    },
    "empty customer and empty metadata": base_claims(model="perpetual", customer={}, metadata={}),
    "check_in at the bounds": base_claims(
        model="perpetual", check_in={"until": 0, "grace": 253402300799}
    ),
    "k-of-n": base_claims(
        model="node_locked",
        node_lock={
            "fingerprints": [{"id": "fp", "components": {"cpu": "a", "mac": "b"}}],
            "match": {"min_matching": 2},
            "allow_virtual": True,
        },
    ),
    "k-of-n with required": base_claims(
        model="node_locked",
        node_lock={
            "fingerprints": [{"id": "fp", "components": {"machine_id": "a", "mac": "b"}}],
            "match": {"required": ["machine_id"], "min_matching": 1},
            "allow_virtual": False,
        },
    ),
}

TOP_LEVEL_CLAIMS = {"iss", "sub", "aud", "iat", "nbf", "exp", "jti", "lic"}


def names_field(message: str, field: str) -> bool:
    """Whether a claims error message names `field` in the documented format.

    `invalid claims at `<path>`: <detail>`; a missing member is reported at its parent, and a
    missing top-level member without a location: `invalid claims: missing field `lic``.
    """
    parent, _, last = field.rpartition(".")
    at_parent = f" at `{parent}`" if parent else ""
    return f"invalid claims at `{field}`: " in message or (
        f"invalid claims{at_parent}: missing field `{last}`" in message
    )


def schema_path(error) -> str:
    """A jsonschema error's instance location in the CLI's path notation (`a.b[0].c`)."""
    out = ""
    for part in error.absolute_path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


@check
def valid_variants_accepted_by_schema_and_cli(c: Ctx):
    validator = schema_validator()
    for name, claims in VALID_VARIANTS.items():
        doc = with_iat_jti(claims)
        errors = [e.message for e in validator.iter_errors(doc)]
        assert not errors, f"schema refused {name}: {errors}"
        token = c.issue(c.keys / "private.pem", doc)
        payload = json.loads(b64d(token.split(".")[1]))
        errors = [e.message for e in validator.iter_errors(payload)]
        assert not errors, f"issued {name}: {errors}"
        # The issuer keeps `metadata` as it is and drops unknown top-level claims (it may
        # normalize the rest: `allow_virtual` written out, `req` "1.2" as "^1.2").
        assert payload["lic"].get("metadata") == doc["lic"].get("metadata"), (
            f"{name}: metadata changed: {payload['lic'].get('metadata')}"
        )
        dropped = set(doc) - TOP_LEVEL_CLAIMS
        assert not dropped & set(payload), f"{name}: issued {sorted(dropped & set(payload))}"
        # The same claims minted by PyJWT (unknown top-level claims kept) verify as genuine:
        # evaluation runs (a node-locked or site license may still not be usable here).
        verdict = c.verify(c.pyjwt_mint(doc), "--at", AT)[1]
        assert verdict["status"] not in ("invalid_claims", "malformed"), f"{name}: {verdict}"
        assert verdict.get("license_id") == doc["sub"], f"{name}: {verdict}"


@check
def invalid_claims_rejected_by_schema_and_cli(c: Ctx):
    validator = schema_validator()
    for name, (claims, field) in INVALID.items():
        doc = with_iat_jti(claims)
        errors = list(validator.iter_errors(doc))
        assert errors, f"schema accepted: {name}"
        # The schema refuses at the offending member or above it, not somewhere unrelated.
        paths = [schema_path(e) for e in errors]
        assert any(field == p or field.startswith(p + ".") or field.startswith(p + "[")
                   or not p for p in paths), f"{name}: schema refused at {paths}, not `{field}`"
        path = c.file("invalid.json", doc)
        r = c.run("license", "issue", "--private-key", c.keys / "private.pem", "--claims", path)
        assert r.returncode == 1, f"{name}: CLI exit {r.returncode}: {r.stdout} {r.stderr}"
        assert not r.stdout.strip(), f"{name}: CLI printed a token"
        assert names_field(r.stderr, field), (
            f"{name}: message {r.stderr.strip()!r} does not name `{field}`"
        )


@check
def pyjwt_minted_invalid_claims_are_invalid_claims(c: Ctx):
    """Tokens signed by the trusted key whose claims break the format: only the claims are at
    fault, so `license verify` reports invalid_claims (exit 1) and names the member."""
    # The shapes a lenient JSON binding would accept; each must be refused by the verifier.
    for required in ("lic as an array", "feature as an array", "exp null on a perpetual",
                     "model in map form", "misspelt site restrictions"):
        assert required in INVALID, required
    for name, (claims, field) in INVALID.items():
        token = c.pyjwt_mint(with_iat_jti(claims))
        # PyJWT itself takes these claims (it checks only registered claims it is asked to).
        jwt.decode(token, c.public_key, algorithms=["EdDSA"],
                   options={"verify_aud": False, "verify_exp": False, "verify_nbf": False,
                            "verify_iat": False, "verify_jti": False, "verify_sub": False})
        verdict = c.expect_status(token, "invalid_claims", "--at", AT)
        assert names_field(verdict["reason"], field), (
            f"{name}: reason {verdict['reason']!r} does not name `{field}`"
        )
        assert "license_id" not in verdict, f"{name}: a non-genuine verdict carries claims"


@check
def format_md_worked_example_reproduces(c: Ctx):
    key = Ed25519PrivateKey.from_private_bytes(b64d(RFC8037_D))
    assert b64e(raw_public(key.public_key())) == RFC8037_X
    assert thumbprint(raw_public(key.public_key())) == RFC8037_KID
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    private_path = c.file("rfc8037_private.pem", pem)
    claims = json.loads((c.examples / "subscription.json").read_text())
    claims["iat"] = EXAMPLE_IAT
    claims["jti"] = EXAMPLE_JTI
    token = c.issue(private_path, claims)
    # Ed25519 is deterministic: cryptography reproduces the signature over the same input.
    h, p, s = token.split(".")
    assert b64e(key.sign(f"{h}.{p}".encode())) == s
    assert jwt.decode(token, key.public_key(), algorithms=["EdDSA"], audience=PRODUCT) == claims
    text = FORMAT_PATH.read_text()
    documented = re.findall(r"^(eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)$", text, re.M)
    assert documented, "docs/FORMAT.md has no worked example token"
    assert documented[0] == token, (
        "docs/FORMAT.md's worked example token is stale; regenerate it (section 10):\n" + token
    )
    assert RFC8037_KID in text


# ----------------------------------------------------------------------------- main


def main(argv) -> int:
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    binary, tmp, examples = (Path(a).resolve() for a in argv[1:])
    tmp.mkdir(parents=True, exist_ok=True)
    print(
        f"PyJWT {jwt.__version__}, cryptography {__import__('cryptography').__version__}, "
        f"python {sys.version.split()[0]}"
    )
    c = Ctx(binary, tmp, examples)
    passed = failed = 0
    for fn in CHECKS:
        name = fn.__name__
        try:
            fn(c)
        except Exception as e:  # noqa: BLE001 - report every failure and go on
            failed += 1
            print(f"FAIL {name}: {e}")
            if not isinstance(e, AssertionError):
                traceback.print_exc(file=sys.stdout)
            if not c.kid:
                print("(no key pair: the remaining checks cannot run)")
                break
        else:
            passed += 1
            print(f"ok   {name}")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 and passed == len(CHECKS) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
