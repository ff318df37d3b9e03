/// A comparison operator of the predicate language (`docs/segments.md`).
public enum ComparisonOperator: String, Sendable, Hashable, CaseIterable {
    case eq, neq, `in`, contains, startsWith = "starts_with", endsWith = "ends_with"
    case gt, gte, lt, lte, exists
    case isTrue = "is_true"
}

/// Where a field predicate looks.
public enum FieldScope: String, Sendable, Hashable {
    /// The contact's traits.
    case trait
    /// The traits of the contact's account (set by `group`).
    case account
    /// The event's properties (only inside an event condition's `where`).
    case property
    /// The event's context (`campaign.source`, `page.url`; only inside `where`).
    case context
}

/// How many times an event must have happened, and in which window.
public struct EventCondition: Sendable, Hashable {
    public var type: EventType
    /// nil matches every event of `type`.
    public var name: String?
    /// A predicate over the event's properties and context.
    public var filter: Predicate?
    public var countOperator: ComparisonOperator
    public var count: Int
    /// nil means "ever".
    public var window: TimeSpan?
    /// The counter this condition reads, resolved when definitions are compiled.
    public var counterSymbol: UInt32 = 0

    /// The canonical key of the counter this condition needs.
    public var counterKey: String {
        if filter == nil, let name { return Event.counterName(type: type, name: name) }
        let filterText = filter.map { $0.canonicalText } ?? ""
        return "\(type.rawValue):\(name ?? "*")|\(filterText)"
    }

    /// How many recent occurrence times the counter must keep to decide this condition exactly.
    public var requiredDepth: Int {
        guard window != nil else { return 0 }
        switch countOperator {
        case .gte, .lt: return max(count, 1)
        case .gt, .lte, .eq, .neq: return count + 1
        default: return max(count, 1)
        }
    }
}

/// A condition on the contact's first-seen or last-seen time.
public enum TimeCondition: Sendable, Hashable {
    case before(Timestamp)
    case after(Timestamp)
    /// Within the last span (relative to now).
    case within(TimeSpan)
    /// Longer ago than span (relative to now).
    case olderThan(TimeSpan)
}

/// The predicate language shared by segments, scoring rules, journeys and decisions.
public indirect enum Predicate: Sendable, Hashable {
    case all([Predicate])
    case any([Predicate])
    case not(Predicate)
    case field(FieldScope, path: String, op: ComparisonOperator, value: JSONValue)
    case score(model: String, op: ComparisonOperator, value: Double)
    case grade(model: String, op: ComparisonOperator, value: JSONValue)
    case lifecycle(model: String, op: ComparisonOperator, value: JSONValue)
    /// Membership of another segment; `symbol` is resolved at compile time.
    case segment(id: String, symbol: UInt32)
    case event(EventCondition)
    case firstSeen(TimeCondition)
    case lastSeen(TimeCondition)

    /// A stable text form, used to key counters of filtered event conditions.
    public var canonicalText: String {
        switch self {
        case .all(let items): return "all(" + items.map(\.canonicalText).joined(separator: ",") + ")"
        case .any(let items): return "any(" + items.map(\.canonicalText).joined(separator: ",") + ")"
        case .not(let item): return "not(" + item.canonicalText + ")"
        case .field(let scope, let path, let op, let value):
            return "\(scope.rawValue).\(path) \(op.rawValue) \(value.encodedText)"
        case .score(let model, let op, let value): return "score.\(model) \(op.rawValue) \(value)"
        case .grade(let model, let op, let value): return "grade.\(model) \(op.rawValue) \(value.encodedText)"
        case .lifecycle(let model, let op, let value): return "lifecycle.\(model) \(op.rawValue) \(value.encodedText)"
        case .segment(let id, _): return "segment(\(id))"
        case .event(let condition): return "event(\(condition.counterKey) \(condition.countOperator.rawValue) \(condition.count) \(condition.window?.milliseconds ?? 0))"
        case .firstSeen(let condition): return "first_seen(\(condition))"
        case .lastSeen(let condition): return "last_seen(\(condition))"
        }
    }
}

extension JSONValue {
    var encodedText: String { String(decoding: encodedData(), as: UTF8.self) }
}

// MARK: - Parsing

extension Predicate {
    /// Where a predicate may appear decides which leaves it may use.
    public enum Placement: Sendable {
        /// A segment condition: everything.
        case segment
        /// A scoring rule's trait condition: traits and account traits only (no scores: a
        /// score must not depend on itself).
        case traitRule
        /// An event condition's `where`: properties and context only.
        case eventFilter
        /// A placement's targeting rule: what a segment may use except event counts (define a
        /// segment for those and test its membership), plus the request's `context`.
        case decision
        /// A journey's entry, exit, goal or branch condition: like `decision` without the
        /// request's `context` (a journey step has no request).
        case journey
    }

    static let leafKeys: Set<String> = [
        "all", "any", "not", "trait", "account", "property", "context", "score", "grade", "lifecycle", "segment",
        "event", "first_seen", "last_seen",
    ]

