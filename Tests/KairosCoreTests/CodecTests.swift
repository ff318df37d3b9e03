import Testing
@testable import KairosCore

@Suite struct CodecTests {
    @Test func eventsRoundTripExactly() throws {
        let events: [Event] = [
            Event(
                type: .track, messageId: "m-1", userId: "ana", anonymousId: "a-1", name: "Order Completed",
                properties: ["revenue": 129.99, "items": 3, "coupon": nil, "tags": ["vip", "é😀"], "nested": ["deep": ["x": -7]]],
                context: ["campaign": ["source": "newsletter"], "ip": "127.0.0.1"],
                timestamp: Timestamp(milliseconds: 1_700_000_000_123), sentAt: Timestamp(milliseconds: 1_700_000_000_200),
                receivedAt: Timestamp(milliseconds: 1_700_000_000_300), time: Timestamp(milliseconds: 1_700_000_000_223)),
            .identify(userId: "bo", traits: ["email": "bo@x.io", "active": true, "score": -0.5], at: Timestamp(milliseconds: -5)),
            .alias(userId: "new", previousId: "old", at: Timestamp(milliseconds: 0)),
            .group("acme", anonymousId: "a-2", traits: ["employees": 1_000_000_000_000], at: Timestamp(milliseconds: 42)),
            .page(nil, anonymousId: "a-3", at: Timestamp(milliseconds: 1)),
        ]
        let bytes = events.encoded()
        #expect(try [Event].decode(bytes) == events)
        // The same events always give the same bytes (sorted keys), so journal records are reproducible.
        #expect(events.encoded() == bytes)
    }

    /// Decoding over older events (replay reuses a run's array) leaves nothing of them: every
    /// field is what a fresh decode gives, whichever fields the older events had set, and an
    /// event's properties keep the room the older event had.
    @Test func eventsDecodedOverOlderOnesKeepNothingOfThem() throws {
        let older: [Event] = [
            Event(
                type: .track, messageId: "m-1", userId: "ana", anonymousId: "a-1", name: "Order Completed",
                properties: ["revenue": 129.99, "items": 3, "coupon": nil, "sku": "x-1"], context: ["ip": "127.0.0.1"],
                timestamp: Timestamp(milliseconds: 5), sentAt: Timestamp(milliseconds: 6), receivedAt: Timestamp(milliseconds: 7),
                time: Timestamp(milliseconds: 8)),
            .identify(userId: "bo", traits: ["email": "bo@x.io"], at: Timestamp(milliseconds: 9)),
            .alias(userId: "new", previousId: "old", at: Timestamp(milliseconds: 10)),
        ]
        let newer: [Event] = [
            .page("Docs", anonymousId: "a-9", properties: ["path": "/docs"], at: Timestamp(milliseconds: 20)),
            .track("Signed Up", userId: "cy", at: Timestamp(milliseconds: 21)),
        ]
        let bytes = newer.encoded()
        for start in [0, 1, 3] {
            var events = older
            let room = events[0].properties.entries.capacity
            let end = try [Event].decode(bytes, range: bytes.indices, into: &events, at: start)
            #expect(end == start + 2)
            #expect(Array(events[start..<end]) == newer)
            #expect(Array(events[..<start]) == Array(older[..<start]))
            if start == 0 { #expect(events[0].properties.entries.capacity == room) }
        }
        // Keys out of order in the bytes (not written by this encoder) come out sorted, a later pair winning.
        var writer = BinaryWriter()
        writer.writeVarint(3)
        for (key, value) in [("b", 1.0), ("a", 2.0), ("b", 3.0)] {
            writer.write(key)
            writer.write(JSONValue.number(value))
        }
        var reader = BinaryReader(writer.bytes)
        var object: JSONObject = ["z": "old"]
        try reader.readJSONObject(into: &object)
        #expect(object == ["a": 2.0, "b": 3.0])
    }

    /// Decoded for replay, events leave their ids as bytes: each range holds exactly its id's
    /// UTF-8, in order, events without one add none, and every other field is decoded as usual
    /// (also over older events that had ids).
    @Test func messageIdsCanStayBytes() throws {
        let events: [Event] = [
            .track("Signed Up", userId: "ana", messageId: "m-1", at: Timestamp(milliseconds: 1)),
            .page("Docs", anonymousId: "a-1", at: Timestamp(milliseconds: 2)),
            .identify(userId: "bo", traits: ["plan": "pro"], messageId: "Ünïcode-🙂", at: Timestamp(milliseconds: 3)),
        ]
        let bytes = [UInt8](repeating: 9, count: 5) + events.encoded()
        var decoded = [Event](repeating: .track("Old", userId: "x", messageId: "old-id", at: Timestamp(milliseconds: 0)), count: 2)
        var ranges: [Range<Int>] = []
        let end = try [Event].decode(bytes, range: 5..<bytes.count, into: &decoded, at: 0, messageIds: &ranges)
        #expect(end == 3)
        #expect(ranges.map { String(decoding: bytes[$0], as: UTF8.self) } == ["m-1", "Ünïcode-🙂"])
        var withoutIds = events
        for index in withoutIds.indices { withoutIds[index].messageId = nil }
        #expect(decoded == withoutIds)
    }

    @Test func numbersKeepTheirValue() throws {
        let values: [JSONValue] = [0, -0.0, 1, -1, 127, 128, -129, 3.25, 1e300, -1e-300, 9_007_199_254_740_991, .number(.infinity)]
        for value in values {
            var writer = BinaryWriter()
            writer.write(value)
            var reader = BinaryReader(writer.bytes)
            let decoded = try reader.readJSON()
            #expect(decoded.numberValue?.bitPattern == value.numberValue?.bitPattern, "\(value)")
        }
    }

    @Test func truncatedOrCorruptInputIsRefused() {
        let bytes = [Event.track("E", userId: "u", properties: ["k": "value"], at: Timestamp(milliseconds: 9))].encoded()
        for length in 0..<bytes.count {
            #expect(throws: CodecError.self) { _ = try [Event].decode(Array(bytes[..<length])) }
        }
        var wrongVersion = bytes
        wrongVersion[1] = 99
        #expect(throws: CodecError(offset: 1, message: "event format version 99 is not supported (expected 1)")) {
            _ = try [Event].decode(wrongVersion)
        }
        #expect(throws: CodecError.self) { _ = try [Event].decode(bytes + [0]) }
    }

