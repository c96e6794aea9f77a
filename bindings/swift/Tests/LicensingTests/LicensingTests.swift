// XCTest tests of the Swift bindings: the shared scenario file, then the rest of the surface.
// Compiled and run by `swift test` on macOS (after scripts/build-xcframework.sh) or on Linux with a
// Swift toolchain (after scripts/generate.sh --linux); on machines without Swift this file is only
// syntax-checked (scripts/check_syntax.py). See bindings/swift/README.md.
import Foundation
import XCTest
import Licensing

/// The repository's tests/scenarios/scenarios.json, found from this file's path.
private let scenarioFile: [String: Any] = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<5 { url = url.deletingLastPathComponent() } // LicensingTests, Tests, swift, bindings, root
    url = url.appendingPathComponent("tests/scenarios/scenarios.json")
    let data = try! Data(contentsOf: url)
    return try! JSONSerialization.jsonObject(with: data) as! [String: Any]
}()

private func strings(_ v: Any?) -> [String] {
    return (v as? [Any] ?? []).map { $0 as! String }
}

private func strMap(_ v: Any?) -> [String: String] {
    return (v as? [String: Any] ?? [:]).mapValues { $0 as! String }
}

private func int64(_ v: Any?) -> Int64? {
    return (v as? NSNumber)?.int64Value
}

private func orNull(_ v: Any?) -> Any {
    return v ?? NSNull()
}

private func number<T: BinaryInteger>(_ v: T?) -> Any {
    return v.map { NSNumber(value: Int64($0)) } ?? NSNull()
}

private func fingerprintOf(_ v: Any?) -> MachineFingerprint? {
    guard let f = v as? [String: Any] else { return nil }
    return MachineFingerprint(
        id: f["id"] as! String,
        components: strMap(f["components"]),
        isVirtual: (f["is_virtual"] as! NSNumber).boolValue,
        virtualization: strings(f["virtualization"])
    )
}

private func contextOf(_ v: Any?) -> Context {
    let c = v as! [String: Any]
    return Context(
        now: int64(c["now"])!,
        appVersion: c["app_version"] as? String,
        releaseDate: int64(c["release_date"]),
        features: strings(c["features"]),
        attributes: strMap(c["attributes"]),
        fingerprint: fingerprintOf(c["fingerprint"]),
        notBeforeLeeway: int64(c["not_before_leeway"])!
    )
}

private func modelName(_ m: LicenseModel?) -> Any {
    guard let m = m else { return NSNull() }
    switch m {
    case .perpetual: return "perpetual"
    case .subscription: return "subscription"
    case .trial: return "trial"
    case .floating: return "floating"
    case .nodeLocked: return "node_locked"
    case .site: return "site"
    }
}

/// The verdict in the scenario file's shape (every field but the reasons).
private func verdictJson(_ v: Verdict) -> NSDictionary {
    let features: [NSDictionary] = v.features.map { f in
        let d: [String: Any] = [
            "name": f.name,
            "status": statusName(status: f.status),
            "status_code": NSNumber(value: f.status.rawValue),
            "limit": number(f.limit),
            "expires_at": number(f.expiresAt),
            "time_left": number(f.timeLeft),
        ]
        return d as NSDictionary
    }
    let d: [String: Any] = [
        "status": statusName(status: v.status),
        "status_code": NSNumber(value: v.status.rawValue),
        "usable": NSNumber(value: statusIsUsable(status: v.status)),
        "license_id": orNull(v.licenseId),
        "model": modelName(v.model),
        "customer": orNull(v.customer),
        "expires_at": number(v.expiresAt),
        "grace_ends_at": number(v.graceEndsAt),
        "time_left": number(v.timeLeft),
        "grace_left": number(v.graceLeft),
        "features": features as NSArray,
    ]
    return d as NSDictionary
}

final class LicensingTests: XCTestCase {
    let file = scenarioFile
    var product: String { return file["product"] as! String }
    var trust: [String: Any] { return file["trust_store"] as! [String: Any] }
    var tokens: [String: String] { return strMap(file["tokens"]) }
    var cases: [[String: Any]] { return file["cases"] as! [[String: Any]] }
    var now: Int64 {
        let c = cases.first(where: { ($0["name"] as! String) == "subscription_valid_with_features" })!
        return contextOf(c["context"]).now
    }

    func store() throws -> TrustStore {
        return try TrustStore.fromDocument(document: trust["jwks"] as! String)
    }

    // ---- the shared scenarios ----

    func testScenarios() throws {
        let store = try self.store()
        XCTAssertGreaterThanOrEqual(cases.count, 30)
        for c in cases {
            let name = c["name"] as! String
            let verifier = Verifier(trustStore: store, productId: c["product"] as! String)
            let token = tokens[c["token"] as! String]!
            let verdict = try verifier.check(token: token, context: contextOf(c["context"]))
            XCTAssertEqual(verdictJson(verdict), c["expect"] as! NSDictionary, name)
            // verify() agrees: the same license, or the same status as an error.
            do {
                let license = try verifier.verify(token: token)
                XCTAssertEqual(license.id(), verdict.licenseId, name)
            } catch LicensingError.Rejected(let status, _) {
                XCTAssertEqual(status, verdict.status, name)
            }
        }
    }

