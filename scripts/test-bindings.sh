#!/usr/bin/env bash
# Tests the uniffi bindings in every language this machine can run:
#   kotlin  kotlinc (npm kotlin-compiler) + the JVM + JNA (Debian libjna-java): the tests (offline, and
#           online against licensing-server on 127.0.0.1) and the example
#   python  a wheel built with maturin (bindings = "uniffi"), pip-installed into a fresh venv: the
#           tests and the example run against the installed package
#   swift   no Swift compiler here: the generated Swift, the package's tests and the example are
#           syntax-checked with tree-sitter-swift (see bindings/swift/README.md)
# The Rust side (scenario file up to date, replay through the core and the binding API) runs in
# `cargo test --workspace`.
#
# Installs what it needs (into .tools/, which is gitignored, and with apt). Each language prints
# `<language>: N passed, N failed`; any failure fails the run.
#
# usage: scripts/test-bindings.sh [kotlin] [python] [swift]      (default: all three)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

KOTLIN_COMPILER_VERSION=2.4.20
MATURIN_VERSION=1.16.0
TREE_SITTER_VERSION=0.26.1
TREE_SITTER_SWIFT_VERSION=0.7.4

langs=("$@")
[ ${#langs[@]} -gt 0 ] || langs=(kotlin python swift)
want() { local l; for l in "${langs[@]}"; do [ "$l" = "$1" ] && return 0; done; return 1; }

tools=$root/.tools
out=$root/target/bindings
lib_dir=$root/target/debug
scenarios=$root/tests/scenarios/scenarios.json
# The panic test panics on purpose: keep its message to one line.
export RUST_BACKTRACE=0

step() { printf '\n==> %s\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

results=()
failed_any=0
# record LANGUAGE LOG EXIT_CODE: keeps the language's `N passed, N failed` line; a missing line
# or a non-zero exit is a failure.
record() {
  local line
  line=$(grep -E "^$1: [0-9]+ passed, [0-9]+ failed$" "$2" | tail -n 1 || true)
  if [ -z "$line" ]; then
    line="$1: 0 passed, 1 failed"
    echo "$1: no result line (exit $3)"
  fi
  if [ "$3" -ne 0 ] || ! grep -qE ' 0 failed$' <<<"$line"; then failed_any=1; fi
  results+=("$line")
}
# run LANGUAGE COMMAND...: runs it, shows and logs its output, records its result line.
run() {
  local lang=$1 log="$out/$1.log" rc
  shift
  set +e
  "$@" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  set -e
  record "$lang" "$log" "$rc"
}

# ---- install -------------------------------------------------------------------------------
step "install: JDK, JNA, npm, python venv"
need_apt=()
command -v java >/dev/null || need_apt+=(default-jre-headless)
[ -f /usr/share/java/jna.jar ] || need_apt+=(libjna-java)
command -v npm >/dev/null || need_apt+=(npm)
python3 -c 'import ensurepip, venv' 2>/dev/null || need_apt+=(python3-venv)
if want kotlin || want python || want swift; then
  if [ ${#need_apt[@]} -gt 0 ]; then
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
  fi
fi
mkdir -p "$tools" "$out"

kotlin_home=$tools/node_modules/kotlin-compiler
if want kotlin; then
  step "install: kotlin-compiler $KOTLIN_COMPILER_VERSION (npm, into .tools/)"
  if ! grep -q "\"version\": \"$KOTLIN_COMPILER_VERSION\"" "$kotlin_home/package.json" 2>/dev/null; then
    npm install --prefix "$tools" --no-audit --no-fund --loglevel=error "kotlin-compiler@$KOTLIN_COMPILER_VERSION"
  fi
  "$kotlin_home/bin/kotlinc-jvm" -version 2>&1 | tail -n 1
fi

venv=$tools/venv-bindings
stamp="maturin==$MATURIN_VERSION tree-sitter==$TREE_SITTER_VERSION tree-sitter-swift==$TREE_SITTER_SWIFT_VERSION"
if want python || want swift; then
  step "install: $stamp (PyPI, into .tools/venv-bindings)"
  if [ "$(cat "$venv/.stamp" 2>/dev/null)" != "$stamp" ]; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    # shellcheck disable=SC2086 # the stamp is the requirement list
    "$venv/bin/pip" install -q --disable-pip-version-check $stamp
    echo "$stamp" >"$venv/.stamp"
  fi
fi

# ---- build and generate ---------------------------------------------------------------------
step "build licensing-uniffi (debug, unstripped: uniffi reads its metadata) and uniffi-bindgen"
cargo build -q --locked -p licensing-uniffi
cargo build -q --locked -p uniffi-bindgen
library=$lib_dir/liblicensing_uniffi.so
bindgen=$root/target/debug/uniffi-bindgen

generate() {
  rm -rf "$out/generated/$1"
  "$bindgen" generate --no-format --library "$library" --language "$1" --out-dir "$out/generated/$1" >/dev/null
}

# The example checks: a fresh store has no license; installing the perpetual license of the
# scenario file (with a release date inside its maintenance window) makes it valid.
example_inputs() {
  local dir=$out/example
  rm -rf "$dir" && mkdir -p "$dir"
  python3 - "$scenarios" "$dir" <<'EOF'
import json, sys
f = json.load(open(sys.argv[1]))
open(sys.argv[2] + "/jwks.json", "w").write(f["trust_store"]["jwks"])
open(sys.argv[2] + "/perpetual.jwt", "w").write(f["tokens"]["perpetual"])
EOF
  echo "$dir"
}
# example_checks LANGUAGE COMMAND...: prints `LANGUAGE: N passed, N failed` for the two runs.
example_checks() {
  local lang=$1 dir passed=0 failed=0 output rc
  shift
  dir=$(example_inputs)
  set +e
  output=$("$@" --public-key "$dir/jwks.json" --store "$dir/store" 2>&1); rc=$?
  set -e
  echo "$output"
  if [ "$rc" = 1 ] && grep -q '^license: no_license' <<<"$output"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL: expected no_license, exit 1 (got $rc)"; fi
  set +e
  output=$("$@" --public-key "$dir/jwks.json" --store "$dir/store" --install "$dir/perpetual.jwt" \
    --release-date 1780272000 --feature core 2>&1); rc=$?
  set -e
  echo "$output"
  if [ "$rc" = 0 ] && grep -q '^license: valid' <<<"$output" && grep -q '^feature core: valid' <<<"$output"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1)); echo "FAIL: expected valid, exit 0 (got $rc)"
  fi
  echo "$lang: $passed passed, $failed failed"
  [ "$failed" = 0 ]
}

# ---- Kotlin ---------------------------------------------------------------------------------
if want kotlin; then
  step "kotlin: generate, compile (kotlinc) the bindings, the tests and the example, run on the JVM"
  generate kotlin
  jna=/usr/share/java/jna.jar
  jar=$out/kotlin-test.jar
  mapfile -t sources < <(find "$out/generated/kotlin" "$root/bindings/kotlin/src/test/kotlin" -name '*.kt'; echo "$root/examples/kotlin/StartupCheck.kt")
  rm -f "$jar"
  if "$kotlin_home/bin/kotlinc-jvm" -nowarn -cp "$jna" "${sources[@]}" -d "$jar"; then
    cp="$jar:$jna:$kotlin_home/lib/kotlin-stdlib.jar"
    run kotlin java -Djna.library.path="$lib_dir" -cp "$cp" rs.licensing.test.LicensingTestKt "$scenarios"
    # The online client and floating seats against the real server (started by the test on 127.0.0.1).
    cargo build -q -p licensing-server --locked
    run kotlin-online java -Djna.library.path="$lib_dir" -cp "$cp" rs.licensing.test.online.OnlineTestKt "$root/target/debug/licensing-server"
    run kotlin-example example_checks kotlin-example \
      java -Djna.library.path="$lib_dir" -cp "$cp" rs.licensing.example.StartupCheckKt
  else
    results+=("kotlin: 0 passed, 1 failed")
    failed_any=1
  fi
fi

# ---- Python ---------------------------------------------------------------------------------
if want python; then
  step "python: build the wheel (maturin, bindings = uniffi), install it into a fresh venv, run"
  rm -rf "$out/wheels" "$out/venv-test"
  (cd bindings/python && "$venv/bin/maturin" build --locked --out "$out/wheels")
  python3 -m venv "$out/venv-test"
  "$out/venv-test/bin/pip" install -q --disable-pip-version-check --no-index "$out"/wheels/licensing_sdk-*.whl
  # Run from outside the repository so that only the installed package can be imported.
  run python env -C "$out" "$out/venv-test/bin/python" "$root/bindings/python/tests/test_licensing.py" "$scenarios"
  # The online client against the real server (started by the test on 127.0.0.1).
  cargo build -q -p licensing-server --locked
  run python-online env -C "$out" "$out/venv-test/bin/python" \
    "$root/bindings/python/tests/test_online.py" "$root/target/debug/licensing-server"
  run python-example example_checks python-example \
    env -C "$out" "$out/venv-test/bin/python" "$root/examples/python/startup_check.py"
fi

# ---- Swift ----------------------------------------------------------------------------------
if want swift; then
  step "swift: syntax check (tree-sitter-swift) of the generated bindings, the package, its tests and the example"
  if command -v swift >/dev/null; then
    echo "note: a Swift toolchain exists; compile and test with bindings/swift/scripts/generate.sh --linux && swift test (see bindings/swift/README.md)"
  fi
  generate swift
  mapfile -t swift_files < <(find "$out/generated/swift" "$root/bindings/swift/Tests" "$root/examples/swift" -name '*.swift' | sort; echo "$root/bindings/swift/Package.swift")
  run swift-syntax "$venv/bin/python" "$root/bindings/swift/scripts/check_syntax.py" "${swift_files[@]}"
fi

# ---- summary --------------------------------------------------------------------------------
step "summary"
total_passed=0
total_failed=0
for line in "${results[@]}"; do
  echo "$line"
  p=$(sed -E 's/^.*: ([0-9]+) passed, ([0-9]+) failed$/\1/' <<<"$line")
  f=$(sed -E 's/^.*: ([0-9]+) passed, ([0-9]+) failed$/\2/' <<<"$line")
  total_passed=$((total_passed + p))
  total_failed=$((total_failed + f))
done
[ "$total_failed" = 0 ] || failed_any=1
echo "bindings: $total_passed passed, $total_failed failed"
exit "$failed_any"
