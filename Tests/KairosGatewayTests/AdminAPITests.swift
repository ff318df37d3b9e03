import Foundation
import KairosCore
import KairosEngine
import Testing

@testable import KairosGateway

@Suite("Admin API")
struct AdminAPITests {
    static let operatorKey = "ok_test_operator_key"

    static func start() async throws -> (TestServer, secret: String) {
        let server = try await TestServer.start { $0.operatorKey = operatorKey }
        let secret = try await server.engine.createKey(tenant: DemoTenant.id, scope: .secret, now: t0)
        return (server, secret)
    }

    func call(_ port: Int, _ method: String, _ path: String, key: String?, body: JSONValue? = nil) async throws -> RawResponse {
        var headers: [String: String] = [:]
        if let key { headers["authorization"] = "Bearer " + key }
        let bytes = body?.jsonBytes() ?? []
        if !bytes.isEmpty { headers["content-type"] = "application/json" }
        let response = try await exchange(port, request(method, path, headers: headers, body: bytes))
        return try #require(response)
    }

    @Test("Authorization: the Bearer scheme in any case, blanks around the key; other forms are refused")
    func authorizationForms() async throws {
        let (server, secret) = try await AdminAPITests.start()
        defer { Task { await server.stop() } }
        func status(_ authorization: String) async throws -> (Int, String?) {
            let response = try await exchange(
                server.port, request("GET", "/v1/admin/overview", headers: ["authorization": authorization]))
            let answer = try #require(response)
            return (answer.status, answer.json?.objectValue?["code"]?.stringValue)
        }
        for accepted in ["Bearer \(secret)", "bearer \(secret)", "BEARER \(secret)", "Bearer   \(secret)", "Bearer \(secret) \t"] {
            #expect(try await status(accepted).0 == 200, "\(accepted)")
        }
        for (refused, code) in [
            ("Basic \(secret)", "bad_authorization"), ("Bearer", "bad_authorization"), ("Bearer    ", "bad_authorization"),
            ("Bearerx \(secret)", "bad_authorization"), ("Bearer \(secret)x", "invalid_key"), ("Bearer \(secret) extra", "invalid_key"),
        ] {
            let (answer, answerCode) = try await status(refused)
            #expect(answer == 401 && answerCode == code, "\(refused)")
        }
        // Unknown and parameterised paths still answer 404 and 405 through the table by length.
        let unknown = try await call(server.port, "GET", "/v1/admin/contacts/unknown/extra", key: secret)
        #expect(unknown.status == 404)
        let wrongMethod = try await call(server.port, "DELETE", "/v1/admin/overview", key: secret)
        #expect(wrongMethod.status == 405 && wrongMethod.headers["allow"] == "GET")
    }

