/// Interns strings (event counter names, segment ids) into small integers, so a
/// contact stores 4 bytes per key instead of a string. One table per tenant; ids
/// are never reused, and symbol 0 means "none".
public struct SymbolTable: Sendable {
    private var ids: [String: UInt32] = [:]
    private var names: [String] = [""]
    /// Counter names by type and raw name, so interning an event needs no string concatenation.
    private var counterIds: [[String: UInt32]] = EventType.allCases.map { _ in [:] }

    public init() {}

    public mutating func intern(_ name: String) -> UInt32 {
        if let id = ids[name] { return id }
        let id = UInt32(names.count)
        names.append(name)
        ids[name] = id
        return id
    }

    /// The symbol of `Event.counterName(type:name:)`.
    public mutating func internCounter(type: EventType, name: String?) -> UInt32 {
        if let id = counterIds[type.ordinal][name ?? ""] { return id }
        let id = intern(Event.counterName(type: type, name: name))
        counterIds[type.ordinal][name ?? ""] = id
        return id
    }

    public func lookup(_ name: String) -> UInt32? { ids[name] }

    public func name(of symbol: UInt32) -> String? {
        Int(symbol) < names.count && symbol != 0 ? names[Int(symbol)] : nil
    }

    public var count: Int { names.count - 1 }

    public static func segmentKey(_ id: String) -> String { "segment:" + id }
}
