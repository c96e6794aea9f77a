#!/usr/bin/env bash
# schemathesis against the server's own /openapi.json: no 5xx on any generated input, and every
# answer's status and body match the document. Installs schemathesis (pinned, PyPI) in a venv
# under target/, starts `licensing-server serve` on 127.0.0.1 with a temporary data directory,
# seeds products, policies, licenses and a spare API token so path parameters and license keys
# name real objects, then runs a bounded, seeded schemathesis run with the bootstrap admin token.
# Exits non-zero on any failed check, schemathesis error, or error logged by the server.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
# Per operation (39 are tested: all but /openapi.json itself); examples + coverage + fuzzing
# phases take about a minute on 2 cores at 40.
MAX_EXAMPLES=${SCHEMATHESIS_MAX_EXAMPLES:-40}
SEED=${SCHEMATHESIS_SEED:-20261125}

venv=$(pwd)/target/schemathesis-venv
if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    # Debian splits venv support out of python3.
    as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
  fi
  python3 -m venv --clear "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
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

# Seed: objects the path parameters below point at.
post() {
  curl -fsS -H "authorization: Bearer $token" -H 'content-type: application/json' "$url$1" -d "$2"
}
field() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
post /v1/products '{"id":"com.example.fuzz","name":"Fuzz"}' >/dev/null
policy_id=$(post /v1/policies '{"product_id":"com.example.fuzz","name":"Floating","model":"floating",
  "duration":31536000,"seats":3}' | field id)
license_id=$(post /v1/licenses "{\"policy_id\":\"$policy_id\"}" | field id)
# Its own license for the one irreversible transition, so the others keep an active one.
revoked_id=$(post /v1/licenses "{\"policy_id\":\"$policy_id\"}" | field id)
# License keys for the client API: a floating one (seats) and a subscription (machines).
floating_key=$(post /v1/licenses "{\"policy_id\":\"$policy_id\"}" | field key)
machines_policy=$(post /v1/policies '{"product_id":"com.example.fuzz","name":"Yearly",
  "model":"subscription","duration":31536000,"max_machines":5}' | field id)
machines_key=$(post /v1/licenses "{\"policy_id\":\"$machines_policy\"}" | field key)
# A token to revoke: schemathesis reads token ids from answers, and must not revoke its own.
spare_token_id=$(post /v1/api-tokens '{"role":"auditor","label":"spare"}' | field id)

# Path parameters named after real objects where an operation takes one; the others are
# generated (and answered 404).
cat >"$work/schemathesis.toml" <<EOF
# Client-API bodies mostly carry a real license key.
[dictionaries.license_keys]
values = ["$floating_key", "$machines_key"]

# Admin-API bodies mostly name a real product or policy, so creations succeed too.
[dictionaries.policy_ids]
values = ["$policy_id", "$machines_policy"]

[dictionaries.product_ids]
values = ["com.example.fuzz"]

[parameters]
"body.license_key" = { dictionary = "license_keys", probability = 0.8 }
"body.policy_id" = { dictionary = "policy_ids", probability = 0.8 }
"body.product_id" = { dictionary = "product_ids", probability = 0.8 }

[[operations]]
include-path = "/v1/licenses/{id}/revoke"
parameters = { "path.id" = "$revoked_id" }

[[operations]]
include-path-regex = "^/v1/licenses/\\\\{id\\\\}(?!/revoke)"
parameters = { "path.id" = "$license_id" }

[[operations]]
include-path = "/v1/api-tokens/{id}/revoke"
parameters = { "path.id" = "$spare_token_id" }

[[operations]]
include-path = "/v1/policies/{id}"
parameters = { "path.id" = "$policy_id" }
EOF

echo "schemathesis $SCHEMATHESIS_VERSION against $url/openapi.json (max examples $MAX_EXAMPLES, seed $SEED)"
status=0
# One worker: with several, generation threads hit a CPython 3.11 AST recursion-depth
# SystemError inside Hypothesis (a schemathesis "Runtime Error", not a server finding).
# Run inside the temporary directory: schemathesis keeps its example database in the working
# directory, and a fresh one keeps runs reproducible.
(cd "$work" && "$venv/bin/schemathesis" --no-color --config-file "$work/schemathesis.toml" run "$url/openapi.json" \
  --header "Authorization: Bearer $token" \
  --checks not_a_server_error,status_code_conformance,response_schema_conformance,content_type_conformance,response_headers_conformance \
  --phases examples,coverage,fuzzing \
  --max-examples "$MAX_EXAMPLES" \
  --seed "$SEED" \
  --workers 1 \
  --request-timeout 10) || status=$?

if grep -q '"level":"ERROR"\|ERROR' "$work/server.log"; then
  echo "server errors logged during the run:"
  grep 'ERROR' "$work/server.log" | head -20
  status=1
fi
exit "$status"
