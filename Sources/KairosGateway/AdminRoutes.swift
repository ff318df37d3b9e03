import Foundation
import KairosCore
import KairosEngine

extension AdminAPI {
    /// Every admin route. Literal paths come before parameterized ones of the same shape.
    static let routes: [AdminRoute] = operatorRoutes + tenantRoutes + contactRoutes + keyRoutes + definitionRoutes
    /// The routes by their number of path segments, in table order: a request is matched only
    /// against routes of its own length.
    static let routesByLength: [Int: [AdminRoute]] = Dictionary(grouping: routes, by: \.pattern.count)
    /// Routes without parameters by "METHOD path", for the requests the general matching would
    /// send to them anyway (no earlier route of that method also matches the path).
    static let literalRoutes: [String: AdminRoute] = {
        var table: [String: AdminRoute] = [:]
        for (index, route) in routes.enumerated() where !route.pattern.contains(where: { $0.hasPrefix("{") }) {
            let shadowed = routes[..<index].contains { $0.method == route.method && $0.match(route.pattern) != nil }
            if !shadowed { table[route.method + " " + route.pattern.joined(separator: "/")] = route }
        }
        return table
    }()

    // MARK: Operator

    static let operatorRoutes: [AdminRoute] = [
        AdminRoute("GET", "tenants", .operator) { api, _ in
            var list: [JSONValue] = []
            for id in api.engine.tenantIds {
                guard let stats = try? await api.engine.stats(tenant: id) else { continue }
                list.append(["id": .string(id), "contacts": .number(Double(stats.contacts))])
            }
            return .json(200, ["tenants": .array(list)])
        },
        AdminRoute("POST", "tenants", .operator) { api, call in
            let object = try AdminAPI.object(call.body)
            guard case .string(let id)? = object["id"] else { throw AdminAPI.invalid("\"id\" is required: the tenant id (1–64 letters, digits, '-' or '_')") }
            try AdminAPI.refuseUnknown(object, allowed: ["id", "name", "demo", "limits"])
            if case .object? = object["limits"] {
                // Checked before the tenant exists, so a bad limit creates nothing.
                do { _ = try TenantLimits.parse(object["limits"]!) } catch let error as DefinitionError {
                    throw EngineError(.invalidDefinition, "limits are invalid at \(error)", definitionError: error)
                }
            }
            if object["demo"] == .bool(true) {
                // The demo tenant's definitions: a working starting point (and what load tests run against).
                try await DemoTenant.install(into: api.engine, tenant: id, now: call.now)
            } else {
                try await api.engine.createTenant(id: id, name: object["name"]?.stringValue, now: call.now)
            }
            if let limits = object["limits"], !limits.isNull { try await api.engine.setLimits(tenant: id, limits, now: call.now) }
            let writeKey = try await api.engine.createKey(tenant: id, scope: .write, now: call.now)
            let secretKey = try await api.engine.createKey(tenant: id, scope: .secret, now: call.now)
            return .json(201, ["id": .string(id), "writeKey": .string(writeKey), "secretKey": .string(secretKey)])
        },
        AdminRoute("GET", "tenants/{tenant}", .operator) { api, call in
            let stats = try await api.engine.stats(tenant: call.tenant)
            return .json(
                200,
                [
                    "id": .string(call.tenant), "contacts": .number(Double(stats.contacts)),
                    "limits": try api.engine.limits(tenant: call.tenant).json,
                    "keys": .number(Double(try await api.engine.keys(tenant: call.tenant).count)),
                ])
        },
        AdminRoute("DELETE", "tenants/{tenant}", .operator) { api, call in
            try await api.engine.deleteTenant(id: call.tenant, now: call.now)
            return HTTPResponse(status: 204)
        },
        AdminRoute("GET", "tenants/{tenant}/limits", .operator) { api, call in
            .json(200, try api.engine.limits(tenant: call.tenant).json)
        },
        AdminRoute("PUT", "tenants/{tenant}/limits", .operator) { api, call in
            let limits = try await api.engine.setLimits(tenant: call.tenant, .object(try AdminAPI.object(call.body)), now: call.now)
            return .json(200, limits.json)
        },
        AdminRoute("GET", "status", .operator) { api, _ in
            .json(200, await api.operations?.status() ?? ["tenants": .number(Double(api.engine.tenantIds.count))])
        },
        AdminRoute("POST", "snapshots", .operator) { api, _ in
            guard let operations = api.operations else { return .error(409, "not_available", "this server keeps no snapshots (it runs without a data directory)") }
            return .json(201, try await operations.takeSnapshot())
        },
    ]

