import Foundation
import KairosCore
import KairosEngine
import Synchronization

/// How the gateway listens and what it allows.
public struct GatewayConfiguration: Sendable {
    public var host = "127.0.0.1"
    /// HTTP port (0: any free port, see `Gateway.httpPort`).
    public var httpPort = 8080
    /// The event stream's TCP port (0: any free port; nil: no stream listener).
    public var streamPort: Int? = 8081
    public var limits = HTTPLimits()
    /// Origins allowed to call from a browser (`*` for any); empty disables CORS.
    public var corsOrigins: [String] = ["*"]
    /// Segment's limits.
    public var maximumEventBytes = 32 * 1024
    public var maximumBatchBytes = 500 * 1024
    /// Largest admin request body (definitions).
    public var maximumAdminBodyBytes = 1024 * 1024
    /// Largest contact import body (CSV or NDJSON).
    public var maximumImportBytes = 256 * 1024 * 1024
    /// The operator key: creates and lists tenants, server status and snapshots (nil: no operator routes).
    public var operatorKey: String?
    /// How the loop thread asks to be scheduled (`Gateway.loopScheduling` says what it got).
    public var loopPriority = LoopPriority.normal

    public init() {}
}

/// The network face of Kairos: the Segment-compatible HTTP ingest API, `/v1/decide`, health
/// and readiness, on one libuv event loop. HTTP parsing, authentication and limits happen on
/// the loop; bodies of ingest calls are parsed and decoded by the task that then calls the
/// engine, and answers come back to the loop to be written.
public final class Gateway: HTTPHandler, @unchecked Sendable {
    // @unchecked: `server`, `json` and `keyCache` are used on the loop thread only; the rest is immutable or locked.
    public let engine: Engine
    public let configuration: GatewayConfiguration
    private let clock: any EngineClock
    private let loop = EventLoop()
    private var server: HTTPServer?
    private var streams: StreamServer?
    private let json = FastJSON()
    /// Parsers for ingest bodies decoded off the loop.
    private let parsers = ParserPool()
    private let decoder = EventDecoder()
    private var keyCache: [String: (tenant: String, expiresAt: Timestamp?)] = [:]
    /// The engine's key revocation count when `keyCache` was last known good.
    private var keyCacheRevocations: UInt64 = 0
    private let admin: AdminAPI
    private let rateLimiter = RateLimiter()
    /// Requests handed to the engine and not yet answered (loop thread only).
    private var inFlight = 0
    /// A stream is bulk work: requests waiting on an answer go first. With the loop at real-time
    /// priority they do anyway, and the stream competes with other processes at normal
    /// priority; otherwise it runs at background priority (nice 10 on Linux). Set on the loop
    /// thread when it starts.
    private var streamPriority = TaskPriority.background
    private let ready = Atomic<Bool>(false)
    private let started = Mutex<(port: Int?, streamPort: Int?, error: GatewayError?)>((nil, nil, nil))

    /// - Parameter operations: what the server process offers the admin API (snapshots, status).
    public init(
        engine: Engine, configuration: GatewayConfiguration, clock: any EngineClock = SystemClock(), operations: ServerOperations? = nil
    ) {
        self.engine = engine
        self.configuration = configuration
        self.clock = clock
        self.admin = AdminAPI(engine: engine, operatorKey: configuration.operatorKey, operations: operations)
    }

