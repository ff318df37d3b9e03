/// Writes JSON straight to bytes, fields in the order given. For hot answers of a known shape,
/// where building a `JSONValue` tree first (dictionaries, then sorted keys) cost more than the
/// answer itself. Nil optionals are left out, as `Codable` leaves them out.
///
/// Inlinable, so the generic `array` and the closures specialize in the modules that write answers.
public struct JSONWriter {
    @usableFromInline var output: [UInt8] = []
    @usableFromInline var needsComma = false
    @usableFromInline var dates = Timestamp.DateMemo()

    public var bytes: [UInt8] { output }

    @inlinable public init(capacity: Int = 1024) { output.reserveCapacity(capacity) }

    @inlinable mutating func separate() {
        if needsComma { output.append(44) }
        needsComma = true
    }

    // MARK: Values

    @inlinable public mutating func object(_ body: (inout JSONWriter) -> Void) {
        separate()
        output.append(123)
        needsComma = false
        body(&self)
        output.append(125)
        needsComma = true
    }

    @inlinable public mutating func array<Items: Sequence>(_ items: Items, _ each: (inout JSONWriter, Items.Element) -> Void) {
        separate()
        output.append(91)
        needsComma = false
        for item in items { each(&self, item) }
        output.append(93)
        needsComma = true
    }

    @inlinable public mutating func string(_ value: String) {
        separate()
        JSONValue.writeString(value, into: &output)
    }

    /// A string given as its UTF-8 bytes (escaped as needed).
    @inlinable public mutating func string(utf8 bytes: UnsafeBufferPointer<UInt8>) {
        separate()
        JSONValue.writeString(utf8: bytes, into: &output)
    }

    @inlinable public mutating func number(_ value: Double) {
        separate()
        JSONValue.writeNumber(value, into: &output)
    }

    @inlinable public mutating func integer(_ value: Int64) {
        separate()
        JSONValue.writeInteger(value, into: &output)
    }

    @inlinable public mutating func bool(_ value: Bool) {
        separate()
        output += value ? [116, 114, 117, 101] : [102, 97, 108, 115, 101]
    }

    @inlinable public mutating func value(_ value: JSONValue) {
        separate()
        value.write(into: &output)
    }

    // MARK: Object fields

    /// The key of the next value, inside `object`. Keys are literals of the answer's shape,
    /// written as they are: no escaping (a key needing it would be a bug in the writer's caller).
    @inlinable public mutating func key(_ name: StaticString) {
        separate()
        output.append(34)
        output.append(contentsOf: UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
        output.append(34)
        output.append(58)
        needsComma = false
    }

    @inlinable public mutating func field(_ name: StaticString, _ value: String?) {
        guard let value else { return }
        key(name)
        string(value)
    }

    @inlinable public mutating func field(_ name: StaticString, _ value: Double?) {
        guard let value else { return }
        key(name)
        number(value)
    }

    @inlinable public mutating func field(_ name: StaticString, integer value: Int64?) {
        guard let value else { return }
        key(name)
        integer(value)
    }

    @inlinable public mutating func field(_ name: StaticString, _ value: Bool) {
        key(name)
        bool(value)
    }

    @inlinable public mutating func field(_ name: StaticString, _ value: Timestamp?) {
        guard let value else { return }
        key(name)
        value.appendQuotedISO8601(to: &output, memo: &dates)
        needsComma = true
    }

    @inlinable public mutating func field(_ name: StaticString, _ value: JSONValue?) {
        guard let value else { return }
        key(name)
        self.value(value)
    }

    @inlinable public mutating func field(_ name: StaticString, object fields: [String: JSONValue]?) {
        guard let fields else { return }
        key(name)
        value(.object(fields))
    }

    /// A contact's traits as an object, in key order (as `.object` writes a dictionary).
    @inlinable public mutating func field(_ name: StaticString, traits: JSONObject) {
        key(name)
        JSONValue.writeObject(traits, into: &output)
        needsComma = true
    }

    @inlinable public mutating func field<Items: Sequence>(_ name: StaticString, array items: Items, _ each: (inout JSONWriter, Items.Element) -> Void) {
        key(name)
        array(items, each)
    }
}
