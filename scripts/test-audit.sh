#!/usr/bin/env bash
# The audit trail's CEF export (issue 24) read by an independent CEF parser: pycef from PyPI
# (pinned, in a venv under .tools/venv-audit; installed when missing, idempotent). Starts
# `licensing-server serve` on 127.0.0.1 with a temporary data directory on SQLite and runs
# tests/audit/cef_check.py against it: entries and events naming users with `=`, `\` and `|`,
# every line of GET /v1/audit/cef parsed and compared field by field with the admin API's JSON,
# then the cursor feed paged through. Fails on the first difference (named), or on an error
# the server logged.
#
# LICENSING_SERVER_BIN=path runs a prebuilt server instead of building one; KEEP_WORK=1 keeps
# the server's data directory and logs.
set -euo pipefail
cd "$(dirname "$0")/.."

PYCEF_VERSION=1.11

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
fi
venv=$(pwd)/.tools/venv-audit
if ! "$venv/bin/pip" show pycef 2>/dev/null | grep -x "Version: $PYCEF_VERSION" >/dev/null; then
  echo "installing pycef $PYCEF_VERSION in $venv"
  python3 -m venv --clear "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "pycef==$PYCEF_VERSION"
fi
"$venv/bin/python" -c 'import pycef' || { echo "test-audit: pycef does not import from $venv" >&2; exit 1; }

if [ -n "${LICENSING_SERVER_BIN:-}" ]; then
  bin=$LICENSING_SERVER_BIN
else
  cargo build -q --locked -p licensing-server
  bin=${CARGO_TARGET_DIR:-target}/debug/licensing-server
fi
work=$(mktemp -d)
server=
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  if [ -n "${KEEP_WORK:-}" ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

"$bin" serve --listen 127.0.0.1:0 --data-dir "$work/data" >"$work/server.out" 2>"$work/server.log" &
server=$!
for _ in $(seq 100); do grep -q '^listening on' "$work/server.out" 2>/dev/null && break; sleep 0.1; done
url=$(sed -n 's/^listening on //p' "$work/server.out")
token=$(sed -n 's/^admin API token.*: //p' "$work/server.out")
if [ -z "$url" ] || [ -z "$token" ]; then
  echo "test-audit: the server did not print its URL and admin token:" >&2
  cat "$work/server.out" "$work/server.log" >&2
  exit 1
fi
set +e
# The token through the environment (a command line is visible to other users).
AUDIT_URL=$url AUDIT_TOKEN=$token timeout -k 5 60 "$venv/bin/python" tests/audit/cef_check.py
status=$?
set -e
[ "$status" = 124 ] && echo "test-audit: cef_check.py timed out after 60 s" >&2
if grep -E '"level":"ERROR"|ERROR ' "$work/server.log" >/dev/null; then
  echo "test-audit: the server logged an error:" >&2
  grep -E '"level":"ERROR"|ERROR ' "$work/server.log" >&2
  status=1
fi
exit "$status"
