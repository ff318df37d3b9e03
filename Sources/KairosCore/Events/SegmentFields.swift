/// The top-level fields of one Segment message that Kairos reads, as JSON, before validation.
///
/// A parser can fill this straight from its tokens (the gateway does, from simdjson's tape)
/// without building a dictionary for the whole message; fields Kairos does not read are
/// never materialised.
public struct SegmentFields: Sendable {
    public enum Field: Int, CaseIterable, Sendable {
        case type, messageId, userId, anonymousId, previousId, groupId, event, name
        case properties, traits, context, timestamp, sentAt, receivedAt

        public var key: String {
            switch self {
            case .type: "type"
            case .messageId: "messageId"
            case .userId: "userId"
            case .anonymousId: "anonymousId"
            case .previousId: "previousId"
            case .groupId: "groupId"
            case .event: "event"
            case .name: "name"
            case .properties: "properties"
            case .traits: "traits"
            case .context: "context"
            case .timestamp: "timestamp"
            case .sentAt: "sentAt"
            case .receivedAt: "receivedAt"
            }
        }

        /// The field a key's UTF-8 bytes name, if Kairos reads it (exact and case-sensitive, as JSON keys are).
        public static func named(_ key: UnsafeRawBufferPointer) -> Field? {
            func matches(_ field: Field) -> Field? {
                // Byte by byte: the generic `elementsEqual` over a String's UTF-8 view costs
                // more than the rest of the lookup.
                var expected = field.key
                return expected.withUTF8 { expected in
                    for index in 0..<expected.count where expected[index] != key[index] { return nil }
                    return field
                }
            }
            switch key.count {
            case 4: return matches(.type) ?? matches(.name)
            case 5: return matches(.event)
            case 6: return matches(.userId) ?? matches(.traits) ?? matches(.sentAt)
            case 7: return matches(.groupId) ?? matches(.context)
            case 9: return matches(.messageId) ?? matches(.timestamp)
            case 10: return matches(.previousId) ?? matches(.properties) ?? matches(.receivedAt)
            case 11: return matches(.anonymousId)
            default: return nil
            }
        }
    }

    // Stored one by one, not in an array: a message's fields then cost no allocation.
    private var type, messageId, userId, anonymousId, previousId, groupId, event, name: JSONValue?
    private var properties, traits, context, timestamp, sentAt, receivedAt: JSONValue?

    public init() {}

    /// The fields of a parsed message object.
    public init(_ object: [String: JSONValue]) {
        for field in Field.allCases { self[field] = object[field.key] }
    }

    /// The field's value as sent (`.null` when sent as null), or nil when absent.
    public subscript(field: Field) -> JSONValue? {
        get {
            switch field {
            case .type: type
            case .messageId: messageId
            case .userId: userId
            case .anonymousId: anonymousId
            case .previousId: previousId
            case .groupId: groupId
            case .event: event
            case .name: name
            case .properties: properties
            case .traits: traits
            case .context: context
            case .timestamp: timestamp
            case .sentAt: sentAt
            case .receivedAt: receivedAt
            }
        }
        set {
            switch field {
            case .type: type = newValue
            case .messageId: messageId = newValue
            case .userId: userId = newValue
            case .anonymousId: anonymousId = newValue
            case .previousId: previousId = newValue
            case .groupId: groupId = newValue
            case .event: event = newValue
            case .name: name = newValue
            case .properties: properties = newValue
            case .traits: traits = newValue
            case .context: context = newValue
            case .timestamp: timestamp = newValue
            case .sentAt: sentAt = newValue
            case .receivedAt: receivedAt = newValue
            }
        }
    }
}