    @Test("the operator creates tenants with a write key and a secret key; tenant routes need the secret key")
    func operatorCreatesTenants() async throws {
        let (server, secret) = try await AdminAPITests.start()
        defer { Task { await server.stop() } }
        let created = try await call(server.port, "POST", "/v1/admin/tenants", key: AdminAPITests.operatorKey, body: ["id": "acme"])
        #expect(created.status == 201)
        let writeKey = try #require(created.json?.objectValue?["writeKey"]?.stringValue)
        let secretKey = try #require(created.json?.objectValue?["secretKey"]?.stringValue)
        #expect(writeKey.hasPrefix("wk_") && secretKey.hasPrefix("sk_"))

        let again = try await call(server.port, "POST", "/v1/admin/tenants", key: AdminAPITests.operatorKey, body: ["id": "acme"])
        #expect(again.status == 409)
        let typo = try await call(server.port, "POST", "/v1/admin/tenants", key: AdminAPITests.operatorKey, body: ["id": "x", "nmae": "y"])
        #expect(typo.status == 400 && typo.text.contains("nmae"))

        let list = try await call(server.port, "GET", "/v1/admin/tenants", key: AdminAPITests.operatorKey)
        #expect(list.text.contains("\"acme\"") && list.text.contains("\"demo\""))
        // A tenant's secret key is not an operator key, and the operator key is not a tenant's.
        #expect(try await call(server.port, "GET", "/v1/admin/tenants", key: secret).status == 403)
        #expect(try await call(server.port, "GET", "/v1/admin/overview", key: AdminAPITests.operatorKey).status == 403)

        // The new tenant's write key ingests into the new tenant only.
        let track = try await exchange(
            server.port,
            request(
                "POST", "/v1/track", headers: ["authorization": "Basic " + Data((writeKey + ":").utf8).base64EncodedString()],
                body: Array(#"{"userId": "zoe", "event": "Signed Up"}"#.utf8)))
        #expect(track?.status == 200)
        let overview = try await call(server.port, "GET", "/v1/admin/overview", key: secretKey)
        #expect(overview.json?.objectValue?["eventsAccepted"] == .number(1))
        #expect(try await server.engine.contact(tenant: DemoTenant.id, .userId("zoe"), now: t0) == nil)
    }

    @Test("isolation: every tenant route refuses a write key, a revoked key and no key, and another tenant's key sees nothing")
    func isolationMatrix() async throws {
        let (server, secret) = try await AdminAPITests.start()
        defer { Task { await server.stop() } }
        let ingest = try await exchange(
            server.port,
            request("POST", "/v1/identify", headers: ["authorization": server.basic], body: Array(#"{"userId": "ana", "traits": {"email": "ana@example.com"}}"#.utf8)))
        #expect(ingest?.status == 200)
        let created = try await call(server.port, "POST", "/v1/admin/tenants", key: AdminAPITests.operatorKey, body: ["id": "other"])
        let otherSecret = try #require(created.json?.objectValue?["secretKey"]?.stringValue)
        let revoked = try await server.engine.createKey(tenant: DemoTenant.id, scope: .secret, now: t0)
        try await server.engine.revokeKey(tenant: DemoTenant.id, label: String(revoked.prefix(11)), now: t0)

        // Every tenant route of the table, with the demo tenant's ids in its path.
        let demoIds = [
            "models": "engagement", "segments": "dormant", "journeys": "trial-onboarding", "placements": "home-hero",
            "experiments": "hero-headline", "templates": "welcome", "keys": String(secret.prefix(11)), "imports": "first",
        ]
        let queries = [
            "/v1/admin/contacts": "?userId=ana", "/v1/admin/contacts/events": "?userId=ana", "/v1/admin/contacts/scores": "?userId=ana",
            "/v1/admin/contacts/search": "?trait=email&prefix=ana", "/v1/admin/contacts/export": "?format=ndjson",
        ]
        let routes: [(String, String, JSONValue?)] = AdminAPI.routes.filter { $0.scope == .tenant }.map { route in
            let kind = route.pattern.first ?? ""
            let path = route.pattern.map { $0.hasPrefix("{") ? demoIds[kind] ?? "x" : $0 }.joined(separator: "/")
            let full = "/v1/admin/" + path
            let body: JSONValue? = route.method == "GET" || route.method == "DELETE" ? nil
                : kind == "segments" ? ["condition": ["trait": "plan", "op": "eq", "value": "pro"]]
                : kind == "contacts" ? ["traits": ["plan": "pro"]] : kind == "keys" ? ["scope": "secret"] : ["userId": "ana"]
            return (route.method, full + (queries[full] ?? ""), body)
        }
        #expect(routes.count > 50)
        for (method, path, body) in routes {
            for (label, key, statuses) in [
                ("write key", server.key, [403]), ("revoked key", revoked, [401]), ("no key", nil, [401]),
                ("garbage", "sk_nope", [401]),
            ] as [(String, String?, [Int])] {
                let response = try await call(server.port, method, path, key: key, body: body)
                #expect(statuses.contains(response.status), "\(method) \(path) with \(label): \(response.status)")
                #expect(!response.text.contains("ana") && !response.text.contains("dormant\""), "\(method) \(path) with \(label) leaked")
            }
            // Another tenant's secret key acts on its own (empty) tenant: nothing of demo's shows or changes.
            let response = try await call(server.port, method, path, key: otherSecret, body: body)
            #expect(!response.text.contains("ana@example.com") && !response.text.contains("trial-onboarding\""), "\(method) \(path) leaked")
        }
        // Demo is untouched by the other tenant's calls.
        #expect(try await server.engine.definitions(tenant: DemoTenant.id, .segment).contains { $0.id == "dormant" })
        #expect(try await server.engine.journeyStatus(tenant: DemoTenant.id, journey: "trial-onboarding") == .active)
        #expect(try await call(server.port, "GET", "/v1/admin/contacts?userId=ana", key: secret).status == 200)
    }

    @Test("definitions round-trip with versions; validation points at the fault")
    func definitionsRoundTrip() async throws {
        let (server, secret) = try await AdminAPITests.start()
        defer { Task { await server.stop() } }
        let segment: JSONValue = ["name": "Pro plan", "condition": ["trait": "plan", "op": "eq", "value": "pro"]]
        let first = try await call(server.port, "PUT", "/v1/admin/segments/pro", key: secret, body: segment)
        #expect(first.status == 201)
        let read = try await call(server.port, "GET", "/v1/admin/segments/pro", key: secret)
        var expected = segment.objectValue!
        expected["id"] = "pro"
        #expect(read.json?.objectValue?["definition"] == .object(expected))

        var changed = expected
        changed["name"] = "Pro customers"
        let second = try await call(server.port, "PUT", "/v1/admin/segments/pro", key: secret, body: .object(changed))
        #expect(second.status == 200 && second.json?.objectValue?["version"] == .number(2))
        let versions = try await call(server.port, "GET", "/v1/admin/segments/pro/versions", key: secret)
        #expect(versions.json?.objectValue?["versions"]?.arrayValue?.count == 2)

        let bad: JSONValue = ["id": "bad", "condition": ["trait": "plan", "op": "nope", "value": 1]]
        let validation = try await call(server.port, "POST", "/v1/admin/segments/validate", key: secret, body: bad)
        #expect(validation.status == 422)
        #expect(validation.json?.objectValue?["details"]?.objectValue?["pointer"] == "/condition/op")
        let mismatch = try await call(server.port, "PUT", "/v1/admin/segments/pro", key: secret, body: ["id": "other", "condition": segment.objectValue!["condition"]!])
        #expect(mismatch.status == 400)

        let deleted = try await call(server.port, "DELETE", "/v1/admin/segments/pro", key: secret)
        #expect(deleted.status == 200)
        #expect(try await call(server.port, "GET", "/v1/admin/segments/pro", key: secret).status == 404)
        let inUse = try await call(server.port, "DELETE", "/v1/admin/models/engagement", key: secret)
        #expect(inUse.status == 409)
    }

    @Test("keys rotate: a new key works at once, the old one until it is revoked; revoked write keys stop ingest")
    func keyRotation() async throws {
        let (server, secret) = try await AdminAPITests.start()
        defer { Task { await server.stop() } }
        let created = try await call(server.port, "POST", "/v1/admin/keys", key: secret, body: ["scope": "secret"])
        let newSecret = try #require(created.json?.objectValue?["key"]?.stringValue)
        // Overlap: both work.
        #expect(try await call(server.port, "GET", "/v1/admin/overview", key: secret).status == 200)
        #expect(try await call(server.port, "GET", "/v1/admin/overview", key: newSecret).status == 200)
        let listed = try await call(server.port, "GET", "/v1/admin/keys", key: newSecret)
        #expect(!listed.text.contains(newSecret) && listed.text.contains(String(newSecret.prefix(11))))
        #expect(try await call(server.port, "DELETE", "/v1/admin/keys/" + String(secret.prefix(11)), key: newSecret).status == 204)
        #expect(try await call(server.port, "GET", "/v1/admin/overview", key: secret).status == 401)
        #expect(try await call(server.port, "GET", "/v1/admin/overview", key: newSecret).status == 200)

        let track = request("POST", "/v1/track", headers: ["authorization": server.basic], body: Array(#"{"userId": "ana", "event": "Signed Up"}"#.utf8))
        #expect(try await exchange(server.port, track)?.status == 200)
        #expect(try await call(server.port, "DELETE", "/v1/admin/keys/" + String(server.key.prefix(11)), key: newSecret).status == 204)
        #expect(try await exchange(server.port, track)?.status == 401)
    }
}
