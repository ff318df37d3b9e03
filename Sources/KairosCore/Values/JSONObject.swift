/// A JSON object as key and value pairs sorted by key, in one array: a contact's traits and an
/// event's properties.
///
/// A million contacts keep their traits in memory. As a `Dictionary`, ten traits took 712
/// bytes (sixteen buckets of key and value, a header and a bitmap); sorted pairs take 432, read
/// without hashing the key, and come from a snapshot or the journal in the order they were
/// written. Replaying the journal decodes every event's properties: building a dictionary
/// (its storage, then a hash of each key) was about a tenth of replay's CPU.
public struct JSONObject: Sendable, Hashable, Sequence, ExpressibleByDictionaryLiteral {
    public typealias Element = (key: String, value: JSONValue)

    public private(set) var entries: [Element] = []

    public init() {}

    public init(_ dictionary: [String: JSONValue]) {
        entries.reserveCapacity(dictionary.count)
        for (key, value) in dictionary { entries.append((key, value)) }
        entries.sort { $0.key < $1.key }
    }

    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        for (key, value) in elements { self[key] = value }
    }

    /// Pairs as a snapshot stores them (sorted by key): taken as they are when strictly
    /// ascending, otherwise set one by one (a later pair wins, as in a dictionary).
    public init(sorted pairs: [Element]) {
        if zip(pairs, pairs.dropFirst()).allSatisfy({ $0.key < $1.key }) {
            entries = pairs
        } else {
            for (key, value) in pairs { self[key] = value }
        }
    }

    public mutating func reserveCapacity(_ count: Int) { entries.reserveCapacity(count) }

    /// Empty, with the room it had (a reader fills it again).
    mutating func removeAllKeepingCapacity() { if !entries.isEmpty { entries.removeAll(keepingCapacity: true) } }

    /// A pair after the others, unchecked: the caller makes the object sorted again if the
    /// key does not follow (see `lastKeyPrecedes`).
    mutating func appendUnchecked(_ key: String, _ value: JSONValue) { entries.append((key, value)) }

    /// Whether the last key sorts before `key`.
    func lastKeyPrecedes(_ key: String) -> Bool {
        entries.withUnsafeBufferPointer { $0.last.map { $0.key < key } ?? true }
    }

    public var isEmpty: Bool { entries.isEmpty }
    public var count: Int { entries.count }
    public var keys: [String] { entries.map(\.key) }
    public var dictionary: [String: JSONValue] {
        [String: JSONValue](entries.lazy.map { ($0.key, $0.value) }, uniquingKeysWith: { _, last in last })
    }

    public func makeIterator() -> IndexingIterator<[Element]> { entries.makeIterator() }

    /// Where `key` is among `pairs`, looked for one by one comparing lengths first (stored in
    /// the string, no call): for a dozen traits or so, fewer string comparisons than a binary search.
    @inline(__always)
    private static func scan(_ pairs: UnsafeBufferPointer<Element>, for key: String) -> Int? {
        let length = key.utf8.count
        for index in pairs.indices where pairs[index].key.utf8.count == length && pairs[index].key == key { return index }
        return nil
    }

    func position(of key: String) -> (found: Bool, index: Int) {
        if entries.count <= 16 {
            if let index = entries.withUnsafeBufferPointer({ Self.scan($0, for: key) }) { return (true, index) }
            var index = 0
            while index < entries.count && entries[index].key < key { index += 1 }
            return (false, index)
        }
        var low = 0
        var high = entries.count
        while low < high {
            let mid = (low + high) / 2
            let candidate = entries[mid].key
            if candidate == key { return (true, mid) }
            if candidate < key { low = mid + 1 } else { high = mid }
        }
        return (false, low)
    }

    public subscript(key: String) -> JSONValue? {
        get {
            // A missing key's place in the order is not needed here (it costs string orderings).
            if entries.count <= 16 {
                return entries.withUnsafeBufferPointer { pairs in Self.scan(pairs, for: key).map { pairs[$0].value } }
            }
            // Not a `?:` with `nil`: JSONValue takes a nil literal, which would read as `.null`.
            let (found, index) = position(of: key)
            guard found else { return nil }
            return entries[index].value
        }
        set {
            let (found, index) = position(of: key)
            switch (found, newValue) {
            case (true, let value?): entries[index].value = value
            case (true, nil): entries.remove(at: index)
            case (false, let value?): entries.insertCompactly((key, value), at: index, limit: .max)
            case (false, nil): break
            }
        }
    }

    @discardableResult
    public mutating func removeValue(forKey key: String) -> JSONValue? {
        let (found, index) = position(of: key)
        guard found else { return nil }
        return entries.remove(at: index).value
    }

    /// `value(atPath:)` of an object read where it lies (an event's, through a batch's pointer):
    /// called on `object.pointee`, the method retained and released the object's pairs each time.
    @inline(__always)
    static func value(atPath path: String, of object: UnsafePointer<JSONObject>) -> JSONValue? {
        let direct = object.pointee.entries.withUnsafeBufferPointer { pairs in Self.scan(pairs, for: path).map { pairs[$0].value } }
        if let direct { return direct }
        return object.pointee.nestedValue(atPath: path)
    }

    /// The value at a dotted path (`address.city`), as `[String: JSONValue].value(atPath:)`.
    public func value(atPath path: String) -> JSONValue? {
        if let direct = self[path] { return direct }
        return nestedValue(atPath: path)
    }

    /// `value(atPath:)` once the whole path is known not to be a key.
    private func nestedValue(atPath path: String) -> JSONValue? {
        guard path.utf8.contains(46) else { return nil }
        var components = path.split(separator: ".", omittingEmptySubsequences: false)[...]
        guard let first = components.popFirst(), var current = self[String(first)] else { return nil }
        for component in components {
            guard case .object(let object) = current, let next = object[String(component)] else { return nil }
            current = next
        }
        return current
    }

    public static func == (left: JSONObject, right: JSONObject) -> Bool {
        left.entries.count == right.entries.count
            && zip(left.entries, right.entries).allSatisfy { $0.key == $1.key && $0.value == $1.value }
    }
}

extension JSONObject {
    public func hash(into hasher: inout Hasher) {
        hasher.combine(entries.count)
        for (key, value) in entries {
            hasher.combine(key)
            hasher.combine(value)
        }
    }
}