    // MARK: The tenant

    static let tenantRoutes: [AdminRoute] = [
        AdminRoute("GET", "overview", .tenant) { api, call in
            let stats = try await api.engine.stats(tenant: call.tenant)
            let counters = try api.engine.ingestCounters(tenant: call.tenant)
            let zoneName = call.query["timeZone"] ?? "UTC"
            guard let zone = TimeZone(identifier: zoneName) else {
                throw AdminAPI.invalid("timeZone '\(zoneName)' is not an IANA time zone (such as Europe/Paris)")
            }
            var calendar = Calendar(identifier: .gregorian)
            calendar.timeZone = zone
            let now = Date(timeIntervalSince1970: Double(call.now.milliseconds) / 1000)
            let midnight = Timestamp(milliseconds: Int64(calendar.startOfDay(for: now).timeIntervalSince1970 * 1000))
            let today = try api.engine.activity(tenant: call.tenant, since: midnight)
            return .json(
                200,
                [
                    "tenant": .string(call.tenant), "contacts": .number(Double(stats.contacts)), "accounts": .number(Double(stats.accounts)),
                    "eventsToday": .number(Double(today.events)), "mqlsToday": .number(Double(today.stages["MQL"] ?? 0)),
                    "stagesEnteredToday": .object(today.stages.mapValues { .number(Double($0)) }),
                    "today": ["timeZone": .string(zoneName), "since": .string(midnight.description)],
                    "eventsAccepted": .number(Double(counters.eventsAccepted)), "duplicatesSkipped": .number(Double(counters.duplicatesSkipped)),
                    "segments": .object(stats.segmentSizes.mapValues { .number(Double($0)) }),
                    "definitionsVersion": .number(Double(stats.definitionsVersion)),
                ])
        },
        AdminRoute("GET", "limits", .tenant) { api, call in .json(200, try api.engine.limits(tenant: call.tenant).json) },
        AdminRoute("GET", "imports/{import}", .tenant) { api, call in
            guard let progress = api.imports.progress(tenant: call.tenant, id: call.parameter("import")) else {
                return .error(404, "not_found", "no import '\(call.parameter("import"))' since the server started")
            }
            return .json(200, progress.json)
        },
    ]

    // MARK: Keys

    static let keyRoutes: [AdminRoute] = [
        AdminRoute("GET", "keys", .tenant) { api, call in
            let keys = try await api.engine.keys(tenant: call.tenant)
            return .json(
                200,
                [
                    "keys": .array(keys.map { key in
                        var object: [String: JSONValue] = [
                            "label": .string(key.label), "scope": .string(key.scope.rawValue), "createdAt": .string(key.createdAt.description),
                        ]
                        if let expiresAt = key.expiresAt { object["expiresAt"] = .string(expiresAt.description) }
                        return .object(object)
                    })
                ])
        },
        AdminRoute("POST", "keys", .tenant) { api, call in
            let object = try AdminAPI.object(call.body)
            try AdminAPI.refuseUnknown(object, allowed: ["scope"])
            guard let raw = object["scope"]?.stringValue, let scope = KeyScope(rawValue: raw) else {
                throw AdminAPI.invalid("\"scope\" must be \"write\" or \"secret\"")
            }
            let key = try await api.engine.createKey(tenant: call.tenant, scope: scope, now: call.now)
            return .json(201, ["key": .string(key), "label": .string(String(key.prefix(11))), "scope": .string(scope.rawValue)])
        },
        AdminRoute("DELETE", "keys/{label}", .tenant) { api, call in
            try await api.engine.revokeKey(tenant: call.tenant, label: call.parameter("label"), now: call.now)
            return HTTPResponse(status: 204)
        },
        AdminRoute("POST", "keys/{label}/rotate", .tenant) { api, call in
            let object = call.body == nil ? [:] : try AdminAPI.object(call.body)
            try AdminAPI.refuseUnknown(object, allowed: ["overlapSeconds"])
            var overlap = 86_400.0
            if let given = object["overlapSeconds"] {
                guard case .number(let seconds) = given, seconds >= 0, seconds <= 90 * 86_400 else {
                    throw AdminAPI.invalid("\"overlapSeconds\" must be a number of seconds from 0 to 7,776,000 (90 days)")
                }
                overlap = seconds
            }
            let label = call.parameter("label")
            let rotated = try await api.engine.rotateKey(
                tenant: call.tenant, label: label, overlap: .milliseconds(Int64(overlap * 1000)), now: call.now)
            return .json(
                201,
                [
                    "key": .string(rotated.key), "label": .string(String(rotated.key.prefix(11))),
                    "scope": .string(KeyScope(key: rotated.key)?.rawValue ?? ""), "replaces": .string(label),
                    "replacedKeyExpiresAt": .string(rotated.oldKeyExpiresAt.description),
                ])
        },
    ]

