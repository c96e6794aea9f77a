// The online client of the Kotlin binding (`rs.licensing.OnlineClient`) against the real server,
// the counterpart of bindings/python/tests/test_online.py (same steps, same admin JSON):
//   java -Djna.library.path=<dir of liblicensing_uniffi.so> -cp test.jar:jna.jar:kotlin-stdlib.jar \
//        rs.licensing.test.online.OnlineTestKt PATH/TO/licensing-server
// Starts `licensing-server serve` on 127.0.0.1 (port 0) in a temp data dir, makes a product, a
// policy and a license with the admin API (java.net.http), then drives the app side through the
// binding: activate (naming the app's user: in their directory usage) -> validate -> suspend ->
// validate reports suspended (also offline) -> reinstate -> air-gapped activation -> transfer
// (one allowed; moving back is transfer_limit_reached) -> an air-gapped machine that deactivates itself (receipt -> vendor
// API frees the slot once) -> a silent server -> floating seats (FloatingLease:
// heartbeats, denial, check-in, force-release to the listener) -> the wait line (a client
// served from the line once the seat is checked in, one stopping its wait) -> a borrowed seat (kept in the
// store, checked offline, returned early) -> revoke -> server stopped (the borrowed seat still
// valid offline).
// The whole scenario runs twice, each time against a fresh server: over the library's built-in
// HTTP stack (`OnlineClient(...)`), then over a Kotlin transport on HttpURLConnection
// (`OnlineClient.withTransport`, UrlConnectionTransport.kt), as an Android app hands in its own.
// A plain main (no JUnit here): prints `kotlin-online: N passed, N failed`; exit 1 on failure.
package rs.licensing.test.online

import java.io.File
import java.net.InetAddress
import java.net.ServerSocket
import java.net.URI
import java.net.http.HttpClient
import java.net.http.HttpRequest
import java.net.http.HttpResponse
import java.nio.file.Files
import java.time.Duration
import java.util.concurrent.CopyOnWriteArrayList
import java.util.concurrent.CountDownLatch
import java.util.concurrent.TimeUnit
import kotlin.system.exitProcess
import rs.licensing.*
import rs.licensing.core.*
import rs.licensing.test.Json
import rs.licensing.test.list
import rs.licensing.test.long
import rs.licensing.test.obj
import rs.licensing.test.str

private const val PRODUCT = "com.example.cad"

private var passed = 0
private var failed = 0
/** Which transport the scenario runs over, in front of each failure. */
private var mode = ""

private fun check(name: String, condition: Boolean, detail: Any? = "") {
    if (condition) {
        passed++
    } else {
        failed++
        println("FAIL $mode$name $detail")
    }
}

/** Counts the requests the library hands to the app's transport. */
private class Counting(val inner: HttpTransport) : HttpTransport {
    val calls = java.util.concurrent.atomic.AtomicInteger()

    override fun send(request: rs.licensing.HttpRequest): rs.licensing.HttpResponse {
        calls.incrementAndGet()
        return inner.send(request)
    }
}

/** Request bodies: maps of strings and integers, as JSON. */
private fun toJson(v: Any?): String = when (v) {
    null -> "null"
    is String -> "\"" + v.replace("\\", "\\\\").replace("\"", "\\\"") + "\""
    is Number, is Boolean -> v.toString()
    is Map<*, *> -> v.entries.joinToString(",", "{", "}") { toJson(it.key.toString()) + ":" + toJson(it.value) }
    is List<*> -> v.joinToString(",", "[", "]") { toJson(it) }
    else -> error("not JSON: $v")
}

private class Server(binary: String, dataDir: File) {
    val proc: Process = ProcessBuilder(binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir.path)
        .redirectError(ProcessBuilder.Redirect.DISCARD)
        .start()
    val url: String
    private val token: String
    private val http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build()

