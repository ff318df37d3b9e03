import CHTTPParser
import CLibUV
import Foundation

/// Limits that protect every client from any one of them.
public struct HTTPLimits: Sendable {
    /// Request line plus headers.
    public var maximumHeaderBytes = 16 * 1024
    /// The body limit of routes that set none of their own.
    public var maximumBodyBytes = 512 * 1024
    public var maximumConnections = 10_000
    /// A connection with no request in progress is closed after this long.
    public var idleTimeout: Duration = .seconds(30)
    /// A request must arrive in full within this long of its first byte (slow clients).
    public var requestTimeout: Duration = .seconds(10)
    /// Requests read ahead of their responses on one connection (pipelining) before reading pauses.
    public var maximumPipelined = 64
    /// Ingest and decide requests being worked on by the engine at once, over all connections;
    /// past it new ones get 503 `overloaded` at once instead of queueing without bound.
    public var maximumInFlight = 20_000

    public init() {}
}

/// What the server asks of its application: turn a request into a response, now or later.
/// `respond` may be called from any thread, exactly once.
protocol HTTPHandler: AnyObject, Sendable {
    /// Called when the request's headers are in: a response here (e.g. 413 for a declared
    /// length over the route's limit) is sent instead of reading the body.
    func check(method: String, path: String, contentLength: UInt64?, headers: [(name: String, value: String)]) -> HTTPResponse?
    /// The largest body the route takes (also enforced while a chunked body arrives).
    func bodyLimit(method: String, path: String) -> Int?
    func handle(_ request: HTTPRequest, respond: @escaping @Sendable (HTTPResponse) -> Void)
    /// Headers added to every response (CORS and the like), given the request's headers.
    func commonHeaders(for request: HTTPRequest) -> [(name: String, value: String)]
}

/// An HTTP/1.1 server on an `EventLoop`: keep-alive, pipelined requests answered in order,
/// Content-Length and chunked bodies (Debian's http-parser), `Expect: 100-continue`, and the
/// limits of `HTTPLimits`.
final class HTTPServer: @unchecked Sendable {
    // @unchecked: everything here is used on the loop thread only.
    let loop: EventLoop
    let limits: HTTPLimits
    let handler: any HTTPHandler
    private var listener: TCPListener?
    private(set) var connections: [ObjectIdentifier: HTTPConnection] = [:]
    private(set) var boundPort: Int = 0
    private var accepting = true

    init(loop: EventLoop, limits: HTTPLimits, handler: any HTTPHandler) {
        self.loop = loop
        self.limits = limits
        self.handler = handler
    }

    /// Binds and listens (on the loop thread). Port 0 picks a free port (see `boundPort`).
    func listen(host: String, port: Int) throws(GatewayError) {
        let listener = try TCPListener(loop: loop, host: host, port: port, what: "HTTP") { [unowned self] in accept() }
        boundPort = listener.port
        self.listener = listener
    }

    private func accept() {
        guard let listener else { return }
        let connection = HTTPConnection(server: self)
        guard listener.accept(into: connection.tcp) else {
            connection.close()
            return
        }
        connections[ObjectIdentifier(connection)] = connection
        if !accepting {
            connection.reject(.error(503, "shutting_down", "the server is shutting down", close: true))
        } else if connections.count > limits.maximumConnections {
            connection.reject(
                .error(503, "too_many_connections", "the server has \(limits.maximumConnections) connections open; retry later", close: true))
        } else {
            connection.startReading()
        }
    }

    func forget(_ connection: HTTPConnection) { connections.removeValue(forKey: ObjectIdentifier(connection)) }

    /// Enforces idle and request timeouts (called about once a second).
    func sweep(now: ContinuousClock.Instant) {
        for connection in connections.values { connection.checkTimeouts(now: now) }
    }

    /// Stops accepting; `finish` is called once in-flight requests are answered and every
    /// connection is closed (idle keep-alive connections are closed at once).
    func shutDown(finish: @escaping () -> Void) {
        accepting = false
        listener?.close()
        listener = nil
        for connection in connections.values { connection.closeWhenIdle() }
        waitForConnections(finish)
    }

    private func waitForConnections(_ finish: @escaping () -> Void) {
        if connections.isEmpty {
            finish()
            return
        }
        let timer = UnsafeMutablePointer<uv_timer_t>.allocate(capacity: 1)
        uv_timer_init(loop.loop, timer)
        final class Waiter {
            let server: HTTPServer
            let finish: () -> Void
            init(server: HTTPServer, finish: @escaping () -> Void) {
                self.server = server
                self.finish = finish
            }
        }
        timer.pointee.data = Unmanaged.passRetained(Waiter(server: self, finish: finish)).toOpaque()
        uv_timer_start(timer, { timer in
            guard let timer, let data = timer.pointee.data else { return }
            let waiter = Unmanaged<Waiter>.fromOpaque(data).takeUnretainedValue()
            guard waiter.server.connections.isEmpty else { return }
            Unmanaged<Waiter>.fromOpaque(data).release()
            uv_timer_stop(timer)
            uv_close(handle(timer)) { $0?.deallocate() }
            waiter.finish()
        }, 10, 10)
    }
}