    // MARK: Definitions

    static let definitionRoutes: [AdminRoute] = kinds.flatMap { path, kind in definitionRoutes(path, kind) } + [
        AdminRoute("GET", "journeys/{id}/metrics", .tenant) { api, call in
            try AdminAPI.encodable(200, try await api.engine.journeyReport(tenant: call.tenant, journey: call.parameter("id")))
        },
        AdminRoute("POST", "journeys/{id}/enroll", .tenant) { api, call in
            let object = try AdminAPI.object(call.body)
            try AdminAPI.refuseUnknown(object, allowed: ["userId", "anonymousId", "email", "key"])
            let reference = try AdminAPI.reference(object.compactMapValues(\.stringValue))
            let entered = try await api.engine.enroll(
                tenant: call.tenant, journey: call.parameter("id"), contact: reference, key: object["key"]?.stringValue, now: call.now)
            return .json(200, ["entered": .bool(entered)])
        },
        AdminRoute("POST", "experiments/{id}/start", .tenant) { api, call in
            .json(200, encode(try await api.engine.setExperimentStatus(tenant: call.tenant, experiment: call.parameter("id"), .running, now: call.now)))
        },
        AdminRoute("POST", "experiments/{id}/stop", .tenant) { api, call in
            .json(200, encode(try await api.engine.setExperimentStatus(tenant: call.tenant, experiment: call.parameter("id"), .stopped, now: call.now)))
        },
        AdminRoute("GET", "experiments/{id}/results", .tenant) { api, call in
            .json(200, encode(try await api.engine.experimentResults(tenant: call.tenant, experiment: call.parameter("id"))))
        },
        AdminRoute("GET", "segments/{id}/members", .tenant) { api, call in
            let query = call.query
            if let format = query["format"], format != "json" {
                guard let fileFormat = ContactFileFormat(rawValue: format) else { throw AdminAPI.invalid("format must be json, csv or ndjson") }
                return try await AdminAPI.export(api, call, segment: call.parameter("id"), format: fileFormat)
            }
            let limit = try AdminAPI.integer(query, "limit", 1...1000, default: 100)
            let page = try await api.engine.segmentMembers(
                tenant: call.tenant, segment: call.parameter("id"), after: try AdminAPI.cursor(query), limit: limit)
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
        },
    ] + ["publish", "pause", "resume", "archive"].map { action in
        AdminRoute("POST", "journeys/{id}/\(action)", .tenant) { api, call in
            let status: JourneyStatus = action == "pause" ? .paused : action == "archive" ? .archived : .active
            return .json(200, encode(try await api.engine.setJourneyStatus(tenant: call.tenant, journey: call.parameter("id"), status, now: call.now)))
        }
    }

