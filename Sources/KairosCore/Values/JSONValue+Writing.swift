extension JSONValue {
    /// Compact JSON text with object keys sorted, written directly into bytes: the gateway's
    /// answers are built with this rather than `JSONEncoder`, which costs microseconds per value.
    public func jsonBytes() -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(256)
        write(into: &output)
        return output
    }

    @usableFromInline func write(into output: inout [UInt8]) {
        switch self {
        case .null: output += [110, 117, 108, 108]
        case .bool(let value): output += value ? [116, 114, 117, 101] : [102, 97, 108, 115, 101]
        case .number(let value): JSONValue.writeNumber(value, into: &output)
        case .string(let value): JSONValue.writeString(value, into: &output)
        case .array(let items):
            output.append(91)
            for (index, item) in items.enumerated() {
                if index > 0 { output.append(44) }
                item.write(into: &output)
            }
            output.append(93)
        case .object(let object): JSONValue.writeObject(object.sorted { $0.key < $1.key }, into: &output)
        }
    }

    /// An object of `pairs`, in the order given (callers give them sorted by key).
    @usableFromInline static func writeObject<Pairs: Sequence>(_ pairs: Pairs, into output: inout [UInt8])
    where Pairs.Element == (key: String, value: JSONValue) {
        output.append(123)
        var first = true
        for (key, value) in pairs {
            if !first { output.append(44) }
            first = false
            JSONValue.writeString(key, into: &output)
            output.append(58)
            value.write(into: &output)
        }
        output.append(125)
    }

    @usableFromInline static func writeNumber(_ value: Double, into output: inout [UInt8]) {
        if !value.isFinite {
            output += [110, 117, 108, 108]
        } else if value == value.rounded(), abs(value) < 1e15 {
            writeInteger(Int64(value), into: &output)
        } else {
            output += String(value).utf8
        }
    }

    /// Digits straight into the output (no intermediate string).
    public static func writeInteger(_ value: Int64, into output: inout [UInt8]) {
        if value < 0 { output.append(45) }
        var magnitude = value.magnitude
        if magnitude < 10 {
            output.append(48 + UInt8(magnitude))
            return
        }
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { buffer in
            var position = 20
            while magnitude > 0 {
                position -= 1
                buffer[position] = 48 + UInt8(magnitude % 10)
                magnitude /= 10
            }
            output.append(contentsOf: buffer[position...])
        }
    }

    @usableFromInline static func writeString(_ text: String, into output: inout [UInt8]) {
        // Runs of bytes that need no escape are copied at once: answers are mostly such runs.
        if let written: Void = text.utf8.withContiguousStorageIfAvailable({ writeString(utf8: $0, into: &output) }) {
            return written
        }
        writeString(utf8: Array(text.utf8), into: &output)
    }

    @usableFromInline static func writeString(utf8 bytes: UnsafeBufferPointer<UInt8>, into output: inout [UInt8]) {
        output.append(34)
        var runStart = 0
        for index in 0..<bytes.count {
            let byte = bytes[index]
            guard byte < 32 || byte == 34 || byte == 92 else { continue }
            if runStart < index { output.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart..<index])) }
            runStart = index + 1
            switch byte {
            case 34: output += [92, 34]
            case 92: output += [92, 92]
            case 10: output += [92, 110]
            case 13: output += [92, 114]
            case 9: output += [92, 116]
            default:
                let hex: StaticString = "0123456789abcdef"
                let digits = hex.utf8Start
                output += [92, 117, 48, 48, digits[Int(byte >> 4)], digits[Int(byte & 15)]]
            }
        }
        if runStart < bytes.count { output.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart...])) }
        output.append(34)
    }

    static func writeString(utf8 bytes: [UInt8], into output: inout [UInt8]) {
        bytes.withUnsafeBufferPointer { writeString(utf8: $0, into: &output) }
    }
}
