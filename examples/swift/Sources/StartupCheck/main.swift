// A Swift (macOS or iOS) app's licensing check at launch, ready to copy.
//
//   startup-check --public-key keys/jwks.json [--product com.example.cad] [--store DIR]
//                 [--install TOKEN_FILE] [--version 2.4.0] [--release-date UNIX_SECONDS] [--feature NAME]...
//
// A real app ships its public keys in its bundle (Bundle.main.url(forResource:withExtension:)) and
// knows its version and release date. On iOS, use a directory under Application Support as the
// store. Exit status: 0 when the license may be used, 1 when not, 2 on setup errors.
import Foundation
import Licensing

func usage(_ message: String) -> Never {
    FileHandle.standardError.write("startup-check: \(message)\n".data(using: .utf8)!)
    exit(2)
}

var options: [String: String] = [:]
var features: [String] = []
var arguments = Array(CommandLine.arguments.dropFirst())
while !arguments.isEmpty {
    let flag = arguments.removeFirst()
    guard !arguments.isEmpty else { usage("\(flag) needs a value") }
    let value = arguments.removeFirst()
    switch flag {
    case "--feature": features.append(value)
    case "--public-key", "--product", "--store", "--install", "--version", "--release-date": options[flag] = value
    default: usage("unknown argument \(flag)")
    }
}
guard let publicKey = options["--public-key"] else { usage("--public-key is required") }

let verdict: Verdict
do {
    let trust = try TrustStore.fromDocument(document: try String(contentsOfFile: publicKey, encoding: .utf8))
    let store: LicenseStore
    if let dir = options["--store"] {
        store = try LicenseStore.at(dir: dir)
    } else {
        store = try LicenseStore.forApp(qualifier: "com", organization: "Example", application: "CAD", scope: .user)
    }
    let licensing = try Licensing(
        trustStore: trust,
        productId: options["--product"] ?? "com.example.cad",
        store: store,
        options: LicensingOptions(
            appVersion: options["--version"],
            releaseDate: options["--release-date"].flatMap { Int64($0) },
            features: features
        )
    )
    if let path = options["--install"] {
        let installed = try licensing.install(token: try String(contentsOfFile: path, encoding: .utf8), now: unixNow())
        print("install: \(statusName(status: installed.status)) (\(installed.reason))")
    }
    verdict = try licensing.checkAtStartupNow()
} catch {
    usage("\(error)")
}

print("license: \(statusName(status: verdict.status)) (\(verdict.reason))")
if let left = verdict.graceLeft {
    print("grace period: \(left / 86_400) days left, please renew")
}
for feature in verdict.features {
    print("feature \(feature.name): \(statusName(status: feature.status))")
}
switch verdict.status {
case .noLicense: print("=> show the activation dialog")
case .clockTampered: print("=> ask the user to correct the system clock")
case let status where statusIsUsable(status: status): print("=> start the app")
default: print("=> the app may not start: \(statusMessage(status: verdict.status))")
}
exit(statusIsUsable(status: verdict.status) ? 0 : 1)
