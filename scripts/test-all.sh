#!/usr/bin/env bash
# Runs every test of the project on a fresh machine: installs what it needs, then formatting,
# lints, unit/integration/doc tests (Rust), and the interop tests (Python: PyJWT).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

step "system packages"
need_apt=()
command -v openssl >/dev/null || need_apt+=(openssl)
command -v curl >/dev/null || need_apt+=(curl)
command -v kill >/dev/null || need_apt+=(procps)
command -v python3 >/dev/null || need_apt+=(python3 python3-pip)
# PostgreSQL: the server tests run on it too (scripts/with-postgres.sh starts a throwaway one).
{ ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && command -v psql >/dev/null; } || need_apt+=(postgresql postgresql-client)
if [ ${#need_apt[@]} -gt 0 ]; then
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi

step "rust components"
if command -v rustup >/dev/null; then
  rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
  rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
fi

step "python packages (interop: PyJWT + cryptography + jsonschema)"
python3 -m pip install -q --disable-pip-version-check -r tests/interop/requirements.txt

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "dependency policy: licences, bans, sources (cargo-deny, deny.toml)"
# Pinned; built from crates.io on a machine that lacks it (a few minutes, once).
cargo deny --version 2>/dev/null | grep -q '^cargo-deny 0\.20\.2$' ||
  cargo install -q --locked cargo-deny --version 0.20.2
cargo deny check --hide-inclusion-graph licenses bans sources

step "macOS, Windows, Android and iOS code paths compile (cargo check, cross targets)"
if command -v rustup >/dev/null; then
  rustup target add x86_64-apple-darwin x86_64-pc-windows-gnu aarch64-linux-android aarch64-apple-ios >/dev/null
fi
for target in x86_64-apple-darwin x86_64-pc-windows-gnu; do
  cargo check -q --locked -p licensing-core --features store,issuer --target "$target"
done
# The mobile bindings: offline only, and with the online client over the app's transport
# (`online-core`: the platform's HTTP stack through HttpTransport). The built-in transport
# (`online`: rustls + ring, which compiles C and needs the NDK/Xcode C compilers this machine
# lacks) is built and tested on Linux.
for target in aarch64-linux-android aarch64-apple-ios; do
  cargo check -q --locked -p licensing-uniffi --no-default-features --target "$target"
  cargo check -q --locked -p licensing-uniffi --no-default-features --features online-core --target "$target"
done

step "cargo test (unit, integration, doc, interop; server tests on SQLite and PostgreSQL)"
LICENSING_REQUIRE_POSTGRES=1 ./scripts/with-postgres.sh cargo test --workspace --locked

step "schemathesis against /openapi.json"
./scripts/test-openapi.sh

step "SCIM 2.0 compliance: scim2-tester against /scim/v2"
./scripts/test-scim.sh

step "TLS with real peers: openssl s_client and curl against serve --tls-cert"
./scripts/test-tls.sh

step "admin console end to end: headless Chromium (Playwright) against the real server"
./scripts/test-console.sh
step "OAuth 2.0 end to end: Authlib and PyJWT against the real server"
./scripts/test-oauth.sh

step "audit trail in CEF read by an independent parser (pycef) against the real server"
./scripts/test-audit.sh

step "C ABI: header freshness, C and C++ builds (static, dynamic), valgrind"
./scripts/test-ffi.sh

step "uniffi bindings: Kotlin (JVM), Python (wheel), Swift (syntax)"
./scripts/test-bindings.sh

step "the README's main job: ./scripts/demo.sh (the server on SQLite, the walk-through)"
demo_out=$(mktemp)
./scripts/demo.sh >"$demo_out" 2>&1 || { cat "$demo_out"; echo "demo.sh failed"; exit 1; }
# Each part of the walk-through answered as it should (a broken step prints something else).
for want in "'status': 'active'" '"detail":"No available licenses, please contact IT"} (HTTP 409)' \
  '"position":1,"waiting":1' 'checked_in' 'status:     valid_in_grace' \
  'status:     signature_invalid' "('seats_denied', 'warning'" "'POST /v1/licenses/{id}/revoke')" \
  "{'ok': True, 'entries': " 'Done. Server data'; do
  grep -qF -- "$want" "$demo_out" || { cat "$demo_out"; echo "demo.sh: no \`$want\` in its output"; exit 1; }
done
rm -f "$demo_out"

step "all tests passed"