    /// Binds the HTTP port and starts serving; returns once listening (or throws why not).
    public func start() async throws(GatewayError) {
        let configuration = self.configuration
        let reference = LoopBound(self)
        loop.start(name: "kairos-gateway", priority: configuration.loopPriority) {
            let gateway = reference.value
            let server = HTTPServer(loop: gateway.loop, limits: configuration.limits, handler: gateway)
            gateway.server = server
            gateway.streamPriority = gateway.loop.scheduling?.priority == .realtime ? .medium : .background
            gateway.loop.onTick = { [unowned gateway] in
                gateway.server?.sweep(now: .now)
                gateway.streams?.sweep(now: .now)
            }
            do {
                try server.listen(host: configuration.host, port: configuration.httpPort)
                var streamPort: Int?
                if let port = configuration.streamPort {
                    let streams = StreamServer(loop: gateway.loop, limits: configuration.limits, handler: gateway)
                    try streams.listen(host: configuration.host, port: port)
                    gateway.streams = streams
                    streamPort = streams.boundPort
                }
                gateway.started.withLock {
                    $0.port = server.boundPort
                    $0.streamPort = streamPort
                }
            } catch let error as GatewayError {
                server.shutDown {}
                gateway.started.withLock { $0.error = error }
            } catch {
                server.shutDown {}
                gateway.started.withLock { $0.error = GatewayError("\(error)") }
            }
        }
        while true {
            let state = started.withLock { $0 }
            if let error = state.error {
                loop.stop()
                throw error
            }
            if state.port != nil { return }
            try? await Task.sleep(for: .milliseconds(2))
        }
    }

    /// How the loop thread is scheduled (known once `start` has returned).
    public var loopScheduling: LoopScheduling { loop.scheduling ?? LoopScheduling(priority: .normal, refusal: nil) }

    /// The HTTP port actually bound.
    public var httpPort: Int { started.withLock { $0.port } ?? 0 }

    /// The stream port actually bound (nil without a stream listener).
    public var streamPort: Int? { started.withLock { $0.streamPort } }

    /// `/readyz` answers 200 once this is set (after recovery).
    public func setReady(_ value: Bool) { ready.store(value, ordering: .releasing) }

    /// Stops accepting connections, answers the requests in flight, closes every connection
    /// and stops the loop.
    public func shutDown() async {
        let reference = LoopBound(self)
        let flag = LoopBound(DoneFlag())
        loop.execute {
            reference.value.streams?.shutDown()
            guard let server = reference.value.server else {
                flag.value.set()
                return
            }
            server.shutDown {
                // Streams finishing their last batch get a moment more.
                reference.value.waitForStreams { flag.value.set() }
            }
        }
        while !flag.value.isSet { try? await Task.sleep(for: .milliseconds(5)) }
        loop.stop()
        await loop.waitUntilFinished()
    }

    private func waitForStreams(_ finish: @escaping () -> Void, attempts: Int = 500) {
        guard let streams, !streams.connections.isEmpty, attempts > 0 else { return finish() }
        let reference = LoopBound(self)
        let box = LoopBound(ClosureBox(finish))
        Task {
            try? await Task.sleep(for: .milliseconds(10))
            loop.execute { reference.value.waitForStreams(box.value.body, attempts: attempts - 1) }
        }
    }

    private final class DoneFlag: Sendable {
        private let value = Atomic<Bool>(false)
        func set() { value.store(true, ordering: .releasing) }
        var isSet: Bool { value.load(ordering: .acquiring) }
    }

    // MARK: HTTPHandler

    static let ingestTypes: [String: EventType] = [
        "/v1/track": .track, "/v1/identify": .identify, "/v1/page": .page, "/v1/screen": .screen, "/v1/group": .group,
        "/v1/alias": .alias,
    ]

    func bodyLimit(method: String, path: String) -> Int? {
        // Compressed bodies are checked again once inflated.
        method == "POST" || method == "PUT" || method == "PATCH" ? bodyLimit(path: path) : 0
    }

    func bodyLimit(path: String) -> Int? {
        if path == "/v1/admin/contacts/import" { return configuration.maximumImportBytes }
        if path.hasPrefix("/v1/admin/") { return configuration.maximumAdminBodyBytes }
        if path == "/v1/batch" || path == "/v1/import" { return configuration.maximumBatchBytes }
        if Gateway.ingestTypes[path] != nil || path == "/v1/decide" { return configuration.maximumEventBytes }
        return nil
    }

    func check(method: String, path: String, contentLength: UInt64?, headers: [(name: String, value: String)]) -> HTTPResponse? {
        guard method == "POST" || method == "PUT" || method == "PATCH", let limit = bodyLimit(path: path) else { return nil }
        if let contentLength, contentLength > UInt64(limit) {
            return .error(
                413, "body_too_large",
                "the body is \(contentLength) bytes; \(path) takes at most \(limit) bytes"
                    + (path == "/v1/batch" ? " (split the batch)" : path.hasPrefix("/v1/admin/") ? "" : " per event (Segment's limit)"))
        }
        return nil
    }

