#!/usr/bin/env bash
# The main job, walked through: the vendor's signing key, the reference server signing with it on
# its embedded SQLite default, then the SDK's offline check. Generates the vendor's key, starts
# `licensing-server serve --signing-key` with it on 127.0.0.1 with ./data/demo as its data
# directory, creates a product, a policy and a license over the admin API, activates this machine,
# validates online (signed response), suspends and revokes, checks out the seat of a floating
# license (the denial, the wait line), then verifies the issued token offline with the CLI
# (valid, in grace, missing feature, wrong version, tampered), stages the next signing key, and
# shows the compliance alerts and the verified audit trail. Stops the server at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
missing=()
for tool in curl openssl python3; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
  as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
cargo build -q -p licensing-server
bin=target/debug/licensing-server
dir=data/demo
rm -rf "$dir" && mkdir -p "$dir"

say() { printf '\n\033[1m# %s\033[0m\n' "$*"; }
show() { printf '\033[2m$ %s\033[0m\n' "$*"; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1], {}, {'d': d}))" "$1"; }

say "1. The vendor's signing key, and the reference server signing with it (embedded SQLite under $dir/server)"
# One key for the whole walk-through: the server signs with the vendor's own key, so the
# keys/jwks.json the app ships verifies what the server answers and what the CLI issues.
show "$bin keys generate --out $dir/keys"
"$bin" keys generate --out "$dir/keys"
show "$bin serve --listen 127.0.0.1:0 --data-dir $dir/server --signing-key $dir/keys/private.pem"
"$bin" serve --listen 127.0.0.1:0 --data-dir "$dir/server" --signing-key "$dir/keys/private.pem" \
  > "$dir/server.out" 2> "$dir/server.log" &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q '^listening on' "$dir/server.out" 2>/dev/null && break; sleep 0.1; done
cat "$dir/server.out"
url=$(sed -n 's/^listening on //p' "$dir/server.out")
token=$(sed -n 's/^admin API token.*: //p' "$dir/server.out")
auth=(-H "authorization: Bearer $token" -H 'content-type: application/json')
post() { curl -sS "${auth[@]}" "$url$1" -d "${2:-{\}}"; }

say "2. Admin API: product, policy, license"
show "POST /v1/products"
post /v1/products '{"id":"com.example.cad","name":"Example CAD"}'; echo
show "POST /v1/policies"
policy=$(post /v1/policies '{"product_id":"com.example.cad","name":"Pro yearly","model":"subscription",
  "duration":31536000,"grace_period":1209600,"max_machines":2,
  "features":{"core":{},"export_step":{"limit":100}}}')
echo "$policy"
policy_id=$(echo "$policy" | json 'd["id"]')
show "POST /v1/licenses"
license=$(post /v1/licenses "{\"policy_id\":\"$policy_id\",\"customer\":{\"name\":\"Globex Corp\"}}")
license_id=$(echo "$license" | json 'd["id"]')
key=$(echo "$license" | json 'd["key"]')
echo "$license" | json 'd["token"]' > "$dir/license.jwt"
echo "license $license_id, key $key (shown once)"

say "3. This machine's fingerprint, activation and online validation"
show "$bin machine fingerprint --product com.example.cad --json"
"$bin" machine fingerprint --product com.example.cad --json > "$dir/fp.json"
head -4 "$dir/fp.json"; echo "  ..."
show "POST /v1/client/activate"
curl -sS -H 'content-type: application/json' "$url/v1/client/activate" \
  -d "{\"license_key\":\"$key\",\"fingerprint\":$(cat "$dir/fp.json")}" | json 'd["machine_token"][:60] + "..."'
fp_id=$(json 'd["id"]' < "$dir/fp.json")
validate() {
  curl -sS -H 'content-type: application/json' "$url/v1/client/validate" \
    -d "{\"license_key\":\"$key\",\"fingerprint\":\"$fp_id\",\"nonce\":\"$(openssl rand -hex 16)\"}"
}
show "POST /v1/client/validate   (a signed response+jwt, decoded here)"
validate | json 'd["response_token"]' | "$bin" license inspect | python3 -c 'import json,sys; p=json.load(sys.stdin)["payload"]; print({k: p[k] for k in p if k in ("status","nonce","server_time")})'

say "4. Suspend and revoke: online validation reports it"
show "POST /v1/licenses/$license_id/suspend"; post "/v1/licenses/$license_id/suspend" >/dev/null
validate | json 'd["response_token"]' | "$bin" license inspect | json 'd["payload"]["status"]'
show "POST /v1/licenses/$license_id/reinstate"; post "/v1/licenses/$license_id/reinstate" >/dev/null
validate | json 'd["response_token"]' | "$bin" license inspect | json 'd["payload"]["status"]'

