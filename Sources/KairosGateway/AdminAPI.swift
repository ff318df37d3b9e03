import Foundation
import KairosCore
import KairosEngine

/// What the server process itself offers the admin API (the gateway knows only the engine).
public struct ServerOperations: Sendable {
    /// Writes a snapshot now and describes it.
    public var takeSnapshot: @Sendable () async throws -> JSONValue
    /// The server's own figures: version, uptime, recovery, journal and snapshots.
    public var status: @Sendable () async -> JSONValue

    public init(takeSnapshot: @escaping @Sendable () async throws -> JSONValue, status: @escaping @Sendable () async -> JSONValue) {
        self.takeSnapshot = takeSnapshot
        self.status = status
    }
}

/// One admin request on its way to a route: the caller's tenant, path parameters, the body.
struct AdminCall: Sendable {
    var request: HTTPRequest
    /// The key's tenant (tenant routes), or the path's `{tenant}` (operator routes).
    var tenant: String
    var parameters: [String: String]
    /// The parsed JSON body (nil when empty, and for routes that take other media types).
    var body: JSONValue?
    var now: Timestamp

    let query: [String: String]

    init(request: HTTPRequest, tenant: String, parameters: [String: String], body: JSONValue?, now: Timestamp) {
        self.request = request
        self.tenant = tenant
        self.parameters = parameters
        self.body = body
        self.now = now
        self.query = request.queryItems
    }

    func parameter(_ name: String) -> String { parameters[name] ?? "" }
}

/// The admin API under `/v1/admin/`: tenants (operator key), and for one tenant (its secret key)
/// definitions with their versions, lifecycle actions, contacts, imports and exports, metrics and
/// keys. Every tenant-scoped route acts on the key's tenant only; there is no tenant in the path
/// to get wrong. Routes are one table (`routes`), which `docs/openapi.yaml` describes.
struct AdminAPI: Sendable {
    let engine: Engine
    let operatorKey: String?
    let operations: ServerOperations?
    let imports = ImportJobs()

    /// Who is calling.
    enum Caller {
        case `operator`
        case tenant(String)
    }

    /// Path segments after `/v1/admin/` for the definition kinds.
    static let kinds: [(path: String, kind: DefinitionKind)] = [
        ("models", .scoringModel), ("segments", .segment), ("journeys", .journey), ("templates", .template),
        ("placements", .placement), ("experiments", .experiment),
    ]

    /// The caller of a request from its `Authorization: Bearer` key, or the refusal.
    func authenticate(_ request: HTTPRequest, tenantOfKey: (String, KeyScope) -> String?) -> Result<Caller, HTTPResponseError> {
        guard let authorization = request.header("authorization") else {
            return .failure(HTTPResponseError(.error(401, "missing_key", "give a secret key (or the operator key) as Authorization: Bearer KEY")))
        }
        // Byte by byte: String's split and trimming walk grapheme clusters, a cost on every request.
        let bytes = authorization.utf8
        let isBlank = { (byte: UInt8) in byte == 32 || byte == 9 }
        guard let space = bytes.firstIndex(of: 32),
            bytes[..<space].count == 6,
            zip(bytes[..<space], "bearer".utf8).allSatisfy({ $0 | 0x20 == $1 }),
            let start = bytes[space...].firstIndex(where: { !isBlank($0) }),
            let last = bytes.lastIndex(where: { !isBlank($0) })
        else {
            return .failure(HTTPResponseError(.error(401, "bad_authorization", "Authorization must be Bearer KEY")))
        }
        let key = String(Substring(bytes[start...last]))
        if let operatorKey, !operatorKey.isEmpty, constantTimeEqual(key, operatorKey) { return .success(.operator) }
        if let tenant = tenantOfKey(key, .secret) { return .success(.tenant(tenant)) }
        if tenantOfKey(key, .write) != nil {
            return .failure(HTTPResponseError(.error(403, "write_key_not_allowed", "write keys can only ingest and decide; the admin API takes a secret key")))
        }
        return .failure(HTTPResponseError(.error(401, "invalid_key", "the key is not valid (unknown, revoked or expired)")))
    }