    func testFingerprints() {
        for f in file["fingerprints"] as! [[String: Any]] {
            let raw = RawComponents(values: strMap(f["values"]), virtualization: strings(f["virtualization"]))
            let got = fingerprintFromComponents(components: raw, salt: f["salt"] as! String)
            XCTAssertEqual(got, fingerprintOf(f["expect"]), f["name"] as! String)
        }
    }

    func testBadTrustDocuments() {
        for d in file["bad_trust_documents"] as! [[String: Any]] {
            XCTAssertThrowsError(try TrustStore.fromDocument(document: d["document"] as! String), d["name"] as! String) { error in
                guard case .InvalidKey? = error as? LicensingError else {
                    return XCTFail("\(d["name"]!): \(error)")
                }
            }
        }
    }

    func testStableStatusNumbers() {
        let statuses = file["statuses"] as! [[String: Any]]
        for s in statuses {
            let code = (s["code"] as! NSNumber).uint32Value
            let status = statusFromCode(code: code)!
            XCTAssertEqual(statusName(status: status), s["name"] as! String)
            XCTAssertEqual(status.rawValue, code)
            XCTAssertEqual(statusCode(status: status), code)
            XCTAssertEqual(statusIsUsable(status: status), (s["usable"] as! NSNumber).boolValue)
        }
        XCTAssertNil(statusFromCode(code: UInt32(statuses.count)))
    }

    func testStartupSteps() throws {
        let s = file["startup"] as! [String: Any]
        let options = s["options"] as! [String: Any]
        let components = options["components"] as! [String: Any]
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("licensing-swift-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let licensing = try Licensing(
            trustStore: try store(),
            productId: s["product"] as! String,
            store: try LicenseStore.at(dir: dir.path),
            options: LicensingOptions(
                appVersion: options["app_version"] as? String,
                features: strings(options["features"]),
                components: RawComponents(values: strMap(components["values"]), virtualization: strings(components["virtualization"]))
            )
        )
        for step in s["steps"] as! [[String: Any]] {
            let at = int64(step["now"])!
            let verdict: Verdict
            if (step["action"] as! String) == "install" {
                verdict = try licensing.install(token: tokens[step["token"] as! String]!, now: at)
            } else {
                verdict = try licensing.checkAtStartup(now: at)
            }
            XCTAssertEqual(statusName(status: verdict.status), step["expect"] as! String, "\(step)")
        }
    }

    // ---- the rest of the surface ----

    func testTrustStore() throws {
        let store = try self.store()
        let kid = trust["kid"] as! String
        XCTAssertEqual(store.kids(), [kid])
        XCTAssertEqual(try TrustStore.fromDocument(document: trust["spki_pem"] as! String).kids(), [kid])
        XCTAssertTrue(store.toJwks().contains(kid))
        XCTAssertThrowsError(try TrustStore.fromDocuments(documents: [trust["jwks"] as! String, trust["spki_pem"] as! String])) { error in
            guard case .InvalidKey(let reason)? = error as? LicensingError else { return XCTFail("\(error)") }
            XCTAssertTrue(reason.contains("already"), reason)
        }
    }

    func testVerifyFeatureAndVersionQueries() throws {
        let license = try Verifier(trustStore: try store(), productId: product).verify(token: tokens["subscription"]!)
        XCTAssertEqual(license.id(), "lic_subscription")
        XCTAssertEqual(license.kid(), trust["kid"] as! String)
        XCTAssertEqual(license.model(), .subscription)
        XCTAssertEqual(license.featureNames(), ["export", "simulation"])
        XCTAssertTrue(try license.claimsJson().contains("\"lic_subscription\""))
        let export = license.checkFeature(name: "export", now: now, notBeforeLeeway: 0)
        XCTAssertEqual(export.status, .valid)
        XCTAssertEqual(export.limit, 10)
        XCTAssertEqual(license.checkFeature(name: "render", now: now, notBeforeLeeway: 0).status, .featureNotEntitled)
        XCTAssertEqual(try license.checkVersion(version: "2.4.0", releaseDate: nil).status, .valid)
        XCTAssertEqual(try license.checkVersion(version: "3.0.0", releaseDate: nil).status, .versionNotEntitled)
        XCTAssertEqual(license.checkTime(now: license.expiresAt()!, notBeforeLeeway: 0).status, .validInGrace)
        XCTAssertEqual(license.checkSite(attributes: [:]).status, .valid)
        XCTAssertEqual(license.checkMachine(fingerprint: nil).status, .valid)
        XCTAssertEqual(try license.evaluate(context: Context(now: now, appVersion: "2.4.0")).status, .valid)
    }