/// One client connection: parses requests as bytes arrive, answers them in order.
final class HTTPConnection {
    let tcp: UnsafeMutablePointer<uv_tcp_t>
    private unowned let server: HTTPServer
    private let parser: UnsafeMutablePointer<http_parser>
    private let readBuffer: UnsafeMutableRawBufferPointer

    // The request being parsed.
    private var method = ""
    private var url: [UInt8] = []
    private var headers: [(name: String, value: String)] = []
    private var headerField: [UInt8] = []
    private var headerValue: [UInt8] = []
    private var readingValue = false
    private var headerBytes = 0
    private var body: [UInt8] = []
    private var bodyLimit = 0
    private var rejection: HTTPResponse?

    /// Responses in request order; a nil response is still being computed.
    private var pending: [(response: HTTPResponse?, keepAlive: Bool, extra: [(name: String, value: String)])] = []
    private var reading = false
    private var closing = false
    private var closeAfterPending = false
    private var requestStarted: ContinuousClock.Instant?
    private var lastActivity = ContinuousClock.now
    /// After answering a request whose body was not read (a limit, an error), the rest of what
    /// the client sends is read and dropped until it stops or this deadline, so closing does not
    /// reset the connection before the client has read the answer.
    private var drainingUntil: ContinuousClock.Instant?

    static let bufferSize = 64 * 1024

    init(server: HTTPServer) {
        self.server = server
        tcp = .allocate(capacity: 1)
        uv_tcp_init(server.loop.loop, tcp)
        uv_tcp_nodelay(tcp, 1)
        parser = .allocate(capacity: 1)
        http_parser_init(parser, HTTP_REQUEST)
        readBuffer = .allocate(byteCount: HTTPConnection.bufferSize, alignment: 16)
        // The handle owns the connection until its close callback.
        tcp.pointee.data = Unmanaged.passRetained(self).toOpaque()
        parser.pointee.data = Unmanaged.passUnretained(self).toOpaque()
    }

    deinit {
        parser.deallocate()
        readBuffer.deallocate()
    }

    private static func from(_ pointer: UnsafeMutableRawPointer?) -> HTTPConnection? {
        guard let pointer else { return nil }
        return Unmanaged<HTTPConnection>.fromOpaque(pointer).takeUnretainedValue()
    }

    func startReading() {
        guard !reading, !closing else { return }
        reading = true
        uv_read_start(
            stream(tcp),
            { handle, _, buffer in
                guard let connection = HTTPConnection.from(handle?.pointee.data), let buffer else { return }
                buffer.pointee = uv_buf_init(
                    connection.readBuffer.baseAddress!.assumingMemoryBound(to: CChar.self), UInt32(HTTPConnection.bufferSize))
            },
            { stream, count, buffer in
                guard let connection = HTTPConnection.from(stream?.pointee.data) else { return }
                if count < 0 {
                    connection.close()
                } else if count > 0, let base = buffer?.pointee.base {
                    connection.received(UnsafeRawBufferPointer(start: base, count: count))
                }
            })
    }

    private func stopReading() {
        guard reading else { return }
        reading = false
        uv_read_stop(stream(tcp))
    }

    /// Sends one response and closes (a connection refused at accept).
    func reject(_ response: HTTPResponse) {
        pending.append((response, false, []))
        flush()
    }

    // MARK: Parsing

    private func received(_ bytes: UnsafeRawBufferPointer) {
        lastActivity = .now
        if drainingUntil != nil { return }
        if requestStarted == nil { requestStarted = lastActivity }
        let parsed = http_parser_execute(parser, HTTPConnection.settings, bytes.baseAddress?.assumingMemoryBound(to: CChar.self), bytes.count)
        if let rejection {
            // A limit or an expectation failed: answer, and close (the rest of the stream is unread).
            self.rejection = nil
            stopReading()
            pending.append((rejection, false, []))
            flush()
            return
        }
        let errno = http_errno(rawValue: parser.pointee.http_errno)
        if errno != HPE_OK || (parsed != bytes.count && parser.pointee.upgrade == 0) {
            stopReading()
            let detail = String(cString: http_errno_description(errno))
            pending.append((.error(400, "malformed_request", "the request is not valid HTTP/1.1: \(detail)", close: true), false, []))
            flush()
            return
        }
        if pending.count >= server.limits.maximumPipelined { stopReading() }
    }

