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

/// The admin API under `/v1/admin/`: tenants (operator key), and for one tenant (its secret key)
/// definitions with their versions, lifecycle actions, contacts, metrics and keys. Every
/// tenant-scoped route acts on the key's tenant only; there is no tenant in the path to get wrong.
struct AdminAPI: Sendable {
    let engine: Engine
    let operatorKey: String?
    let operations: ServerOperations?

    /// Who is calling.
    enum Caller {
        case `operator`
        case tenant(String)
    }

    /// Path segments after `/v1/admin/` for the definition kinds.
    static let kinds: [String: DefinitionKind] = [
        "models": .scoringModel, "segments": .segment, "journeys": .journey, "placements": .placement,
        "experiments": .experiment,
    ]

    /// The caller of a request from its `Authorization: Bearer` key, or the refusal.
    func authenticate(_ request: HTTPRequest) -> Result<Caller, HTTPResponseError> {
        guard let authorization = request.header("authorization") else {
            return .failure(HTTPResponseError(.error(401, "missing_key", "give a secret key (or the operator key) as Authorization: Bearer KEY")))
        }
        let parts = authorization.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else {
            return .failure(HTTPResponseError(.error(401, "bad_authorization", "Authorization must be Bearer KEY")))
        }
        let key = String(parts[1]).trimmingCharacters(in: .whitespaces)
        if let operatorKey, !operatorKey.isEmpty, constantTimeEqual(key, operatorKey) { return .success(.operator) }
        if let tenant = engine.tenant(forKey: key, scope: .secret) { return .success(.tenant(tenant)) }
        if engine.tenant(forKey: key, scope: .write) != nil {
            return .failure(HTTPResponseError(.error(403, "write_key_not_allowed", "write keys can only ingest and decide; the admin API takes a secret key")))
        }
        return .failure(HTTPResponseError(.error(401, "invalid_key", "the key is not valid (unknown or revoked)")))
    }