    func commonHeaders(for request: HTTPRequest) -> [(name: String, value: String)] {
        guard let origin = request.header("origin") else { return [] }
        // A tenant's own origins (known from a write key in the header or query) replace the server's.
        let origins = requestKey(request).flatMap { tenant(forWriteKey: $0) }.flatMap { tenantOrigins($0) } ?? configuration.corsOrigins
        guard !origins.isEmpty, origins.contains("*") || origins.contains(origin) else { return [] }
        return [("access-control-allow-origin", origins.contains("*") ? "*" : origin), ("vary", "Origin")]
    }

    private func tenantOrigins(_ tenant: String) -> [String]? { try? engine.limits(tenant: tenant).corsOrigins }

    /// A browser call from an origin its tenant does not allow is refused, not only unreadable:
    /// an event sent from a page the tenant does not own must not count.
    private func originRefusal(_ request: HTTPRequest, tenant: String) -> HTTPResponse? {
        guard let origin = request.header("origin"), let origins = tenantOrigins(tenant) else { return nil }
        if origins.contains("*") || origins.contains(origin) { return nil }
        return .error(403, "origin_not_allowed", "origin \(origin) may not call this tenant from a browser")
    }

    /// A request over the tenant's rate: 429 with the seconds until it may try again.
    private func rateRefusal(tenant: String) -> HTTPResponse? {
        guard let limits = try? engine.limits(tenant: tenant), let rate = limits.requestsPerSecond else { return nil }
        guard let wait = rateLimiter.take(tenant: tenant, rate: rate, burst: limits.burst, now: .now) else { return nil }
        let seconds = max(1, Int(wait.seconds.rounded(.up)))
        var response = HTTPResponse.error(
            429, "rate_limited", "tenant '\(tenant)' is limited to \(JSONValue.number(rate).compactText) requests/s; retry in \(seconds) s")
        response.headers.append(("retry-after", String(seconds)))
        return response
    }

    /// The write key a request carries in its header or query (not the body, unread here).
    private func requestKey(_ request: HTTPRequest) -> String? {
        if let authorization = request.header("authorization") {
            let parts = authorization.split(separator: " ", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == "basic", let decoded = Data(base64Encoded: String(parts[1])),
                let text = String(data: decoded, encoding: .utf8)
            {
                return text.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init)
            }
            return nil
        }
        return request.queryItems["writeKey"]
    }

    /// The routes outside the admin API, as `handle` serves them (docs/openapi.yaml describes them).
    static let publicRoutes: [(method: String, path: String)] =
        [("GET", "/healthz"), ("GET", "/readyz"), ("POST", "/v1/batch"), ("POST", "/v1/import"), ("GET", "/v1/decide"), ("POST", "/v1/decide")]
        + ingestTypes.keys.sorted().map { ("POST", $0) }

    func handle(_ request: HTTPRequest, respond: @escaping @Sendable (HTTPResponse) -> Void) {
        switch (request.method, request.path) {
        case ("OPTIONS", _):
            respond(preflight(request))
        case ("GET", "/healthz"):
            respond(.json(200, ["status": "ok"]))
        case ("GET", "/readyz"):
            respond(
                ready.load(ordering: .acquiring)
                    ? .json(200, ["status": "ready"]) : .error(503, "not_ready", "recovery is still running"))
        case ("POST", "/v1/batch"), ("POST", "/v1/import"):
            ingest(request, type: nil, respond: respond)
        case ("POST", let path) where Gateway.ingestTypes[path] != nil:
            ingest(request, type: Gateway.ingestTypes[path], respond: respond)
        case ("POST", "/v1/decide"), ("GET", "/v1/decide"):
            decide(request, respond: respond)
        case (_, let path) where path.hasPrefix("/v1/admin/"):
            administer(request, respond: respond)
        case (_, let path) where Gateway.ingestTypes[path] != nil || path == "/v1/batch":
            respond(.error(405, "method_not_allowed", "\(path) takes POST"))
        default:
            respond(.error(404, "not_found", "no route \(request.method) \(request.path)"))
        }
    }

