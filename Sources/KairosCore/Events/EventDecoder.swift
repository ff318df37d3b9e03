/// Why one event was rejected: which event of a batch, which field, and why.
public struct EventValidationError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The event's position in its batch, when it came in one.
    public var index: Int?
    /// The field at fault, as a dotted path (`context.traits`), or `""` for the whole event.
    public var field: String
    public var message: String

    public init(index: Int? = nil, field: String, message: String) {
        self.index = index
        self.field = field
        self.message = message
    }

    public var description: String {
        let position = index.map { "batch[\($0)]" } ?? "event"
        return field.isEmpty ? "\(position): \(message)" : "\(position).\(field): \(message)"
    }
}

/// Turns JSON into validated `Event`s following the Segment spec.
public struct EventDecoder: Sendable {
    /// Segment's own limits: ids longer than this are surely a client bug.
    public static let maximumIdentifierLength = 1024

    public init() {}

    /// Decodes one message. `type` comes from the route (`/v1/track`) when the body has none.
    public func decode(
        _ json: JSONValue, defaultType: EventType? = nil, receivedAt: Timestamp, index: Int? = nil
    ) -> Result<Event, EventValidationError> {
        guard case .object(let object) = json else {
            return .failure(EventValidationError(index: index, field: "", message: "expected a JSON object, got \(json.typeName)"))
        }
        return decode(SegmentFields(object), defaultType: defaultType, receivedAt: receivedAt, index: index)
    }

    /// Decodes one message from its fields (see `SegmentFields`).
    public func decode(
        _ object: SegmentFields, defaultType: EventType? = nil, receivedAt: Timestamp, index: Int? = nil
    ) -> Result<Event, EventValidationError> {
        func failure(_ field: String, _ message: String) -> Result<Event, EventValidationError> {
            .failure(EventValidationError(index: index, field: field, message: message))
        }
        let type: EventType
        switch object[.type] {
        case nil, .null?:
            guard let defaultType else { return failure("type", "is required (one of \(Self.typeList))") }
            type = defaultType
        case .string(let raw)?:
            guard let parsed = EventType(rawValue: raw) else {
                return failure("type", "'\(raw)' is not a Segment message type (one of \(Self.typeList))")
            }
            if let defaultType, defaultType != parsed {
                return failure("type", "is '\(raw)' but this endpoint takes '\(defaultType.rawValue)'")
            }
            type = parsed
        case let other?:
            return failure("type", "must be a string, got \(other.typeName)")
        }

        var problems: [(String, String)] = []
        func identifier(_ field: SegmentFields.Field) -> String? {
            let key = field.key
            switch object[field] {
            case nil, .null?: return nil
            case .string(let text)?:
                if text.isEmpty { return nil }
                if text.utf8.count > Self.maximumIdentifierLength {
                    problems.append((key, "is longer than \(Self.maximumIdentifierLength) bytes"))
                }
                return text
            case .number(let number)?:
                // Some SDKs send numeric ids; Segment accepts them as strings.
                return JSONValue.number(number).compactText
            case let other?:
                problems.append((key, "must be a string, got \(other.typeName)"))
                return nil
            }
        }
        func objectField(_ field: SegmentFields.Field) -> [String: JSONValue] {
            let key = field.key
            switch object[field] {
            case nil, .null?: return [:]
            case .object(let value)?: return value
            case let other?:
                problems.append((key, "must be an object, got \(other.typeName)"))
                return [:]
            }
        }
        func dateField(_ field: SegmentFields.Field) -> Timestamp? {
            let key = field.key
            switch object[field] {
            case nil, .null?: return nil
            case .string(let text)?:
                guard let parsed = Timestamp(iso8601: text) else {
                    problems.append((key, "'\(text)' is not an ISO-8601 date-time"))
                    return nil
                }
                return parsed
            case let other?:
                problems.append((key, "must be an ISO-8601 string, got \(other.typeName)"))
                return nil
            }
        }

        let messageId = identifier(.messageId)
        let userId = identifier(.userId)
        let anonymousId = identifier(.anonymousId)
        let context = objectField(.context)
        let properties = objectField(.properties)
        var traits = objectField(.traits)
        let timestamp = dateField(.timestamp)
        let sentAt = dateField(.sentAt)
        let bodyReceivedAt = dateField(.receivedAt)
        var name: String?
        var previousId: String?
        var groupId: String?

        switch type {
        case .track:
            switch object[.event] {
            case .string(let text)? where !text.isEmpty: name = text
            case nil, .null?, .string?: problems.append(("event", "is required for track and must not be empty"))
            case let other?: problems.append(("event", "must be a string, got \(other.typeName)"))
            }
        case .page, .screen:
            switch object[.name] {
            case nil, .null?: name = nil
            case .string(let text)?: name = text.isEmpty ? nil : text
            case let other?: problems.append(("name", "must be a string, got \(other.typeName)"))
            }
        case .identify:
            // Older SDKs put traits in context.traits.
            if traits.isEmpty, case .object(let contextTraits)? = context["traits"] { traits = contextTraits }
        case .group:
            groupId = identifier(.groupId)
            if groupId == nil, problems.allSatisfy({ $0.0 != "groupId" }) {
                problems.append(("groupId", "is required for group"))
            }
        case .alias:
            previousId = identifier(.previousId)
            if previousId == nil, problems.allSatisfy({ $0.0 != "previousId" }) {
                problems.append(("previousId", "is required for alias"))
            }
        }

        if type == .alias {
            if userId == nil, problems.allSatisfy({ $0.0 != "userId" }) {
                problems.append(("userId", "is required for alias"))
            }
        } else if userId == nil && anonymousId == nil
            && problems.allSatisfy({ $0.0 != "userId" && $0.0 != "anonymousId" })
        {
            problems.append(("userId", "userId or anonymousId is required"))
        }

        if let (field, message) = problems.first { return failure(field, message) }

        let received = bodyReceivedAt ?? receivedAt
        var time = timestamp ?? received
        if let timestamp, let sentAt {
            // Segment's clock-skew correction: the client clock's offset is sentAt - receivedAt.
            time = Timestamp(milliseconds: received.milliseconds - (sentAt.milliseconds - timestamp.milliseconds))
        }
        if time > received { time = received }

        return .success(
            Event(
                type: type, messageId: messageId, userId: userId, anonymousId: anonymousId, previousId: previousId,
                groupId: groupId, name: name, properties: properties, traits: traits, context: context,
                timestamp: timestamp, sentAt: sentAt, receivedAt: received, time: time))
    }

