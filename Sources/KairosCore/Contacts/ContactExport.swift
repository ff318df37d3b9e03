/// A contact as an export holds it: identity, traits, and the derived read-only fields.
public struct ExportedContact: Sendable, Hashable {
    public var id: UInt64
    public var userId: String?
    public var anonymousIds: [String]
    public var traits: [String: JSONValue]
    /// Segment ids the contact is in now.
    public var segments: [String]
    /// Score by scoring model id, as of the export.
    public var scores: [String: Double]
    public var firstSeen: Timestamp?
    public var lastSeen: Timestamp?

    public init(
        id: UInt64, userId: String?, anonymousIds: [String], traits: [String: JSONValue], segments: [String],
        scores: [String: Double], firstSeen: Timestamp?, lastSeen: Timestamp?
    ) {
        self.id = id
        self.userId = userId
        self.anonymousIds = anonymousIds
        self.traits = traits
        self.segments = segments
        self.scores = scores
        self.firstSeen = firstSeen
        self.lastSeen = lastSeen
    }
}

/// Writes exported contacts as CSV or NDJSON. The CSV form imports back unchanged: `userId`,
/// `anonymousId` and one column per trait, then read-only columns whose names start with `_`
/// (which the importer skips).
public enum ContactExportWriter {
    public static func write(_ contacts: [ExportedContact], format: ContactFileFormat) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(contacts.count * 160 + 256)
        switch format {
        case .ndjson:
            for contact in contacts {
                json(contact).write(into: &output)
                output.append(UInt8(ascii: "\n"))
            }
        case .csv:
            let traitNames = Set(contacts.flatMap(\.traits.keys)).subtracting(["userId", "anonymousId"]).sorted()
            let header = ["userId", "anonymousId"] + traitNames + ["_id", "_anonymousIds", "_segments", "_scores", "_firstSeen", "_lastSeen"]
            appendRow(header, to: &output)
            for contact in contacts {
                var fields = [contact.userId ?? "", contact.anonymousIds.first ?? ""]
                for name in traitNames { fields.append(contact.traits[name].map(cell) ?? "") }
                fields.append(String(contact.id))
                fields.append(contact.anonymousIds.joined(separator: " "))
                fields.append(contact.segments.joined(separator: " "))
                fields.append(contact.scores.keys.sorted().map { "\($0)=\(JSONValue.number(contact.scores[$0]!).compactText)" }.joined(separator: " "))
                fields.append(contact.firstSeen?.description ?? "")
                fields.append(contact.lastSeen?.description ?? "")
                appendRow(fields, to: &output)
            }
        }
        return output
    }

    public static func json(_ contact: ExportedContact) -> JSONValue {
        var object: [String: JSONValue] = [
            "id": .number(Double(contact.id)), "anonymousIds": .array(contact.anonymousIds.map(JSONValue.string)),
            "traits": .object(contact.traits), "segments": .array(contact.segments.map(JSONValue.string)),
            "scores": .object(contact.scores.mapValues(JSONValue.number)),
        ]
        if let userId = contact.userId { object["userId"] = .string(userId) }
        if let firstSeen = contact.firstSeen { object["firstSeen"] = .string(firstSeen.description) }
        if let lastSeen = contact.lastSeen { object["lastSeen"] = .string(lastSeen.description) }
        return .object(object)
    }

    /// A trait as a CSV cell: text as it is, other values in their JSON form.
    static func cell(_ value: JSONValue) -> String {
        switch value {
        case .null: return ""
        case .string(let text): return text
        default: return value.compactText
        }
    }

    static func appendRow(_ fields: [String], to output: inout [UInt8]) {
        for (index, field) in fields.enumerated() {
            if index > 0 { output.append(UInt8(ascii: ",")) }
            let needsQuotes = field.utf8.contains { $0 == UInt8(ascii: ",") || $0 == UInt8(ascii: "\"") || $0 == 0x0A || $0 == 0x0D }
                || field.first?.isWhitespace == true || field.last?.isWhitespace == true
            if needsQuotes {
                output.append(UInt8(ascii: "\""))
                for byte in field.utf8 {
                    if byte == UInt8(ascii: "\"") { output.append(byte) }
                    output.append(byte)
                }
                output.append(UInt8(ascii: "\""))
            } else {
                output += field.utf8
            }
        }
        output += [0x0D, 0x0A]
    }
}
