import Foundation
import KairosCore
import KairosEngine
import Testing

@testable import KairosGateway

@Suite("Admin API: contacts, imports, limits, templates")
struct AdminContactsTests {
    let operatorKey = AdminAPITests.operatorKey

    func call(
        _ port: Int, _ method: String, _ path: String, key: String?, body: [UInt8] = [], headers extra: [String: String] = [:]
    ) async throws -> RawResponse {
        var headers = extra
        if let key { headers["authorization"] = "Bearer " + key }
        if !body.isEmpty && headers["content-type"] == nil { headers["content-type"] = "application/json" }
        return try #require(try await exchange(port, request(method, path, headers: headers, body: body)))
    }

    func call(_ port: Int, _ method: String, _ path: String, key: String?, json: JSONValue) async throws -> RawResponse {
        try await call(port, method, path, key: key, body: json.jsonBytes())
    }

    func newTenant(_ server: TestServer, _ id: String, limits: JSONValue? = nil) async throws -> (write: String, secret: String) {
        var body: [String: JSONValue] = ["id": .string(id)]
        if let limits { body["limits"] = limits }
        let created = try await call(server.port, "POST", "/v1/admin/tenants", key: operatorKey, json: .object(body))
        #expect(created.status == 201, "\(created.text)")
        let object = try #require(created.json?.objectValue)
        return (try #require(object["writeKey"]?.stringValue), try #require(object["secretKey"]?.stringValue))
    }

    func basic(_ key: String) -> String { "Basic " + Data((key + ":").utf8).base64EncodedString() }

    @Test("import of 100,000 CSV rows: bad rows reported by line, good rows in, a resend changes nothing, export round-trips")
    func bulkImport() async throws {
        let server = try await TestServer.start { $0.operatorKey = AdminAPITests.operatorKey }
        defer { Task { await server.stop() } }
        let (_, secret) = try await newTenant(server, "importer")

        var csv = "userId,email,plan,seats,zip,vip\r\n"
        var bad: [Int: String] = [:]
        for row in 1...100_000 {
            let line = row + 1
            switch row {
            case 17: csv += "u17,u17@example.com,pro\r\n"; bad[line] = "has 3 fields"
            case 5_000: csv += "u5000,\"broken@example.com,pro,3,01234,false\r\n"; bad[line] = "never ends"
            case 42_000: csv += ",,pro,3,01234,false\r\n"; bad[line] = "no userId"
            case 99_999: csv += "u99999,x\"y@example.com,pro,3,01234,false\r\n"; bad[line] = "quote inside"
            default: csv += "u\(row),u\(row)@Example.com,\(row % 3 == 0 ? "pro" : "free"),\(row % 50),01234,\(row % 7 == 0)\r\n"
            }
        }
        // The unterminated quote swallows the rest of the file, so it goes last of all.
        csv = csv.replacingOccurrences(of: "u5000,\"broken@example.com,pro,3,01234,false\r\n", with: "")
        csv += "u5000,\"broken@example.com,pro,3,01234,false\r\n"
        let body = Array(csv.utf8)
        let path = "/v1/admin/contacts/import"
        let first = try await call(server.port, "POST", path, key: secret, body: body, headers: ["content-type": "text/csv", "idempotency-key": "first"])
        #expect(first.status == 200, "\(first.text.prefix(300))")
        let report = try #require(first.json?.objectValue)
        #expect(report["status"] == "done")
        #expect(report["imported"] == .number(99_996))
        #expect(report["failed"] == .number(4))
        let errors = report["errors"]?.arrayValue ?? []
        #expect(errors.count == 4)
        #expect(errors.compactMap { $0.objectValue?["line"]?.numberValue.map(Int.init) } == [18, 42_000, 99_999, 100_001])
        #expect(errors.first?.objectValue?["message"]?.stringValue?.contains("has 3 fields") == true)
        #expect(try await server.engine.stats(tenant: "importer").contacts == 99_996)

        // Typed cells: numbers and booleans; leading-zero text stays text. Email lookups ignore case.
        let contact = try await call(server.port, "GET", "/v1/admin/contacts?email=U21@example.COM", key: secret)
        #expect(contact.status == 200)
        let traits = try #require(contact.json?.objectValue?["traits"]?.objectValue)
        #expect(traits["seats"] == .number(21) && traits["zip"] == .string("01234") && traits["vip"] == .bool(true))
        #expect(contact.json?.objectValue?["userId"] == "u21")

        // The same import again (same id): every row is a duplicate, nothing changes.
        let again = try await call(server.port, "POST", path, key: secret, body: body, headers: ["content-type": "text/csv", "idempotency-key": "first"])
        #expect(again.json?.objectValue?["imported"] == .number(0))
        #expect(again.json?.objectValue?["duplicates"] == .number(99_996))
        let progress = try await call(server.port, "GET", "/v1/admin/imports/first", key: secret)
        #expect(progress.json?.objectValue?["status"] == "done")

        // Export as CSV and import it into another tenant: the same traits come back.
        let export = try await call(server.port, "GET", "/v1/admin/contacts/export?format=csv&limit=1000", key: secret)
        #expect(export.status == 200 && export.headers["content-type"]?.hasPrefix("text/csv") == true)
        #expect(export.headers["x-next-cursor"] != nil)
        let (_, otherSecret) = try await newTenant(server, "copy")
        let copied = try await call(server.port, "POST", path, key: otherSecret, body: export.body, headers: ["content-type": "text/csv"])
        #expect(copied.json?.objectValue?["imported"] == .number(1000), "\(copied.text.prefix(300))")
        let original = try #require(try await server.engine.contact(tenant: "importer", .userId("u21"), now: t0))
        let copy = try #require(try await server.engine.contact(tenant: "copy", .userId("u21"), now: t0))
        #expect(copy.traits == original.traits)

        // NDJSON: unknown fields and bad JSON are row errors; an email-only row creates a contact keyed by it.
        let ndjson = """
            {"userId": "n1", "traits": {"plan": "pro"}}
            {"userId": "n2", "trait": {"plan": "pro"}}
            not json
            {"traits": {"email": "Solo@Example.com", "plan": "free"}}

            """
        let lines = try await call(server.port, "POST", path, key: otherSecret, body: Array(ndjson.utf8), headers: ["content-type": "application/x-ndjson"])
        #expect(lines.json?.objectValue?["imported"] == .number(2))
        #expect(lines.json?.objectValue?["failed"] == .number(2))
        #expect(try await server.engine.contact(tenant: "copy", .userId("solo@example.com"), now: t0) != nil)
        let unsupported = try await call(server.port, "POST", path, key: otherSecret, body: Array("a,b".utf8), headers: ["content-type": "text/plain"])
        #expect(unsupported.status == 415)
        let headerless = try await call(server.port, "POST", path, key: otherSecret, body: Array("plan,seats\npro,3\n".utf8), headers: ["content-type": "text/csv"])
        #expect(headerless.status == 400 && headerless.text.contains("userId, anonymousId or email"))
    }

    @Test("contacts: by email, trait-prefix search, trait updates that move segments, events and score reads, segment CSV")
    func contactReads() async throws {
        let server = try await TestServer.start { $0.operatorKey = AdminAPITests.operatorKey }
        defer { Task { await server.stop() } }
        let secret = try await server.engine.createKey(tenant: DemoTenant.id, scope: .secret, now: t0)
        for (user, email, plan) in [("ana", "ana@acme.io", "free"), ("anton", "anton@acme.io", "free"), ("bo", "bo@other.io", "pro")] {
            let body = #"{"userId": "\#(user)", "traits": {"email": "\#(email)", "plan": "\#(plan)", "company": "\#(user == "bo" ? "Other" : "Acme")"}}"#
            let sent = try await exchange(server.port, request("POST", "/v1/identify", headers: ["authorization": server.basic], body: Array(body.utf8)))
            #expect(sent?.status == 200)
            let track = #"{"userId": "\#(user)", "event": "Demo Requested"}"#
            _ = try await exchange(server.port, request("POST", "/v1/track", headers: ["authorization": server.basic], body: Array(track.utf8)))
        }
        let byEmail = try await call(server.port, "GET", "/v1/admin/contacts?email=ANTON@acme.io", key: secret)
        #expect(byEmail.json?.objectValue?["userId"] == "anton")

        let search = try await call(server.port, "GET", "/v1/admin/contacts/search?trait=email&prefix=an", key: secret)
        let found = search.json?.objectValue?["contacts"]?.arrayValue?.compactMap { $0.objectValue?["userId"]?.stringValue } ?? []
        #expect(found.sorted() == ["ana", "anton"])
        let byCompany = try await call(server.port, "GET", "/v1/admin/contacts/search?trait=company&prefix=acm", key: secret)
        #expect(byCompany.json?.objectValue?["contacts"]?.arrayValue?.count == 2)

        // Changing a trait is an identify: segments follow at once.
        let before = try #require(try await server.engine.contact(tenant: DemoTenant.id, .userId("ana"), now: t0))
        let patched = try await call(server.port, "PATCH", "/v1/admin/contacts?userId=ana", key: secret, json: ["traits": ["plan": "pro", "email": "ana@new.io"]])
        #expect(patched.status == 200, "\(patched.text)")
        #expect(patched.json?.objectValue?["traits"]?.objectValue?["plan"] == "pro")
        #expect(try await call(server.port, "GET", "/v1/admin/contacts?email=ana@new.io", key: secret).status == 200)
        #expect(try await call(server.port, "GET", "/v1/admin/contacts?email=ana@acme.io", key: secret).status == 404)
        let after = try #require(try await server.engine.contact(tenant: DemoTenant.id, .userId("ana"), now: t0))
        #expect(before.traits["plan"] == .string("free") && after.traits["plan"] == .string("pro"))
        #expect(try await call(server.port, "PATCH", "/v1/admin/contacts?userId=ana", key: secret, json: ["trait": ["plan": "x"]]).status == 400)
        #expect(try await call(server.port, "PATCH", "/v1/admin/contacts?userId=nobody", key: secret, json: ["traits": ["plan": "x"]]).status == 404)

        let events = try await call(server.port, "GET", "/v1/admin/contacts/events?userId=bo&limit=1", key: secret)
        #expect(events.json?.objectValue?["recentEvents"]?.arrayValue?.count == 1)
        #expect(events.text.contains("Demo Requested"))
        let scores = try await call(server.port, "GET", "/v1/admin/contacts/scores?userId=bo", key: secret)
        #expect(scores.json?.objectValue?["history"]?.arrayValue?.isEmpty == false)

        let pros: JSONValue = ["id": "pros", "condition": ["trait": "plan", "op": "eq", "value": "pro"]]
        #expect(try await call(server.port, "PUT", "/v1/admin/segments/pros", key: secret, json: pros).status == 201)
        let members = try await call(server.port, "GET", "/v1/admin/segments/pros/members?format=csv", key: secret)
        #expect(members.status == 200 && members.text.hasPrefix("userId,anonymousId"))
        let rows = members.text.split(separator: "\r\n").dropFirst().map { $0.split(separator: ",").first.map(String.init) ?? "" }
        #expect(rows.sorted() == ["ana", "bo"])

        let overview = try await call(server.port, "GET", "/v1/admin/overview?timeZone=Europe/Paris", key: secret)
        #expect((overview.json?.objectValue?["eventsToday"]?.numberValue ?? 0) >= 7)
        #expect(try await call(server.port, "GET", "/v1/admin/overview?timeZone=Mars/Base", key: secret).status == 400)
        #expect(try await call(server.port, "GET", "/v1/admin/contacts/search?trait=email", key: secret).status == 400)
        #expect(try await call(server.port, "PUT", "/v1/admin/contacts/search", key: secret, json: [:]).status == 405)
    }

    @Test("limits: rate (429 Retry-After), contacts, definitions and CORS origins change without a restart")
    func tenantLimits() async throws {
        let server = try await TestServer.start { $0.operatorKey = AdminAPITests.operatorKey }
        defer { Task { await server.stop() } }
        let (write, secret) = try await newTenant(server, "limited", limits: ["maxContacts": 2, "maxDefinitions": 1])
        func track(_ user: String, origin: String? = nil) async throws -> RawResponse {
            var headers = ["authorization": basic(write)]
            if let origin { headers["origin"] = origin }
            return try #require(try await exchange(server.port, request("POST", "/v1/track", headers: headers, body: Array(#"{"userId": "\#(user)", "event": "X"}"#.utf8))))
        }
        #expect(try await track("a").status == 200)
        #expect(try await track("b").status == 200)
        let third = try await track("c")
        #expect(third.status == 403 && third.text.contains("contact limit"))
        #expect(try await track("a").status == 200)  // known contacts still count events
        let batch = #"{"batch": [{"type": "track", "userId": "a", "event": "Y"}, {"type": "track", "userId": "d", "event": "Y"}]}"#
        let mixed = try await exchange(server.port, request("POST", "/v1/batch", headers: ["authorization": basic(write)], body: Array(batch.utf8)))
        #expect(mixed?.status == 200 && mixed?.json?.objectValue?["accepted"] == .number(1))
        #expect(mixed?.text.contains("\"index\":1") == true)

        let segment: JSONValue = ["id": "one", "condition": ["trait": "plan", "op": "eq", "value": "pro"]]
        #expect(try await call(server.port, "POST", "/v1/admin/segments", key: secret, json: segment).status == 201)
        let second = try await call(server.port, "PUT", "/v1/admin/segments/two", key: secret, json: ["condition": ["trait": "plan", "op": "eq", "value": "x"]])
        #expect(second.status == 403 && second.text.contains("quota_exceeded"))
        #expect(try await call(server.port, "PUT", "/v1/admin/segments/one", key: secret, json: segment).status == 200)  // a new version is fine

        // Raise the contact limit, set a rate and origins: all at once, no restart.
        let set = try await call(
            server.port, "PUT", "/v1/admin/tenants/limited/limits", key: operatorKey,
            json: ["maxContacts": 10, "requestsPerSecond": 1, "burst": 5, "corsOrigins": ["https://shop.example.com"]])
        #expect(set.status == 200)
        #expect(try await call(server.port, "GET", "/v1/admin/limits", key: secret).json?.objectValue?["maxContacts"] == .number(10))
        let invalid = try await call(server.port, "PUT", "/v1/admin/tenants/limited/limits", key: operatorKey, json: ["maxContacts": -1])
        #expect(invalid.status == 422 && invalid.text.contains("/maxContacts"))
        #expect(try await call(server.port, "PUT", "/v1/admin/tenants/limited/limits", key: secret, json: [:]).status == 403)
        #expect(try await track("c", origin: "https://shop.example.com").headers["access-control-allow-origin"] == "https://shop.example.com")
        let refusedOrigin = try await track("e", origin: "https://evil.example.com")
        #expect(refusedOrigin.status == 403 && refusedOrigin.headers["access-control-allow-origin"] == nil)
        var limited: RawResponse?
        for _ in 0..<12 {
            let response = try await track("c")
            if response.status == 429 { limited = response; break }
        }
        let tooMany = try #require(limited)
        #expect(Int(tooMany.headers["retry-after"] ?? "") ?? 0 >= 1)

        // Deleting the tenant: its keys stop working at once and the id is free again.
        #expect(try await call(server.port, "DELETE", "/v1/admin/tenants/limited", key: operatorKey).status == 204)
        #expect(try await call(server.port, "GET", "/v1/admin/overview", key: secret).status == 401)
        #expect(try await track("a").status == 401)
        #expect(try await call(server.port, "GET", "/v1/admin/tenants/limited", key: operatorKey).status == 404)
        _ = try await newTenant(server, "limited")
        #expect(try await server.engine.stats(tenant: "limited").contacts == 0)
    }

    @Test("shared templates: journeys send them, a new version renders at once, in-use templates cannot be deleted")
    func sharedTemplates() async throws {
        let server = try await TestServer.start { $0.operatorKey = AdminAPITests.operatorKey }
        defer { Task { await server.stop() } }
        let (write, secret) = try await newTenant(server, "mailer")
        let template: JSONValue = ["id": "welcome", "channel": "email", "to": "{{traits.email}}", "subject": "Hi {{traits.name}}", "body": "Welcome"]
        #expect(try await call(server.port, "PUT", "/v1/admin/templates/welcome", key: secret, json: template).status == 201)
        let badTemplate = try await call(server.port, "POST", "/v1/admin/templates/validate", key: secret, json: ["id": "x", "channel": "fax"])
        #expect(badTemplate.status == 422 && badTemplate.text.contains("/channel"))
        let journey: JSONValue = [
            "id": "onboard", "trigger": ["event": "Signed Up"],
            "nodes": [["id": "mail", "type": "send", "template": "welcome", "next": "done"], ["id": "done", "type": "exit"]],
        ]
        let unknown = try await call(
            server.port, "POST", "/v1/admin/journeys/validate", key: secret,
            json: ["id": "j2", "trigger": ["event": "X"], "nodes": [["id": "m", "type": "send", "template": "nope", "next": "e"], ["id": "e", "type": "exit"]]])
        #expect(unknown.status == 422 && unknown.text.contains("/nodes/0/template"))
        #expect(try await call(server.port, "PUT", "/v1/admin/journeys/onboard", key: secret, json: journey).status == 201)
        #expect(try await call(server.port, "POST", "/v1/admin/journeys/onboard/publish", key: secret).status == 200)
        func signUp(_ user: String) async throws {
            let identify = #"{"userId": "\#(user)", "traits": {"email": "\#(user)@x.io", "name": "\#(user.capitalized)"}}"#
            _ = try await exchange(server.port, request("POST", "/v1/identify", headers: ["authorization": basic(write)], body: Array(identify.utf8)))
            let track = #"{"userId": "\#(user)", "event": "Signed Up"}"#
            #expect(try await exchange(server.port, request("POST", "/v1/track", headers: ["authorization": basic(write)], body: Array(track.utf8)))?.status == 200)
        }
        try await signUp("zoe")
        var changed = template.objectValue!
        changed["subject"] = "Hello {{traits.name}}!"
        #expect(try await call(server.port, "PUT", "/v1/admin/templates/welcome", key: secret, json: .object(changed)).status == 200)
        try await signUp("max")
        let subjects = try server.engine.outbox(tenant: "mailer").map { $0.message.fields["subject"] ?? "" }
        #expect(subjects == ["Hi Zoe", "Hello Max!"])
        let delete = try await call(server.port, "DELETE", "/v1/admin/templates/welcome", key: secret)
        #expect(delete.status == 409 && delete.text.contains("onboard"))
        #expect(try await call(server.port, "GET", "/v1/admin/templates/welcome/versions", key: secret).json?.objectValue?["versions"]?.arrayValue?.count == 2)
    }

    @Test("key rotation: the old key works through the overlap, and not at all with none")
    func keyRotation() async throws {
        let server = try await TestServer.start { $0.operatorKey = AdminAPITests.operatorKey }
        defer { Task { await server.stop() } }
        let (write, secret) = try await newTenant(server, "rotating")
        let label = String(write.prefix(11))
        let rotated = try await call(server.port, "POST", "/v1/admin/keys/\(label)/rotate", key: secret, json: ["overlapSeconds": 3600])
        #expect(rotated.status == 201)
        let newKey = try #require(rotated.json?.objectValue?["key"]?.stringValue)
        func track(_ key: String) async throws -> Int {
            try await exchange(server.port, request("POST", "/v1/track", headers: ["authorization": basic(key)], body: Array(#"{"userId": "u", "event": "X"}"#.utf8)))?.status ?? 0
        }
        let oldStatus = try await track(write)
        let newStatus = try await track(newKey)
        #expect(oldStatus == 200 && newStatus == 200)
        let keys = try await call(server.port, "GET", "/v1/admin/keys", key: secret)
        #expect(keys.text.contains("expiresAt"))
        // Rotating the secret key itself with no overlap: the old one is refused at once.
        let secretLabel = String(secret.prefix(11))
        let now = try await call(server.port, "POST", "/v1/admin/keys/\(secretLabel)/rotate", key: secret, json: ["overlapSeconds": 0])
        let newSecret = try #require(now.json?.objectValue?["key"]?.stringValue)
        #expect(try await call(server.port, "GET", "/v1/admin/keys", key: secret).status == 401)
        #expect(try await call(server.port, "GET", "/v1/admin/keys", key: newSecret).status == 200)
        #expect(try await call(server.port, "POST", "/v1/admin/keys/wk_unknown/rotate", key: newSecret, json: [:]).status == 404)
    }
}
