// swift-tools-version:5.9
// The Swift package of the licensing SDK (uniffi bindings).
//
// Before building, generate the Swift sources and the native library (not committed):
//   macOS (Apple platforms):  scripts/build-xcframework.sh     → build/LicensingFFI.xcframework
//   Linux with a Swift toolchain: scripts/generate.sh --linux    → build/linux/LicensingFFI
// Both put the generated Licensing.swift and LicensingCore.swift in Sources/Licensing/.
// Then: swift build / swift test (Linux: swift test -Xlinker -L../../target/release).
import PackageDescription

#if os(Linux)
let ffiTarget: Target = .systemLibrary(name: "LicensingFFI", path: "build/linux/LicensingFFI")
#else
let ffiTarget: Target = .binaryTarget(name: "LicensingFFI", path: "build/LicensingFFI.xcframework")
#endif

let package = Package(
    name: "Licensing",
    platforms: [.macOS(.v12), .iOS(.v15)],
    products: [
        .library(name: "Licensing", targets: ["Licensing"]),
    ],
    targets: [
        ffiTarget,
        // Both uniffi namespaces (licensing_uniffi and licensing_core) compile into this one
        // module: uniffi's Swift for types shared across crates expects that.
        .target(name: "Licensing", dependencies: ["LicensingFFI"], path: "Sources/Licensing"),
        .testTarget(name: "LicensingTests", dependencies: ["Licensing"], path: "Tests/LicensingTests"),
    ]
)
