#!/usr/bin/env bash
# macOS only: builds build/LicensingFFI.xcframework (static libraries for iOS, the iOS simulator
# and macOS, with the C headers and module map) and the generated Swift sources, so that
# `swift build` / `swift test` and Xcode can use the package. Needs Xcode and rustup.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
root="$(cd "$here/../.." && pwd)"
[ "$(uname -s)" = Darwin ] || { echo "build-xcframework.sh needs macOS (xcodebuild, lipo)" >&2; exit 2; }

targets=(aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios aarch64-apple-darwin x86_64-apple-darwin)
rustup target add "${targets[@]}"
cd "$root"
for t in "${targets[@]}"; do
  cargo build -p licensing-uniffi --release --target "$t"
done

# Swift sources and headers, generated from the (unstripped) host library.
host="$(uname -m | sed 's/arm64/aarch64/')-apple-darwin"
"$here/scripts/generate.sh" --library "$root/target/$host/release/liblicensing_uniffi.dylib"

lib=liblicensing_uniffi.a
work="$here/build/xcframework"
rm -rf "$work" "$here/build/LicensingFFI.xcframework"
mkdir -p "$work/ios-sim" "$work/macos"
lipo -create "target/aarch64-apple-ios-sim/release/$lib" "target/x86_64-apple-ios/release/$lib" -output "$work/ios-sim/$lib"
lipo -create "target/aarch64-apple-darwin/release/$lib" "target/x86_64-apple-darwin/release/$lib" -output "$work/macos/$lib"
xcodebuild -create-xcframework \
  -library "target/aarch64-apple-ios/release/$lib" -headers "$here/build/include" \
  -library "$work/ios-sim/$lib" -headers "$here/build/include" \
  -library "$work/macos/$lib" -headers "$here/build/include" \
  -output "$here/build/LicensingFFI.xcframework"
echo "built $here/build/LicensingFFI.xcframework; now: cd bindings/swift && swift test"