    /// A list's count is checked against the bytes left before anything is reserved for it, so a
    /// corrupt count cannot ask for a huge allocation.
    @Test func listCountsLargerThanTheRestAreRefused() throws {
        var writer = BinaryWriter()
        writer.writeVarint(3)
        writer.writeBytes([7, 8, 9])
        var reader = BinaryReader(writer.bytes)
        #expect(try reader.readElementCount() == 3)

        var corrupt = BinaryWriter()
        corrupt.writeVarint(1_000_000)
        corrupt.writeBytes([7, 8, 9])
        var corruptReader = BinaryReader(corrupt.bytes)
        let error = #expect(throws: CodecError.self) { _ = try corruptReader.readElementCount() }
        #expect(error?.message == "1000000 elements cannot fit in the 3 bytes left")
    }

    /// A reader of part of a buffer (a snapshot's chunk, read where it lies) stops at the part's
    /// end: nothing of the next part is read, and data running past it is refused.
    @Test func aReaderOfAPartStopsAtItsEnd() throws {
        var writer = BinaryWriter()
        writer.write("first")
        writer.write("second")
        var whole = BinaryReader(writer.bytes)
        let first = try whole.skip(6)
        let second = try whole.skip(7)
        #expect(whole.isAtEnd)

        var part = BinaryReader(writer.bytes, range: second)
        #expect(try part.readString() == "second")
        #expect(part.isAtEnd)
        #expect(throws: CodecError.self) { _ = try part.readByte() }

        // The first part's string, with its length claiming the bytes of the next part too.
        var bytes = writer.bytes
        bytes[first.lowerBound] = 12
        var overrun = BinaryReader(bytes, range: first)
        let error = #expect(throws: CodecError.self) { _ = try overrun.readString() }
        #expect(error?.message == "string of 12 bytes runs past the end")
        var skipping = BinaryReader(bytes, range: first)
        #expect(throws: CodecError.self) { _ = try skipping.skip(7) }
    }
}
