import KairosCore
import Testing
@testable import KairosGateway

/// Reading a message's fields straight from simdjson's tape must decide exactly what decoding
/// the whole message as a dictionary decides.
@Suite struct FastJSONTests {
    static let messages: [String] = [
        #"{"type":"track","userId":"u1","event":"Signed Up","properties":{"plan":"pro","seats":3,"tags":["a",{"b":null}]},"messageId":"m1"}"#,
        #"{"type":"page","anonymousId":"a-1","name":"Pricing","context":{"campaign":{"source":"google"},"ip":"1.2.3.4"},"integrations":{"All":true,"x":[1,[2,[3]]]},"properties":{"url":"https://x"}}"#,
        #"{"type":"identify","userId":42,"context":{"traits":{"email":"a@b.c"}},"timestamp":"2026-01-02T03:04:05Z","sentAt":"2026-01-02T03:04:06.500Z"}"#,
        #"{"type":"group","userId":"u2","groupId":"acme","traits":{"name":"Acme"},"version":2,"channel":"server"}"#,
        #"{"type":"alias","userId":"u3","previousId":"a-9"}"#,
        #"{"type":"track","userId":"u1","event":""}"#,
        #"{"type":"track","userId":"u1","event":"E","event":"Repeated wins"}"#,
        #"{"type":"screen","userId":"u1","name":null,"properties":[]}"#,
        #"{"type":"shout","userId":"u1"}"#,
        #"{"type":"track","userId":["not","a","string"],"event":"E"}"#,
        #"{"type":"identify","userId":"u1","timestamp":"yesterday"}"#,
        #"{"type":"track","anonymousId":"","userId":null,"event":"E"}"#,
        #"{"userId":"u1","event":"No type","receivedAt":"2026-03-01T00:00:00Z"}"#,
    ]

    @Test func tapeFieldsDecodeAsTheWholeMessageDoes() throws {
        let parser = FastJSON()
        let decoder = EventDecoder()
        let now = Timestamp(milliseconds: 1_780_000_000_000)
        for text in Self.messages {
            let bytes = Array(text.utf8)
            let whole = try parser.parse(bytes)
            let fields = try #require(
                try bytes.withUnsafeBytes { try parser.parseMessage($0, envelopeKey: "seq", nestedKey: "message") })
            #expect(fields.envelopeValue == nil)
            let expected = decoder.decode(whole, receivedAt: now)
            let actual = decoder.decode(fields.fields, receivedAt: now)
            #expect(actual == expected, "\(text)")
            #expect(decoder.decode(whole, defaultType: .track, receivedAt: now)
                == decoder.decode(fields.fields, defaultType: .track, receivedAt: now), "\(text)")
        }
    }

    @Test func envelopeAndNestedMessageAreRead() throws {
        let parser = FastJSON()
        func parse(_ text: String) throws -> FastJSON.MessageFields? {
            try Array(text.utf8).withUnsafeBytes { try parser.parseMessage($0, envelopeKey: "seq", nestedKey: "message") }
        }
        let nested = try #require(try parse(#"{"seq":7,"userId":"outer","message":{"type":"track","userId":"inner","event":"E","seq":9}}"#))
        #expect(nested.envelopeValue == .number(7))
        #expect(nested.fields[.userId] == .string("inner"))
        #expect(nested.fields[.type] == .string("track"))
        // A "message" that is not an object is just another field; the frame is the message.
        let flat = try #require(try parse(#"{"message":"hi","seq":8,"type":"track","userId":"u","event":"E"}"#))
        #expect(flat.envelopeValue == .number(8))
        #expect(flat.fields[.userId] == .string("u"))
        // The last of repeated "message" keys counts, as in a dictionary.
        let repeated = try #require(try parse(#"{"seq":1,"message":{"userId":"first"},"message":3,"userId":"outer"}"#))
        #expect(repeated.fields[.userId] == .string("outer"))
        #expect(try parse("[1,2]") == nil)
        #expect(try parse(#""text""#) == nil)
        #expect(throws: FastJSON.ParseError.self) { try parse("{oops") }
    }

    @Test func fieldNamesMatchExactly() {
        for field in SegmentFields.Field.allCases {
            let found = Array(field.key.utf8).withUnsafeBytes { SegmentFields.Field.named($0) }
            #expect(found == field)
            let upper = Array(field.key.uppercased().utf8).withUnsafeBytes { SegmentFields.Field.named($0) }
            #expect(upper == nil)
        }
        #expect(Array("seq".utf8).withUnsafeBytes { SegmentFields.Field.named($0) } == nil)
        #expect(Array("integrations".utf8).withUnsafeBytes { SegmentFields.Field.named($0) } == nil)
    }
}

@Suite struct QueryTests {
    func items(_ query: String?) -> [String: String] {
        HTTPRequest(method: "GET", path: "/v1/admin/contacts", query: query, headers: [], body: [], keepAlive: true).queryItems
    }

    @Test func decodesLikeAFormEncodedQuery() {
        #expect(items(nil) == [:])
        #expect(items("") == [:])
        #expect(items("userId=u-1&limit=20") == ["userId": "u-1", "limit": "20"])
        #expect(items("email=ann%40example.com&q=a+b%2Bc") == ["email": "ann@example.com", "q": "a b+c"])
        #expect(items("a&&b=&=x") == ["a": "", "b": "", "": "x"])
        #expect(items("k=1=2&k=3") == ["k": "3"])  // the last one wins; only the first `=` splits
        #expect(items("name=J%C3%BCrgen&city=K%C3%B6ln") == ["name": "Jürgen", "city": "Köln"])
        // Bad escapes and bytes that are not UTF-8 are kept as sent.
        #expect(items("a=%zz&b=%4&c=%&d=%FF") == ["a": "%zz", "b": "%4", "c": "%", "d": "%FF"])
        #expect(items("e=%41%42") == ["e": "AB"])
    }
}
