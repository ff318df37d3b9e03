import Testing
@testable import KairosCore

@Suite struct JSONObjectTests {
    @Test func behavesAsTheDictionaryItReplaces() {
        var traits = JSONObject()
        var dictionary: [String: JSONValue] = [:]
        var random = SeededRandom(seed: 3)
        let keys = ["plan", "email", "a", "z", "company_size", "é", "Plan", "title", "b.c", ""]
        for _ in 0..<2_000 {
            let key = keys[Int(random.next() % UInt64(keys.count))]
            switch random.next() % 3 {
            case 0:
                traits[key] = .number(Double(random.next() % 100))
                dictionary[key] = traits[key]
            case 1:
                #expect(traits.removeValue(forKey: key) == dictionary.removeValue(forKey: key))
            default:
                #expect(traits[key] == dictionary[key])
            }
            #expect(traits.count == dictionary.count)
        }
        #expect(traits.keys == dictionary.keys.sorted())
        #expect(traits.dictionary == dictionary)
        #expect(JSONObject(dictionary) == traits)
    }

    @Test func pathsReadAsInADictionary() {
        let dictionary: [String: JSONValue] = [
            "address": ["city": "Lyon", "geo": ["lat": 45.7]], "a.b": "literal", "plan": "pro", "tags": ["x"],
        ]
        let traits = JSONObject(dictionary)
        for path in ["address.city", "address.geo.lat", "address.geo", "a.b", "plan", "plan.x", "missing", "address.", ".plan", "tags.0"] {
            #expect(traits.value(atPath: path) == dictionary.value(atPath: path), "\(path)")
        }
    }

    @Test func encodeAsTheSameObjectBytes() throws {
        let dictionary: [String: JSONValue] = ["email": "ana@x.io", "active": true, "size": 40, "nested": ["k": [1, 2]], "zeta": nil]
        var asObject = BinaryWriter()
        asObject.write(dictionary)
        var asTraits = BinaryWriter()
        asTraits.write(JSONObject(dictionary))
        #expect(asTraits.bytes == asObject.bytes)
        var reader = BinaryReader(asObject.bytes)
        #expect(try reader.readJSONObject() == JSONObject(dictionary))
        #expect(reader.isAtEnd)
    }

    /// Keys out of order or repeated in the bytes (not what Kairos writes) still read as an object.
    @Test func unsortedKeysInTheBytesAreSortedWhenRead() throws {
        var writer = BinaryWriter()
        writer.writeVarint(4)
        for (key, value) in [("b", 1.0), ("a", 2.0), ("c", 3.0), ("a", 4.0)] {
            writer.write(key)
            writer.write(JSONValue.number(value))
        }
        var reader = BinaryReader(writer.bytes)
        let object = try reader.readJSONObject()
        #expect(object.keys == ["a", "b", "c"])
        #expect(object["a"] == 4)
        #expect(reader.isAtEnd)
    }

    @Test func unsortedOrRepeatedPairsAreSorted() {
        let traits = JSONObject(sorted: [("b", 1), ("a", 2), ("b", 3)])
        #expect(traits.keys == ["a", "b"])
        #expect(traits["b"] == 3)
        #expect(JSONObject(sorted: [("a", 1), ("b", 2)]).keys == ["a", "b"])
    }

    @Test func writeAsJSONInKeyOrder() {
        let traits: JSONObject = ["b": "x\"y", "a": 1.5, "c": ["d": true]]
        var writer = JSONWriter(capacity: 64)
        writer.object { json in json.field("traits", traits: traits) }
        var expected = JSONWriter(capacity: 64)
        expected.object { json in json.field("traits", object: traits.dictionary) }
        #expect(writer.bytes == expected.bytes)
        #expect(String(decoding: writer.bytes, as: UTF8.self) == #"{"traits":{"a":1.5,"b":"x\"y","c":{"d":true}}}"#)
    }

    /// Event properties are sorted pairs now; the journal's bytes for an event are those an
    /// event with a properties dictionary wrote (keys in order), so older journals replay as before.
    @Test func eventPropertiesKeepTheirJournalBytes() throws {
        let properties: [String: JSONValue] = ["path": "/pricing", "value": 12.5, "items": [["sku": "a"]], "Plan": "pro"]
        let event = Event.track("Order Completed", userId: "ana", properties: properties, at: Timestamp(milliseconds: 5))
        var expected = BinaryWriter()
        expected.writeVarint(1)
        expected.writeByte(1)
        expected.writeByte(UInt8(EventType.track.ordinal))
        expected.writeVarint(2 | 32)
        expected.write("ana")
        expected.write("Order Completed")
        expected.write(Timestamp(milliseconds: 5))
        expected.write(properties)
        expected.write([String: JSONValue]())
        expected.write([String: JSONValue]())
        #expect([event].encoded() == expected.bytes)
        let decoded = try [Event].decode(expected.bytes)
        #expect(decoded == [event])
        #expect(decoded[0].properties.keys == ["Plan", "items", "path", "value"])
        #expect(decoded[0].properties.value(atPath: "path") == "/pricing")
    }
}