say "5. Floating license, one seat: check-out, the denial, the wait line"
fpolicy_id=$(post /v1/policies '{"product_id":"com.example.cad","name":"Floating","model":"floating","seats":1}' | json 'd["id"]')
flicense=$(post /v1/licenses "{\"policy_id\":\"$fpolicy_id\"}")
flicense_id=$(echo "$flicense" | json 'd["id"]')
fkey=$(echo "$flicense" | json 'd["key"]')
seat() { # CLIENT REQUEST [EXTRA JSON]: POST /v1/client/leases, prints the HTTP status and the body
  curl -sS -w ' (HTTP %{http_code})' -H 'content-type: application/json' "$url/v1/client/leases" \
    -d "{\"license_key\":\"$fkey\",\"client_id\":\"$1\",\"user\":\"$1\",\"request_id\":\"$2\",\"lease_secret_supported\":true${3:+,$3}}"
}
show "POST /v1/client/leases   (alice)"
alice=$(seat alice r1)
echo "${alice:0:60}... ${alice##* (}" | sed 's/)$//'
show "POST /v1/client/leases   (bob: the one seat is taken)"
seat bob r1; echo
show "PUT /v1/licenses/$flicense_id/queue   (IT staff: check-outs may wait in line up to 10 min)"
curl -sS -X PUT "${auth[@]}" "$url/v1/licenses/$flicense_id/queue" -d '{"max_seconds":600}'; echo
show "POST /v1/client/leases   (bob, willing to wait 2 min: a place in line)"
seat bob r2 '"queue_seconds":120'; echo
show "POST /v1/client/leases/{id}/release   (alice checks in)"
alice_json=${alice% (HTTP*}
curl -sS -H 'content-type: application/json' \
  "$url/v1/client/leases/$(echo "$alice_json" | json 'd["lease_id"]')/release" \
  -d "{\"license_key\":\"$fkey\",\"epoch\":$(echo "$alice_json" | json 'd["epoch"]'),\"lease_secret\":\"$(echo "$alice_json" | json 'd["lease_secret"]')\"}" | json 'd["release_reason"]'
show "POST /v1/client/leases   (bob asks again: served from the line)"
bob=$(seat bob r2 '"queue_seconds":120')
echo "${bob:0:60}... ${bob##* (}" | sed 's/)$//'
show "GET /v1/licenses/$flicense_id/denials"
curl -sS "${auth[@]}" "$url/v1/licenses/$flicense_id/denials" | json '{"total": d["total"], "per_day": d["per_day"]}'

say "6. Offline: the app verifies the token with the keys it ships (keys/jwks.json), no network"
show "GET /.well-known/jwks.json   (the server publishes the same key)"
curl -sS "$url/.well-known/jwks.json" | json '[k["kid"] for k in d["keys"]]'
verify() { show "$bin license verify $*"; set +e; "$bin" license verify "$@"; echo "(exit $?)"; set -e; }
verify --public-key "$dir/keys/jwks.json" --product com.example.cad --token "$dir/license.jwt" --feature export_step
verify --public-key "$dir/keys/jwks.json" --product com.example.cad --token "$dir/license.jwt" --feature render

say "7. Offline with the vendor toolbox: a perpetual license, version gating, grace, tampering"
"$bin" license issue --private-key "$dir/keys/private.pem" --claims examples/licenses/perpetual.json > "$dir/perpetual.jwt"
verify --public-key "$dir/keys/public.pem" --product com.example.cad --token "$dir/perpetual.jwt" --version 2.4.0 --release-date 2026-06-01
verify --public-key "$dir/keys/public.pem" --product com.example.cad --token "$dir/perpetual.jwt" --version 3.0.0 --release-date 2031-01-01
"$bin" license issue --private-key "$dir/keys/private.pem" --claims examples/licenses/subscription.json > "$dir/subscription.jwt"
verify --public-key "$dir/keys/jwks.json" --product com.example.cad --token "$dir/subscription.jwt" --at 2099-01-05T00:00:00Z
python3 - "$dir/subscription.jwt" "$dir/tampered.jwt" <<'PY'
import sys
h, p, s = open(sys.argv[1]).read().strip().split(".")
i = len(p) // 2
p = p[:i] + ("A" if p[i] != "A" else "B") + p[i + 1:]
open(sys.argv[2], "w").write(".".join([h, p, s]))
PY
verify --public-key "$dir/keys/public.pem" --product com.example.cad --token "$dir/tampered.jwt"

say "8. Rotating keys without breaking shipped apps: stage the next key (published, not signing)"
show "POST /v1/keys/stage"
staged=$(post /v1/keys/stage)
echo "$staged" | json '{"kid": d["kid"], "status": d["status"], "promotable_at": d["promotable_at"]}'
show "GET /.well-known/jwks.json   (ship both keys in the next app release)"
curl -sS "$url/.well-known/jwks.json" | json '[k["kid"] for k in d["keys"]]'
show "POST /v1/keys/{kid}/promote   (refused until published for --key-min-publish-secs)"
post "/v1/keys/$(echo "$staged" | json 'd["kid"]')/promote" | json 'd["error"]'

say "9. Revoke; compliance alerts and the audit trail"
post "/v1/licenses/$license_id/revoke" >/dev/null
validate | json 'd["response_token"]' | "$bin" license inspect | json 'd["payload"]["status"]'
show "GET /v1/alerts"
curl -sS "${auth[@]}" "$url/v1/alerts" | json '[(a["kind"], a["severity"], a["message"]) for a in d["alerts"]]'
show "GET /v1/audit   (the admin actions above, hash-chained)"
curl -sS "${auth[@]}" "$url/v1/audit" | json '[(e["seq"], e["action"]) for e in d["entries"]]'
show "GET /v1/audit/verify"
curl -sS "${auth[@]}" "$url/v1/audit/verify" | json '{"ok": d["ok"], "entries": d["entries"]}'

say "10. The admin console"
echo "Open $url/ in a browser: create the first console account at $url/console/setup with the"
echo "admin API token above ($token), then sign in at $url/console/sign-in."
if [ "${DEMO_KEEP_SERVER:-0}" = 1 ]; then
  echo "The server keeps running (DEMO_KEEP_SERVER=1); press Ctrl-C to stop it."
  trap - EXIT
  wait "$server"
  exit 0
fi

say "11. Stop the server"
kill "$server"; wait "$server" 2>/dev/null || true
printf '\nDone. Server data (SQLite, signing key) and files are in %s.\n' "$dir"
