import Foundation
import KairosCore
import Testing

@Suite struct JSONWritingTests {
    @Test func writtenJSONParsesBackToTheSameValue() throws {
        let value: JSONValue = [
            "text": "quote \" backslash \\ slash / newline \n tab \t bell \u{07} é 🚀",
            "numbers": [0, 1, -42, 3.25, 1e-7, 123_456_789_012, 2.5e20],
            "flags": [true, false, nil], "nested": ["empty": [:], "list": []],
        ]
        let bytes = value.jsonBytes()
        #expect(try JSONValue.parse(Data(bytes)) == value)
        #expect(String(decoding: JSONValue.object(["b": 1, "a": "x"]).jsonBytes(), as: UTF8.self) == #"{"a":"x","b":1}"#)
        #expect(String(decoding: JSONValue.number(.nan).jsonBytes(), as: UTF8.self) == "null")
    }

    @Test func theWriterWritesFieldsInOrderAndLeavesNilsOut() throws {
        var writer = JSONWriter()
        writer.object { json in
            json.field("id", integer: -1_234_567_890_123)
            json.field("name", "a \"b\"")
            json.field("missing", nil as String?)
            json.field("score", 2.5)
            json.field("at", Timestamp(milliseconds: 0))
            json.field("ok", true)
            json.field("traits", object: ["z": 1, "a": [nil, "x"]])
            json.field("list", array: [1, 20, 300] as [Int64]) { $0.integer($1) }
            json.field("empty", array: [String]()) { $0.string($1) }
        }
        let text = String(decoding: writer.bytes, as: UTF8.self)
        #expect(
            text == #"{"id":-1234567890123,"name":"a \"b\"","score":2.5,"at":"1970-01-01T00:00:00.000Z","ok":true,"#
                + #""traits":{"a":[null,"x"],"z":1},"list":[1,20,300],"empty":[]}"#)
        #expect(try JSONValue.parse(Data(writer.bytes)).objectValue?["traits"]?.objectValue?["a"] == [nil, "x"])
        // Escapes between runs copied as they are; times written straight to bytes.
        var escapes = JSONWriter()
        escapes.object { json in
            json.field("s", "a\u{07}\"\\\n\u{1F}é")
            json.field("t", Timestamp(milliseconds: -1))
            json.field("u", Timestamp(iso8601: "2026-02-28T23:05:09.042Z"))
        }
        #expect(
            String(decoding: escapes.bytes, as: UTF8.self)
                == #"{"s":"a\u0007\"\\\n\u001fé","t":"1969-12-31T23:59:59.999Z","u":"2026-02-28T23:05:09.042Z"}"#)
        for value: Int64 in [0, 9, 10, -10, .max, .min + 1] {
            var one = JSONWriter()
            one.integer(value)
            #expect(String(decoding: one.bytes, as: UTF8.self) == String(value))
        }
    }
}
