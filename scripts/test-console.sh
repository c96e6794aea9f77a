#!/usr/bin/env bash
# The admin console end to end (issue 23) in a real headless Chromium: Debian's `chromium`
# package driven by Playwright for Python (pinned, in a venv under .tools/venv-browser; never
# `playwright install`, whose browser download is not reachable from many machines). Installs
# both when missing (idempotent), starts `licensing-server serve` on 127.0.0.1 with a temporary
# data directory on SQLite, and runs tests/console/e2e.py against it: sign-in, a floating
# license, a lease logged out from the console, a denial on the overview, the lease timeout's
# warning, the audit chain, phone-sized pages, security headers, no browser errors; then
# tests/console/sso_oidc.py: single sign-on through a real OpenID Connect provider (Authlib,
# started by that script on 127.0.0.1) configured on the settings page, and tests/console/sso_saml.py:
# SAML 2.0 single sign-on through a real pysaml2 IdP (xmlsec1 signing); then, on a
# second fresh server, tests/console/a11y.py: axe-core (vendored) on every page at desktop and
# phone sizes (no serious or critical violation) and a keyboard-only walk-through. Screenshots
# of every page go to target/console-artefacts/. Fails on the first failed step (named), or on
# an error the server logged.
#
# LICENSING_SERVER_BIN=path runs a prebuilt server instead of building one; KEEP_WORK=1 keeps
# the server's data directory and logs.
set -euo pipefail
cd "$(dirname "$0")/.."

PLAYWRIGHT_VERSION=1.65.2
# The SAML identity provider of tests/console/sso_saml.py (it signs with xmlsec1).
PYSAML2_VERSION=7.5.5
CHROMIUM=/usr/bin/chromium

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
started=$(date +%s)

need_apt=()
[ -x "$CHROMIUM" ] || need_apt+=(chromium fonts-dejavu-core)
python3 -c 'import ensurepip, venv' 2>/dev/null || need_apt+=(python3-venv)
[ -x /usr/bin/xmlsec1 ] || need_apt+=(xmlsec1)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing ${need_apt[*]} (apt-get)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi
[ -x "$CHROMIUM" ] || { echo "test-console: $CHROMIUM is missing after the install" >&2; exit 1; }

venv=$(pwd)/.tools/venv-browser
if ! "$venv/bin/pip" show playwright 2>/dev/null | grep -x "Version: $PLAYWRIGHT_VERSION" >/dev/null; then
  echo "installing playwright $PLAYWRIGHT_VERSION in $venv"
  python3 -m venv --clear "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "playwright==$PLAYWRIGHT_VERSION"
fi
# The OpenID Connect provider of tests/console/sso_oidc.py: Authlib's provider side in a small
# Flask app (pinned; installed only when a pin is not what the venv has).
SSO_PACKAGES=(Authlib==1.9.6 joserfc==1.8.0 Flask==3.1.3 Werkzeug==3.1.9 cryptography==51.0.1)
if ! "$venv/bin/pip" freeze 2>/dev/null | grep -ixF -f <(printf '%s\n' "${SSO_PACKAGES[@]}") |
  [ "$(wc -l)" = "${#SSO_PACKAGES[@]}" ]; then
  echo "installing ${SSO_PACKAGES[*]} in $venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "${SSO_PACKAGES[@]}"
fi
if ! "$venv/bin/pip" show pysaml2 2>/dev/null | grep -x "Version: $PYSAML2_VERSION" >/dev/null; then
  echo "installing pysaml2 $PYSAML2_VERSION in $venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "pysaml2==$PYSAML2_VERSION"
fi
"$venv/bin/python" -c 'import playwright.sync_api, authlib.oauth2, flask, saml2' ||
  { echo "test-console: playwright or an SSO provider does not import from $venv" >&2; exit 1; }
installed=$(date +%s)

if [ -n "${LICENSING_SERVER_BIN:-}" ]; then
  bin=$LICENSING_SERVER_BIN
else
  cargo build -q --locked -p licensing-server
  bin=${CARGO_TARGET_DIR:-target}/debug/licensing-server