    private func preflight(_ request: HTTPRequest) -> HTTPResponse {
        guard !commonHeaders(for: request).isEmpty else {
            return .error(403, "origin_not_allowed", "this origin may not call Kairos from a browser")
        }
        return HTTPResponse(
            status: 204,
            headers: [
                ("access-control-allow-methods", "GET, POST, PUT, DELETE, OPTIONS"),
                ("access-control-allow-headers", request.header("access-control-request-headers") ?? "authorization, content-type"),
                ("access-control-max-age", "86400"),
            ])
    }

    // MARK: Shared steps

    /// The body as JSON: decompressed (gzip) and parsed, or the response explaining why not.
    private func readJSON(_ request: HTTPRequest, limit: Int) -> Result<JSONValue, HTTPResponseError> {
        Gateway.readJSON(request, limit: limit, parser: json)
    }

    private static func readJSON(_ request: HTTPRequest, limit: Int, parser: FastJSON) -> Result<JSONValue, HTTPResponseError> {
        let body: [UInt8]
        switch inflate(request, limit: limit) {
        case .success(let bytes): body = bytes
        case .failure(let error): return .failure(error)
        }
        guard !body.isEmpty else { return .failure(HTTPResponseError(.error(400, "empty_body", "the request has no body"))) }
        do {
            return .success(try parser.parse(body))
        } catch {
            return .failure(HTTPResponseError(.error(400, "malformed_json", "the body is not valid JSON: \(error.message)")))
        }
    }

    private func inflate(_ request: HTTPRequest, limit: Int) -> Result<[UInt8], HTTPResponseError> {
        Gateway.inflate(request, limit: limit)
    }

    /// The body decompressed (gzip) and within `limit`.
    private static func inflate(_ request: HTTPRequest, limit: Int) -> Result<[UInt8], HTTPResponseError> {
        var body = request.body
        switch request.header("content-encoding")?.lowercased() {
        case nil, "identity": break
        case "gzip", "x-gzip", "deflate":
            switch Gzip.inflate(body, limit: limit) {
            case .success(let inflated): body = inflated
            case .failure(let error):
                return .failure(
                    HTTPResponseError(
                        error.tooLarge
                            ? .error(413, "body_too_large", "the decompressed body exceeds \(limit) bytes")
                            : .error(400, "bad_encoding", "the body is not valid gzip: \(error.message)")))
            }
        case let other?:
            return .failure(HTTPResponseError(.error(415, "unsupported_encoding", "Content-Encoding '\(other)' is not supported (use gzip)")))
        }
        guard body.count <= limit else {
            return .failure(HTTPResponseError(.error(413, "body_too_large", "the body exceeds \(limit) bytes")))
        }
        return .success(body)
    }