    /// Parses the JSON form documented in `docs/segments.md`.
    public static func parse(_ json: JSONValue, at pointer: String = "", placement: Placement = .segment) throws(
        DefinitionError
    ) -> Predicate {
        let reader = try DefinitionReader(json, at: pointer, what: "a condition")
        let kinds = reader.object.keys.filter { leafKeys.contains($0) }
        guard kinds.count == 1, let kind = kinds.first else {
            let found = kinds.isEmpty ? "none" : kinds.sorted().joined(separator: ", ")
            throw DefinitionError(
                pointer: pointer,
                message: "a condition needs exactly one of: \(leafKeys.sorted().joined(separator: ", ")) (found \(found))")
        }

        func notAllowed() -> DefinitionError {
            let allowed: String
            switch placement {
            case .segment: allowed = "anything but 'property' and 'context'"
            case .traitRule: allowed = "'trait', 'account', 'all', 'any', 'not'"
            case .eventFilter: allowed = "'property', 'context', 'all', 'any', 'not'"
            case .decision:
                allowed = "anything but 'property' and 'event' (for event counts, define a segment and use {\"segment\": …})"
            case .journey:
                allowed = "anything but 'property', 'context' and 'event' (for event counts, define a segment and use {\"segment\": …})"
            }
            return DefinitionError(pointer: reader.path(kind), message: "'\(kind)' is not allowed here (allowed: \(allowed))")
        }

        switch kind {
        case "all", "any":
            try reader.rejectUnknownKeys(allowed: [kind])
            guard let items = try reader.array(kind), !items.isEmpty else {
                throw DefinitionError(pointer: reader.path(kind), message: "must be a non-empty array of conditions")
            }
            var parsed: [Predicate] = []
            for (index, item) in items.enumerated() {
                parsed.append(try parse(item, at: reader.path(kind) + "/\(index)", placement: placement))
            }
            return kind == "all" ? .all(parsed) : .any(parsed)
        case "not":
            try reader.rejectUnknownKeys(allowed: ["not"])
            return .not(try parse(reader.object["not"]!, at: reader.path("not"), placement: placement))
        case "trait", "account", "property", "context":
            let scope = FieldScope(rawValue: kind)!
            switch (placement, scope) {
            case (.segment, .trait), (.segment, .account), (.traitRule, .trait), (.traitRule, .account),
                (.eventFilter, .property), (.eventFilter, .context), (.decision, .trait), (.decision, .account),
                (.decision, .context), (.journey, .trait), (.journey, .account):
                break
            default: throw notAllowed()
            }
            try reader.rejectUnknownKeys(allowed: [kind, "op", "value"])
            let path = try reader.requiredString(kind)
            let (op, value) = try parseComparison(reader)
            return .field(scope, path: path, op: op, value: value)
        case "score":
            guard placement == .segment || placement == .decision || placement == .journey else { throw notAllowed() }
            try reader.rejectUnknownKeys(allowed: ["score", "op", "value"])
            let model = try reader.requiredString("score")
            let (op, value) = try parseComparison(reader)
            guard [.eq, .neq, .gt, .gte, .lt, .lte].contains(op) else {
                throw DefinitionError(pointer: reader.path("op"), message: "a score compares with eq, neq, gt, gte, lt or lte")
            }
            guard let number = value.numberValue, case .number = value else {
                throw DefinitionError(pointer: reader.path("value"), message: "a score is compared with a number")
            }
            return .score(model: model, op: op, value: number)
        case "grade", "lifecycle":
            guard placement == .segment || placement == .decision || placement == .journey else { throw notAllowed() }
            try reader.rejectUnknownKeys(allowed: [kind, "op", "value"])
            let model = try reader.requiredString(kind)
            let (op, value) = try parseComparison(reader)
            guard [.eq, .neq, .in, .exists].contains(op) else {
                throw DefinitionError(pointer: reader.path("op"), message: "a \(kind) compares with eq, neq, in or exists")
            }
            return kind == "grade" ? .grade(model: model, op: op, value: value) : .lifecycle(model: model, op: op, value: value)
        case "segment":
            guard placement == .segment || placement == .decision || placement == .journey else { throw notAllowed() }
            try reader.rejectUnknownKeys(allowed: ["segment"])
            return .segment(id: try reader.requiredString("segment"), symbol: 0)
        case "event":
            guard placement == .segment else { throw notAllowed() }
            return .event(try parseEventCondition(reader))
        case "first_seen", "last_seen":
            guard placement == .segment || placement == .decision || placement == .journey else { throw notAllowed() }
            try reader.rejectUnknownKeys(allowed: [kind])
            let condition = try parseTimeCondition(reader.object[kind]!, at: reader.path(kind))
            return kind == "first_seen" ? .firstSeen(condition) : .lastSeen(condition)
        default:
            throw DefinitionError(pointer: pointer, message: "unknown condition '\(kind)'")
        }
    }

