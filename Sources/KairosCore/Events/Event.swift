/// The Segment spec's message types.
public enum EventType: String, Sendable, Codable, CaseIterable {
    case track, identify, page, screen, group, alias

    /// Position in `allCases`, for array-indexed tables.
    public var ordinal: Int {
        switch self {
        case .track: return 0
        case .identify: return 1
        case .page: return 2
        case .screen: return 3
        case .group: return 4
        case .alias: return 5
        }
    }
}

/// One validated Segment message.
///
/// `time` is the moment the event happened as Kairos counts it: the client's
/// `timestamp`, corrected for client clock skew with `sentAt` and `receivedAt`
/// the way Segment does, never later than when it was received.
public struct Event: Sendable, Hashable {
    public var type: EventType
    public var timestamp: Timestamp?
    public var sentAt: Timestamp?
    public var receivedAt: Timestamp?
    /// The event's effective time (see the type's documentation).
    public var time: Timestamp
    /// The reference-counted fields, kept in one shared box: an event is copied into
    /// batches, runs and lanes many times and read far more often than it is changed,
    /// so a copy costs one reference count instead of one per string and dictionary.
    private var fields: Fields

    private final class Fields: @unchecked Sendable {
        var messageId: String?
        var userId: String?
        var anonymousId: String?
        var previousId: String?
        var groupId: String?
        var name: String?
        var properties: [String: JSONValue]
        var traits: [String: JSONValue]
        var context: [String: JSONValue]

        init(
            messageId: String?, userId: String?, anonymousId: String?, previousId: String?, groupId: String?,
            name: String?, properties: [String: JSONValue], traits: [String: JSONValue], context: [String: JSONValue]
        ) {
            self.messageId = messageId
            self.userId = userId
            self.anonymousId = anonymousId
            self.previousId = previousId
            self.groupId = groupId
            self.name = name
            self.properties = properties
            self.traits = traits
            self.context = context
        }

        func copy() -> Fields {
            Fields(
                messageId: messageId, userId: userId, anonymousId: anonymousId, previousId: previousId,
                groupId: groupId, name: name, properties: properties, traits: traits, context: context)
        }
    }

    /// Gives this event its own box before a change (copy on write).
    private mutating func uniqueFields() -> Fields {
        if !isKnownUniquelyReferenced(&fields) { fields = fields.copy() }
        return fields
    }

    public var messageId: String? {
        get { fields.messageId }
        set { uniqueFields().messageId = newValue }
    }
    public var userId: String? {
        get { fields.userId }
        set { uniqueFields().userId = newValue }
    }
    public var anonymousId: String? {
        get { fields.anonymousId }
        set { uniqueFields().anonymousId = newValue }
    }
    /// alias: the id being linked to `userId`.
    public var previousId: String? {
        get { fields.previousId }
        set { uniqueFields().previousId = newValue }
    }
    /// group: the account id.
    public var groupId: String? {
        get { fields.groupId }
        set { uniqueFields().groupId = newValue }
    }
    /// track: the event name; page/screen: the page or screen name (may be nil).
    public var name: String? {
        get { fields.name }
        set { uniqueFields().name = newValue }
    }
    public var properties: [String: JSONValue] {
        get { fields.properties }
        _modify { yield &uniqueFields().properties }
    }
    public var traits: [String: JSONValue] {
        get { fields.traits }
        _modify { yield &uniqueFields().traits }
    }
    public var context: [String: JSONValue] {
        get { fields.context }
        _modify { yield &uniqueFields().context }
    }

    public init(
        type: EventType, messageId: String? = nil, userId: String? = nil, anonymousId: String? = nil,
        previousId: String? = nil, groupId: String? = nil, name: String? = nil,
        properties: [String: JSONValue] = [:], traits: [String: JSONValue] = [:],
        context: [String: JSONValue] = [:], timestamp: Timestamp? = nil, sentAt: Timestamp? = nil,
        receivedAt: Timestamp? = nil, time: Timestamp
    ) {
        self.type = type
        self.fields = Fields(
            messageId: messageId, userId: userId, anonymousId: anonymousId, previousId: previousId,
            groupId: groupId, name: name, properties: properties, traits: traits, context: context)
        self.timestamp = timestamp
        self.sentAt = sentAt
        self.receivedAt = receivedAt
        self.time = time
    }

    public static func == (a: Event, b: Event) -> Bool {
        guard a.type == b.type, a.time == b.time, a.timestamp == b.timestamp, a.sentAt == b.sentAt,
            a.receivedAt == b.receivedAt
        else { return false }
        if a.fields === b.fields { return true }
        let x = a.fields, y = b.fields
        return x.messageId == y.messageId && x.userId == y.userId && x.anonymousId == y.anonymousId
            && x.previousId == y.previousId && x.groupId == y.groupId && x.name == y.name
            && x.properties == y.properties && x.traits == y.traits && x.context == y.context
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(type)
        hasher.combine(time)
        hasher.combine(timestamp)
        hasher.combine(sentAt)
        hasher.combine(receivedAt)
        hasher.combine(fields.messageId)
        hasher.combine(fields.userId)
        hasher.combine(fields.anonymousId)
        hasher.combine(fields.previousId)
        hasher.combine(fields.groupId)
        hasher.combine(fields.name)
        hasher.combine(fields.properties)
        hasher.combine(fields.traits)
        hasher.combine(fields.context)
    }

    /// The counter key of this event: `track:Signed Up`, `page:Pricing`, `page:`.
    public var counterName: String { Event.counterName(type: type, name: name) }

    public static func counterName(type: EventType, name: String?) -> String {
        "\(type.rawValue):\(name ?? "")"
    }

    // Convenience builders, used by the demo, tests and benchmarks.

    public static func track(
        _ name: String, userId: String? = nil, anonymousId: String? = nil,
        properties: [String: JSONValue] = [:], messageId: String? = nil, at time: Timestamp
    ) -> Event {
        Event(type: .track, messageId: messageId, userId: userId, anonymousId: anonymousId, name: name,
            properties: properties, time: time)
    }

    public static func identify(
        userId: String?, anonymousId: String? = nil, traits: [String: JSONValue] = [:],
        messageId: String? = nil, at time: Timestamp
    ) -> Event {
        Event(type: .identify, messageId: messageId, userId: userId, anonymousId: anonymousId, traits: traits,
            time: time)
    }

    public static func page(
        _ name: String?, userId: String? = nil, anonymousId: String? = nil,
        properties: [String: JSONValue] = [:], messageId: String? = nil, at time: Timestamp
    ) -> Event {
        Event(type: .page, messageId: messageId, userId: userId, anonymousId: anonymousId, name: name,
            properties: properties, time: time)
    }

    public static func group(
        _ groupId: String, userId: String? = nil, anonymousId: String? = nil, traits: [String: JSONValue] = [:],
        messageId: String? = nil, at time: Timestamp
    ) -> Event {
        Event(type: .group, messageId: messageId, userId: userId, anonymousId: anonymousId, groupId: groupId,
            traits: traits, time: time)
    }

    public static func alias(
        userId: String, previousId: String, messageId: String? = nil, at time: Timestamp
    ) -> Event {
        Event(type: .alias, messageId: messageId, userId: userId, previousId: previousId, time: time)
    }
}
