/// Writes JSON straight to bytes, fields in the order given. For hot answers of a known shape,
/// where building a `JSONValue` tree first (dictionaries, then sorted keys) cost more than the
/// answer itself. Nil optionals are left out, as `Codable` leaves them out.
public struct JSONWriter {
    public private(set) var bytes: [UInt8] = []
    private var needsComma = false

    public init(capacity: Int = 1024) { bytes.reserveCapacity(capacity) }

    private mutating func separate() {
        if needsComma { bytes.append(44) }
        needsComma = true
    }

    // MARK: Values

    public mutating func object(_ body: (inout JSONWriter) -> Void) {
        separate()
        bytes.append(123)
        needsComma = false
        body(&self)
        bytes.append(125)
        needsComma = true
    }

    public mutating func array<Items: Sequence>(_ items: Items, _ each: (inout JSONWriter, Items.Element) -> Void) {
        separate()
        bytes.append(91)
        needsComma = false
        for item in items { each(&self, item) }
        bytes.append(93)
        needsComma = true
    }

    public mutating func string(_ value: String) {
        separate()
        JSONValue.writeString(value, into: &bytes)
    }

    public mutating func number(_ value: Double) {
        separate()
        JSONValue.writeNumber(value, into: &bytes)
    }

    public mutating func integer(_ value: Int64) {
        separate()
        JSONValue.writeInteger(value, into: &bytes)
    }

    public mutating func bool(_ value: Bool) {
        separate()
        bytes += value ? [116, 114, 117, 101] : [102, 97, 108, 115, 101]
    }

    public mutating func value(_ value: JSONValue) {
        separate()
        value.write(into: &bytes)
    }

    // MARK: Object fields

    /// The key of the next value, inside `object`.
    public mutating func key(_ name: String) {
        separate()
        JSONValue.writeString(name, into: &bytes)
        bytes.append(58)
        needsComma = false
    }

    public mutating func field(_ name: String, _ value: String?) {
        guard let value else { return }
        key(name)
        string(value)
    }

    public mutating func field(_ name: String, _ value: Double?) {
        guard let value else { return }
        key(name)
        number(value)
    }

    public mutating func field(_ name: String, integer value: Int64?) {
        guard let value else { return }
        key(name)
        integer(value)
    }

    public mutating func field(_ name: String, _ value: Bool) {
        key(name)
        bool(value)
    }

    public mutating func field(_ name: String, _ value: Timestamp?) {
        guard let value else { return }
        key(name)
        string(value.iso8601)
    }

    public mutating func field(_ name: String, _ value: JSONValue?) {
        guard let value else { return }
        key(name)
        self.value(value)
    }

    public mutating func field(_ name: String, object fields: [String: JSONValue]?) {
        guard let fields else { return }
        key(name)
        value(.object(fields))
    }

    public mutating func field<Items: Sequence>(_ name: String, array items: Items, _ each: (inout JSONWriter, Items.Element) -> Void) {
        key(name)
        array(items, each)
    }
}