    /// List, define, validate, read, version history and delete for one kind.
    static func definitionRoutes(_ path: String, _ kind: DefinitionKind) -> [AdminRoute] {
        [
            AdminRoute("GET", path, .tenant) { api, call in
                let list = try await api.engine.definitions(tenant: call.tenant, kind)
                return .json(200, ["items": .array(list.map(AdminAPI.encode))])
            },
            AdminRoute("POST", "\(path)/validate", .tenant) { api, call in
                try await api.validate(kind, .object(try AdminAPI.object(call.body)), tenant: call.tenant)
                return .json(200, ["valid": true])
            },
            AdminRoute("POST", path, .tenant) { api, call in
                let definition = try AdminAPI.object(call.body)
                guard definition["id"]?.stringValue != nil else { throw AdminAPI.invalid("the definition needs an \"id\"") }
                return try await api.define(kind, .object(definition), call: call)
            },
            AdminRoute("PUT", "\(path)/{id}", .tenant) { api, call in
                var definition = try AdminAPI.object(call.body)
                let id = call.parameter("id")
                if let given = definition["id"], given.stringValue != id {
                    throw AdminAPI.invalid("the definition's id \(given.jsonText) differs from the path's '\(id)'")
                }
                definition["id"] = .string(id)
                return try await api.define(kind, .object(definition), call: call)
            },
            AdminRoute("GET", "\(path)/{id}", .tenant) { api, call in
                let id = call.parameter("id")
                guard let current = try await api.engine.definitions(tenant: call.tenant, kind).first(where: { $0.id == id }) else {
                    return .error(404, "not_found", "no \(kind.rawValue) '\(id)'")
                }
                var object = AdminAPI.encode(current).objectValue ?? [:]
                if kind == .journey { object["status"] = .string(try await api.engine.journeyStatus(tenant: call.tenant, journey: id).rawValue) }
                return .json(200, .object(object))
            },
            AdminRoute("GET", "\(path)/{id}/versions", .tenant) { api, call in
                let id = call.parameter("id")
                let history = try await api.engine.definitionHistory(tenant: call.tenant, kind, id: id)
                guard !history.isEmpty else { return .error(404, "not_found", "no \(kind.rawValue) '\(id)'") }
                return .json(200, ["versions": .array(history.map(AdminAPI.encode))])
            },
            AdminRoute("DELETE", "\(path)/{id}", .tenant) { api, call in
                .json(200, encode(try await api.engine.deleteDefinition(tenant: call.tenant, kind, id: call.parameter("id"), now: call.now)))
            },
        ]
    }

    func validate(_ kind: DefinitionKind, _ json: JSONValue, tenant: String) async throws {
        switch kind {
        case .scoringModel: try await engine.validateScoringModel(tenant: tenant, json)
        case .segment: try await engine.validateSegment(tenant: tenant, json)
        case .journey: try await engine.validateJourney(tenant: tenant, json)
        case .placement: try await engine.validatePlacement(tenant: tenant, json)
        case .experiment: try await engine.validateExperiment(tenant: tenant, json)
        case .template: try await engine.validateTemplate(tenant: tenant, json)
        case .journeyStatus, .writeKey, .limits: throw AdminAPI.invalid("not a definition kind")
        }
    }

    func define(_ kind: DefinitionKind, _ json: JSONValue, call: AdminCall) async throws -> HTTPResponse {
        let tenant = call.tenant, now = call.now
        let receipt: DefinitionReceipt
        switch kind {
        case .scoringModel: receipt = try await engine.defineScoringModel(tenant: tenant, json, now: now)
        case .segment: receipt = try await engine.defineSegment(tenant: tenant, json, now: now)
        case .journey:
            receipt = try await engine.defineJourney(tenant: tenant, json, migrateEnrollments: call.query["migrate"] == "true", now: now)
        case .placement: receipt = try await engine.definePlacement(tenant: tenant, json, now: now)
        case .experiment: receipt = try await engine.defineExperiment(tenant: tenant, json, now: now)
        case .template: receipt = try await engine.defineTemplate(tenant: tenant, json, now: now)
        case .journeyStatus, .writeKey, .limits: throw AdminAPI.invalid("not a definition kind")
        }
        return .json(receipt.version == 1 ? 201 : 200, AdminAPI.encode(receipt))
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
            "sampleRatioMismatchPValue": .number(results.sampleRatioMismatchPValue.isFinite ? results.sampleRatioMismatchPValue : 1),
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
}

extension JSONValue {
    /// The value as compact JSON text, for messages.
    var jsonText: String { String(decoding: jsonBytes(), as: UTF8.self) }
}