    init {
        val lines = CopyOnWriteArrayList<String>()
        // Keeps draining stdout for the server's whole life so that it never blocks on a full pipe.
        Thread {
            try {
                proc.inputStream.bufferedReader().forEachLine { lines.add(it.trim()) }
            } catch (_: Exception) {
                // The pipe closes when the server is killed.
            }
        }.apply { isDaemon = true }.start()
        val tokenPrefix = "admin API token (shown once, only its hash is stored): "
        val urlPrefix = "listening on "
        var url: String? = null
        var token: String? = null
        val deadline = System.nanoTime() + 30_000_000_000L
        while (System.nanoTime() < deadline && url == null) {
            for (line in lines) {
                if (line.startsWith(tokenPrefix)) token = line.removePrefix(tokenPrefix)
                if (line.startsWith(urlPrefix)) url = line.removePrefix(urlPrefix)
            }
            Thread.sleep(50)
        }
        if (url == null || token == null) {
            proc.destroyForcibly()
            throw IllegalStateException("server did not start: $lines")
        }
        this.url = url
        this.token = token
    }

    /** The admin API: the answer's text; a non-2xx answer throws (as urllib does). */
    fun apiText(method: String, path: String, body: String? = null): String {
        val request = HttpRequest.newBuilder(URI.create(url + path))
            .timeout(Duration.ofSeconds(10))
            .header("Authorization", "Bearer $token")
            .header("Content-Type", "application/json")
            .method(method, if (body == null) HttpRequest.BodyPublishers.noBody() else HttpRequest.BodyPublishers.ofString(body))
            .build()
        val response = http.send(request, HttpResponse.BodyHandlers.ofString())
        if (response.statusCode() !in 200..299) {
            throw IllegalStateException("$method $path: HTTP ${response.statusCode()} ${response.body()}")
        }
        return response.body()
    }

    fun api(method: String, path: String, body: Map<String, Any?>? = null): Map<String, Any?> =
        Json.parse(apiText(method, path, body?.let { toJson(it) }).ifEmpty { "null" }).obj()

    fun get(path: String): String {
        val request = HttpRequest.newBuilder(URI.create(url + path)).timeout(Duration.ofSeconds(10)).build()
        return http.send(request, HttpResponse.BodyHandlers.ofString()).body()
    }

    fun stop() {
        proc.destroy() // SIGTERM: a graceful shutdown, as the Python test does
        proc.waitFor(30, TimeUnit.SECONDS)
    }
}

/** Collects the losses the heartbeat thread reports. */
private class Listener : LeaseListener {
    val losses = CopyOnWriteArrayList<LeaseLossInfo>()
    val lost = CountDownLatch(1)

    override fun onLost(loss: LeaseLossInfo) {
        losses.add(loss)
        lost.countDown()
    }
}

private fun waitFor(seconds: Long = 30, condition: () -> Boolean): Boolean {
    val deadline = System.nanoTime() + seconds * 1_000_000_000L
    while (!condition() && System.nanoTime() < deadline) Thread.sleep(20)
    return condition()
}

/** One seat: heartbeats in the background, the exact denial, check-in frees it, a
 *  force-release reaches the listener. */
private fun floatingSeats(server: Server, client: OnlineClient) {
    val policy = server.api("POST", "/v1/policies", mapOf(
        "product_id" to PRODUCT, "name" to "kt-floating", "model" to "floating", "seats" to 1,
    ))
    val license = server.api("POST", "/v1/licenses", mapOf("policy_id" to policy["id"]))
    val key = license["key"].str()
    val licenseId = license["id"].str()
    val ada = FloatingLease.checkOut(client, key, "kt-seat-a", "ada", 100u, null)
    check("lease: valid", ada.status() == Status.VALID, ada.status())
    check("lease: a lease token", (ada.token() ?: "").startsWith("eyJ"), ada.token())
    check("lease: heartbeats in the background", waitFor { ada.heartbeats() >= 2uL }, ada.heartbeats())
    try {
        FloatingLease.checkOut(client, key, "kt-seat-b", "bob", 100u, null)
        check("lease: second seat denied", false)
    } catch (e: LicensingException.Server) {
        check("lease: denied with no_seats", e.code == "no_seats" && e.httpStatus.toInt() == 409, e)
        check("lease: the exact message", e.reason.endsWith(": No available licenses, please contact IT"), e)
    }
    ada.checkIn()
    check("lease: checked in", ada.status() == Status.LEASE_EXPIRED && ada.token() == null, ada.status())
    val listener = Listener()
    val bob = FloatingLease.checkOut(client, key, "kt-seat-b", "bob", 100u, listener)
    check("lease: the seat is free after check-in", bob.status() == Status.VALID, bob.status())
    server.api("POST", "/v1/licenses/$licenseId/leases/${bob.leaseId()}/release", mapOf())
    check("lease: force-release reported", listener.lost.await(30, TimeUnit.SECONDS), listener.losses)
    val loss = listener.losses.firstOrNull()
    check("lease: released, lease_released",
        loss != null && loss.kind == LeaseLossKind.RELEASED && loss.code == "lease_released", loss)
    check("lease: lost -> lease_expired", bob.status() == Status.LEASE_EXPIRED, bob.status())
    Thread.sleep(300)
    check("lease: reported once", listener.losses.size == 1, listener.losses)
    bob.checkIn()
    val live = server.api("GET", "/v1/licenses/$licenseId/leases")["leases"].list()
    check("lease: none live", live.isEmpty(), live)
    ada.close()
    bob.close()
}

