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
    public var messageId: String?
    public var userId: String?
    public var anonymousId: String?
    /// alias: the id being linked to `userId`.
    public var previousId: String?
    /// group: the account id.
    public var groupId: String?
    /// track: the event name; page/screen: the page or screen name (may be nil).
    public var name: String?
    /// Sorted pairs (see `JSONObject`): replay decodes millions of them.
    public var properties: JSONObject
    public var traits: [String: JSONValue]
    public var context: [String: JSONValue]
    public var timestamp: Timestamp?
    public var sentAt: Timestamp?
    public var receivedAt: Timestamp?
    /// The event's effective time (see the type's documentation).
    public var time: Timestamp

    public init(
        type: EventType, messageId: String? = nil, userId: String? = nil, anonymousId: String? = nil,
        previousId: String? = nil, groupId: String? = nil, name: String? = nil,
        properties: [String: JSONValue] = [:], traits: [String: JSONValue] = [:],
        context: [String: JSONValue] = [:], timestamp: Timestamp? = nil, sentAt: Timestamp? = nil,
        receivedAt: Timestamp? = nil, time: Timestamp
    ) {
        self.type = type
        self.messageId = messageId
        self.userId = userId
        self.anonymousId = anonymousId
        self.previousId = previousId
        self.groupId = groupId
        self.name = name
        self.properties = JSONObject(properties)
        self.traits = traits
        self.context = context
        self.timestamp = timestamp
        self.sentAt = sentAt
        self.receivedAt = receivedAt
        self.time = time
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

extension [Event] {
    /// The events' `messageId`s, read in place: `map(\.messageId)` copied every event (a
    /// reference count per string and object) to read one field.
    public func messageIds() -> [String?] {
        var ids: [String?] = []
        ids.reserveCapacity(count)
        for index in indices { ids.append(self[index].messageId) }
        return ids
    }
}

extension Event {
    /// The properties of the event at `event`, where they lie: a call on
    /// `event.pointee.properties` retains and releases them around it.
    @inline(__always)
    static func properties(of event: UnsafePointer<Event>) -> UnsafePointer<JSONObject> {
        UnsafeRawPointer(event).advanced(by: MemoryLayout<Event>.offset(of: \Event.properties)!).assumingMemoryBound(to: JSONObject.self)
    }
}
