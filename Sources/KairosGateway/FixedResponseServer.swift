import Foundation
import Synchronization

/// The smallest server on the gateway's stack: one libuv loop and the same HTTP/1.1 layer,
/// answering every request with a fixed body. Load tools measure themselves against it (the
/// ceiling of the HTTP layer, with no engine work behind it).
public final class FixedResponseServer: HTTPHandler, @unchecked Sendable {
    // @unchecked: `server` is touched on the loop thread only.
    private let loop = EventLoop()
    private var server: HTTPServer?
    private let response: HTTPResponse
    private let bound = Mutex<(port: Int?, error: String?)>((nil, nil))

    public init(body: String = #"{"status":"ok"}"#) {
        response = HTTPResponse(status: 200, headers: [("content-type", "application/json")], body: Array(body.utf8))
    }

    /// Listens on the loopback address (port 0: any free port) and returns the port.
    public func start(host: String = "127.0.0.1", port: Int) async throws -> Int {
        let reference = LoopBound(self)
        loop.start(name: "kairos-fixed") {
            let fixed = reference.value
            let server = HTTPServer(loop: fixed.loop, limits: HTTPLimits(), handler: fixed)
            fixed.server = server
            do {
                try server.listen(host: host, port: port)
                fixed.bound.withLock { $0.port = server.boundPort }
            } catch {
                fixed.bound.withLock { $0.error = "\(error)" }
            }
        }
        while true {
            let state = bound.withLock { $0 }
            if let error = state.error {
                loop.stop()
                throw GatewayError(error)
            }
            if let port = state.port { return port }
            try await Task.sleep(for: .milliseconds(2))
        }
    }

    public func stop() async {
        loop.stop()
        await loop.waitUntilFinished()
    }

    func check(method: String, path: String, contentLength: UInt64?, headers: [(name: String, value: String)]) -> HTTPResponse? { nil }
    func bodyLimit(method: String, path: String) -> Int? { 64 * 1024 }
    func handle(_ request: HTTPRequest, respond: @escaping @Sendable (HTTPResponse) -> Void) { respond(response) }
    func commonHeaders(for request: HTTPRequest) -> [(name: String, value: String)] { [] }
}