    static func parseComparison(_ reader: DefinitionReader) throws(DefinitionError) -> (ComparisonOperator, JSONValue) {
        let opText = try reader.requiredString("op")
        guard let op = ComparisonOperator(rawValue: opText) else {
            throw DefinitionError(
                pointer: reader.path("op"),
                message: "unknown operator '\(opText)' (one of: \(ComparisonOperator.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        let value = reader.object["value"] ?? .null
        switch op {
        case .exists, .isTrue:
            if !value.isNull, value.boolValue == nil {
                throw DefinitionError(pointer: reader.path("value"), message: "'\(op.rawValue)' takes no value, or true/false")
            }
        case .in:
            guard case .array(let items) = value, !items.isEmpty else {
                throw DefinitionError(pointer: reader.path("value"), message: "'in' needs a non-empty array of values")
            }
        case .gt, .gte, .lt, .lte:
            switch value {
            case .number: break
            case .string(let text) where Timestamp(iso8601: text) != nil: break
            default:
                throw DefinitionError(
                    pointer: reader.path("value"), message: "'\(op.rawValue)' compares with a number or an ISO-8601 date")
            }
        case .contains, .startsWith, .endsWith:
            switch value {
            case .string: break
            case .array(let items) where !items.isEmpty && items.allSatisfy({ $0.stringValue != nil }): break
            default:
                throw DefinitionError(
                    pointer: reader.path("value"), message: "'\(op.rawValue)' needs a string or an array of strings")
            }
        case .eq, .neq:
            if value.isNull, reader.object["value"] == nil {
                throw DefinitionError(pointer: reader.path("value"), message: "is required for '\(op.rawValue)'")
            }
        }
        return (op, value)
    }

    static func parseEventCondition(_ reader: DefinitionReader) throws(DefinitionError) -> EventCondition {
        try reader.rejectUnknownKeys(allowed: ["event", "type", "where", "count", "within", "performed"])
        let typeText = try reader.string("type") ?? "track"
        guard let type = EventType(rawValue: typeText) else {
            throw DefinitionError(pointer: reader.path("type"), message: "'\(typeText)' is not a Segment message type")
        }
        var name = try reader.string("event")
        if name == "*" || name == "" { name = nil }
        if type == .track && name == nil {
            throw DefinitionError(pointer: reader.path("event"), message: "a track condition needs an event name")
        }
        let filter = try reader.object["where"].flatMap { value throws(DefinitionError) -> Predicate? in
            value.isNull ? nil : try Predicate.parse(value, at: reader.path("where"), placement: .eventFilter)
        }
        var op = ComparisonOperator.gte
        var count = 1
        if reader.has("count") && reader.has("performed") {
            throw DefinitionError(pointer: reader.path("performed"), message: "use either 'count' or 'performed', not both")
        }
        if let performed = try reader.bool("performed") {
            op = performed ? .gte : .eq
            count = performed ? 1 : 0
        }
        if let countValue = reader.object["count"], !countValue.isNull {
            let countReader = try DefinitionReader(countValue, at: reader.path("count"), what: "a count")
            try countReader.rejectUnknownKeys(allowed: ["op", "value"])
            let opText = try countReader.requiredString("op")
            guard let parsed = ComparisonOperator(rawValue: opText), [.eq, .neq, .gt, .gte, .lt, .lte].contains(parsed) else {
                throw DefinitionError(pointer: countReader.path("op"), message: "a count compares with eq, neq, gt, gte, lt or lte")
            }
            guard let number = try countReader.number("value"), number >= 0, number == number.rounded() else {
                throw DefinitionError(pointer: countReader.path("value"), message: "must be a whole number ≥ 0")
            }
            op = parsed
            count = Int(number)
        }
        let window = try reader.span("within")
        var condition = EventCondition(type: type, name: name, filter: filter, countOperator: op, count: count, window: window)
        if condition.requiredDepth > EventCounter.maximumDepth {
            throw DefinitionError(
                pointer: reader.path("count"),
                message: "a count inside a time window can go up to \(EventCounter.maximumDepth - 1); use a window-less count for more")
        }
        condition.counterSymbol = 0
        return condition
    }

    static func parseTimeCondition(_ json: JSONValue, at pointer: String) throws(DefinitionError) -> TimeCondition {
        let reader = try DefinitionReader(json, at: pointer, what: "a time condition")
        try reader.rejectUnknownKeys(allowed: ["before", "after", "within", "older_than"])
        guard reader.object.count == 1, let key = reader.object.keys.first else {
            throw DefinitionError(pointer: pointer, message: "needs exactly one of: before, after, within, older_than")
        }
        switch key {
        case "before", "after":
            let text = try reader.requiredString(key)
            guard let time = Timestamp(iso8601: text) else {
                throw DefinitionError(pointer: reader.path(key), message: "'\(text)' is not an ISO-8601 date-time")
            }
            return key == "before" ? .before(time) : .after(time)
        case "within": return .within(try reader.span("within")!)
        default: return .olderThan(try reader.span("older_than")!)
        }
    }
}