    /// Compares every byte whatever differs first, without copying either key.
    private func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        var (a, b) = (a, b)
        return a.withUTF8 { left in
            b.withUTF8 { right in
                guard left.count == right.count else { return false }
                var difference: UInt8 = 0
                for index in left.indices { difference |= left[index] ^ right[index] }
                return difference == 0
            }
        }
    }

    /// Whether a request goes to a route that takes its body as it is (not JSON).
    static func takesRawBody(_ request: HTTPRequest) -> Bool {
        request.method == "POST" && request.path == "/v1/admin/contacts/import"
    }

    /// Answers one admin request (called off the loop).
    func handle(_ request: HTTPRequest, caller: Caller, body: JSONValue?, now: Timestamp) async -> HTTPResponse {
        switch route(request, caller: caller, body: body, now: now) {
        case .failure(let refusal): return refusal.response
        case .success(let (route, call)): return await run(route, call)
        }
    }

    /// The route a request goes to and the call it makes, or why there is none.
    func route(_ request: HTTPRequest, caller: Caller, body: JSONValue?, now: Timestamp) -> Result<(AdminRoute, AdminCall), HTTPResponseError> {
        let prefix = "/v1/admin/"
        if request.path.hasPrefix(prefix),
            let route = AdminAPI.literalRoutes[request.method + " " + request.path.dropFirst(prefix.count)]
        {
            return call(route, parameters: [:], request, caller: caller, body: body, now: now)
        }
        let parts = request.path.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false).dropFirst(3)
            .map { String(Substring($0)) }
        let candidates = (AdminAPI.routesByLength[parts.count] ?? []).compactMap { route in route.match(parts).map { (route, $0) } }
        guard !candidates.isEmpty else {
            return .failure(HTTPResponseError(.error(404, "not_found", "no admin route \(request.method) \(request.path)")))
        }
        guard let (route, parameters) = candidates.first(where: { $0.0.method == request.method }) else {
            let allowed = Set(candidates.map(\.0.method)).sorted().joined(separator: ", ")
            var response = HTTPResponse.error(405, "method_not_allowed", "\(request.path) takes \(allowed)")
            response.headers.append(("allow", allowed))
            return .failure(HTTPResponseError(response))
        }
        return call(route, parameters: parameters, request, caller: caller, body: body, now: now)
    }

    /// The call a request makes on its route, once the caller's key may use it.
    private func call(
        _ route: AdminRoute, parameters: [String: String], _ request: HTTPRequest, caller: Caller, body: JSONValue?, now: Timestamp
    ) -> Result<(AdminRoute, AdminCall), HTTPResponseError> {
        let tenant: String
        switch (route.scope, caller) {
        case (.operator, .operator): tenant = parameters["tenant"] ?? ""
        case (.tenant, .tenant(let id)): tenant = id
        case (.operator, .tenant):
            return .failure(HTTPResponseError(.error(403, "operator_key_required", "this route takes the operator key")))
        case (.tenant, .operator):
            return .failure(
                HTTPResponseError(
                    .error(403, "secret_key_required", "the operator key manages tenants; tenant routes take the tenant's secret key")))
        }
        return .success((route, AdminCall(request: request, tenant: tenant, parameters: parameters, body: body, now: now)))
    }

    func run(_ route: AdminRoute, _ call: AdminCall) async -> HTTPResponse {
        do {
            return try await route.handler(self, call)
        } catch {
            return AdminAPI.response(for: error)
        }
    }

    /// The answer of a route that can answer at once on the caller's thread, or nil when it
    /// cannot now (then `run` it).
    func runImmediately(_ route: AdminRoute, _ call: AdminCall) -> HTTPResponse? {
        guard let immediate = route.immediate else { return nil }
        do {
            return try immediate(self, call)
        } catch {
            return AdminAPI.response(for: error)
        }
    }

    private static func response(for error: any Error) -> HTTPResponse {
        switch error {
        case let error as EngineError: return response(for: error)
        case let error as HTTPResponseError: return error.response
        default: return .error(500, "internal", "\(error)")
        }
    }

    // MARK: Helpers for routes

    static func object(_ body: JSONValue?) throws(HTTPResponseError) -> [String: JSONValue] {
        guard let body else { throw invalid("the request needs a JSON object body") }
        guard case .object(let object) = body else { throw invalid("the body must be a JSON object, got \(body.typeName)") }
        return object
    }

    static func refuseUnknown(_ object: [String: JSONValue], allowed: Set<String>) throws(HTTPResponseError) {
        if let unknown = object.keys.sorted().first(where: { !allowed.contains($0) }) {
            throw invalid("unknown field \"\(unknown)\" (allowed: \(allowed.sorted().joined(separator: ", ")))")
        }
    }

    /// A whole number from the query within `range`, or `fallback` when absent.
    static func integer(_ query: [String: String], _ name: String, _ range: ClosedRange<Int>, default fallback: Int) throws(HTTPResponseError)
        -> Int
    {
        guard let text = query[name], !text.isEmpty else { return fallback }
        guard let value = Int(text), range.contains(value) else {
            throw invalid("\(name) must be a whole number from \(range.lowerBound) to \(range.upperBound), got '\(text)'")
        }
        return value
    }

    static func cursor(_ query: [String: String]) throws(HTTPResponseError) -> UInt64 {
        guard let text = query["after"], !text.isEmpty else { return 0 }
        guard let value = UInt64(text) else { throw invalid("after must be a cursor from a previous page, got '\(text)'") }
        return value
    }

    static func invalid(_ message: String) -> HTTPResponseError { HTTPResponseError(.error(400, "invalid_request", message)) }

    static func response(for error: EngineError) -> HTTPResponse {
        switch error.code {
        case .unknownTenant: return .error(404, "unknown_tenant", error.message)
        case .unknownDefinition: return .error(404, "not_found", error.message)
        case .tenantExists: return .error(409, "tenant_exists", error.message)
        case .definitionInUse: return .error(409, "definition_in_use", error.message)
        case .quotaExceeded: return .error(403, "quota_exceeded", error.message)
        case .unavailable: return .error(503, "unavailable", "the change could not be made durable and was not applied; retry later (\(error.message))")
        case .invalidDefinition:
            let details: JSONValue? = error.definitionError.map { ["pointer": .string($0.pointer), "message": .string($0.message)] }
            return .error(422, "invalid_definition", error.message, details: details)
        default: return .error(400, error.code.description, error.message)
        }
    }

    static func encodable(_ status: Int, _ value: some Encodable) throws -> HTTPResponse {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        return HTTPResponse(status: status, headers: [("content-type", "application/json")], body: Array(try encoder.encode(value)))
    }
}

