extension JSONValue {
    /// Compact JSON text with object keys sorted, written directly into bytes: the gateway's
    /// answers are built with this rather than `JSONEncoder`, which costs microseconds per value.
    public func jsonBytes() -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(256)
        write(into: &output)
        return output
    }

    func write(into output: inout [UInt8]) {
        switch self {
        case .null: output += [110, 117, 108, 108]
        case .bool(let value): output += value ? [116, 114, 117, 101] : [102, 97, 108, 115, 101]
        case .number(let value):
            if !value.isFinite {
                output += [110, 117, 108, 108]
            } else if value == value.rounded(), abs(value) < 1e15 {
                output += Array(String(Int64(value)).utf8)
            } else {
                output += Array(String(value).utf8)
            }
        case .string(let value): JSONValue.writeString(value, into: &output)
        case .array(let items):
            output.append(91)
            for (index, item) in items.enumerated() {
                if index > 0 { output.append(44) }
                item.write(into: &output)
            }
            output.append(93)
        case .object(let object):
            output.append(123)
            for (index, key) in object.keys.sorted().enumerated() {
                if index > 0 { output.append(44) }
                JSONValue.writeString(key, into: &output)
                output.append(58)
                object[key]!.write(into: &output)
            }
            output.append(125)
        }
    }

    static func writeString(_ text: String, into output: inout [UInt8]) {
        output.append(34)
        for byte in text.utf8 {
            switch byte {
            case 34: output += [92, 34]
            case 92: output += [92, 92]
            case 10: output += [92, 110]
            case 13: output += [92, 114]
            case 9: output += [92, 116]
            case 0..<32:
                let hex = Array("0123456789abcdef".utf8)
                output += [92, 117, 48, 48, hex[Int(byte >> 4)], hex[Int(byte & 15)]]
            default: output.append(byte)
            }
        }
        output.append(34)
    }
}