/** Follows a wait in line: records each place; checks `holder` in at the first one (so the
 *  seat comes back), and goes on waiting or not. */
private class Places(val keepWaiting: Boolean, var holder: FloatingLease? = null) : QueueListener {
    val places = CopyOnWriteArrayList<Triple<ULong, ULong, String>>()

    override fun onPlace(position: ULong, waiting: ULong, message: String): Boolean {
        places.add(Triple(position, waiting, message))
        holder?.checkIn()
        holder = null
        return keepWaiting
    }
}

/** One seat and a wait line: denied at once before the vendor sets a line; then served from
 *  the line once the seat is checked in; a third client stops waiting and gets null. */
private fun waitLine(server: Server, client: OnlineClient) {
    val policy = server.api("POST", "/v1/policies", mapOf(
        "product_id" to PRODUCT, "name" to "kt-line", "model" to "floating", "seats" to 1,
    ))
    val license = server.api("POST", "/v1/licenses", mapOf("policy_id" to policy["id"]))
    val key = license["key"].str()
    val licenseId = license["id"].str()
    val ada = FloatingLease.checkOut(client, key, "kt-line-a", "ada", 0u, null)
    try {
        client.waitForSeat(key, "kt-line-b", "bob", 0u, 60u, Places(true), null)
        check("line: no line yet, denied", false)
    } catch (e: LicensingException.Server) {
        check("line: no line yet, denied with no_seats", e.code == "no_seats", e)
    }
    try {
        client.waitForSeat(key, "kt-line-b", "bob", 0u, 0u, null, null)
        check("line: a zero wait is refused", false)
    } catch (e: LicensingException.InvalidArgument) {
        check("line: a zero wait is refused", true)
    }
    server.api("PUT", "/v1/licenses/$licenseId/queue", mapOf("max_seconds" to 600))
    val places = Places(true, holder = ada)
    val bob = client.waitForSeat(key, "kt-line-b", "bob", 0u, 120u, places, null)
    check("line: served once the seat came back", bob != null && bob.status() == Status.VALID, bob)
    check("line: one place, first of one",
        places.places.map { it.first to it.second } == listOf(1uL to 1uL), places.places)
    check("line: the message meanwhile",
        places.places.firstOrNull()?.third == "No available licenses, please contact IT", places.places)
    val stopper = Places(false)
    val cy = client.waitForSeat(key, "kt-line-c", "cy", 0u, 120u, stopper, null)
    check("line: stopped waiting -> null", cy == null && stopper.places.size == 1, stopper.places)
    val leases = server.api("GET", "/v1/licenses/$licenseId/leases")
    check("line: nobody left in line", leases["queue"].obj()["waiting"].list().isEmpty(), leases)
    val holders = leases["leases"].list().map { it.obj()["client_id"] }
    check("line: bob holds the seat", holders == listOf("kt-line-b"), holders)
    bob?.checkIn()
    bob?.close()
    ada.close()
}

/** The one seat of a floating license borrowed for a day by `laptop`: kept in its store and
 *  valid offline, the seat taken for others, returned early, borrowed again. */
