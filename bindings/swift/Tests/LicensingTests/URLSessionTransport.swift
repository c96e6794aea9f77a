// An HttpTransport on URLSession: what an iOS or macOS app hands to `OnlineClient.withTransport`
// to keep the platform's trust store (ATS), proxies and certificate pinning (add your own
// URLSessionDelegate for pinning). The library builds every request and checks every answer,
// the size cap included; this only sends it. Blocking by design: the library calls it from its
// own (background) threads.
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Licensing

final class URLSessionTransport: HttpTransport, @unchecked Sendable {
    private let session: URLSession

    init(configuration: URLSessionConfiguration = .ephemeral) {
        session = URLSession(configuration: configuration, delegate: NoRedirect(), delegateQueue: nil)
    }

    func send(request: HttpRequest) throws -> HttpResponse {
        guard let url = URL(string: request.url) else {
            throw TransportError.Network(reason: "not a URL: \(request.url)")
        }
        var urlRequest = URLRequest(url: url, timeoutInterval: Double(request.timeoutMs) / 1000)
        urlRequest.httpMethod = request.method
        for (name, value) in request.headers {
            urlRequest.setValue(value, forHTTPHeaderField: name)
        }
        urlRequest.httpBody = request.body
        let cap = Int(clamping: request.maxBodyBytes &+ 1)
        let outcome = Outcome()
        let done = DispatchSemaphore(value: 0)
        let task = session.dataTask(with: urlRequest) { data, response, error in
            defer { done.signal() }
            if let error = error as? URLError {
                outcome.result = .failure(error.code == .timedOut
                    ? TransportError.Timeout(reason: "\(error)")
                    : TransportError.Network(reason: "\(error)"))
            } else if let error = error {
                outcome.result = .failure(TransportError.Network(reason: "\(error)"))
            } else if let http = response as? HTTPURLResponse {
                var headers: [String: String] = [:]
                for (name, value) in http.allHeaderFields {
                    headers["\(name)"] = "\(value)"
                }
                // At most the cap + 1 bytes: enough for the library to refuse a longer body.
                let body = Data((data ?? Data()).prefix(cap))
                outcome.result = .success(HttpResponse(status: UInt16(clamping: http.statusCode),
                                                       headers: headers, body: body))
            } else {
                outcome.result = .failure(TransportError.Network(reason: "not an HTTP answer"))
            }
        }
        task.resume()
        done.wait()
        return try outcome.result.get()
    }
}

/// The answer handed from URLSession's queue to the waiting caller.
private final class Outcome: @unchecked Sendable {
    var result: Result<HttpResponse, TransportError> = .failure(TransportError.Network(reason: "no answer"))
}

/// The API never redirects, and a redirect could carry the license key elsewhere: the 3xx is
/// answered as it is.
private final class NoRedirect: NSObject, URLSessionTaskDelegate {
    func urlSession(_ session: URLSession, task: URLSessionTask,
                    willPerformHTTPRedirection response: HTTPURLResponse,
                    newRequest request: URLRequest,
                    completionHandler: @escaping (URLRequest?) -> Void) {
        completionHandler(nil)
    }
}
