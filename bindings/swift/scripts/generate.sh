#!/usr/bin/env bash
# Builds licensing-uniffi, generates the Swift bindings and C headers from it, and lays them out
# for the Swift package (nothing here is committed; build/ and Sources/Licensing/ are ignored):
#
#   Sources/Licensing/{Licensing,LicensingCore}.swift   the two uniffi namespaces, one Swift module
#   build/include/{LicensingFFI,LicensingCoreFFI}.h + module.modulemap   (C module LicensingFFI)
#   build/linux/LicensingFFI/   (--linux) the same headers as a system library linking the .so
#
# usage: scripts/generate.sh [--debug] [--linux] [--library PATH]
#   --library: generate from an already-built library (it must be unstripped: uniffi reads its
#              metadata symbols). Default: cargo build -p licensing-uniffi [--release].
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
root="$(cd "$here/../.." && pwd)"
profile=release
linux=0
library=""
while [ $# -gt 0 ]; do
  case "$1" in
    --debug) profile=debug ;;
    --linux) linux=1 ;;
    --library) library="$2"; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

cd "$root"
if [ -z "$library" ]; then
  flag=(); [ "$profile" = release ] && flag=(--release)
  cargo build -q -p licensing-uniffi "${flag[@]}"
  case "$(uname -s)" in
    Darwin) library="$root/target/$profile/liblicensing_uniffi.dylib" ;;
    *) library="$root/target/$profile/liblicensing_uniffi.so" ;;
  esac
fi
cargo build -q -p uniffi-bindgen

out="$here/build/generated"
rm -rf "$out" && mkdir -p "$out"
"$root/target/debug/uniffi-bindgen" generate --no-format --library "$library" --language swift --out-dir "$out" >/dev/null

mkdir -p "$here/Sources/Licensing" "$here/build/include"
cp "$out"/*.swift "$here/Sources/Licensing/"
cp "$out"/*.h "$here/build/include/"
# One C module for both namespaces' headers (uniffi.toml: ffi_module_name = "LicensingFFI").
cat > "$here/build/include/module.modulemap" <<'MAP'
module LicensingFFI {
    header "LicensingCoreFFI.h"
    header "LicensingFFI.h"
    export *
}
MAP

if [ "$linux" = 1 ]; then
  sys="$here/build/linux/LicensingFFI"
  mkdir -p "$sys"
  cp "$out"/*.h "$sys/"
  cat > "$sys/module.modulemap" <<'MAP'
module LicensingFFI {
    header "LicensingCoreFFI.h"
    header "LicensingFFI.h"
    link "licensing_uniffi"
    export *
}
MAP
  echo "Linux: swift test -Xlinker -L$root/target/$profile  (and LD_LIBRARY_PATH=$root/target/$profile)"
fi
echo "generated: $here/Sources/Licensing/ and $here/build/include/"
