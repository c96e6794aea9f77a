#!/usr/bin/env bash
# SCIM 2.0 compliance (issue 22): the independent checker scim2-tester (PyPI, through scim2-cli)
# against the real server. Installs both (pinned) in a venv under .tools/ (idempotent), starts
# `licensing-server serve` on 127.0.0.1 with a temporary data directory, creates an
# organization and a SCIM token (role `scim`) through the admin API, runs `scim2 ... test`, and
# fails on any ERROR or CRITICAL line of its report (printed whole), or on an error the server
# logged.
set -euo pipefail
cd "$(dirname "$0")/.."

SCIM2_CLI_VERSION=0.6.0
SCIM2_TESTER_VERSION=0.5.2

venv=$(pwd)/.tools/venv-scim
if ! "$venv/bin/pip" show scim2-cli scim2-tester 2>/dev/null \
    | grep -q "^Version: $SCIM2_TESTER_VERSION" \
  || ! "$venv/bin/pip" show scim2-cli 2>/dev/null | grep -q "^Version: $SCIM2_CLI_VERSION"; then
  if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    # Debian splits venv support out of python3.
    as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
  fi
  python3 -m venv --clear "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check \
    "scim2-cli==$SCIM2_CLI_VERSION" "scim2-tester==$SCIM2_TESTER_VERSION"
fi

command -v curl >/dev/null || { echo "curl is needed" >&2; exit 1; }
cargo build -q --locked -p licensing-server
bin=${CARGO_TARGET_DIR:-target}/debug/licensing-server
work=$(mktemp -d)
server=
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
  if [ -n "${KEEP_WORK:-}" ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

"$bin" serve --listen 127.0.0.1:0 --data-dir "$work/data" >"$work/server.out" 2>"$work/server.log" &
server=$!
for _ in $(seq 100); do grep -q '^listening on' "$work/server.out" 2>/dev/null && break; sleep 0.1; done
url=$(sed -n 's/^listening on //p' "$work/server.out")
token=$(sed -n 's/^admin API token.*: //p' "$work/server.out")
[ -n "$url" ] && [ -n "$token" ] || { cat "$work/server.out" "$work/server.log"; exit 1; }

post() {
  curl -fsS -H "authorization: Bearer $1" -H 'content-type: application/json' "$url$2" -d "$3"
}
field() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
# A customer organization, its first admin, and the admin's SCIM token for its identity
# provider.
org_admin=$(post "$token" /v1/organizations '{"name":"SCIM compliance"}' | field admin_token)
scim_token=$(post "$org_admin" /v1/api-tokens '{"role":"scim","label":"scim2-tester"}' | field secret)

set +e
# The token through the environment (a command line is visible to other users).
SCIM_CLI_HEADERS="Authorization: Bearer $scim_token" "$venv/bin/scim2" --url "$url/scim/v2" \
  test --check-status-code --check-content-type >"$work/report.txt" 2>&1
checker=$?
set -e
cat "$work/report.txt"
failed=0
if grep -E 'ERROR|CRITICAL' "$work/report.txt" >/dev/null; then
  echo "scim2-tester: $(grep -cE 'ERROR|CRITICAL' "$work/report.txt") check(s) failed" >&2
  failed=1
fi
if [ "$checker" != 0 ]; then
  echo "scim2-tester exited with $checker" >&2
  failed=1
fi
if ! grep -q SUCCESS "$work/report.txt"; then
  echo "scim2-tester reported no successful check" >&2
  failed=1
fi
if grep -E '"level":"ERROR"|ERROR ' "$work/server.log" >/dev/null; then
  echo "the server logged errors:" >&2
  grep -E '"level":"ERROR"|ERROR ' "$work/server.log" >&2
  failed=1
fi
[ "$failed" = 0 ] && echo "scim2-tester: $(grep -c SUCCESS "$work/report.txt") checks, all clean"
exit "$failed"
