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
}
