// An HttpTransport on the JVM's (and Android's) HttpURLConnection: what an app hands to
// `OnlineClient.withTransport` to keep the platform's trust store, proxies and certificate
// pinning (an OkHttp one is the same shape). The library builds every request and checks every
// answer; this only sends it. OnlineTest.kt runs the whole online scenario through it.
package rs.licensing.test.online

import java.io.IOException
import java.io.InputStream
import java.net.HttpURLConnection
import java.net.SocketTimeoutException
import java.net.URI
import rs.licensing.HttpTransport
import rs.licensing.TransportException

class UrlConnectionTransport : HttpTransport {
    override fun send(request: rs.licensing.HttpRequest): rs.licensing.HttpResponse {
        try {
            val connection = URI.create(request.url).toURL().openConnection() as HttpURLConnection
            // The API never redirects; a redirect could carry the license key elsewhere.
            connection.instanceFollowRedirects = false
            connection.useCaches = false
            connection.requestMethod = request.method
            connection.connectTimeout = millis(request.connectTimeoutMs)
            connection.readTimeout = millis(request.timeoutMs)
            for ((name, value) in request.headers) connection.setRequestProperty(name, value)
            connection.doOutput = true
            connection.setFixedLengthStreamingMode(request.body.size)
            connection.outputStream.use { it.write(request.body) }
            val status = connection.responseCode
            // 4xx and 5xx bodies carry the server's error: read them too.
            val stream = if (status >= 400) connection.errorStream else connection.inputStream
            val body = stream?.use { readCapped(it, request.maxBodyBytes) } ?: ByteArray(0)
            val headers = connection.headerFields
                .filterKeys { it != null }
                .mapValues { it.value.joinToString(", ") }
            return rs.licensing.HttpResponse(status.toUShort(), headers, body)
        } catch (e: SocketTimeoutException) {
            throw TransportException.Timeout(e.toString())
        } catch (e: IOException) {
            throw TransportException.Network(e.toString())
        } catch (e: IllegalArgumentException) {
            throw TransportException.Network(e.toString())
        }
    }

    /** At most `cap` + 1 bytes: enough for the library to see the body is too long. */
    private fun readCapped(stream: InputStream, cap: ULong): ByteArray {
        val limit = (cap.coerceAtMost(Int.MAX_VALUE.toULong() - 1uL) + 1uL).toInt()
        val out = java.io.ByteArrayOutputStream()
        val buffer = ByteArray(16 * 1024)
        while (out.size() < limit) {
            val n = stream.read(buffer, 0, minOf(buffer.size, limit - out.size()))
            if (n < 0) break
            out.write(buffer, 0, n)
        }
        return out.toByteArray()
    }

    private fun millis(ms: ULong): Int = ms.coerceIn(1uL, Int.MAX_VALUE.toULong()).toInt()
}