    private func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let left = Array(a.utf8), right = Array(b.utf8)
        guard left.count == right.count else { return false }
        var difference: UInt8 = 0
        for index in left.indices { difference |= left[index] ^ right[index] }
        return difference == 0
    }

    /// Answers one admin request (called off the loop).
    func handle(_ request: HTTPRequest, caller: Caller, body: JSONValue?, now: Timestamp) async -> HTTPResponse {
        let parts = request.path.split(separator: "/").dropFirst(2).map(String.init)
        do {
            switch caller {
            case .operator: return try await operatorRoute(request.method, parts, body: body, now: now)
            case .tenant(let tenant): return try await tenantRoute(request, parts, tenant: tenant, body: body, now: now)
            }
        } catch let error as EngineError {
            return AdminAPI.response(for: error)
        } catch let error as HTTPResponseError {
            return error.response
        } catch {
            return .error(500, "internal", "\(error)")
        }
    }

    // MARK: Operator routes

    private func operatorRoute(_ method: String, _ parts: [String], body: JSONValue?, now: Timestamp) async throws -> HTTPResponse {
        let route = AdminAPI.route(parts)
        switch (method, route.count, route.0, route.1) {
        case ("GET", 1, "tenants", _):
            var list: [JSONValue] = []
            for id in engine.tenantIds {
                let stats = try await engine.stats(tenant: id)
                list.append(.object(["id": .string(id), "contacts": .number(Double(stats.contacts))]))
            }
            return .json(200, ["tenants": .array(list)])
        case ("POST", 1, "tenants", _):
            let object = try AdminAPI.object(body)
            guard case .string(let id)? = object["id"] else { throw AdminAPI.invalid("\"id\" is required: the tenant id (1–64 letters, digits, '-' or '_')") }
            try AdminAPI.refuseUnknown(object, allowed: ["id", "name", "demo"])
            if object["demo"] == .bool(true) {
                // The demo tenant's definitions: a working starting point (and what load tests run against).
                try await DemoTenant.install(into: engine, tenant: id, now: now)
            } else {
                try await engine.createTenant(id: id, name: object["name"]?.stringValue, now: now)
            }
            let writeKey = try await engine.createKey(tenant: id, scope: .write, now: now)
            let secretKey = try await engine.createKey(tenant: id, scope: .secret, now: now)
            return .json(201, ["id": .string(id), "writeKey": .string(writeKey), "secretKey": .string(secretKey)])
        case ("GET", 1, "status", _):
            return .json(200, await operations?.status() ?? ["tenants": .number(Double(engine.tenantIds.count))])
        case ("POST", 1, "snapshots", _):
            guard let operations else { return .error(501, "not_available", "this server keeps no snapshots") }
            return .json(201, try await operations.takeSnapshot())
        default:
            if AdminAPI.isTenantRoute(parts) {
                return .error(403, "secret_key_required", "the operator key manages tenants; tenant routes take the tenant's secret key")
            }
            return .error(404, "not_found", "no admin route \(method) /v1/admin/\(parts.joined(separator: "/"))")
        }
    }

    /// The first two path segments (empty when missing) and how many there are, to switch on.
    static func route(_ parts: [String]) -> (String, String, count: Int) {
        (parts.count > 0 ? parts[0] : "", parts.count > 1 ? parts[1] : "", parts.count)
    }

    static func isTenantRoute(_ parts: [String]) -> Bool {
        guard let first = parts.first else { return false }
        return kinds[first] != nil || ["overview", "contacts", "keys"].contains(first)
    }

    // MARK: Tenant routes

    private func tenantRoute(_ request: HTTPRequest, _ parts: [String], tenant: String, body: JSONValue?, now: Timestamp)
        async throws -> HTTPResponse
    {
        let method = request.method
        let route = AdminAPI.route(parts)
        switch (method, route.count, route.0, route.1) {
        case ("GET", 1, "overview", _):
            let stats = try await engine.stats(tenant: tenant)
            let counters = try engine.ingestCounters(tenant: tenant)
            return .json(
                200,
                [
                    "tenant": .string(tenant), "contacts": .number(Double(stats.contacts)), "accounts": .number(Double(stats.accounts)),
                    "eventsAccepted": .number(Double(counters.eventsAccepted)), "duplicatesSkipped": .number(Double(counters.duplicatesSkipped)),
                    "segments": .object(stats.segmentSizes.mapValues { .number(Double($0)) }),
                    "definitionsVersion": .number(Double(stats.definitionsVersion)),
                ])
        case ("GET", 1, "status", _), ("POST", 1, "snapshots", _), ("GET", 1, "tenants", _), ("POST", 1, "tenants", _):
            return .error(403, "operator_key_required", "this route takes the operator key")
        case ("GET", 1, "contacts", _):
            return try await contact(request, tenant: tenant, now: now)
        case ("GET", 1, "keys", _):
            let keys = try await engine.keys(tenant: tenant)
            return .json(200, ["keys": .array(keys.map { ["label": .string($0.label), "scope": .string($0.scope.rawValue), "createdAt": .string($0.createdAt.description)] })])
        case ("POST", 1, "keys", _):
            let object = try AdminAPI.object(body)
            try AdminAPI.refuseUnknown(object, allowed: ["scope"])
            guard let raw = object["scope"]?.stringValue, let scope = KeyScope(rawValue: raw) else {
                throw AdminAPI.invalid("\"scope\" must be \"write\" or \"secret\"")
            }
            let key = try await engine.createKey(tenant: tenant, scope: scope, now: now)
            return .json(201, ["key": .string(key), "label": .string(String(key.prefix(11))), "scope": .string(scope.rawValue)])
        case ("DELETE", 2, "keys", let label):
            try await engine.revokeKey(tenant: tenant, label: label, now: now)
            return HTTPResponse(status: 204)
        case (_, _, let first, _) where AdminAPI.kinds[first] != nil:
            return try await definitionRoute(request, Array(parts.dropFirst()), kind: AdminAPI.kinds[first]!, tenant: tenant, body: body, now: now)
        default:
            return .error(404, "not_found", "no admin route \(method) \(request.path)")
        }
    }

    private func contact(_ request: HTTPRequest, tenant: String, now: Timestamp) async throws -> HTTPResponse {
        let query = request.queryItems
        let reference: Engine.ContactReference
        if let userId = query["userId"], !userId.isEmpty {
            reference = .userId(userId)
        } else if let anonymousId = query["anonymousId"], !anonymousId.isEmpty {
            reference = .anonymousId(anonymousId)
        } else if let raw = query["id"], let id = UInt64(raw) {
            reference = .id(id)
        } else {
            throw AdminAPI.invalid("give userId, anonymousId or id in the query")
        }
        guard let view = try await engine.contact(tenant: tenant, reference, now: now) else {
            return .error(404, "unknown_contact", "no such contact")
        }
        return try AdminAPI.encodable(200, view)
    }

    // MARK: Definitions

    private func definitionRoute(
        _ request: HTTPRequest, _ rest: [String], kind: DefinitionKind, tenant: String, body: JSONValue?, now: Timestamp
    ) async throws -> HTTPResponse {
        let route = AdminAPI.route(rest)
        switch (request.method, route.count, route.0, route.1) {
        case ("GET", 0, _, _):
            let list = try await engine.definitions(tenant: tenant, kind)
            return .json(200, ["items": .array(list.map(AdminAPI.encode))])
        case ("POST", 1, "validate", _):
            let definition = try AdminAPI.object(body)
            try await validate(kind, .object(definition), tenant: tenant)
            return .json(200, ["valid": true])
        case ("POST", 0, _, _):
            let definition = try AdminAPI.object(body)
            guard definition["id"]?.stringValue != nil else { throw AdminAPI.invalid("the definition needs an \"id\"") }
            return try await define(kind, .object(definition), tenant: tenant, query: request.queryItems, now: now)
        case ("PUT", 1, let id, _):
            var definition = try AdminAPI.object(body)
            if let given = definition["id"]?.stringValue, given != id {
                throw AdminAPI.invalid("the definition's id '\(given)' differs from the path's '\(id)'")
            }
            definition["id"] = .string(id)
            return try await define(kind, .object(definition), tenant: tenant, query: request.queryItems, now: now)
        case ("GET", 1, let id, _):
            guard let current = try await engine.definitions(tenant: tenant, kind).first(where: { $0.id == id }) else {
                return .error(404, "unknown_definition", "no \(kind.rawValue) '\(id)'")
            }
            var object = AdminAPI.encode(current).objectValue ?? [:]
            if kind == .journey { object["status"] = .string(try await engine.journeyStatus(tenant: tenant, journey: id).rawValue) }
            return .json(200, .object(object))
        case ("GET", 2, let id, "versions"):
            let history = try await engine.definitionHistory(tenant: tenant, kind, id: id)
            guard !history.isEmpty else { return .error(404, "unknown_definition", "no \(kind.rawValue) '\(id)'") }
            return .json(200, ["versions": .array(history.map(AdminAPI.encode))])
        case ("DELETE", 1, let id, _):
            let receipt = try await engine.deleteDefinition(tenant: tenant, kind, id: id, now: now)
            return .json(200, AdminAPI.encode(receipt))
        case ("GET", 2, let id, "metrics") where kind == .journey:
            return try AdminAPI.encodable(200, try await engine.journeyReport(tenant: tenant, journey: id))
        case ("POST", 2, let id, let action) where kind == .journey:
            let status: JourneyStatus
            switch action {
            case "publish", "resume": status = .active
            case "pause": status = .paused
            case "archive": status = .archived
            case "enroll": return try await enroll(journey: id, tenant: tenant, body: body, now: now)
            default: return .error(404, "not_found", "journeys take publish, pause, resume, archive or enroll")
            }
            return .json(200, AdminAPI.encode(try await engine.setJourneyStatus(tenant: tenant, journey: id, status, now: now)))
        case ("POST", 2, let id, let action) where kind == .experiment:
            let status: ExperimentDefinition.Status
            switch action {
            case "start": status = .running
            case "stop": status = .stopped
            default: return .error(404, "not_found", "experiments take start or stop")
            }
            return .json(200, AdminAPI.encode(try await engine.setExperimentStatus(tenant: tenant, experiment: id, status, now: now)))
        case ("GET", 2, let id, "results") where kind == .experiment:
            let results = try await engine.experimentResults(tenant: tenant, experiment: id)
            return .json(200, AdminAPI.encode(results))
        case ("GET", 2, let id, "members") where kind == .segment:
            let query = request.queryItems
            let limit = min(max(Int(query["limit"] ?? "") ?? 100, 1), 1000)
            let page = try await engine.segmentMembers(tenant: tenant, segment: id, after: query["after"].flatMap(UInt64.init), limit: limit)
            var object: [String: JSONValue] = [
                "total": .number(Double(page.total)),
                "members": .array(page.members.map { member in
                    var entry: [String: JSONValue] = ["id": .number(Double(member.id)), "anonymousIds": .array(member.anonymousIds.map(JSONValue.string))]
                    if let userId = member.userId { entry["userId"] = .string(userId) }
                    return .object(entry)
                }),
            ]
            if let next = page.nextCursor { object["next"] = .string(String(next)) }
            return .json(200, .object(object))
        default:
            return .error(404, "not_found", "no admin route \(request.method) \(request.path)")
        }
    }

    private func validate(_ kind: DefinitionKind, _ json: JSONValue, tenant: String) async throws {
        switch kind {
        case .scoringModel: try await engine.validateScoringModel(tenant: tenant, json)
        case .segment: try await engine.validateSegment(tenant: tenant, json)
        case .journey: try await engine.validateJourney(tenant: tenant, json)
        case .placement: try await engine.validatePlacement(tenant: tenant, json)
        case .experiment: try await engine.validateExperiment(tenant: tenant, json)
        case .journeyStatus, .writeKey: throw AdminAPI.invalid("not a definition kind")
        }
    }

    private func define(_ kind: DefinitionKind, _ json: JSONValue, tenant: String, query: [String: String], now: Timestamp)
        async throws -> HTTPResponse
    {
        let receipt: DefinitionReceipt
        switch kind {
        case .scoringModel: receipt = try await engine.defineScoringModel(tenant: tenant, json, now: now)
        case .segment: receipt = try await engine.defineSegment(tenant: tenant, json, now: now)
        case .journey:
            receipt = try await engine.defineJourney(tenant: tenant, json, migrateEnrollments: query["migrate"] == "true", now: now)
        case .placement: receipt = try await engine.definePlacement(tenant: tenant, json, now: now)
        case .experiment: receipt = try await engine.defineExperiment(tenant: tenant, json, now: now)
        case .journeyStatus, .writeKey: throw AdminAPI.invalid("not a definition kind")
        }
        return .json(receipt.version == 1 ? 201 : 200, AdminAPI.encode(receipt))
    }

    private func enroll(journey: String, tenant: String, body: JSONValue?, now: Timestamp) async throws -> HTTPResponse {
        let object = try AdminAPI.object(body)
        try AdminAPI.refuseUnknown(object, allowed: ["userId", "anonymousId", "key"])
        let reference: Engine.ContactReference
        if let userId = object["userId"]?.stringValue {
            reference = .userId(userId)
        } else if let anonymousId = object["anonymousId"]?.stringValue {
            reference = .anonymousId(anonymousId)
        } else {
            throw AdminAPI.invalid("give userId or anonymousId")
        }
        let entered = try await engine.enroll(tenant: tenant, journey: journey, contact: reference, key: object["key"]?.stringValue, now: now)
        return .json(200, ["entered": .bool(entered)])
    }

    // MARK: Encoding

    static func encode(_ version: DefinitionVersion) -> JSONValue {
        var object: [String: JSONValue] = [
            "id": .string(version.id), "version": .number(Double(version.version)), "definedAt": .string(version.definedAt.description),
        ]
        object["definition"] = version.source ?? .null
        if version.source == nil { object["deleted"] = true }
        return .object(object)
    }

    static func encode(_ receipt: DefinitionReceipt) -> JSONValue {
        [
            "kind": .string(receipt.kind.rawValue), "id": .string(receipt.id), "version": .number(Double(receipt.version)),
            "definitionsVersion": .number(Double(receipt.definitionsVersion)),
            "contactsEvaluated": .number(Double(receipt.contactsEvaluated)),
        ]
    }

    static func encode(_ results: ExperimentResults) -> JSONValue {
        [
            "experiment": .string(results.experiment), "placement": .string(results.placement), "status": .string(results.status),
            "sampleRatioMismatch": .bool(results.sampleRatioMismatch),
            "sampleRatioMismatchPValue": .number(results.sampleRatioMismatchPValue),
            "variants": .array(results.variants.map { variant in
                var object: [String: JSONValue] = [
                    "variant": .string(variant.variant), "isControl": .bool(variant.isControl), "weight": .number(variant.weight),
                    "units": .number(Double(variant.units)), "conversions": .number(Double(variant.conversions)),
                    "conversionRate": .number(variant.conversionRate.isFinite ? variant.conversionRate : 0),
                ]
                if let bayesian = variant.bayesian, bayesian.chanceToBeatControl.isFinite {
                    object["chanceToBeatControl"] = .number(bayesian.chanceToBeatControl)
                }
                if let frequentist = variant.frequentist, frequentist.pValue.isFinite {
                    object["pValue"] = .number(frequentist.pValue)
                    if frequentist.lift.isFinite { object["relativeLift"] = .number(frequentist.lift) }
                }
                return .object(object)
            }),
        ]
    }

    static func encodable(_ status: Int, _ value: some Encodable) throws -> HTTPResponse {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        return HTTPResponse(status: status, headers: [("content-type", "application/json")], body: Array(try encoder.encode(value)))
    }

    // MARK: Errors

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

    static func invalid(_ message: String) -> HTTPResponseError { HTTPResponseError(.error(400, "invalid_request", message)) }

    static func response(for error: EngineError) -> HTTPResponse {
        switch error.code {
        case .unknownTenant: return .error(404, "unknown_tenant", error.message)
        case .unknownDefinition: return .error(404, "unknown_definition", error.message)
        case .tenantExists: return .error(409, "tenant_exists", error.message)
        case .definitionInUse: return .error(409, "definition_in_use", error.message)
        case .unavailable: return .error(503, "unavailable", "the change could not be made durable and was not applied; retry later (\(error.message))")
        case .invalidDefinition:
            let details: JSONValue? = error.definitionError.map { ["pointer": .string($0.pointer), "message": .string($0.message)] }
            return .error(422, "invalid_definition", error.message, details: details)
        default: return .error(400, error.code.description, error.message)
        }
    }
}
