#!/usr/bin/env bash
# Tests the C ABI (crate licensing-ffi) from C and C++:
#   1. installs what it needs if missing: gcc/g++, valgrind (Debian), cbindgen 0.29.4 (cargo);
#   2. include/licensing.h is what cbindgen generates now (fails when stale), and its version
#      macros match Cargo.toml;
#   3. the crate's Rust unit tests (status mapping, panic boundary, buffers);
#   4. builds the library (debug cdylib for dynamic linking, release staticlib for static) and
#      the vendor CLI, which makes keys and tokens into a temp directory;
#   5. compiles licensing-ffi/tests/test_ffi.c and examples/c/startup_check.c with
#      gcc -std=c11 -Wall -Wextra -Werror -pedantic, linked dynamically and statically,
#      licensing-ffi/tests/scenarios_replay.c (dynamic), and licensing-ffi/tests/header_cpp.cpp
#      with g++ -std=c++17 (same warnings);
#   6. runs all of them under valgrind (full leak check, every leak kind an error), the replay
#      on the shared scenarios (tests/scenarios/scenarios.txt).
# Prints a summary and exits non-zero on any failure.
#
#   scripts/test-ffi.sh                  # the checks
#   scripts/test-ffi.sh --update-header  # regenerate include/licensing.h first
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

CBINDGEN_VERSION=0.29.4
CFLAGS=(-std=c11 -Wall -Wextra -Werror -pedantic -O1 -g)
CXXFLAGS=(-std=c++17 -Wall -Wextra -Werror -pedantic -O1 -g)
VALGRIND=(valgrind --leak-check=full --show-leak-kinds=all --errors-for-leak-kinds=all
  --error-exitcode=99 --num-callers=50 --suppressions=licensing-ffi/tests/valgrind.supp)

update_header=false
for arg in "$@"; do
  case "$arg" in
    --update-header) update_header=true ;;
    *) echo "usage: $0 [--update-header]" >&2; exit 2 ;;
  esac
done

