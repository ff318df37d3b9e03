/// Appends values to a compact binary form: varints, length-prefixed UTF-8, tagged JSON.
/// Used for journal records and snapshots, where Foundation's JSON is 50× too slow.
public struct BinaryWriter: Sendable {
    public private(set) var bytes: [UInt8] = []

    public init(capacity: Int = 256) { bytes.reserveCapacity(capacity) }

    public mutating func writeByte(_ byte: UInt8) { bytes.append(byte) }

    public mutating func writeBytes(_ other: [UInt8]) { bytes.append(contentsOf: other) }

    public mutating func writeVarint(_ value: UInt64) {
        var value = value
        while value >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        bytes.append(UInt8(value))
    }

    /// Zigzag, so small negative numbers stay small.
    public mutating func writeSigned(_ value: Int64) {
        writeVarint(UInt64(bitPattern: (value << 1) ^ (value >> 63)))
    }

    public mutating func write(_ string: String) {
        var string = string
        string.withUTF8 { utf8 in
            writeVarint(UInt64(utf8.count))
            bytes.append(contentsOf: utf8)
        }
    }

    public mutating func writeDouble(_ value: Double) {
        var bits = value.bitPattern.littleEndian
        withUnsafeBytes(of: &bits) { bytes.append(contentsOf: $0) }
    }

    public mutating func write(_ value: Timestamp) { writeSigned(value.milliseconds) }

    public mutating func write(_ value: JSONValue) {
        switch value {
        case .null: writeByte(0)
        case .bool(let flag): writeByte(flag ? 2 : 1)
        case .number(let number):
            // Whole numbers (most counts, sizes, prices in cents) take 1–3 bytes instead of 8.
            if number == number.rounded(), abs(number) < 9.0e15, !(number == 0 && number.sign == .minus) {
                writeByte(3)
                writeSigned(Int64(number))
            } else {
                writeByte(4)
                writeDouble(number)
            }
        case .string(let text):
            writeByte(5)
            write(text)
        case .array(let items):
            writeByte(6)
            writeVarint(UInt64(items.count))
            for item in items { write(item) }
        case .object(let object):
            writeByte(7)
            write(object)
        }
    }

    /// Sorted pairs (traits, event properties), as an object: already in key order.
    public mutating func write(_ object: JSONObject) {
        writeVarint(UInt64(object.count))
        for (key, value) in object {
            write(key)
            write(value)
        }
    }

    /// An object, keys sorted so the same value always gives the same bytes.
    public mutating func write(_ object: [String: JSONValue]) {
        writeVarint(UInt64(object.count))
        // Most objects of an event hold one or two keys: no sorting (or array) for one, and the
        // pairs sorted together so no key is looked up a second time.
        if object.count == 1, let (key, value) = object.first {
            write(key)
            write(value)
            return
        }
        for (key, value) in object.sorted(by: { $0.key < $1.key }) {
            write(key)
            write(value)
        }
    }
}

/// Why bytes could not be decoded: where, and what was expected.
public struct CodecError: Error, Hashable, Sendable, CustomStringConvertible {
    public var offset: Int
    public var message: String
    public var description: String { "at byte \(offset): \(message)" }

    public init(offset: Int, message: String) {
        self.offset = offset
        self.message = message
    }
}

/// Read-only bytes that stay where they are, for readers that read them in place: a
/// snapshot file mapped into memory (its pages are the file cache's own, so a third of a
/// gigabyte for a million contacts costs no fresh memory), or a copy of an array.
public final class ReadOnlyBytes: @unchecked Sendable {
    public let buffer: UnsafeBufferPointer<UInt8>
    private let release: (UnsafeBufferPointer<UInt8>) -> Void

    /// Bytes that `release` gives back once no reader needs them.
    public init(buffer: UnsafeBufferPointer<UInt8>, release: @escaping (UnsafeBufferPointer<UInt8>) -> Void) {
        self.buffer = buffer
        self.release = release
    }

    public convenience init(copying bytes: [UInt8]) {
        let copy = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: Swift.max(bytes.count, 1))
        _ = copy.initialize(from: bytes)
        self.init(buffer: UnsafeBufferPointer(rebasing: copy[0..<bytes.count])) { _ in copy.deallocate() }
    }

    public var count: Int { buffer.count }

    /// A copy as an array (tests and small payloads).
    public var array: [UInt8] { Array(buffer) }

    deinit { release(buffer) }
}

/// Reads what `BinaryWriter` wrote, refusing truncated or malformed input with a `CodecError`.
///
/// Reads through a pointer to the bytes, kept valid by `owner` (the array they are in, or the
/// `ReadOnlyBytes` holding them): no bounds check per byte beyond the reader's own.
public struct BinaryReader {
    private let owner: AnyObject?
    private let array: [UInt8]
    private let base: UnsafePointer<UInt8>
    public private(set) var offset: Int
    /// Where reading stops: the end of the bytes, or of the part of them this reader covers.
    public let end: Int

    public init(_ bytes: [UInt8], offset: Int = 0) {
        self.init(bytes, range: 0..<bytes.count)
        self.offset = offset
    }

    /// A reader of `range` of `bytes` only: a part of a larger buffer is read where it lies,
    /// without a copy of its own.
    public init(_ bytes: [UInt8], range: Range<Int>) {
        precondition(range.lowerBound >= 0 && range.upperBound <= bytes.count, "range outside the bytes")
        owner = nil
        array = bytes
        // A native array's elements do not move while this reader holds the array unchanged.
        base = bytes.withUnsafeBufferPointer { $0.baseAddress } ?? BinaryReader.nothing
        offset = range.lowerBound
        end = range.upperBound
    }

