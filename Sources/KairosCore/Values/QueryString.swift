/// URL query text (`application/x-www-form-urlencoded`) read byte by byte, without Foundation:
/// admin reads and decisions parse one on every request.
public enum QueryString {
    /// The `name=value` pairs separated by `&`, names and values decoded; empty pairs are
    /// skipped, and a pair without `=` has an empty value.
    public static func pairs(_ query: some StringProtocol) -> [(name: String, value: String)] {
        var result: [(name: String, value: String)] = []
        var text = String(query)
        text.withUTF8 { bytes in
            var start = 0
            while start < bytes.count {
                var end = start
                while end < bytes.count && bytes[end] != UInt8(ascii: "&") { end += 1 }
                if end > start {
                    var equals = start
                    while equals < end && bytes[equals] != UInt8(ascii: "=") { equals += 1 }
                    let name = decode(UnsafeBufferPointer(rebasing: bytes[start..<equals]))
                    let value = equals < end ? decode(UnsafeBufferPointer(rebasing: bytes[(equals + 1)..<end])) : ""
                    result.append((name, value))
                }
                start = end + 1
            }
        }
        return result
    }

    /// One part percent-decoded (`+` as a space, as in queries, when `plusIsSpace`); a part that
    /// does not decode (a bad escape, or bytes that are not UTF-8) is returned as sent.
    public static func decode(_ text: some StringProtocol, plusIsSpace: Bool = true) -> String {
        var text = String(text)
        return text.withUTF8 { decode($0, plusIsSpace: plusIsSpace) }
    }

    public static func decode(_ part: UnsafeBufferPointer<UInt8>, plusIsSpace: Bool = true) -> String {
        guard part.contains(where: { $0 == UInt8(ascii: "%") || (plusIsSpace && $0 == UInt8(ascii: "+")) }) else {
            return String(decoding: part, as: UTF8.self)
        }
        func hex(_ byte: UInt8) -> UInt8? {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
            default: nil
            }
        }
        var decoded: [UInt8] = []
        decoded.reserveCapacity(part.count)
        var index = 0
        while index < part.count {
            switch part[index] {
            case UInt8(ascii: "+") where plusIsSpace:
                decoded.append(UInt8(ascii: " "))
                index += 1
            case UInt8(ascii: "%"):
                guard index + 2 < part.count, let high = hex(part[index + 1]), let low = hex(part[index + 2]) else {
                    return String(decoding: part, as: UTF8.self)
                }
                decoded.append(high << 4 | low)
                index += 3
            default:
                decoded.append(part[index])
                index += 1
            }
        }
        return String(validating: decoded, as: UTF8.self) ?? String(decoding: part, as: UTF8.self)
    }
}