    private func beginMessage() {
        method = ""
        url.removeAll(keepingCapacity: true)
        headers.removeAll(keepingCapacity: true)
        headerField.removeAll(keepingCapacity: true)
        headerValue.removeAll(keepingCapacity: true)
        readingValue = false
        headerBytes = 0
        body = []
        bodyLimit = server.limits.maximumBodyBytes
        requestStarted = requestStarted ?? .now
    }

    private func countHeaderBytes(_ count: Int) -> Bool {
        headerBytes += count
        guard headerBytes <= server.limits.maximumHeaderBytes else {
            rejection = .error(
                431, "headers_too_large", "the request line and headers exceed \(server.limits.maximumHeaderBytes) bytes", close: true)
            return false
        }
        return true
    }

    private func endHeader() {
        guard readingValue else { return }
        headers.append((String(decoding: headerField, as: UTF8.self).lowercased(), String(decoding: headerValue, as: UTF8.self)))
        headerField.removeAll(keepingCapacity: true)
        headerValue.removeAll(keepingCapacity: true)
        readingValue = false
    }

    private func headersComplete() -> Int32 {
        endHeader()
        method = String(cString: http_method_str(http_method(rawValue: parser.pointee.method)))
        let path = splitTarget().path
        let hasLength = parser.pointee.flags & UInt32(F_CONTENTLENGTH.rawValue) != 0
        let declared: UInt64? = hasLength ? parser.pointee.content_length : nil
        if let limit = server.handler.bodyLimit(method: method, path: path) { bodyLimit = limit }
        // (From this callback 1 would mean "no body"; any other nonzero value stops the parser.)
        if let response = server.handler.check(method: method, path: path, contentLength: declared, headers: headers) {
            rejection = response
            rejection?.close = true
            return -1
        }
        if let expectation = headers.first(where: { $0.name == "expect" })?.value {
            guard expectation.lowercased() == "100-continue" else {
                rejection = .error(417, "expectation_failed", "only 'Expect: 100-continue' is supported", close: true)
                return -1
            }
            write(Array("HTTP/1.1 100 Continue\r\n\r\n".utf8))
        }
        return 0
    }

    private func bodyReceived(_ bytes: UnsafeRawBufferPointer) -> Int32 {
        guard body.count + bytes.count <= bodyLimit else {
            rejection = .error(413, "body_too_large", "the request body exceeds \(bodyLimit) bytes", close: true)
            return 1
        }
        body.append(contentsOf: bytes)
        return 0
    }

    /// The request target split at its first `?`, byte by byte (String's split walks grapheme clusters).
    private func splitTarget() -> (path: String, query: String?) {
        guard let mark = url.firstIndex(of: UInt8(ascii: "?")) else { return (String(decoding: url, as: UTF8.self), nil) }
        return (String(decoding: url[..<mark], as: UTF8.self), String(decoding: url[(mark + 1)...], as: UTF8.self))
    }

    private func messageComplete() -> Int32 {
        let (path, query) = splitTarget()
        let request = HTTPRequest(
            method: method, path: path, query: query, headers: headers, body: body, keepAlive: http_should_keep_alive(parser) != 0)
        body = []
        requestStarted = nil
        let slot = answered + pending.count
        let extra = server.handler.commonHeaders(for: request)
        pending.append((nil, request.keepAlive, extra))
        let loop = server.loop
        let reference = LoopBound(self)
        server.handler.handle(request) { response in
            // Answers computed on the loop (errors, health) need no hop back to it.
            if loop.isCurrent {
                reference.value.complete(slot: slot, response)
            } else {
                loop.execute { reference.value.complete(slot: slot, response) }
            }
        }
        return 0
    }

    // MARK: Responding

    /// Slots are positions in `pending` counted from the first unanswered request ever queued;
    /// `answered` requests have been written and removed from the front.
    private var answered = 0

    private func complete(slot: Int, _ response: HTTPResponse) {
        let index = slot - answered
        guard index >= 0, index < pending.count, !closing else { return }
        pending[index].response = response
        flush()
    }

    /// Writes every answered response at the head of the queue, in request order.
    private func flush() {
        while let first = pending.first, let response = first.response {
            pending.removeFirst()
            answered += 1
            let keepAlive = first.keepAlive && !response.close && !closeAfterPending
            write(response.serialized(keepAlive: keepAlive, extraHeaders: first.extra))
            if !keepAlive {
                pending.removeAll()
                closeAfterWrites()
                return
            }
        }
        if closeAfterPending && pending.isEmpty {
            closeAfterWrites()
            return
        }
        if !reading && pending.count < server.limits.maximumPipelined && !closing { startReading() }
    }