private fun borrowSeats(server: Server, client: OnlineClient, laptop: Licensing) {
    val policy = server.api("POST", "/v1/policies", mapOf(
        "product_id" to PRODUCT, "name" to "kt-borrow", "model" to "floating", "seats" to 1,
    ))
    val license = server.api("POST", "/v1/licenses", mapOf("policy_id" to policy["id"]))
    val key = license["key"].str()
    val licenseId = license["id"].str()
    val now = unixNow()
    try {
        client.borrowSeat(laptop, key, "kt-laptop", "ada", 86400uL)
        check("borrow: refused before the vendor allows it", false)
    } catch (e: LicensingException.Server) {
        check("borrow: borrowing_not_allowed", e.code == "borrowing_not_allowed", e)
    }
    val terms = server.api("PUT", "/v1/licenses/$licenseId/borrowing",
        mapOf("max_seconds" to 7 * 86400, "max_leases" to 1))
    check("borrow: terms set", terms["max_seconds"].long() == 7L * 86400 && terms["max_leases"].long() == 1L, terms)
    check("borrow: none yet", laptop.checkBorrowedSeat(now).status == Status.LEASE_REQUIRED)
    val ends = client.borrowSeat(laptop, key, "kt-laptop", "ada", 86400uL)
    check("borrow: ends in a day", ends >= now + 86400 && ends <= unixNow() + 86400, ends)
    val seat = laptop.checkBorrowedSeat(now)
    check("borrow: valid offline", seat.status == Status.VALID && seat.expiresAt == ends, seat)
    check("borrow: over at its end", laptop.checkBorrowedSeat(ends).status == Status.LEASE_EXPIRED)
    check("borrow: clock set back", laptop.checkBorrowedSeat(now - 2 * 86400).status == Status.CLOCK_TAMPERED)
    try {
        FloatingLease.checkOut(client, key, "kt-seat-z", "zoe", 0u, null).close()
        check("borrow: the seat is taken", false)
    } catch (e: LicensingException.Server) {
        check("borrow: the seat is taken (no_seats)", e.code == "no_seats", e)
    }
    check("borrow: returned", client.returnSeat(laptop, key))
    check("borrow: gone from the store", laptop.checkBorrowedSeat(now).status == Status.LEASE_REQUIRED)
    check("borrow: nothing more to return", !client.returnSeat(laptop, key))
    val zoe = FloatingLease.checkOut(client, key, "kt-seat-z", "zoe", 0u, null)
    check("borrow: the seat is free after the return", zoe.status() == Status.VALID, zoe.status())
    zoe.checkIn()
    zoe.close()
    client.borrowSeat(laptop, key, "kt-laptop", "ada", 3600uL)
}

private fun transferAndOfflineDeactivation(server: Server, client: OnlineClient, app: (String) -> Licensing) {
    val policy = server.api("POST", "/v1/policies", mapOf(
        "product_id" to PRODUCT, "name" to "kt-transfer", "model" to "subscription",
        "duration" to 365 * 86400, "max_machines" to 1, "max_transfers" to 1,
    ))
    val key = server.api("POST", "/v1/licenses", mapOf("policy_id" to policy["id"]))["key"].str()
    val old = app("kt-old")
    val new = app("kt-new")
    check("transfer: old machine activates", client.activate(old, key, unixNow()).status == Status.VALID)
    val verdict = client.transfer(new, key, old.fingerprint().id, unixNow())
    check("transfer: new machine valid", verdict.status == Status.VALID, verdict)
    val validated = client.validate(new, unixNow())
    check("transfer: new machine validates", validated.verdict.status == Status.VALID, validated)
    try {
        client.transfer(old, key, new.fingerprint().id, unixNow())
        check("transfer back refused", false)
    } catch (e: LicensingException.Server) {
        check("transfer back: transfer_limit_reached", e.code == "transfer_limit_reached", e)
        check("  and its HTTP status", e.httpStatus.toInt() == 409, e)
    }

    // The new machine (activated by the transfer) deactivates itself offline.
    val receipt = client.offlineDeactivate(new, unixNow())
    val kind = Json.parse(receipt).obj()["kind"]
    check("offline deactivation: receipt kind", kind == "licensing.offline_deactivation_receipt", kind)
    val none = new.checkAtStartup(unixNow())
    check("offline deactivation: no license", none.status == Status.NO_LICENSE, none)
    check("offline deactivation: same receipt again", client.offlineDeactivate(new, unixNow()) == receipt)
    val freed = Json.parse(server.apiText("POST", "/v1/offline/deactivate", receipt)).obj()
    check("offline deactivation: slot freed", freed["deactivated"] == true, freed)
    try {
        server.apiText("POST", "/v1/offline/deactivate", receipt)
        check("offline deactivation: replay refused", false)
    } catch (e: IllegalStateException) {
        check("offline deactivation: replay is 404", e.message?.contains("HTTP 404") == true, e)
    }
    // The freed slot is pending like after a client deactivation: another machine in it is a
    // move, counted against max_transfers (used up above); the same machine comes back free.
    try {
        client.activate(app("kt-third"), key, unixNow())
        check("offline deactivation: a move to another machine is a transfer", false)
    } catch (e: LicensingException.Server) {
        check("offline deactivation: a move to another machine is a transfer", e.code == "transfer_limit_reached", e)
    }
    val again = client.activate(new, key, unixNow())
    check("offline deactivation: the same machine activates again", again.status == Status.VALID, again)
}