fi
built=$(date +%s)
work=$(mktemp -d)
server=
a11y_server=
cleanup() {
  # Never fails (under `set -e` a failing command here would replace the script's exit status).
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  if [ -n "$a11y_server" ]; then
    kill "$a11y_server" 2>/dev/null || true; wait "$a11y_server" 2>/dev/null || true
  fi
  if [ -n "${KEEP_WORK:-}" ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

"$bin" serve --listen 127.0.0.1:0 --data-dir "$work/data" >"$work/server.out" 2>"$work/server.log" &
server=$!
for _ in $(seq 100); do grep -q '^listening on' "$work/server.out" 2>/dev/null && break; sleep 0.1; done
url=$(sed -n 's/^listening on //p' "$work/server.out")
token=$(sed -n 's/^admin API token.*: //p' "$work/server.out")
if [ -z "$url" ] || [ -z "$token" ]; then
  echo "test-console: the server did not print its URL and admin token:" >&2
  cat "$work/server.out" "$work/server.log" >&2
  exit 1
fi

artefacts=${CARGO_TARGET_DIR:-target}/console-artefacts
rm -rf "$artefacts" && mkdir -p "$artefacts"
set +e
# The token through the environment (a command line is visible to other users). Bounded: the
# walk-through takes seconds; every browser wait inside it is bounded to 10 s.
CONSOLE_URL=$url CONSOLE_TOKEN=$token CONSOLE_ARTEFACTS=$artefacts CHROMIUM=$CHROMIUM \
  timeout -k 5 150 "$venv/bin/python" tests/console/e2e.py
status=$?
[ "$status" = 124 ] && echo "test-console: the walk-through timed out after 150 s" >&2
# Single sign-on through OpenID Connect against a real provider (Authlib) the script starts on
# 127.0.0.1, in the same server (its admin account from the walk-through).
if [ "$status" = 0 ]; then
  CONSOLE_URL=$url CONSOLE_TOKEN=$token CONSOLE_ARTEFACTS=$artefacts CHROMIUM=$CHROMIUM \
    timeout -k 5 90 "$venv/bin/python" tests/console/sso_oidc.py
  status=$?
  [ "$status" = 124 ] && echo "test-console: the OIDC sign-in timed out after 90 s" >&2
fi
# SAML single sign-on against a real pysaml2 IdP (after e2e.py, whose account configures it).
if [ "$status" = 0 ]; then
  CONSOLE_URL=$url CONSOLE_ARTEFACTS=$artefacts CHROMIUM=$CHROMIUM \
    timeout -k 5 120 "$venv/bin/python" tests/console/sso_saml.py
  status=$?
  [ "$status" = 124 ] && echo "test-console: the SAML walk-through timed out after 120 s" >&2
fi
set -e

# The accessibility check (tests/console/a11y.py: axe-core on every page, keyboard only) on a
# second, fresh server: the setup page it checks is only shown before the first account.
if [ "$status" = 0 ]; then
  "$bin" serve --listen 127.0.0.1:0 --data-dir "$work/a11y-data" \
    >"$work/a11y-server.out" 2>"$work/a11y-server.log" &
  a11y_server=$!
  for _ in $(seq 100); do grep -q '^listening on' "$work/a11y-server.out" 2>/dev/null && break; sleep 0.1; done
  a11y_url=$(sed -n 's/^listening on //p' "$work/a11y-server.out")
  a11y_token=$(sed -n 's/^admin API token.*: //p' "$work/a11y-server.out")
  if [ -z "$a11y_url" ] || [ -z "$a11y_token" ]; then
    echo "test-console: the accessibility check's server did not start:" >&2
    cat "$work/a11y-server.out" "$work/a11y-server.log" >&2
    status=1
  else
    set +e
    CONSOLE_URL=$a11y_url CONSOLE_TOKEN=$a11y_token CONSOLE_ARTEFACTS=$artefacts \
      CHROMIUM=$CHROMIUM timeout -k 5 150 "$venv/bin/python" tests/console/a11y.py
    status=$?
    set -e
    [ "$status" = 124 ] && echo "test-console: the accessibility check timed out after 150 s" >&2
  fi
  cat "$work/a11y-server.log" >>"$work/server.log"
fi
if grep -E '"level":"ERROR"|ERROR ' "$work/server.log" >/dev/null; then
  echo "test-console: the server logged errors:" >&2
  grep -E '"level":"ERROR"|ERROR ' "$work/server.log" >&2
  status=1
fi
if [ "$status" != 0 ]; then
  echo "test-console: FAILED (screenshots and the failing page in $artefacts; server log:)" >&2
  tail -n 30 "$work/server.log" >&2
  exit "$status"
fi
echo "test-console: passed (install $((installed - started)) s," \
  "build $((built - installed)) s, walk-through $(($(date +%s) - built)) s)"
