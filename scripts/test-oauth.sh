#!/usr/bin/env bash
# OAuth 2.0 end to end (issue 25) with independent libraries: Authlib's OAuth2Session (the
# client-credentials grant by client_secret_basic and client_secret_post, RFC 7009 revocation,
# admin-API calls with the token) and PyJWT (the RFC 9068 token verified against the server's
# JWKS), pinned in tests/oauth/requirements.txt and installed in a venv under .tools/venv-oauth
# when missing (idempotent). Starts `licensing-server serve` on 127.0.0.1 with a temporary data
# directory on SQLite and its own URL as `--issuer`, runs tests/oauth/client_check.py against
# it (bounded), and fails on a failed check or an error the server logged.
#
# LICENSING_SERVER_BIN=path runs a prebuilt server instead of building one; KEEP_WORK=1 keeps
# the server's data directory and logs.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

python3 -c 'import ensurepip, venv' 2>/dev/null || {
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
}
venv=$(pwd)/.tools/venv-oauth
requirements=tests/oauth/requirements.txt
# Reinstalled only when the pins changed (their copy is kept in the venv).
if ! cmp -s "$requirements" "$venv/requirements.txt" 2>/dev/null; then
  echo "installing the OAuth peer's libraries in $venv"
  python3 -m venv --clear "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$requirements"
  cp "$requirements" "$venv/requirements.txt"
fi

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

# The issuer is the server's own URL (RFC 8414): a free port is picked first.
port=$("$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
url=http://127.0.0.1:$port
"$bin" serve --listen "127.0.0.1:$port" --issuer "$url" --data-dir "$work/data" \
  >"$work/server.out" 2>"$work/server.log" &
server=$!
for _ in $(seq 100); do grep -q '^listening on' "$work/server.out" 2>/dev/null && break; sleep 0.1; done
token=$(sed -n 's/^admin API token.*: //p' "$work/server.out")
if ! grep -q '^listening on' "$work/server.out" || [ -z "$token" ]; then
  echo "test-oauth: the server did not start:" >&2
  cat "$work/server.out" "$work/server.log" >&2
  exit 1
fi

set +e
# The token through the environment (a command line is visible to other users).
OAUTH_URL=$url OAUTH_ADMIN_TOKEN=$token timeout -k 5 120 "$venv/bin/python" tests/oauth/client_check.py
status=$?
set -e
[ "$status" = 124 ] && echo "test-oauth: the peer check timed out after 120 s" >&2
if grep -E '"level":"ERROR"|ERROR ' "$work/server.log" >/dev/null; then
  echo "test-oauth: the server logged errors:" >&2
  grep -E '"level":"ERROR"|ERROR ' "$work/server.log" >&2
  status=1
fi
if [ "$status" != 0 ]; then
  echo "test-oauth: FAILED (server log:)" >&2
  tail -n 30 "$work/server.log" >&2
  exit "$status"
fi
echo "test-oauth: passed"
