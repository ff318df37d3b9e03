import Foundation

/// A definition (scoring model, segment, …) that cannot be accepted, pointing at
/// the offending part with a JSON pointer (RFC 6901), e.g. `/rules/2/points`.
public struct DefinitionError: Error, Hashable, Sendable, CustomStringConvertible {
    public var pointer: String
    public var message: String

    public init(pointer: String, message: String) {
        self.pointer = pointer
        self.message = message
    }

    public var description: String { "\(pointer.isEmpty ? "/" : pointer): \(message)" }
}

/// Reads a JSON object field by field, remembering where it is so every error
/// names its place, and refusing fields it does not know (a typo such as
/// `"tratis"` would otherwise silently change what a definition means).
struct DefinitionReader {
    let object: [String: JSONValue]
    let pointer: String

    init(_ value: JSONValue, at pointer: String, what: String) throws(DefinitionError) {
        guard case .object(let object) = value else {
            throw DefinitionError(pointer: pointer, message: "\(what) must be a JSON object, got \(value.typeName)")
        }
        self.object = object
        self.pointer = pointer
    }

    func path(_ key: String) -> String {
        pointer + "/" + key.replacingOccurrences(of: "~", with: "~0").replacingOccurrences(of: "/", with: "~1")
    }

    func has(_ key: String) -> Bool {
        if case nil = object[key] { return false }
        if case .null? = object[key] { return false }
        return true
    }

    func rejectUnknownKeys(allowed: Set<String>) throws(DefinitionError) {
        for key in object.keys.sorted() where !allowed.contains(key) {
            throw DefinitionError(
                pointer: path(key),
                message: "unknown field '\(key)' (expected one of: \(allowed.sorted().joined(separator: ", ")))")
        }
    }

    func string(_ key: String) throws(DefinitionError) -> String? {
        switch object[key] {
        case nil, .null?: return nil
        case .string(let value)?: return value
        case let other?: throw DefinitionError(pointer: path(key), message: "must be a string, got \(other.typeName)")
        }
    }

    func requiredString(_ key: String) throws(DefinitionError) -> String {
        guard let value = try string(key), !value.isEmpty else {
            throw DefinitionError(pointer: path(key), message: "is required and must be a non-empty string")
        }
        return value
    }

    func identifier(_ key: String) throws(DefinitionError) -> String {
        let value = try requiredString(key)
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
        guard value.count <= 64, value.allSatisfy({ allowed.contains($0) }) else {
            throw DefinitionError(
                pointer: path(key), message: "'\(value)' must be 1–64 characters of letters, digits, '-', '_' or '.'")
        }
        return value
    }

    func number(_ key: String) throws(DefinitionError) -> Double? {
        switch object[key] {
        case nil, .null?: return nil
        case .number(let value)?:
            guard value.isFinite else { throw DefinitionError(pointer: path(key), message: "must be a finite number") }
            return value
        case let other?: throw DefinitionError(pointer: path(key), message: "must be a number, got \(other.typeName)")
        }
    }

    func array(_ key: String) throws(DefinitionError) -> [JSONValue]? {
        switch object[key] {
        case nil, .null?: return nil
        case .array(let value)?: return value
        case let other?: throw DefinitionError(pointer: path(key), message: "must be an array, got \(other.typeName)")
        }
    }

    func bool(_ key: String) throws(DefinitionError) -> Bool? {
        switch object[key] {
        case nil, .null?: return nil
        case .bool(let value)?: return value
        case let other?: throw DefinitionError(pointer: path(key), message: "must be true or false, got \(other.typeName)")
        }
    }

    /// `{"days": 7}`, `{"hours": 12}`, `{"minutes": 30}` or a sum of them.
    func span(_ key: String) throws(DefinitionError) -> TimeSpan? {
        guard let value = object[key], !value.isNull else { return nil }
        let reader = try DefinitionReader(value, at: path(key), what: "a time span")
        try reader.rejectUnknownKeys(allowed: ["days", "hours", "minutes", "seconds"])
        var total: Double = 0
        for (unit, scale) in [("days", 86_400_000.0), ("hours", 3_600_000.0), ("minutes", 60_000.0), ("seconds", 1000.0)] {
            if let amount = try reader.number(unit) {
                guard amount >= 0 else {
                    throw DefinitionError(pointer: reader.path(unit), message: "must not be negative")
                }
                total += amount * scale
            }
        }
        guard total > 0 else {
            throw DefinitionError(pointer: path(key), message: "must be longer than zero (e.g. {\"days\": 7})")
        }
        guard total <= 3650 * 86_400_000.0 else {
            throw DefinitionError(pointer: path(key), message: "must be at most 10 years")
        }
        return TimeSpan(milliseconds: Int64(total))
    }
}