    /// The tenant of the request's write key: HTTP Basic (the key as user name), `writeKey` in
    /// the body, or `writeKey` in the query.
    private func authenticate(_ request: HTTPRequest, body: JSONValue?) -> Result<String, HTTPResponseError> {
        var key: String?
        if let authorization = request.header("authorization") {
            let parts = authorization.split(separator: " ", maxSplits: 1)
            guard parts.count == 2, parts[0].lowercased() == "basic", let decoded = Data(base64Encoded: String(parts[1])),
                let text = String(data: decoded, encoding: .utf8)
            else {
                return .failure(
                    HTTPResponseError(.error(401, "bad_authorization", "Authorization must be Basic base64(\"WRITE_KEY:\")")))
            }
            key = text.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init)
        }
        if key?.isEmpty ?? true, case .object(let object)? = body, case .string(let bodyKey)? = object["writeKey"] { key = bodyKey }
        if key?.isEmpty ?? true { key = request.queryItems["writeKey"] }
        guard let key, !key.isEmpty else {
            return .failure(
                HTTPResponseError(
                    .error(401, "missing_write_key", "give the write key as the Basic auth user name or as \"writeKey\" in the body")))
        }
        guard let tenant = tenant(forWriteKey: key) else {
            if KeyScope(key: key) == .secret {
                return .failure(HTTPResponseError(.error(401, "invalid_write_key", "this is a secret key: ingest and decide take a write key")))
            }
            return .failure(HTTPResponseError(.error(401, "invalid_write_key", "the write key is not valid")))
        }
        return .success(tenant)
    }

    // MARK: Admin

    private func administer(_ request: HTTPRequest, respond: @escaping @Sendable (HTTPResponse) -> Void) {
        let now = clock.now()
        let caller: AdminAPI.Caller
        switch admin.authenticate(request, tenantOfKey: tenant(forKey:scope:)) {
        case .success(let value): caller = value
        case .failure(let error): return respond(error.response)
        }
        if case .tenant(let tenant) = caller, let refusal = rateRefusal(tenant: tenant) { return respond(refusal) }
        var request = request
        var body: JSONValue?
        if AdminAPI.takesRawBody(request) {
            switch inflate(request, limit: configuration.maximumImportBytes) {
            case .success(let bytes): request.body = bytes
            case .failure(let error): return respond(error.response)
            }
        } else if !request.body.isEmpty {
            switch readJSON(request, limit: configuration.maximumAdminBodyBytes) {
            case .success(let value): body = value
            case .failure(let error): return respond(error.response)
            }
        }
        let route: AdminRoute, call: AdminCall
        switch admin.route(request, caller: caller, body: body, now: now) {
        case .success(let found): (route, call) = found
        case .failure(let refusal): return respond(refusal.response)
        }
        // A contact read is answered here when its actor is not changing it at this moment:
        // waiting for a worker thread, then for the loop again, was most of a read's time.
        if let response = admin.runImmediately(route, call) { return respond(response) }
        let admin = self.admin
        guard let respond = admit(respond) else { return }
        Task(priority: request.method == "GET" ? .high : nil) { respond(await admin.run(route, call)) }
    }

    private static func respond(to error: EngineError) -> HTTPResponse {
        switch error.code {
        case .unavailable:
            return .error(503, "unavailable", "the events could not be made durable and were not accepted; retry later (\(error.message))")
        case .unknownTenant: return .error(401, "invalid_write_key", error.message)
        default: return .error(400, error.code.description, error.message)
        }
    }

    // MARK: Admission

    /// Counts a request in as engine work, or answers 503 when too many are in progress.
    /// The returned responder counts it out again.
    private func admit(_ respond: @escaping @Sendable (HTTPResponse) -> Void) -> (@Sendable (HTTPResponse) -> Void)? {
        let limit = configuration.limits.maximumInFlight
        guard inFlight < limit else {
            respond(.error(503, "overloaded", "\(limit) requests are in progress; retry shortly"))
            return nil
        }
        inFlight += 1
        let reference = LoopBound(self)
        let loop = self.loop
        return { response in
            loop.execute { reference.value.inFlight -= 1 }
            respond(response)
        }
    }

    // MARK: Ingest

    private static let success = HTTPResponse(
        status: 200, headers: [("content-type", "application/json")], body: Array(#"{"success":true}"#.utf8))

    private func ingest(_ request: HTTPRequest, type: EventType?, respond: @escaping @Sendable (HTTPResponse) -> Void) {
        let limit = type == nil ? configuration.maximumBatchBytes : configuration.maximumEventBytes
        // A key in the header or the query authenticates here and the body is parsed and decoded
        // on a worker: a batch of 500 KB took the loop, and every other connection, for
        // milliseconds. A key only in the body needs the body parsed first, here.
        var parsed: JSONValue?
        if requestKey(request)?.isEmpty ?? true {
            switch readJSON(request, limit: limit) {
            case .success(let value): parsed = value
            case .failure(let error): return respond(error.response)
            }
        }
        let tenant: String
        switch authenticate(request, body: parsed) {
        case .success(let value): tenant = value
        case .failure(let error): return respond(error.response)
        }
        if let refusal = originRefusal(request, tenant: tenant) ?? rateRefusal(tenant: tenant) { return respond(refusal) }
        guard let respond = admit(respond) else { return }
        let now = clock.now()
        let (engine, decoder, parsers) = (self.engine, self.decoder, self.parsers)
        let maximumEventBytes = configuration.maximumEventBytes
        Task {
            let body: JSONValue
            if let parsed {
                body = parsed
            } else {
                switch parsers.use({ Gateway.readJSON(request, limit: limit, parser: $0) }) {
                case .success(let value): body = value
                case .failure(let error): return respond(error.response)
                }
            }
            let (events, positions, errors) = Gateway.decode(
                body, type: type, receivedAt: now, decoder: decoder, checkSizes: request.body.count > maximumEventBytes,
                maximumEventBytes: maximumEventBytes)
            guard !events.isEmpty else {
                let message = errors.count == 1 ? errors[0].description : "none of the \(errors.count) events is valid"
                return respond(.error(400, "invalid_event", message, details: Gateway.details(errors)))
            }
            let accepted = events.count
            let isBatch = type == nil
            do {
                let report = try await engine.ingest(tenant: tenant, events: events, now: now)
                var rejected = errors
                for (position, result) in zip(positions, report.results) where result == .overContactLimit {
                    rejected.append(
                        EventValidationError(
                            index: isBatch ? position : nil, field: "", message: "would create a contact past the tenant's contact limit"))
                }
                guard !rejected.isEmpty else { return respond(Gateway.success) }
                if report.refusedCount == events.count && errors.isEmpty {
                    return respond(.error(403, "quota_exceeded", "the tenant's contact limit is reached", details: Gateway.details(rejected)))
                }
                respond(
                    .json(
                        200,
                        [
                            "success": true, "accepted": .number(Double(accepted - report.refusedCount)),
                            "duplicates": .number(Double(report.duplicateCount)), "errors": Gateway.details(rejected),
                        ]))
            } catch let error as EngineError {
                respond(Gateway.respond(to: error))
            } catch {
                respond(.error(500, "internal", "\(error)"))
            }
        }
    }

    /// The events of an ingest body (one event, or a batch), with each one's position in the
    /// batch and the errors of the invalid ones.
    private static func decode(
        _ body: JSONValue, type: EventType?, receivedAt now: Timestamp, decoder: EventDecoder, checkSizes: Bool, maximumEventBytes: Int
    ) -> (events: [Event], positions: [Int], errors: [EventValidationError]) {
        var events: [Event] = []
        var positions: [Int] = []
        var errors: [EventValidationError] = []
        if let type {
            switch decoder.decode(body, defaultType: type, receivedAt: now) {
            case .success(let event):
                events.append(event)
                positions.append(0)
            case .failure(let error): errors.append(error)
            }
            return (events, positions, errors)
        }
        switch decoder.decodeBatch(body, receivedAt: now) {
        case .failure(let error): errors.append(error)
        case .success(let results):
            let items = (body.objectValue?["batch"]?.arrayValue) ?? body.arrayValue ?? []
            events.reserveCapacity(results.count)
            for (index, result) in results.enumerated() {
                if checkSizes, index < items.count, items[index].jsonBytes().count > maximumEventBytes {
                    errors.append(EventValidationError(index: index, field: "", message: "is larger than \(maximumEventBytes) bytes"))
                    continue
                }
                switch result {
                case .success(let event):
                    events.append(event)
                    positions.append(index)
                case .failure(let error): errors.append(error)
                }
            }
        }
        return (events, positions, errors)
    }

    static func details(_ errors: [EventValidationError]) -> JSONValue {
        .array(errors.sorted { ($0.index ?? 0) < ($1.index ?? 0) }.map { error in
            var object: [String: JSONValue] = ["field": .string(error.field), "message": .string(error.description)]
            if let index = error.index { object["index"] = .number(Double(index)) }
            return .object(object)
        })
    }

    // MARK: Decide

    private func decide(_ request: HTTPRequest, respond: @escaping @Sendable (HTTPResponse) -> Void) {
        var fields: [String: JSONValue] = [:]
        if request.method == "POST" {
            switch readJSON(request, limit: configuration.maximumEventBytes) {
            case .success(.object(let object)): fields = object
            case .success(let other):
                return respond(.error(400, "invalid_request", "the body must be a JSON object, got \(other.typeName)"))
            case .failure(let error): return respond(error.response)
            }
        } else {
            for (name, value) in request.queryItems { fields[name] = .string(value) }
            if case .string(let list)? = fields["placements"] {
                fields["placements"] = .array(list.split(separator: ",").map { .string(String($0)) })
            }
        }
        let tenant: String
        switch authenticate(request, body: .object(fields)) {
        case .success(let value): tenant = value
        case .failure(let error): return respond(error.response)
        }
        if let refusal = originRefusal(request, tenant: tenant) ?? rateRefusal(tenant: tenant) { return respond(refusal) }
        guard case .array(let list)? = fields["placements"], !list.isEmpty, list.count <= 20 else {
            return respond(.error(400, "invalid_request", "placements is required: 1–20 placement ids"))
        }
        let placements = list.compactMap(\.stringValue)
        guard placements.count == list.count else {
            return respond(.error(400, "invalid_request", "placements must be strings"))
        }
        let userId = fields["userId"]?.stringValue ?? fields["user_id"]?.stringValue
        let anonymousId = fields["anonymousId"]?.stringValue ?? fields["anonymous_id"]?.stringValue
        guard userId != nil || anonymousId != nil else {
            return respond(.error(400, "invalid_request", "userId or anonymousId is required"))
        }
        let context = Gateway.requestContext(fields, request: request)
        let engine = self.engine
        let now = clock.now()
        guard let respond = admit(respond) else { return }
        Task {
            do {
                let answer = try await engine.decide(
                    tenant: tenant, visitor: Visitor(userId: userId, anonymousId: anonymousId), context: context,
                    placements: placements, now: now)
                respond(.json(200, ["decisions": .array(answer.decisions.map(Gateway.encode))]))
            } catch let error as EngineError {
                respond(Gateway.respond(to: error))
            } catch {
                respond(.error(500, "internal", "\(error)"))
            }
        }
    }

    static func requestContext(_ fields: [String: JSONValue], request: HTTPRequest) -> RequestContext {
        let context = fields["context"]?.objectValue ?? [:]
        func text(_ keys: String...) -> String? {
            for key in keys {
                if let value = context[key]?.stringValue ?? fields[key]?.stringValue { return value }
            }
            return nil
        }
        var utm: [String: String] = [:]
        if case .object(let campaign)? = context["utm"] ?? context["campaign"] {
            for (key, value) in campaign { if let value = value.stringValue { utm[key] = value } }
        }
        return RequestContext(
            url: text("url") ?? context["page"]?.objectValue?["url"]?.stringValue,
            referrer: text("referrer") ?? context["page"]?.objectValue?["referrer"]?.stringValue, utm: utm,
            userAgent: text("userAgent", "user_agent") ?? request.header("user-agent"),
            locale: text("locale") ?? request.header("accept-language")?.split(separator: ",").first.map(String.init),
            timeZone: text("timezone", "time_zone", "timeZone"))
    }

    static func encode(_ decision: PlacementDecision) -> JSONValue {
        var object: [String: JSONValue] = [
            "placement": .string(decision.placement), "decisionId": .string(decision.decisionId),
            "reason": .string(decision.reason.rawValue),
        ]
        if let variant = decision.variant { object["variant"] = .string(variant) }
        if let content = decision.content { object["content"] = .string(content) }
        if let format = decision.format { object["format"] = .string(format.rawValue) }
        if let data = decision.data { object["data"] = data }
        if let rule = decision.rule { object["rule"] = .string(rule) }
        if let assignment = decision.assignment {
            var experiment: [String: JSONValue] = [
                "id": .string(assignment.experiment), "variantIndex": .number(Double(assignment.variantIndex)),
                "inHoldout": .bool(assignment.inHoldout),
            ]
            if let variant = assignment.variant { experiment["variant"] = .string(variant) }
            object["experiment"] = .object(experiment)
        }
        return .object(object)
    }
}

// MARK: - The event stream

extension Gateway: StreamHandler {
    /// The tenant of a write key, through the key cache.
    func tenant(forWriteKey key: String) -> String? { tenant(forKey: key, scope: .write) }

    /// The tenant of a key of a scope, through a cache that is dropped whenever a key is revoked
    /// (hashing every request's key was a tenth of a contact read).
    func tenant(forKey key: String, scope: KeyScope) -> String? {
        // The scope is written in the key itself; the cache holds keys of every scope.
        guard KeyScope(key: key) == scope else { return nil }
        let revocations = engine.keyRevocationCount
        if revocations != keyCacheRevocations || keyCache.count > 10_000 {
            keyCache.removeAll()
            keyCacheRevocations = revocations
        }
        let now = clock.now()
        if let cached = keyCache[key] {
            if let expiry = cached.expiresAt, now >= expiry { return nil }
            return cached.tenant
        }
        guard let entry = engine.keyEntry(forKey: key, scope: scope) else { return nil }
        keyCache[key] = entry
        if let expiry = entry.expiresAt, now >= expiry { return nil }
        return entry.tenant
    }

    func parseJSON(_ bytes: UnsafeRawBufferPointer) -> Result<JSONValue, FastJSON.ParseError> {
        Result { () throws(FastJSON.ParseError) in try json.parse(bytes) }
    }

    func ingest(
        tenant: String, frames: [[UInt8]], decoder: StreamFrameDecoder, done: @escaping (StreamFrameDecoder.Batch, String?) -> Void
    ) {
        let engine = self.engine
        let loop = self.loop
        let callback = LoopBound(ClosureBox1<(StreamFrameDecoder.Batch, String?)> { done($0.0, $0.1) })
        let now = clock.now()
        Task(priority: streamPriority) {
            var batch = await decoder.decode(frames, receivedAt: now)
            var failure: String?
            if !batch.events.isEmpty {
                do { _ = try await engine.ingest(tenant: tenant, events: batch.events, now: now) } catch { failure = "\(error)" }
            }
            // The loop needs only the replies: the events are freed here, not on the loop thread.
            batch.events = []
            let outcome = (batch, failure)
            loop.execute { callback.value.body(outcome) }
        }
    }
}

/// simdjson parsers for work off the loop: one per concurrent user, reused (a parser keeps
/// its buffers between documents).
final class ParserPool: @unchecked Sendable {
    // @unchecked: a parser is used by one caller at a time, between `use`'s take and give back.
    private final class Parser: @unchecked Sendable {
        let json = FastJSON()
    }

    private let idle = Mutex<[Parser]>([])

    func use<Result>(_ body: (FastJSON) -> Result) -> Result {
        let parser = idle.withLock { $0.popLast() } ?? Parser()
        defer { idle.withLock { if $0.count < 8 { $0.append(parser) } } }
        return body(parser.json)
    }
}

/// Closures carried back to the loop thread in a `LoopBound`.
final class ClosureBox {
    let body: () -> Void
    init(_ body: @escaping () -> Void) { self.body = body }
}

final class ClosureBox1<Argument> {
    let body: (Argument) -> Void
    init(_ body: @escaping (Argument) -> Void) { self.body = body }
}

/// A response that ends a request early (bad body, bad key …).
struct HTTPResponseError: Error {
    var response: HTTPResponse
    init(_ response: HTTPResponse) { self.response = response }
}

/// Token buckets per tenant (loop thread only).
final class RateLimiter: @unchecked Sendable {
    // @unchecked: used on the loop thread only.
    private var buckets: [String: (tokens: Double, at: ContinuousClock.Instant)] = [:]

    /// Takes a token; nil when there was one, else how long until there is.
    func take(tenant: String, rate: Double, burst: Int?, now: ContinuousClock.Instant) -> Duration? {
        let capacity = Double(burst ?? max(1, Int(rate.rounded(.up))))
        var bucket = buckets[tenant] ?? (capacity, now)
        let elapsed = (now - bucket.at).seconds
        bucket.tokens = min(capacity, bucket.tokens + elapsed * rate)
        bucket.at = now
        defer { buckets[tenant] = bucket }
        if bucket.tokens >= 1 {
            bucket.tokens -= 1
            return nil
        }
        return .milliseconds(Int64(((1 - bucket.tokens) / rate * 1000).rounded(.up)))
    }
}
