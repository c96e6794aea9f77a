// Kotlin tests of the uniffi bindings, run on the JVM with JNA:
//   kotlinc-jvm -cp jna.jar <generated .kt> src/test/kotlin/... -d test.jar
//   java -Djna.library.path=<dir of liblicensing_uniffi.so> -cp test.jar:jna.jar:kotlin-stdlib.jar \
//        rs.licensing.test.LicensingTestKt tests/scenarios/scenarios.json
// A plain main (no JUnit here): prints each failure and `kotlin: N passed, N failed`; exit 1 on failure.
package rs.licensing.test

import java.io.File
import java.nio.file.Files
import kotlin.system.exitProcess
import rs.licensing.*
import rs.licensing.core.*

private var passed = 0
private var failed = 0

private fun test(name: String, body: () -> Unit) {
    try {
        body()
        passed++
    } catch (e: Throwable) {
        failed++
        println("FAIL $name: $e")
    }
}

private fun check(condition: Boolean, message: () -> String) {
    if (!condition) throw AssertionError(message())
}

private fun <T> eq(actual: T, expected: T, what: String) =
    check(actual == expected) { "$what: got $actual, expected $expected" }

private inline fun <reified E : Throwable> throws(body: () -> Unit): E {
    try {
        body()
    } catch (e: Throwable) {
        if (e is E) return e
        throw AssertionError("expected ${E::class.simpleName}, got $e")
    }
    throw AssertionError("expected ${E::class.simpleName}, nothing thrown")
}

private fun strings(v: Any?): List<String> = v.list().map { it.str() }

private fun strMap(v: Any?): Map<String, String> = v.obj().mapValues { it.value.str() }

private fun fingerprintOf(v: Any?): MachineFingerprint? {
    if (v == null) return null
    val f = v.obj()
    return MachineFingerprint(
        id = f["id"].str(),
        components = strMap(f["components"]),
        isVirtual = f["is_virtual"] as Boolean,
        virtualization = strings(f["virtualization"]),
    )
}

private fun contextOf(v: Any?): Context {
    val c = v.obj()
    return Context(
        now = c["now"].long(),
        appVersion = c["app_version"] as String?,
        releaseDate = c["release_date"] as Long?,
        features = strings(c["features"]),
        attributes = strMap(c["attributes"]),
        fingerprint = fingerprintOf(c["fingerprint"]),
        notBeforeLeeway = c["not_before_leeway"].long(),
    )
}

/** The verdict in the scenario file's shape (every field but the reasons). */
private fun verdictJson(v: Verdict): Map<String, Any?> = linkedMapOf(
    "status" to statusName(v.status),
    "status_code" to v.status.value.toLong(),
    "usable" to statusIsUsable(v.status),
    "license_id" to v.licenseId,
    "model" to v.model?.name?.lowercase(),
    "customer" to v.customer,
    "expires_at" to v.expiresAt,
    "grace_ends_at" to v.graceEndsAt,
    "time_left" to v.timeLeft,
    "grace_left" to v.graceLeft,
    "features" to v.features.map {
        linkedMapOf(
            "name" to it.name,
            "status" to statusName(it.status),
            "status_code" to it.status.value.toLong(),
            "limit" to it.limit?.toLong(),
            "expires_at" to it.expiresAt,
            "time_left" to it.timeLeft,
        )
    },
)