    /// Decodes a `/v1/batch` body (`{"batch": [...]}`) or a bare array; each event
    /// stands alone, so one bad event does not reject the others.
    public func decodeBatch(_ json: JSONValue, receivedAt: Timestamp) -> Result<
        [Result<Event, EventValidationError>], EventValidationError
    > {
        let items: [JSONValue]
        var batchContext: [String: JSONValue] = [:]
        var batchSentAt: JSONValue?
        switch json {
        case .array(let array): items = array
        case .object(let object):
            guard case .array(let array)? = object["batch"] else {
                return .failure(EventValidationError(field: "batch", message: "is required and must be an array"))
            }
            items = array
            if case .object(let context)? = object["context"] { batchContext = context }
            batchSentAt = object["sentAt"]
        default:
            return .failure(
                EventValidationError(field: "", message: "expected an object with 'batch', got \(json.typeName)"))
        }
        return .success(
            items.enumerated().map { index, item in
                var item = item
                // Batch-level sentAt and context apply to every message that lacks its own.
                if case .object(var object) = item {
                    if object["sentAt"] == nil, let batchSentAt { object["sentAt"] = batchSentAt }
                    if !batchContext.isEmpty {
                        var context = object["context"]?.objectValue ?? [:]
                        for (key, value) in batchContext where context[key] == nil { context[key] = value }
                        object["context"] = .object(context)
                    }
                    item = .object(object)
                }
                return decode(item, receivedAt: receivedAt, index: index)
            })
    }

    static let typeList = EventType.allCases.map(\.rawValue).joined(separator: ", ")
}