    private func write(_ data: [UInt8], closeAfter: Bool = false) {
        guard !closing else { return }
        let started = writeBytes(data, to: tcp) { [self] written in
            if !written {
                close()
            } else if closeAfter {
                lingerThenClose()
            }
        }
        if !started { close() }
    }

    /// Closes once the writes queued so far are on the wire.
    private func closeAfterWrites() {
        stopReading()
        write([], closeAfter: true)
    }

    /// Sends FIN, then reads and drops what the client still sends (up to 2 s) before closing.
    private func lingerThenClose() {
        guard !closing else { return }
        drainingUntil = .now + .seconds(2)
        let request = UnsafeMutablePointer<uv_shutdown_t>.allocate(capacity: 1)
        if uv_shutdown(request, stream(tcp), { request, _ in request?.deallocate() }) != 0 {
            request.deallocate()
            close()
            return
        }
        startReading()
    }

    /// For shutdown: close now if nothing is in flight, else after the last response.
    func closeWhenIdle() {
        if (pending.isEmpty && requestStarted == nil) || drainingUntil != nil {
            close()
        } else {
            closeAfterPending = true
            stopReading()
        }
    }

    func checkTimeouts(now: ContinuousClock.Instant) {
        if let drainingUntil, now > drainingUntil {
            close()
            return
        }
        guard !closing, pending.isEmpty, drainingUntil == nil else { return }
        // Large bodies get a second more for each megabyte that has arrived: slow senders of
        // small requests are cut off, big uploads that keep moving are not.
        let allowance = server.limits.requestTimeout + .seconds(body.count >> 20)
        if let started = requestStarted, now - started > allowance {
            stopReading()
            pending.append((.error(408, "request_timeout", "the request did not arrive in full within \(server.limits.requestTimeout)", close: true), false, []))
            flush()
        } else if requestStarted == nil, now - lastActivity > server.limits.idleTimeout {
            close()
        }
    }

    func close() {
        guard !closing else { return }
        closing = true
        reading = false
        server.forget(self)
        closeConnection(tcp)
    }

    // MARK: http-parser callbacks

    /// The parser's callbacks: one read-only table shared by every connection of every loop
    /// (a pointer, so concurrent loops never contend for access to a Swift variable).
    nonisolated(unsafe) static let settings: UnsafeMutablePointer<http_parser_settings> = {
        let table = UnsafeMutablePointer<http_parser_settings>.allocate(capacity: 1)
        var settings = http_parser_settings()
        settings.on_message_begin = { parser in
            HTTPConnection.from(parser?.pointee.data)?.beginMessage()
            return 0
        }
        settings.on_url = { parser, data, length in
            guard let connection = HTTPConnection.from(parser?.pointee.data), connection.countHeaderBytes(length) else { return 1 }
            connection.url.append(contentsOf: UnsafeRawBufferPointer(start: data, count: length))
            return 0
        }
        settings.on_header_field = { parser, data, length in
            guard let connection = HTTPConnection.from(parser?.pointee.data), connection.countHeaderBytes(length) else { return 1 }
            connection.endHeader()
            connection.headerField.append(contentsOf: UnsafeRawBufferPointer(start: data, count: length))
            return 0
        }
        settings.on_header_value = { parser, data, length in
            guard let connection = HTTPConnection.from(parser?.pointee.data), connection.countHeaderBytes(length) else { return 1 }
            connection.readingValue = true
            connection.headerValue.append(contentsOf: UnsafeRawBufferPointer(start: data, count: length))
            return 0
        }
        settings.on_headers_complete = { parser in
            HTTPConnection.from(parser?.pointee.data)?.headersComplete() ?? -1
        }
        settings.on_body = { parser, data, length in
            HTTPConnection.from(parser?.pointee.data)?.bodyReceived(UnsafeRawBufferPointer(start: data, count: length)) ?? 1
        }
        settings.on_message_complete = { parser in
            HTTPConnection.from(parser?.pointee.data)?.messageComplete() ?? 1
        }
        table.initialize(to: settings)
        return table
    }()
}

/// Carries a loop-confined object through a `@Sendable` closure back to its loop thread.
final class LoopBound<Value: AnyObject>: @unchecked Sendable {
    // @unchecked: created on the loop thread and dereferenced only there (inside `execute`).
    let value: Value
    init(_ value: Value) { self.value = value }
}

/// A gateway failure with a message meant for the operator.
public struct GatewayError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