started=$SECONDS
step() { printf '\n==> [%ss] %s\n' "$((SECONDS - started))" "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

results=()
failures=0
pass() { results+=("PASS  $*"); }
fail() { results+=("FAIL  $*"); failures=$((failures + 1)); }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

step "tools"
need_apt=()
command -v gcc >/dev/null || need_apt+=(gcc libc6-dev)
command -v g++ >/dev/null || need_apt+=(g++)
command -v valgrind >/dev/null || need_apt+=(valgrind)
if [ ${#need_apt[@]} -gt 0 ]; then
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi
if [ "$(cbindgen --version 2>/dev/null || true)" != "cbindgen $CBINDGEN_VERSION" ]; then
  cargo install --locked --force "cbindgen@$CBINDGEN_VERSION"
fi
gcc --version | head -1
g++ --version | head -1
valgrind --version
cbindgen --version

step "header: include/licensing.h up to date (cbindgen $CBINDGEN_VERSION)"
cbindgen_args=(--quiet --config licensing-ffi/cbindgen.toml --crate licensing-ffi
  --output include/licensing.h)
if $update_header; then
  cbindgen "${cbindgen_args[@]}" licensing-ffi
  echo "regenerated include/licensing.h"
fi
if cbindgen "${cbindgen_args[@]}" --verify licensing-ffi; then
  pass "header is what cbindgen generates"
else
  fail "header is stale: run scripts/test-ffi.sh --update-header and commit include/licensing.h"
fi
# One prefix: every type the header declares is lic_* (cbindgen parses licensing-core too, and
# a core type named by anything it exports would otherwise appear under its Rust name).
unprefixed=$(grep -oE '^(typedef (struct|enum) [A-Za-z_0-9]+ [A-Za-z_0-9]+;|typedef [a-z_0-9]+ [A-Za-z_0-9]+;|(struct|enum) [A-Za-z_0-9]+)' include/licensing.h |
  awk '{print $NF}' | tr -d ';' | grep -vE '^lic_' | sort -u || true)
if [ -z "$unprefixed" ]; then
  pass "every type in the header is prefixed lic_"
else
  fail "types without the lic_ prefix in include/licensing.h: $(echo $unprefixed)"
fi

step "header: version macros match Cargo.toml"
version=$(cargo pkgid -p licensing-ffi | sed -E 's/.*[#@]//')
IFS=. read -r major minor patch <<<"${version%%[-+]*}"
macro() { sed -nE "s/^#define $1 ([0-9]+)\$/\\1/p" include/licensing.h; }
if [ "$(macro LIC_VERSION_MAJOR)" = "$major" ] && [ "$(macro LIC_VERSION_MINOR)" = "$minor" ] &&
  [ "$(macro LIC_VERSION_PATCH)" = "$patch" ]; then
  pass "LIC_VERSION_* = $version (Cargo.toml)"
else
  fail "LIC_VERSION_* ($(macro LIC_VERSION_MAJOR).$(macro LIC_VERSION_MINOR).$(macro LIC_VERSION_PATCH)) differ from Cargo.toml ($version)"
fi

step "cargo test -p licensing-ffi (Rust side: status mapping, panic boundary, buffers)"
if cargo test -q -p licensing-ffi --lib --locked; then
  pass "Rust unit tests of licensing-ffi"
else
  fail "Rust unit tests of licensing-ffi"
fi

step "build: debug cdylib, release staticlib, licensing-server"
cargo build -q -p licensing-ffi -p licensing-server --locked
# The release staticlib, built once, also prints the system libraries a static link needs.
cargo rustc -q -p licensing-ffi --release --lib --crate-type staticlib --locked \
  -- --print native-static-libs 2>"$tmp/native-static-libs.txt"
native_libs=$(sed -nE 's/.*native-static-libs: (.*)$/\1/p' "$tmp/native-static-libs.txt" | tail -1)
echo "native-static-libs: $native_libs"
dylib_dir="$root/target/debug"
staticlib="$root/target/release/liblicensing_ffi.a"
ls -l "$dylib_dir/liblicensing_ffi.so" "$staticlib"

step "fixtures: keys and tokens from licensing-server"
server="$root/target/debug/licensing-server"
fx="$tmp/fixtures"
mkdir -p "$fx"
"$server" keys generate --out "$fx/keys" >/dev/null
"$server" keys generate --out "$fx/other" >/dev/null
for model in subscription trial perpetual site; do
  "$server" license issue --private-key "$fx/keys/private.pem" \
    --claims "examples/licenses/$model.json" >"$fx/$model.jwt"
done
# A node-locked license bound to the fingerprint of the vendor-supplied identity
# "ffi-test-node" for com.example.cad (what lic_fingerprint_with_override computes).
fp_id=$(LICENSING_FINGERPRINT_OVERRIDE=ffi-test-node "$server" machine fingerprint \
  --product com.example.cad | sed -nE 's/^fingerprint: (.*)$/\1/p')
cat >"$fx/node_locked.json" <<EOF
{
  "iss": "https://licensing.example.com",
  "aud": "com.example.cad",
  "sub": "lic_node_locked_ffi",
  "nbf": 1767225600,
  "lic": {
    "model": "node_locked",
    "features": { "core": {} },
    "node_lock": { "fingerprints": [ { "id": "$fp_id" } ], "allow_virtual": true }
  }
}
EOF
"$server" license issue --private-key "$fx/keys/private.pem" \
  --claims "$fx/node_locked.json" >"$fx/node_locked.jwt"
ls "$fx"

step "compile: gcc ${CFLAGS[*]}; g++ ${CXXFLAGS[*]}"
bin="$tmp/bin"
mkdir -p "$bin"
dynamic=(-L"$dylib_dir" -llicensing_ffi -Wl,-rpath,"$dylib_dir")
# shellcheck disable=SC2206 # the flags are words
static=("$staticlib" $native_libs)
compile() { # name, compiler command...
  local name=$1
  shift
  if "$@"; then pass "compile $name"; else fail "compile $name"; fi
}
compile "test_ffi (dynamic)" gcc "${CFLAGS[@]}" -Iinclude licensing-ffi/tests/test_ffi.c \
  -pthread "${dynamic[@]}" -o "$bin/test_ffi_dynamic"
compile "test_ffi (static)" gcc "${CFLAGS[@]}" -Iinclude licensing-ffi/tests/test_ffi.c \
  -pthread "${static[@]}" -o "$bin/test_ffi_static"
compile "startup_check (dynamic)" gcc "${CFLAGS[@]}" -Iinclude examples/c/startup_check.c \
  "${dynamic[@]}" -o "$bin/startup_check_dynamic"
compile "startup_check (static)" gcc "${CFLAGS[@]}" -Iinclude examples/c/startup_check.c \
  "${static[@]}" -o "$bin/startup_check_static"
compile "scenarios_replay (dynamic)" gcc "${CFLAGS[@]}" -Iinclude \
  licensing-ffi/tests/scenarios_replay.c "${dynamic[@]}" -o "$bin/scenarios_replay"
compile "online_e2e (dynamic)" gcc "${CFLAGS[@]}" -Iinclude licensing-ffi/tests/online_e2e.c \
  "${dynamic[@]}" -o "$bin/online_e2e"
compile "header_cpp (g++ -std=c++17)" g++ "${CXXFLAGS[@]}" -Iinclude \
  licensing-ffi/tests/header_cpp.cpp "${dynamic[@]}" -o "$bin/header_cpp"
if [ "$(ldd "$bin/test_ffi_static" | grep -c licensing_ffi || true)" != 0 ]; then
  fail "test_ffi_static links liblicensing_ffi dynamically"
fi

# The store and the platform data directory live in the temp directory.
export XDG_DATA_HOME="$tmp/xdg"
unset LICENSING_FINGERPRINT_OVERRIDE
# A panic that prints a backtrace (lic_test_panic) makes std keep its symbolication data for
# the life of the process, which valgrind reports as still reachable: no backtraces here.
export RUST_BACKTRACE=0

# Runs a command under valgrind; checks its exit status and valgrind's verdict.
# usage: grind NAME EXPECTED_EXIT [OUTPUT_PATTERN] -- command...
grind() {
  local name=$1 expected=$2 pattern=$3
  shift 4
  local log="$tmp/valgrind-${name//[^a-zA-Z0-9]/_}.log" out="$tmp/out-${name//[^a-zA-Z0-9]/_}.txt"
  local status=0
  "${VALGRIND[@]}" --log-file="$log" "$@" >"$out" 2>&1 || status=$?
  local errors leaks
  errors=$(sed -nE 's/.*ERROR SUMMARY: ([0-9]+) errors.*/\1/p' "$log" | tail -1)
  # "definitely lost: 0 bytes in 0 blocks" ... -> "definitely lost 0 B, ..."
  leaks=$(sed -nE 's/^==[0-9]+== +(definitely lost|indirectly lost|possibly lost|still reachable|suppressed): ([0-9,]+) bytes.*/\1 \2 B/p' "$log" |
    paste -sd, - | sed 's/,/, /g')
  [ -n "$leaks" ] || leaks="all heap blocks freed"
  if [ "$status" = 99 ] || [ "${errors:-1}" != 0 ]; then
    fail "$name: valgrind found ${errors:-?} errors (log below)"
    cat "$out"
    cat "$log"
  elif [ "$status" != "$expected" ]; then
    fail "$name: exit $status, expected $expected"
    cat "$out"
  elif [ -n "$pattern" ] && ! grep -qE "$pattern" "$out"; then
    fail "$name: output lacks /$pattern/"
    cat "$out"
  else
    pass "$name (valgrind: 0 errors; $leaks)"
    # The C suites' own count, for the summary.
    grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out" | sed 's/^/      /' || true
  fi
}

step "run under valgrind: C test suite (dynamic and static)"
mkdir -p "$tmp/store-dynamic" "$tmp/store-static"
grind "test_ffi dynamic" 0 '^[0-9]+ passed, 0 failed$' -- \
  "$bin/test_ffi_dynamic" "$fx" "$tmp/store-dynamic"
grind "test_ffi static" 0 '^[0-9]+ passed, 0 failed$' -- \
  "$bin/test_ffi_static" "$fx" "$tmp/store-static"

step "run under valgrind: shared scenarios (tests/scenarios/scenarios.txt)"
grind "scenarios_replay" 0 '^[0-9]+ passed, 0 failed$' -- \
  "$bin/scenarios_replay" tests/scenarios/scenarios.txt

step "run under valgrind: examples/c/startup_check.c"
for link in dynamic static; do
  sc="$bin/startup_check_$link"
  store="$tmp/startup-$link"
  grind "startup_check $link: nothing installed" 1 'no_license' -- \
    "$sc" --public-key "$fx/keys/jwks.json" --store "$store"
  grind "startup_check $link: install" 0 '^license: valid ' -- \
    "$sc" --public-key "$fx/keys/jwks.json" --store "$store" \
    --install "$fx/subscription.jwt" --version 2.4.0 --feature export_step
  grind "startup_check $link: next launch" 0 'feature export_step: valid' -- \
    "$sc" --public-key "$fx/keys/public.pem" --store "$store" --feature export_step
  grind "startup_check $link: feature not sold" 1 'feature_not_entitled' -- \
    "$sc" --public-key "$fx/keys/public.pem" --store "$store" --feature teleport
  grind "startup_check $link: untrusted key" 1 'unknown_key' -- \
    "$sc" --public-key "$fx/other/jwks.json" --store "$store"
  grind "startup_check $link: private key as trust store" 2 '' -- \
    "$sc" --public-key "$fx/keys/private.pem" --store "$store"
done
grind "startup_check: platform user directory" 1 'no_license' -- \
  "$bin/startup_check_dynamic" --public-key "$fx/keys/jwks.json"

step "online end to end through the C ABI: licensing-server serve on 127.0.0.1"
# The real server on a free loopback port and a temp data dir; the vendor's admin calls with
# curl; each step of the app is one run of online_e2e (under valgrind) on a persistent store.
srv_data="$tmp/server-data"
srv_out="$tmp/server.out"
"$server" serve --listen 127.0.0.1:0 --data-dir "$srv_data" >"$srv_out" 2>"$tmp/server.log" &
srv_pid=$!
stop_server() { if [ -n "${srv_pid:-}" ]; then kill "$srv_pid" 2>/dev/null || true; wait "$srv_pid" 2>/dev/null || true; srv_pid=; fi; }
trap 'stop_server; rm -rf "$tmp"' EXIT
for _ in $(seq 1 300); do grep -q '^listening on http://' "$srv_out" && break; sleep 0.1; done
srv_url=$(sed -nE 's#^listening on (http://.*)$#\1#p' "$srv_out")
admin=$(sed -nE 's/^admin API token \(shown once, only its hash is stored\): (.*)$/\1/p' "$srv_out")
if [ -z "$srv_url" ] || [ -z "$admin" ]; then
  fail "online: licensing-server did not start"
  cat "$srv_out" "$tmp/server.log"
else
  api() { # METHOD PATH [JSON]
    curl -sS --max-time 10 -X "$1" -H "Authorization: Bearer $admin" \
      -H 'Content-Type: application/json' ${3:+--data "$3"} "$srv_url$2"
  }
  api POST /v1/products '{"id":"com.example.cad","name":"CAD"}' >/dev/null
  policy=$(api POST /v1/policies '{"product_id":"com.example.cad","name":"c","model":"subscription","duration":31536000,"grace_period":604800,"max_machines":1}' | jq -r .id)
  license=$(api POST /v1/licenses "{\"policy_id\":\"$policy\"}")
  lic_id=$(jq -r .id <<<"$license")
  lic_key=$(jq -r .key <<<"$license")
  curl -sS --max-time 10 "$srv_url/.well-known/jwks.json" >"$tmp/server-jwks.json"
  ostore="$tmp/online-store"
  oe() { # NAME EXPECTED_EXIT PATTERN STEP ARGS...
    local name=$1 expected=$2 pattern=$3
    shift 3
    grind "online: $name" "$expected" "$pattern" -- \
      "$bin/online_e2e" "$tmp/server-jwks.json" "$srv_url" "$ostore" c-box-a "$@"
  }
  # The app's user (issue 22): the activation and a validation name a directory user through
  # lic_client_set_user (its bad inputs refused first); the machine is then in their usage.
  ada=$(api POST /v1/directory/users '{"user_name":"ada@example.com"}' | jq -r .id)
  ONLINE_E2E_USER=ada@example.com oe "activate (naming its user)" 0 '^status: valid$' \
    activate "$lic_key"
  if api GET "/v1/directory/users/$ada/usage" | jq -e '.machines | length == 1' >/dev/null; then
    pass "online: the activation naming its user is in the user's usage"
  else
    fail "online: the activation naming its user is in the user's usage"
    api GET "/v1/directory/users/$ada/usage"
  fi
  grind "online: second machine refused" 0 '^[0-9]+ passed, 0 failed$' -- \
    "$bin/online_e2e" "$tmp/server-jwks.json" "$srv_url" "$tmp/online-store-b" c-box-b \
    refused "$lic_key" machine_limit_reached
  ONLINE_E2E_USER=ada@example.com oe "validate (naming its user)" 0 '^status: valid$' \
    validate valid
  # The store copied to a second machine (another fingerprint): refused online, and at the
  # offline start after it (issue 20: the machine limit holds for licenses that are not
  # node-locked too).
  cp -r "$ostore" "$tmp/online-store-copy"
  for step in validate startup; do
    grind "online: copied store refused ($step)" 0 '^status: machine_not_activated$' -- \
      "$bin/online_e2e" "$tmp/server-jwks.json" "$srv_url" "$tmp/online-store-copy" c-box-b \
      "$step" machine_not_activated
  done
  oe "validate (the activated machine)" 0 '^status: valid$' validate valid
  api POST "/v1/licenses/$lic_id/suspend" '{}' >/dev/null
  oe "validate after suspend" 0 '^status: suspended$' validate suspended
  oe "offline start after suspend" 0 '^status: suspended$' startup suspended
  api POST "/v1/licenses/$lic_id/reinstate" '{}' >/dev/null
  oe "validate after reinstate" 0 '^status: valid$' validate valid
  # Timing under valgrind means little (it slows every thread): generous slack there, and the
  # real bound checked by a native run.
  ONLINE_E2E_SLACK_MS=10000 oe "silent server (valgrind)" 0 '^status: valid$' silent valid
  if "$bin/online_e2e" "$tmp/server-jwks.json" "$srv_url" "$ostore" c-box-a silent valid \
    >"$tmp/silent-native.txt" 2>&1; then
    pass "online: silent server, native: $(grep -o 'took .*' "$tmp/silent-native.txt")"
  else
    fail "online: silent server, native"
    cat "$tmp/silent-native.txt"
  fi
  oe "deactivate" 0 '^status: no_license$' deactivate
  oe "activate again" 0 '^status: valid$' activate "$lic_key"
  # Air-gapped activation of another machine on a second license: request file -> the vendor's
  # API -> response file -> import.
  lic2_key=$(api POST /v1/licenses "{\"policy_id\":\"$policy\"}" | jq -r .key)
  og() { # NAME PATTERN STEP ARGS...: online_e2e for the air-gapped machine
    local name=$1 pattern=$2
    shift 2
    grind "online: $name" 0 "$pattern" -- \
      "$bin/online_e2e" "$tmp/server-jwks.json" "$srv_url" "$tmp/online-store-c" c-box-c "$@"
  }
  og "air-gapped request" '^[0-9]+ passed, 0 failed$' request "$lic2_key" "$tmp/request.json"
  api POST /v1/offline/activate "$(cat "$tmp/request.json")" >"$tmp/response.json"
  og "air-gapped import" '^status: valid$' import "$tmp/response.json" valid
  og "air-gapped next start" '^status: valid$' startup valid
  # The air-gapped machine deactivates itself: receipt file -> the vendor's API frees the slot
  # (once: the same receipt again is machine_not_found); the slot then takes another machine.
  og "air-gapped self-deactivation" '^status: no_license$' offline-deactivate "$tmp/receipt.json"
  api POST /v1/offline/deactivate "$(cat "$tmp/receipt.json")" >"$tmp/receipt-answer.json"
  if jq -e '.deactivated == true' "$tmp/receipt-answer.json" >/dev/null \
    && api POST /v1/offline/deactivate "$(cat "$tmp/receipt.json")" | jq -e '.error == "machine_not_found"' >/dev/null; then
    pass "online: the receipt frees the slot once"
  else
    fail "online: the receipt frees the slot once"
    cat "$tmp/receipt-answer.json"
  fi
  og "air-gapped slot reused" '^status: valid$' activate "$lic2_key"
  # Transfer through the C ABI: one transfer allowed; moving back is transfer_limit_reached.
  tpolicy=$(api POST /v1/policies '{"product_id":"com.example.cad","name":"t","model":"subscription","duration":31536000,"max_machines":1,"max_transfers":1}' | jq -r .id)
  tlic_key=$(api POST /v1/licenses "{\"policy_id\":\"$tpolicy\"}" | jq -r .key)
  fp_of() { LICENSING_FINGERPRINT_OVERRIDE=$1 "$server" machine fingerprint --json --product com.example.cad | jq -r .id; }
  ot() { # NAME PATTERN MACHINE STEP ARGS...
    local name=$1 pattern=$2 machine=$3
    shift 3
    grind "online: $name" 0 "$pattern" -- \
      "$bin/online_e2e" "$tmp/server-jwks.json" "$srv_url" "$tmp/online-store-$machine" "$machine" "$@"
  }
  ot "transfer: old machine activates" '^status: valid$' c-box-e activate "$tlic_key"
  ot "transfer: to the new machine" '^status: valid$' c-box-f transfer "$tlic_key" "$(fp_of c-box-e)"
  ot "transfer: back is over the limit" '^[0-9]+ passed, 0 failed$' c-box-e \
    transfer-refused "$tlic_key" "$(fp_of c-box-f)" transfer_limit_reached
  # Floating seats through lic_lease: one seat, heartbeats, the exact denial, check-in; then
  # a force-release through the admin API reported by the loss callback.
  fpolicy=$(api POST /v1/policies '{"product_id":"com.example.cad","name":"f","model":"floating","seats":1}' | jq -r .id)
  flic=$(api POST /v1/licenses "{\"policy_id\":\"$fpolicy\"}")
  flic_id=$(jq -r .id <<<"$flic")
  flic_key=$(jq -r .key <<<"$flic")
  oe "floating seat: heartbeats, denial, check-in" 0 '^lease: done$' lease "$flic_key"
  # Held while active, on an injected clock: checked in once idle past the lease timeout, the
  # idle user's next activity denied while another holds the seat, then taking it again.
  oe "floating seat: idle users give it back" 0 '^idle: done$' idle "$flic_key"
  release_cmd="set -e; for l in \$(curl -sS --max-time 10 -H 'Authorization: Bearer $admin' $srv_url/v1/licenses/$flic_id/leases | jq -r '.leases[].lease_id'); do curl -sS --fail --max-time 10 -X POST -H 'Authorization: Bearer $admin' -H 'Content-Type: application/json' --data '{}' $srv_url/v1/licenses/$flic_id/leases/\$l/release >/dev/null; done"
  ONLINE_E2E_RELEASE_CMD=$release_cmd oe "floating seat: force-release reported" 0 \
    "^lost: reason 1 code 'lease_released'" lease-lost "$flic_key"
  # The wait line of a second floating license (one seat): a client served from the line
  # once the seat is checked in, another one stopping its wait.
  qlic=$(api POST /v1/licenses "{\"policy_id\":\"$fpolicy\"}")
  api PUT "/v1/licenses/$(jq -r .id <<<"$qlic")/queue" '{"max_seconds":600}' >/dev/null
  oe "floating seat: the wait line" 0 '^queue: done$' queue "$(jq -r .key <<<"$qlic")"
  # Borrowing the floating license's one seat on another machine: terms set by the vendor,
  # borrowed (the seat is taken), returned early (free at once; the "return" step's own
  # check-out is checked in when freed), borrowed again, and checked once the server is gone.
  api PUT "/v1/licenses/$flic_id/borrowing" '{"max_seconds":604800,"max_leases":1}' >/dev/null
  ob() { # NAME PATTERN STEP ARGS...: online_e2e for the machine that borrows
    local name=$1 pattern=$2
    shift 2
    grind "online: $name" 0 "$pattern" -- \
      "$bin/online_e2e" "$tmp/server-jwks.json" "$srv_url" "$tmp/online-store-d" c-box-d "$@"
  }
  ob "borrow a floating seat" '^borrowed: done$' borrow "$flic_key"
  ob "return it early" '^returned: done$' return "$flic_key"
  ob "borrow it again" '^borrowed: done$' borrow "$flic_key"
  api POST "/v1/licenses/$lic_id/revoke" '{}' >/dev/null
  oe "validate after revoke" 0 '^status: revoked$' validate revoked
  stop_server
  ONLINE_E2E_SLACK_MS=10000 oe "server gone: offline start" 0 '^status: revoked$' offline revoked
  ob "server gone: the borrowed seat runs offline" '^borrowed status: valid$' borrowed valid
fi

step "run under valgrind: C++ translation unit"
grind "header_cpp" 0 '^4 passed, 0 failed$' -- "$bin/header_cpp"

step "summary"
printf '%s\n' "${results[@]}"
total=${#results[@]}
printf '%d passed, %d failed\n' "$((total - failures))" "$failures"
[ "$failures" = 0 ]