/// One admin route: method, path pattern (`{name}` segments are parameters) and who may call it.
struct AdminRoute: Sendable {
    enum Scope: Sendable {
        /// The operator key.
        case `operator`
        /// A tenant's secret key.
        case tenant
    }

    let method: String
    /// Segments after `/v1/admin/`.
    let pattern: [String]
    let scope: Scope
    let handler: @Sendable (AdminAPI, AdminCall) async throws -> HTTPResponse
    /// For reads that can often be answered without waiting (on the loop, no thread hop):
    /// the answer, or nil when `handler` must run after all.
    let immediate: (@Sendable (AdminAPI, AdminCall) throws -> HTTPResponse?)?

    init(
        _ method: String, _ path: String, _ scope: Scope,
        immediate: (@Sendable (AdminAPI, AdminCall) throws -> HTTPResponse?)? = nil,
        _ handler: @escaping @Sendable (AdminAPI, AdminCall) async throws -> HTTPResponse
    ) {
        self.method = method
        self.pattern = path.split(separator: "/").map(String.init)
        self.scope = scope
        self.immediate = immediate
        self.handler = handler
    }

    /// The path as OpenAPI writes it.
    var path: String { "/v1/admin/" + pattern.joined(separator: "/") }

    func match(_ parts: [String]) -> [String: String]? {
        guard parts.count == pattern.count else { return nil }
        // Literal segments first: most routes fail there, before any dictionary is built.
        for (index, expected) in pattern.enumerated() where !expected.hasPrefix("{") && expected != parts[index] { return nil }
        var parameters: [String: String] = [:]
        for (expected, actual) in zip(pattern, parts) {
            if expected.hasPrefix("{") {
                guard !actual.isEmpty else { return nil }
                parameters[String(expected.dropFirst().dropLast())] = QueryString.decode(actual, plusIsSpace: false)
            } else if expected != actual {
                return nil
            }
        }
        return parameters
    }
}
