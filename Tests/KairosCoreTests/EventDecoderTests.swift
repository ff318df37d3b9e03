import Testing
@testable import KairosCore

@Suite struct EventDecoderTests {
    let decoder = EventDecoder()
    let received = Timestamp(iso8601: "2026-11-21T12:00:00Z")!

    @Test func decodesEveryMessageType() throws {
        let batch = json(
            """
            {"batch": [
              {"type": "track", "event": "Signed Up", "userId": "u1", "messageId": "m1", "properties": {"plan": "pro"}},
              {"type": "identify", "anonymousId": "a1", "traits": {"email": "x@y.com"}},
              {"type": "page", "name": "Pricing", "anonymousId": "a1", "properties": {"path": "/pricing"}},
              {"type": "screen", "name": "Home", "userId": "u1"},
              {"type": "group", "groupId": "acme", "userId": "u1", "traits": {"employees": 1200}},
              {"type": "alias", "previousId": "a1", "userId": "u1"}
            ]}
            """)
        let results = try decoder.decodeBatch(batch, receivedAt: received).get()
        let events = try results.map { try $0.get() }
        #expect(events.map(\.type) == [.track, .identify, .page, .screen, .group, .alias])
        #expect(events[0].name == "Signed Up")
        #expect(events[0].properties["plan"] == .string("pro"))
        #expect(events[0].messageId == "m1")
        #expect(events[1].traits["email"] == .string("x@y.com"))
        #expect(events[2].counterName == "page:Pricing")
        #expect(events[4].groupId == "acme")
        #expect(events[5].previousId == "a1")
        #expect(events.allSatisfy { $0.time == received })
    }

    @Test func pointsAtTheBadEventAndField() throws {
        let batch = json(
            """
            {"batch": [
              {"type": "track", "event": "Ok", "userId": "u1"},
              {"type": "track", "userId": "u1"},
              {"type": "identify", "traits": {}},
              {"type": "page", "userId": 42, "timestamp": "last tuesday"},
              {"type": "shout", "userId": "u1"},
              {"type": "group", "userId": "u1"},
              {"type": "alias", "userId": "u1"},
              {"type": "track", "event": "X", "anonymousId": "a", "properties": [1, 2]},
              "not an object"
            ]}
            """)
        let results = try decoder.decodeBatch(batch, receivedAt: received).get()
        #expect((try? results[0].get()) != nil)
        func error(_ index: Int) -> EventValidationError? {
            if case .failure(let error) = results[index] { return error }
            return nil
        }
        #expect(error(1) == EventValidationError(index: 1, field: "event", message: "is required for track and must not be empty"))
        #expect(error(2)?.field == "userId")
        #expect(error(2)?.message == "userId or anonymousId is required")
        #expect(error(3)?.field == "timestamp")
        #expect(error(4)?.field == "type")
        #expect(error(4)?.message.contains("'shout' is not a Segment message type") == true)
        #expect(error(5)?.field == "groupId")
        #expect(error(6)?.field == "previousId")
        #expect(error(7)?.field == "properties")
        #expect(error(8)?.message == "expected a JSON object, got string")
        #expect(error(1)?.description == "batch[1].event: is required for track and must not be empty")
    }

    @Test func numericIdsBecomeStrings() throws {
        let event = try decoder.decode(json(#"{"type":"track","event":"E","userId":42}"#), receivedAt: received).get()
        #expect(event.userId == "42")
    }

    @Test func endpointTypeMustAgreeWithBody() {
        let result = decoder.decode(json(#"{"type":"page","userId":"u"}"#), defaultType: .track, receivedAt: received)
        guard case .failure(let error) = result else {
            Issue.record("expected a failure")
            return
        }
        #expect(error.field == "type")
    }

    @Test func correctsClientClockSkew() throws {
        // The client's clock is 10 minutes fast: it stamped the event 5 s before it sent the batch.
        let event = try decoder.decode(
            json(#"{"type":"track","event":"E","userId":"u","timestamp":"2026-11-21T12:09:55Z","sentAt":"2026-11-21T12:10:00Z"}"#),
            receivedAt: received
        ).get()
        #expect(event.time == Timestamp(iso8601: "2026-11-21T11:59:55Z"))
    }

    @Test func futureTimestampsAreClampedToReceipt() throws {
        let event = try decoder.decode(
            json(#"{"type":"track","event":"E","userId":"u","timestamp":"2030-01-01T00:00:00Z"}"#), receivedAt: received
        ).get()
        #expect(event.time == received)
    }

    @Test func identifyTraitsFromContextForOldSDKs() throws {
        let event = try decoder.decode(
            json(#"{"type":"identify","userId":"u","context":{"traits":{"plan":"pro"}}}"#), receivedAt: received
        ).get()
        #expect(event.traits["plan"] == .string("pro"))
    }

    @Test func batchMustBeAnArray() {
        guard case .failure(let error) = decoder.decodeBatch(json(#"{"batch": {}}"#), receivedAt: received) else {
            Issue.record("expected a failure")
            return
        }
        #expect(error.field == "batch")
    }
}
