import Foundation
import KairosCore
import KairosEngine
import Testing
@testable import KairosGateway

/// The HTTP ingest and decide API over real sockets on the loopback address.
@Suite(.serialized) struct HTTPIngestTests {
    func json(_ text: String) -> [UInt8] { Array(text.utf8) }

    @Test func trackIdentifyAndBatchReachTheEngine() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let auth = ["authorization": server.basic, "content-type": "application/json"]
        var response = try #require(try await exchange(server.port, request("POST", "/v1/identify", headers: auth, body: json(
            #"{"userId": "ana", "traits": {"plan": "trial", "email": "ana@acme.com"}, "messageId": "m1"}"#))))
        #expect(response.status == 200)
        #expect(response.text == #"{"success":true}"#)
        response = try #require(try await exchange(server.port, request("POST", "/v1/track", headers: auth, body: json(
            #"{"userId": "ana", "event": "Signed Up", "messageId": "m2"}"#))))
        #expect(response.status == 200)
        // writeKey in the body instead of Basic auth; one bad event does not reject the others.
        response = try #require(try await exchange(server.port, request("POST", "/v1/batch", headers: ["content-type": "application/json"], body: json(
            #"{"writeKey": "\#(server.key)", "batch": [{"type": "page", "userId": "ana", "name": "Pricing", "properties": {"path": "/pricing"}, "messageId": "m3"}, {"type": "track", "event": "Nobody"}, {"type": "track", "userId": "ana", "event": "Signed Up", "messageId": "m2"}]}"#))))
        #expect(response.status == 200)
        #expect(response.json?.objectValue?["accepted"] == 2)
        #expect(response.json?.objectValue?["duplicates"] == 1)
        #expect(response.json?.objectValue?["errors"]?.arrayValue?.first?.objectValue?["index"] == 1)
        let ana = try #require(try await server.engine.contact(tenant: "demo", .userId("ana"), now: t0 + .days(1)))
        #expect(ana.traits["plan"] == "trial")
        #expect(ana.eventCounts.first { $0.event == "track:Signed Up" }?.total == 1)
        #expect(ana.journeys.map(\.journey) == ["trial-onboarding"])
    }

    @Test func keepAlivePipeliningChunkedGzipAndContinue() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let port = server.port
        let auth = ["authorization": server.basic]
        let statuses: [Int?] = try await offPool {
            let client = try RawClient(port: port)
            var statuses: [Int?] = []
            // Three requests in one write: answered in order on the same connection.
            client.send(
                request("POST", "/v1/track", headers: auth, body: Array(#"{"userId": "p1", "event": "A"}"#.utf8))
                    + request("GET", "/healthz") + request("POST", "/v1/track", headers: auth, body: Array(#"{"event": "no user"}"#.utf8)))
            let first = client.readResponse()
            let second = client.readResponse()
            let third = client.readResponse()
            statuses += [first?.status, second?.status, third?.status]
            statuses.append(second?.text == #"{"status":"ok"}"# ? 1 : 0)
            statuses.append(third?.json?.objectValue?["code"] == "invalid_event" ? 1 : 0)
            statuses.append(first?.headers["connection"] == "keep-alive" ? 1 : 0)
            // A chunked body on the same connection.
            client.send(request("POST", "/v1/track", headers: auth, body: Array(#"{"userId": "p2", "event": "Chunked"}"#.utf8), chunked: true))
            statuses.append(client.readResponse()?.status)
            // gzip, as Segment's SDKs send it.
            let zipped = auth.merging(["content-encoding": "gzip"]) { $1 }
            client.send(request("POST", "/v1/batch", headers: zipped, body: Gzip.deflate(Array(#"{"batch": [{"type": "track", "userId": "p3", "event": "Zipped"}]}"#.utf8))))
            statuses.append(client.readResponse()?.status)
            client.send(request("POST", "/v1/batch", headers: zipped, body: Array("not gzip".utf8)))
            statuses.append(client.readResponse()?.json?.objectValue?["code"] == "bad_encoding" ? 1 : 0)
            // Expect: 100-continue gets the interim response before the body is sent.
            let body = Array(#"{"userId": "p4", "event": "Patient"}"#.utf8)
            var head = request("POST", "/v1/track", headers: auth.merging(["expect": "100-continue"]) { $1 }, body: body)
            head.removeLast(body.count)
            client.send(head)
            statuses.append(client.readResponse()?.status)
            client.send(body)
            statuses.append(client.readResponse()?.status)
            return statuses
        }
        #expect(statuses == [200, 200, 400, 1, 1, 1, 200, 200, 1, 100, 200])

        for user in ["p1", "p2", "p3", "p4"] {
            #expect(try await server.engine.contact(tenant: "demo", .userId(user), now: t0) != nil, "\(user) missing")
        }
    }

    @Test func writeKeyFailures() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let body = json(#"{"userId": "x", "event": "E"}"#)
        let missing = try #require(try await exchange(server.port, request("POST", "/v1/track", body: body)))
        #expect(missing.status == 401 && missing.json?.objectValue?["code"] == "missing_write_key")
        let wrong = try #require(try await exchange(server.port, request("POST", "/v1/track", headers: ["authorization": "Basic " + Data("wk_nope:".utf8).base64EncodedString()], body: body)))
        #expect(wrong.status == 401 && wrong.json?.objectValue?["code"] == "invalid_write_key")
        let garbled = try #require(try await exchange(server.port, request("POST", "/v1/track", headers: ["authorization": "Bearer x"], body: body)))
        #expect(garbled.status == 401 && garbled.json?.objectValue?["code"] == "bad_authorization")
        // A key of another tenant reaches only that tenant.
        try await server.engine.createTenant(id: "other", now: t0)
        let otherKey = try await server.engine.createWriteKey(tenant: "other", now: t0)
        let other = try #require(try await exchange(server.port, request("POST", "/v1/track", headers: ["authorization": "Basic " + Data((otherKey + ":").utf8).base64EncodedString()], body: body)))
        #expect(other.status == 200)
        #expect(try await server.engine.contact(tenant: "other", .userId("x"), now: t0) != nil)
        #expect(try await server.engine.contact(tenant: "demo", .userId("x"), now: t0) == nil)
    }

    @Test func limitsAndMalformedInput() async throws {
        let server = try await TestServer.start { $0.limits.maximumHeaderBytes = 4096 }
        defer { Task { await server.stop() } }
        let auth = ["authorization": server.basic]
        // An event over 32 KB, declared up front: refused before the body is read.
        let large = json(#"{"userId": "big", "event": "E", "properties": {"blob": "\#(String(repeating: "x", count: 40_000))"}}"#)
        var response = try #require(try await exchange(server.port, request("POST", "/v1/track", headers: auth, body: large)))
        #expect(response.status == 413 && response.json?.objectValue?["code"] == "body_too_large")
        // The same in a chunked body (no declared length): refused while reading.
        response = try #require(try await exchange(server.port, request("POST", "/v1/track", headers: auth, body: large, chunked: true)))
        #expect(response.status == 413)
        // A batch over 500 KB.
        let batch = json(#"{"batch": ["# + Array(repeating: #"{"type": "track", "userId": "b", "event": "E"}"#, count: 12_000).joined(separator: ",") + "]}")
        response = try #require(try await exchange(server.port, request("POST", "/v1/batch", headers: auth, body: batch)))
        #expect(response.status == 413 && response.text.contains("split the batch"))
        // Headers over the limit.
        response = try #require(try await exchange(server.port, request("GET", "/healthz", headers: ["x-padding": String(repeating: "p", count: 5000)])))
        #expect(response.status == 431)
        // Not HTTP at all.
        response = try #require(try await exchange(server.port, Array("HELLO THERE\r\n\r\n".utf8)))
        #expect(response.status == 400 && response.json?.objectValue?["code"] == "malformed_request")
        // Malformed JSON, and JSON of the wrong shape.
        response = try #require(try await exchange(server.port, request("POST", "/v1/track", headers: auth, body: json(#"{"userId": "#))))
        #expect(response.status == 400 && response.json?.objectValue?["code"] == "malformed_json")
        response = try #require(try await exchange(server.port, request("POST", "/v1/track", headers: auth, body: json("[1, 2]"))))
        #expect(response.status == 400 && response.json?.objectValue?["code"] == "invalid_event")
        response = try #require(try await exchange(server.port, request("GET", "/v1/nothing")))
        #expect(response.status == 404)
        response = try #require(try await exchange(server.port, request("GET", "/v1/track")))
        #expect(response.status == 405)
        // The server kept serving everyone throughout.
        response = try #require(try await exchange(server.port, request("POST", "/v1/track", headers: auth, body: json(#"{"userId": "ok", "event": "E"}"#))))
        #expect(response.status == 200)
    }

    @Test func slowClientsIdleConnectionsAndConnectionLimit() async throws {
        let server = try await TestServer.start {
            $0.limits.requestTimeout = .seconds(1)
            $0.limits.idleTimeout = .seconds(1)
            $0.limits.maximumConnections = 3
        }
        defer { Task { await server.stop() } }
        let port = server.port
        let outcomes: [Int] = try await offPool {
            var outcomes: [Int] = []
            // A client that sends half a request and stalls gets 408 and is closed.
            let slow = try RawClient(port: port)
            slow.send("POST /v1/track HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{\"user")
            outcomes.append(slow.readResponse()?.status ?? 0)
            outcomes.append(slow.isClosedByServer() ? 1 : 0)
            // An idle keep-alive connection is closed.
            let idle = try RawClient(port: port)
            idle.send(request("GET", "/healthz"))
            outcomes.append(idle.readResponse()?.status ?? 0)
            outcomes.append(idle.isClosedByServer() ? 1 : 0)
            // Past the connection limit: 503 with the reason, the others still served.
            let holders = try (0..<3).map { _ in try RawClient(port: port) }
            Thread.sleep(forTimeInterval: 0.1)
            let extra = try RawClient(port: port)
            extra.send(request("GET", "/healthz"))
            let refused = extra.readResponse()
            outcomes.append(refused?.status ?? 0)
            outcomes.append(refused?.json?.objectValue?["code"] == "too_many_connections" ? 1 : 0)
            holders[0].send(request("GET", "/healthz"))
            outcomes.append(holders[0].readResponse()?.status ?? 0)
            return outcomes
        }
        #expect(outcomes == [408, 1, 200, 1, 503, 1, 200])
    }

    @Test func corsPreflightAndBrowserCalls() async throws {
        let server = try await TestServer.start { $0.corsOrigins = ["https://shop.example"] }
        defer { Task { await server.stop() } }
        let preflight = try #require(try await exchange(server.port, request("OPTIONS", "/v1/decide", headers: [
            "origin": "https://shop.example", "access-control-request-method": "POST",
            "access-control-request-headers": "authorization, content-type",
        ])))
        #expect(preflight.status == 204)
        #expect(preflight.headers["access-control-allow-origin"] == "https://shop.example")
        #expect(preflight.headers["access-control-allow-headers"] == "authorization, content-type")
        #expect(preflight.headers["access-control-allow-methods"]?.contains("POST") == true)
        let refused = try #require(try await exchange(server.port, request("OPTIONS", "/v1/decide", headers: ["origin": "https://evil.example"])))
        #expect(refused.status == 403)
        let call = try #require(try await exchange(server.port, request("GET", "/v1/decide?writeKey=\(server.key)&anonymousId=v1&placements=home-hero,pricing-cta&url=https%3A%2F%2Fshop.example%2F%3Futm_source%3Dgoogle", headers: ["origin": "https://shop.example"])))
        #expect(call.status == 200)
        #expect(call.headers["access-control-allow-origin"] == "https://shop.example")
        let decisions = try #require(call.json?.objectValue?["decisions"]?.arrayValue)
        #expect(decisions.count == 2)
        #expect(decisions[0].objectValue?["reason"] == "rule")
        #expect(decisions[0].objectValue?["variant"] == "campaign")
        #expect(decisions[1].objectValue?["decisionId"]?.stringValue?.count == 16)
    }

    @Test func decideAnswersPerPlacementWithExperimentAndContent() async throws {
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        let auth = ["authorization": server.basic]
        _ = try await exchange(server.port, request("POST", "/v1/identify", headers: auth, body: json(#"{"userId": "kim", "traits": {"first_name": "Kim"}}"#)))
        let response = try #require(try await exchange(server.port, request("POST", "/v1/decide", headers: auth, body: json(
            #"{"userId": "kim", "placements": ["home-hero", "nope"], "context": {"url": "https://example.com/", "locale": "fr-FR"}}"#))))
        #expect(response.status == 200)
        let decisions = try #require(response.json?.objectValue?["decisions"]?.arrayValue)
        let hero = try #require(decisions.first?.objectValue)
        #expect(["experiment", "holdout"].contains(hero["reason"]?.stringValue ?? ""))
        if hero["reason"] == "experiment" {
            #expect(hero["experiment"]?.objectValue?["id"] == "hero-headline")
            #expect(hero["content"]?.stringValue?.contains("Kim") == true)
        }
        #expect(decisions[1].objectValue?["reason"] == "unknown_placement")
        let missing = try #require(try await exchange(server.port, request("POST", "/v1/decide", headers: auth, body: json(#"{"userId": "kim"}"#))))
        #expect(missing.status == 400 && missing.text.contains("placements"))
    }

    @Test func shutdownAnswersInFlightRequestsAndRefusesNewOnes() async throws {
        // The journal holds the write, so the request is certainly in flight when shutdown begins.
        let journal = HeldJournal()
        let server = try await TestServer.start(journal: journal) { $0.streamPort = nil }
        let (engine, gateway, key, port) = (server.engine, server.gateway, server.key, server.port)
        journal.hold()
        let auth = ["authorization": "Basic " + Data((key + ":").utf8).base64EncodedString()]
        let answer = Task { try await exchange(port, request("POST", "/v1/track", headers: auth, body: json(#"{"userId": "late", "event": "E"}"#))) }
        #expect(await eventually { journal.heldCount == 1 })
        let stopping = Task { await gateway.shutDown() }
        // New connections are no longer taken while the request in flight is finished.
        #expect(await eventually { (try? await exchange(port, request("GET", "/healthz"))) == nil })
        journal.release()
        #expect(try await answer.value?.status == 200)
        await stopping.value
        #expect(try await engine.contact(tenant: "demo", .userId("late"), now: t0) != nil)
    }
}
