// A Kotlin (JVM or Android) app's licensing check at launch, ready to copy. See
// bindings/kotlin/README.md for building the library and the generated bindings.
//
//   startup-check --public-key keys/jwks.json [--product com.example.cad] [--store DIR]
//                 [--install TOKEN_FILE] [--version 2.4.0] [--release-date UNIX_SECONDS] [--feature NAME]...
//
// A real app ships its public keys (e.g. in assets/) and knows its version and release date. On
// Android, use LicenseStore.at(context.filesDir.path + "/licensing") as the store.
// Exit status: 0 when the license may be used, 1 when not, 2 on setup errors.
package rs.licensing.example

import java.io.File
import kotlin.system.exitProcess
import rs.licensing.LicenseStore
import rs.licensing.Licensing
import rs.licensing.LicensingException
import rs.licensing.LicensingOptions
import rs.licensing.TrustStore
import rs.licensing.core.Scope
import rs.licensing.core.Status
import rs.licensing.statusIsUsable
import rs.licensing.statusMessage
import rs.licensing.statusName
import rs.licensing.unixNow

fun main(args: Array<String>) {
    val opts = mutableMapOf<String, String>()
    val features = mutableListOf<String>()
    var i = 0
    while (i < args.size) {
        val flag = args[i]
        val value = args.getOrNull(i + 1) ?: usage("$flag needs a value")
        when (flag) {
            "--feature" -> features.add(value)
            "--public-key", "--product", "--store", "--install", "--version", "--release-date" -> opts[flag] = value
            else -> usage("unknown argument $flag")
        }
        i += 2
    }
    val publicKey = opts["--public-key"] ?: usage("--public-key is required")

    val verdict = try {
        val trust = TrustStore.fromDocument(File(publicKey).readText())
        val store = opts["--store"]?.let { LicenseStore.at(it) }
            ?: LicenseStore.forApp("com", "Example", "CAD", Scope.USER)
        val licensing = Licensing(
            trust,
            opts["--product"] ?: "com.example.cad",
            store,
            LicensingOptions(
                appVersion = opts["--version"],
                releaseDate = opts["--release-date"]?.toLong(),
                features = features,
            ),
        )
        opts["--install"]?.let {
            val installed = licensing.install(File(it).readText(), unixNow())
            println("install: ${statusName(installed.status)} (${installed.reason})")
        }
        licensing.checkAtStartupNow()
    } catch (e: LicensingException) {
        usage(e.message ?: e.toString())
    } catch (e: java.io.IOException) {
        usage(e.toString())
    }

    println("license: ${statusName(verdict.status)} (${verdict.reason})")
    verdict.graceLeft?.let { println("grace period: ${it / 86_400} days left, please renew") }
    for (feature in verdict.features) println("feature ${feature.name}: ${statusName(feature.status)}")
    println(
        when {
            verdict.status == Status.NO_LICENSE -> "=> show the activation dialog"
            verdict.status == Status.CLOCK_TAMPERED -> "=> ask the user to correct the system clock"
            statusIsUsable(verdict.status) -> "=> start the app"
            else -> "=> the app may not start: ${statusMessage(verdict.status)}"
        }
    )
    exitProcess(if (statusIsUsable(verdict.status)) 0 else 1)
}

private fun usage(message: String): Nothing {
    System.err.println("startup-check: $message")
    exitProcess(2)
}