    /// A reader of `range` of `bytes` (all of them when nil), read where they lie.
    public init(_ bytes: ReadOnlyBytes, range: Range<Int>? = nil) {
        let range = range ?? 0..<bytes.count
        precondition(range.lowerBound >= 0 && range.upperBound <= bytes.count, "range outside the bytes")
        owner = bytes
        array = []
        base = bytes.buffer.baseAddress ?? BinaryReader.nothing
        offset = range.lowerBound
        end = range.upperBound
    }

    /// Where an empty reader points: never read, as `end` is 0.
    private static var nothing: UnsafePointer<UInt8> { UnsafePointer(bitPattern: 1)! }

    public var isAtEnd: Bool { offset >= end }

    func failure(_ message: String) -> CodecError { CodecError(offset: offset, message: message) }

    public mutating func readByte() throws(CodecError) -> UInt8 {
        guard offset < end else { throw failure("unexpected end of data") }
        defer { offset += 1 }
        return base[offset]
    }

    public mutating func readVarint() throws(CodecError) -> UInt64 {
        // One byte: most counts, lengths, symbols and small numbers.
        if offset < end, base[offset] & 0x80 == 0 {
            defer { offset += 1 }
            return UInt64(base[offset])
        }
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let byte = try readByte()
            guard shift < 64 else { throw failure("varint longer than 64 bits") }
            result |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return result }
            shift += 7
        }
    }

    public mutating func readSigned() throws(CodecError) -> Int64 {
        let raw = try readVarint()
        return Int64(bitPattern: raw >> 1) ^ -Int64(bitPattern: raw & 1)
    }

    public mutating func readCount(limit: Int = 1 << 24) throws(CodecError) -> Int {
        let count = try readVarint()
        guard count <= UInt64(limit) else { throw failure("count \(count) is larger than \(limit)") }
        return Int(count)
    }

    /// The count of a list that follows, each element at least one byte: a larger count is
    /// corrupt, so a caller may reserve room for the elements before reading them.
    public mutating func readElementCount() throws(CodecError) -> Int {
        let count = try readCount()
        guard count <= end - offset else {
            throw failure("\(count) elements cannot fit in the \(end - offset) bytes left")
        }
        return count
    }

    public mutating func readString() throws(CodecError) -> String {
        let count = try readCount()
        guard offset + count <= end else { throw failure("string of \(count) bytes runs past the end") }
        defer { offset += count }
        // From the buffer itself: a slice of an array counted a reference on it per string,
        // and the restore's workers, reading one snapshot, contended for that count.
        return String(decoding: UnsafeBufferPointer(start: base + offset, count: count), as: UTF8.self)
    }

    /// Moves past `count` bytes; returns where they lie in the bytes (to read them later with
    /// `init(_:range:)`, without copying them).
    public mutating func skip(_ count: Int) throws(CodecError) -> Range<Int> {
        guard count >= 0, offset + count <= end else { throw failure("\(count) bytes run past the end") }
        defer { offset += count }
        return offset..<offset + count
    }

    public mutating func readDouble() throws(CodecError) -> Double {
        guard offset + 8 <= end else { throw failure("unexpected end of data in a number") }
        var bits: UInt64 = 0
        for index in 0..<8 { bits |= UInt64(base[offset + index]) << (8 * UInt64(index)) }
        offset += 8
        return Double(bitPattern: bits)
    }

    public mutating func readTimestamp() throws(CodecError) -> Timestamp {
        Timestamp(milliseconds: try readSigned())
    }

    public mutating func readJSON(depth: Int = 0) throws(CodecError) -> JSONValue {
        guard depth < 64 else { throw failure("JSON nested more than 64 levels") }
        let tag = try readByte()
        switch tag {
        case 0: return .null
        case 1: return .bool(false)
        case 2: return .bool(true)
        case 3: return .number(Double(try readSigned()))
        case 4: return .number(try readDouble())
        case 5: return .string(try readString())
        case 6:
            let count = try readCount()
            var items: [JSONValue] = []
            items.reserveCapacity(Swift.min(count, 1024))
            for _ in 0..<count { items.append(try readJSON(depth: depth + 1)) }
            return .array(items)
        case 7: return .object(try readObject(depth: depth + 1))
        default: throw failure("unknown JSON tag \(tag)")
        }
    }

    /// An object as sorted pairs (traits, event properties), in the order written when it is sorted.
    public mutating func readJSONObject() throws(CodecError) -> JSONObject {
        var object = JSONObject()
        try readJSONObject(into: &object)
        return object
    }

    /// `readJSONObject()` into an object that keeps its room (one an earlier read filled).
    public mutating func readJSONObject(into object: inout JSONObject) throws(CodecError) {
        let count = try readCount()
        object.removeAllKeepingCapacity()
        guard count > 0 else { return }
        object.reserveCapacity(count)
        // Checked while reading: a pass over the pairs afterwards copied each one.
        var ascending = true
        for index in 0..<count {
            let key = try readString()
            if ascending && index > 0 && !object.lastKeyPrecedes(key) { ascending = false }
            object.appendUnchecked(key, try readJSON(depth: 0))
        }
        if !ascending { object = JSONObject(sorted: object.entries) }
    }

    public mutating func readObject(depth: Int = 0) throws(CodecError) -> [String: JSONValue] {
        let count = try readCount()
        // Empty objects (most events' traits or context) share the empty singleton: no storage.
        if count == 0 { return [:] }
        // `init(minimumCapacity:)` specializes; `reserveCapacity` went through the generic entry
        // point and looked up type metadata at run time on every call.
        var object = [String: JSONValue](minimumCapacity: Swift.min(count, 1024))
        for _ in 0..<count {
            let key = try readString()
            object[key] = try readJSON(depth: depth)
        }
        return object
    }
}