/** `transport`: the app's HTTP stack; null for the library's built-in one. */
private fun run(server: Server, tmp: File, transport: HttpTransport?) {
    server.api("POST", "/v1/products", mapOf("id" to PRODUCT, "name" to "CAD"))
    val policy = server.api("POST", "/v1/policies", mapOf(
        "product_id" to PRODUCT, "name" to "kt", "model" to "subscription",
        "duration" to 365 * 86400, "grace_period" to 7 * 86400, "max_machines" to 1,
    ))
    val license = server.api("POST", "/v1/licenses", mapOf("policy_id" to policy["id"]))
    val key = license["key"].str()
    val licenseId = license["id"].str()
    // The app ships the vendor's public keys; fetched once here for the test.
    val trust = TrustStore.fromDocument(server.get("/.well-known/jwks.json"))

    fun app(machine: String): Licensing {
        val options = LicensingOptions(fingerprintOverride = machine)
        val store = LicenseStore.at(File(tmp, machine).path)
        return Licensing(trust, PRODUCT, store, options)
    }

    fun onlineClient(url: String, deadlineMs: UInt?): OnlineClient =
        if (transport == null) OnlineClient(trust, url, PRODUCT, deadlineMs)
        else OnlineClient.withTransport(trust, url, PRODUCT, deadlineMs, transport)

    val client = onlineClient(server.url, 10_000u)
    val a = app("kt-box-a")

    try {
        client.validate(a, unixNow())
        check("validate before activation raises", false)
    } catch (e: LicensingException.NotActivated) {
        check("validate before activation raises NotActivated", true)
    }

    // The app's user: the activation names a directory user, whose usage then lists the machine.
    val ada = server.api("POST", "/v1/directory/users", mapOf("user_name" to "ada@example.com"))
    try {
        client.setUser("x".repeat(201))
        check("setUser: over 200 characters raises", false)
    } catch (e: LicensingException.InvalidArgument) {
        check("setUser: over 200 characters raises InvalidArgument", true)
    }
    client.setUser("ada@example.com")
    val verdict = client.activate(a, key, unixNow())
    check("activate: valid", verdict.status == Status.VALID, verdict)
    val usage = server.api("GET", "/v1/directory/users/${ada["id"].str()}/usage")
    check("activate naming the user: in the user's usage", usage["machines"].list().size == 1, usage)
    client.setUser(null)
    try {
        client.activate(app("kt-box-b"), key, unixNow())
        check("second machine refused", false)
    } catch (e: LicensingException.Server) {
        check("second machine refused with its code", e.code == "machine_limit_reached", e)
        check("  and its HTTP status", e.httpStatus.toInt() == 409, e)
    }

    var result = client.validate(a, unixNow())
    check("validate: online", result.online && result.serverStatus == "active", result)
    check("validate: valid", result.verdict.status == Status.VALID, result)
    val serverTime = result.serverTime
    check("validate: server time", serverTime != null && Math.abs(serverTime - unixNow()) < 60, result)

    server.api("POST", "/v1/licenses/$licenseId/suspend", mapOf())
    result = client.validate(a, unixNow())
    check("suspended: server says so", result.serverStatus == "suspended", result)
    check("suspended: verdict", result.verdict.status == Status.SUSPENDED, result)
    val offline = a.checkAtStartup(unixNow())
    check("suspended: offline start too", offline.status == Status.SUSPENDED, offline)

    server.api("POST", "/v1/licenses/$licenseId/reinstate", mapOf())
    result = client.checkOnline(a, unixNow(), 5_000u)
    check("reinstated: valid online", result.online && result.verdict.status == Status.VALID, result)

    // Air-gapped activation on a second license: request file -> vendor API -> import; then
    // deactivation frees the slot and clears the store.
    val license2 = server.api("POST", "/v1/licenses", mapOf("policy_id" to policy["id"]))
    val c = app("kt-box-c")
    val request = client.offlineRequest(c, license2["key"].str(), unixNow())
    val kind = Json.parse(request).obj()["kind"]
    check("air-gapped request kind", kind == "licensing.offline_activation_request", kind)
    val response = server.apiText("POST", "/v1/offline/activate", request)
    result = client.importOfflineResponse(c, response, unixNow())
    check("air-gapped import: valid", result.verdict.status == Status.VALID, result)
    val next = c.checkAtStartup(unixNow())
    check("air-gapped next start: valid", next.status == Status.VALID, next)
    try {
        client.importOfflineResponse(c, response, unixNow())
        check("air-gapped import twice raises", false)
    } catch (e: LicensingException.NotActivated) {
        check("air-gapped import twice raises NotActivated", true)
    }
    check("deactivate", client.deactivate(c))
    val after = c.checkAtStartup(unixNow())
    check("deactivated: no license", after.status == Status.NO_LICENSE, after)

    transferAndOfflineDeactivation(server, client, ::app)

    // A listener that never answers: the start is back within the limit, offline.
    ServerSocket(0, 8, InetAddress.getByName("127.0.0.1")).use { silent ->
        val silentClient = onlineClient("http://127.0.0.1:${silent.localPort}", null)
        val started = System.nanoTime()
        val r = silentClient.checkOnline(a, unixNow(), 600u)
        val took = (System.nanoTime() - started) / 1e9
        check("silent server: offline", !r.online && !r.offlineReason.isNullOrEmpty(), r)
        check("silent server: within the limit", took < 0.9, "took %.3f s".format(took))
        check("silent server: stored token valid", r.verdict.status == Status.VALID, r)
        silentClient.close()
    }

    floatingSeats(server, client)
    waitLine(server, client)
    val laptop = app("kt-laptop")
    borrowSeats(server, client, laptop)

    server.api("POST", "/v1/licenses/$licenseId/revoke", mapOf())
    result = client.validate(a, unixNow())
    check("revoked: verdict", result.verdict.status == Status.REVOKED, result)
    server.stop()
    result = client.checkOnline(a, unixNow(), 2_000u)
    check("server gone: offline", !result.online, result)
    check("server gone: still revoked", result.verdict.status == Status.REVOKED, result)
    try {
        client.validate(a, unixNow())
        check("server gone: validate raises", false)
    } catch (e: LicensingException.Network) {
        check("server gone: validate raises Network", true)
    }
    val seat = laptop.checkBorrowedSeat(unixNow())
    check("server gone: the borrowed seat runs offline", seat.status == Status.VALID, seat)
}

fun main(args: Array<String>) {
    require(args.size == 1) { "usage: OnlineTestKt PATH/TO/licensing-server" }
    val tmp = Files.createTempDirectory("kotlin-online").toFile()
    try {
        for ((name, transport) in listOf("" to null, "[HttpURLConnection] " to Counting(UrlConnectionTransport()))) {
            mode = name
            val dir = File(tmp, if (transport == null) "builtin" else "transport")
            var server: Server? = null
            try {
                server = Server(args[0], File(dir, "data"))
                run(server, dir, transport)
            } catch (e: Throwable) {
                // The runner reports every failure, the unexpected ones too.
                failed++
                println("FAIL $mode(exception):")
                e.printStackTrace(System.out)
            } finally {
                server?.proc?.let {
                    if (it.isAlive) {
                        it.destroyForcibly()
                        it.waitFor(30, TimeUnit.SECONDS)
                    }
                }
            }
            if (transport != null) {
                check("every request went through the app's transport", transport.calls.get() > 20, transport.calls.get())
            }
        }
    } finally {
        tmp.deleteRecursively()
    }
    println("kotlin-online: $passed passed, $failed failed")
    exitProcess(if (failed > 0) 1 else 0)
}
