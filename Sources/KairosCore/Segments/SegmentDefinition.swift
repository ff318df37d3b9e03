/// A live segment: a named predicate whose members are kept up to date as events
/// arrive and as time windows lapse.
public struct SegmentDefinition: Sendable, Hashable {
    public var id: String
    public var name: String
    public var description: String?
    public var condition: Predicate
    /// The JSON this segment was defined with.
    public var source: JSONValue

    public init(id: String, name: String, description: String?, condition: Predicate, source: JSONValue) {
        self.id = id
        self.name = name
        self.description = description
        self.condition = condition
        self.source = source
    }

    /// Parses and validates a segment (format: `docs/segments.md`).
    public static func parse(_ json: JSONValue) throws(DefinitionError) -> SegmentDefinition {
        let reader = try DefinitionReader(json, at: "", what: "a segment")
        try reader.rejectUnknownKeys(allowed: ["id", "name", "description", "condition"])
        let id = try reader.identifier("id")
        guard let conditionValue = reader.object["condition"], !conditionValue.isNull else {
            throw DefinitionError(pointer: "/condition", message: "is required")
        }
        let condition = try Predicate.parse(conditionValue, at: "/condition", placement: .segment)
        return SegmentDefinition(
            id: id, name: try reader.string("name") ?? id, description: try reader.string("description"),
            condition: condition, source: json)
    }
}

extension JSONValue {
    /// The JSON pointer of the first object holding `key` with the string `value`.
    func pointer(ofKey key: String, value: String, from base: String = "") -> String? {
        switch self {
        case .object(let object):
            if case .string(let found)? = object[key], found == value { return base + "/" + key }
            for (childKey, child) in object.sorted(by: { $0.key < $1.key }) {
                if let found = child.pointer(ofKey: key, value: value, from: base + "/" + childKey) { return found }
            }
        case .array(let items):
            for (index, child) in items.enumerated() {
                if let found = child.pointer(ofKey: key, value: value, from: base + "/\(index)") { return found }
            }
        default: break
        }
        return nil
    }
}