    func testErrors() throws {
        let verifier = Verifier(trustStore: try store(), productId: product)
        XCTAssertThrowsError(try verifier.check(token: tokens["subscription"]!, context: Context(now: now, appVersion: "two"))) { error in
            guard case .InvalidArgument(let reason)? = error as? LicensingError else { return XCTFail("\(error)") }
            XCTAssertTrue(reason.contains("semver"), reason)
        }
        XCTAssertThrowsError(try verifier.verify(token: tokens["tampered_signature"]!)) { error in
            guard case .Rejected(let status, _)? = error as? LicensingError else { return XCTFail("\(error)") }
            XCTAssertEqual(status, .signatureInvalid)
        }
        let notADir = FileManager.default.temporaryDirectory.appendingPathComponent("licensing-swift-\(UUID().uuidString)")
        XCTAssertTrue(FileManager.default.createFile(atPath: notADir.path, contents: Data()))
        defer { try? FileManager.default.removeItem(at: notADir) }
        XCTAssertThrowsError(try LicenseStore.at(dir: notADir.appendingPathComponent("store").path)) { error in
            guard case .Storage? = error as? LicensingError else { return XCTFail("\(error)") }
        }
    }

    func testTransferAndOfflineDeactivationSurface() throws {
        // No server here (the online flow runs in the Kotlin and Python tests): a transfer to a
        // port nothing listens on is a network error; offline deactivation with nothing
        // activated is NotActivated, and needs no network.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("licensing-swift-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let licensing = try Licensing(trustStore: try store(), productId: product,
                                      store: try LicenseStore.at(dir: dir.path),
                                      options: LicensingOptions(fingerprintOverride: "swift-box"))
        let client = try OnlineClient(trustStore: try store(), baseUrl: "http://127.0.0.1:1",
                                      productId: product, deadlineMs: 2000)
        XCTAssertThrowsError(try client.transfer(licensing: licensing, licenseKey: "AAAAA-BBBBB-CCCCC-DDDDD-EEEEE",
                                                 fromFingerprint: "old-machine", now: now)) { error in
            guard case .Network? = error as? LicensingError else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try client.offlineDeactivate(licensing: licensing, now: now)) { error in
            guard case .NotActivated? = error as? LicensingError else { return XCTFail("\(error)") }
        }
        XCTAssertEqual(try licensing.checkAtStartup(now: now).status, .noLicense)
    }

    func testOnlineClientOverURLSession() throws {
        // The app's own HTTP stack (URLSessionTransport.swift): nothing listens on port 1, so
        // a transfer is a network error, as over the built-in stack; the URL rule holds
        // whatever the transport.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("licensing-swift-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let licensing = try Licensing(trustStore: try store(), productId: product,
                                      store: try LicenseStore.at(dir: dir.path),
                                      options: LicensingOptions(fingerprintOverride: "swift-box"))
        let client = try OnlineClient.withTransport(trustStore: try store(), baseUrl: "http://127.0.0.1:1",
                                                    productId: product, deadlineMs: 2000,
                                                    transport: URLSessionTransport())
        XCTAssertThrowsError(try client.transfer(licensing: licensing, licenseKey: "AAAAA-BBBBB-CCCCC-DDDDD-EEEEE",
                                                 fromFingerprint: "old-machine", now: now)) { error in
            guard case .Network? = error as? LicensingError else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try OnlineClient.withTransport(trustStore: try store(), baseUrl: "ftp://127.0.0.1",
                                                            productId: product, deadlineMs: nil,
                                                            transport: URLSessionTransport())) { error in
            guard case .InvalidArgument? = error as? LicensingError else { return XCTFail("\(error)") }
        }
    }

    func testPanicArrivesAsSwiftError() {
        XCTAssertThrowsError(try panicForTest(message: "boom from swift")) { error in
            XCTAssertFalse(error is LicensingError)
            XCTAssertTrue("\(error) \(error.localizedDescription)".contains("boom from swift"), "\(error)")
        }
        // The library still works afterwards.
        XCTAssertEqual(statusName(status: .valid), "valid")
    }

    func testFingerprintThisMachine() {
        let a = thisMachineFingerprint(salt: product)
        XCTAssertFalse(a.id.isEmpty)
        XCTAssertFalse(a.components.isEmpty)
        XCTAssertEqual(thisMachineFingerprint(salt: product), a)
        XCTAssertNotEqual(thisMachineFingerprint(salt: "com.example.viewer").id, a.id)
        let o = thisMachineFingerprintWithOverride(salt: product, overrideValue: "cluster-node-7")
        XCTAssertEqual(Array(o.components.keys), ["override"])
        let expected = fingerprintFromComponents(components: RawComponents(values: ["override": "cluster-node-7"]), salt: product)
        XCTAssertEqual(o.id, expected.id)
        XCTAssertEqual(fingerprintOverrideEnv(), "LICENSING_FINGERPRINT_OVERRIDE")
    }
}