fun main(args: Array<String>) {
    val path = args.getOrElse(0) { "tests/scenarios/scenarios.json" }
    val file = Json.parse(File(path).readText()).obj()
    val product = file["product"].str()
    val trust = file["trust_store"].obj()
    val tokens = strMap(file["tokens"])
    val store = TrustStore.fromDocument(trust["jwks"].str())
    val cases = file["cases"].list().map { it.obj() }
    val now = contextOf(cases.first { it["name"] == "subscription_valid_with_features" }["context"]).now

    // ---- the shared scenarios ----
    for (c in cases) {
        test("scenario ${c["name"]}") {
            val verifier = Verifier(store, c["product"].str())
            val token = tokens.getValue(c["token"].str())
            val verdict = verifier.check(token, contextOf(c["context"]))
            eq(verdictJson(verdict), c["expect"], "verdict")
            // verify() agrees: the same license, or the same status as an exception.
            try {
                eq(verifier.verify(token).id(), verdict.licenseId, "license id")
            } catch (e: LicensingException.Rejected) {
                eq(e.status, verdict.status, "rejected status")
            }
        }
    }
    for (f in file["fingerprints"].list().map { it.obj() }) {
        test("fingerprint ${f["name"]}") {
            val raw = RawComponents(strMap(f["values"]), strings(f["virtualization"]))
            eq(fingerprintFromComponents(raw, f["salt"].str()), fingerprintOf(f["expect"]), "fingerprint")
        }
    }
    for (d in file["bad_trust_documents"].list().map { it.obj() }) {
        test("bad trust document ${d["name"]}") {
            throws<LicensingException.InvalidKey> { TrustStore.fromDocument(d["document"].str()) }
        }
    }
    test("stable status numbers") {
        for (s in file["statuses"].list().map { it.obj() }) {
            val status = statusFromCode(s["code"].long().toUInt())!!
            eq(statusName(status), s["name"], "name")
            eq(status.value.toLong(), s["code"], "value")
            eq(statusIsUsable(status), s["usable"], "usable")
        }
        eq(Status.entries.size, file["statuses"].list().size, "count")
        eq(statusFromCode(Status.entries.size.toUInt()), null, "unknown code")
    }
    test("status messages are the core's end-user sentences") {
        eq(statusMessage(Status.NO_LICENSE), "No license is installed.", "no_license")
        eq(statusMessage(Status.VALID_IN_GRACE), "The license has expired but is inside its grace period; please renew.", "valid_in_grace")
        eq(statusMessage(Status.MACHINE_NOT_ACTIVATED), "This machine is not activated on the license; activate it or transfer the license to it.", "machine_not_activated")
        val messages = Status.entries.map { statusMessage(it) }
        eq(messages.toSet().size, Status.entries.size, "distinct")
        for (m in messages) eq(m.isNotEmpty() && m.endsWith("."), true, m)
    }
    test("startup steps (no license, install, clock rollback)") {
        val s = file["startup"].obj()
        val options = s["options"].obj()
        val components = options["components"].obj()
        val dir = Files.createTempDirectory("licensing-kotlin").toFile()
        try {
            val licensing = Licensing(
                store,
                s["product"].str(),
                LicenseStore.at(dir.path),
                LicensingOptions(
                    appVersion = options["app_version"] as String?,
                    features = strings(options["features"]),
                    components = RawComponents(strMap(components["values"]), strings(components["virtualization"])),
                ),
            )
            for (step in s["steps"].list().map { it.obj() }) {
                val at = step["now"].long()
                val verdict = when (step["action"]) {
                    "install" -> licensing.install(tokens.getValue(step["token"].str()), at)
                    else -> licensing.checkAtStartup(at)
                }
                eq(statusName(verdict.status), step["expect"], "step $step")
            }
            eq(licensing.storeDir(), dir.path, "store dir")
        } finally {
            dir.deleteRecursively()
        }
    }

    // ---- the rest of the surface ----
    test("trust store") {
        eq(store.kids(), listOf(trust["kid"].str()), "kids")
        eq(TrustStore.fromDocument(trust["spki_pem"].str()).kids(), store.kids(), "PEM")
        eq(TrustStore.fromDocuments(listOf(trust["jwks"].str())).kids(), store.kids(), "documents")
        check(store.toJwks().contains(trust["kid"].str())) { "jwks" }
        val e = throws<LicensingException.InvalidKey> { TrustStore.fromDocuments(listOf(trust["jwks"].str(), trust["spki_pem"].str())) }
        check(e.reason.contains("already")) { e.reason }
    }
    test("verify, feature and version queries") {
        val license = Verifier(store, product).verify(tokens.getValue("subscription"))
        eq(license.id(), "lic_subscription", "id")
        eq(license.kid(), trust["kid"], "kid")
        eq(license.model(), LicenseModel.SUBSCRIPTION, "model")
        eq(license.featureNames(), listOf("export", "simulation"), "features")
        check(license.claimsJson().contains("\"lic_subscription\"")) { "claims" }
        val export = license.checkFeature("export", now, 0)
        eq(export.status, Status.VALID, "export")
        eq(export.limit, 10UL, "limit")
        eq(license.checkFeature("render", now, 0).status, Status.FEATURE_NOT_ENTITLED, "render")
        eq(license.checkVersion("2.4.0", null).status, Status.VALID, "2.4.0")
        eq(license.checkVersion("3.0.0", null).status, Status.VERSION_NOT_ENTITLED, "3.0.0")
        eq(license.checkVersion(null, null).status, Status.VERSION_NOT_ENTITLED, "no version")
        eq(license.checkTime(license.expiresAt()!!, 0).status, Status.VALID_IN_GRACE, "grace")
        eq(license.checkSite(mapOf()).status, Status.VALID, "site")
        eq(license.checkMachine(null).status, Status.VALID, "machine")
        eq(license.evaluate(Context(now = now, appVersion = "2.4.0")).status, Status.VALID, "evaluate")
        check(license.usableUntil()!! > license.expiresAt()!!) { "usable until" }
    }
    test("errors are LicensingException") {
        val verifier = Verifier(store, product)
        val bad = throws<LicensingException.InvalidArgument> {
            verifier.check(tokens.getValue("subscription"), Context(now = now, appVersion = "two"))
        }
        check(bad.reason.contains("semver")) { bad.reason }
        // The core's version rule: strict semver, surrounding whitespace refused (as in C).
        throws<LicensingException.InvalidArgument> {
            verifier.check(tokens.getValue("subscription"), Context(now = now, appVersion = " 2.4.0"))
        }
        val rejected = throws<LicensingException.Rejected> { verifier.verify(tokens.getValue("tampered_signature")) }
        eq(rejected.status, Status.SIGNATURE_INVALID, "status")
        val notADir = File.createTempFile("licensing", ".file")
        try {
            throws<LicensingException.Storage> { LicenseStore.at(File(notADir, "store").path) }
        } finally {
            notADir.delete()
        }
    }
    test("a Rust panic arrives as rs.licensing.InternalException") {
        val e = throws<rs.licensing.InternalException> { panicForTest("boom from kotlin") }
        check(e.message!!.contains("boom from kotlin")) { "message: ${e.message}" }
        // The library still works afterwards.
        eq(statusName(Status.VALID), "valid", "after panic")
    }
    test("fingerprint: this machine, stable, salted, override") {
        val a = thisMachineFingerprint(product)
        check(a.id.isNotEmpty() && a.components.isNotEmpty()) { "empty fingerprint $a" }
        eq(thisMachineFingerprint(product), a, "stable")
        check(thisMachineFingerprint("com.example.viewer").id != a.id) { "salt" }
        val o = thisMachineFingerprintWithOverride(product, "cluster-node-7")
        eq(o.components.keys, setOf("override"), "override components")
        val expected = fingerprintFromComponents(RawComponents(mapOf("override" to "cluster-node-7")), product)
        eq(o.id, expected.id, "override id")
        eq(fingerprintOverrideEnv(), "LICENSING_FINGERPRINT_OVERRIDE", "env name")
    }
    test("misc") {
        check(sdkVersion().isNotEmpty()) { "version" }
        check(unixNow() > 1_700_000_000L) { "clock" }
    }

    println("kotlin: $passed passed, $failed failed")
    exitProcess(if (failed == 0 && passed > 0) 0 else 1)
}
