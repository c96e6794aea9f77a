// swift-tools-version:5.9
// A Swift app's licensing check at launch. Build the bindings package first (see
// bindings/swift/README.md: scripts/build-xcframework.sh on macOS), then:
//   swift run startup-check --public-key keys/jwks.json --store /tmp/store
import PackageDescription

let package = Package(
    name: "StartupCheck",
    platforms: [.macOS(.v12)],
    // The package identity of a local path is its last component: "swift".
    dependencies: [.package(path: "../../bindings/swift")],
    targets: [
        .executableTarget(
            name: "startup-check",
            dependencies: [.product(name: "Licensing", package: "swift")],
            path: "Sources/StartupCheck"
        ),
    ]
)
