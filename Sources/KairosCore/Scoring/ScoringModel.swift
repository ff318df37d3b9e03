/// Which events a scoring rule listens to.
public struct EventMatcher: Sendable, Hashable {
    public var type: EventType
    /// nil matches every event of `type`.
    public var name: String?
    public var filter: Predicate?

    /// The key under which rules are indexed: the counter name, or `type:*`.
    public var indexKey: String {
        name.map { Event.counterName(type: type, name: $0) } ?? "\(type.rawValue):*"
    }
}

/// A calendar period for rule caps (UTC).
public enum CapPeriod: String, Sendable, Hashable, CaseIterable {
    case hour, day, week, month, ever

    /// The period a time falls in, as an ordinal.
    public func ordinal(of time: Timestamp) -> Int64 {
        switch self {
        case .hour: return time.milliseconds / 3_600_000
        case .day: return time.dayNumber
        case .week: return (time.dayNumber + 3) / 7  // ISO weeks start on Monday; 1970-01-01 was a Thursday.
        case .month: return time.monthNumber
        case .ever: return 0
        }
    }
}

/// "At most `times` awards per `period`".
public struct RuleCap: Sendable, Hashable {
    public var times: Int
    public var period: CapPeriod
}

/// A reference type: the hot path reads rules without copying them.
public final class ScoringRule: Sendable, Hashable {
    public enum Condition: Sendable, Hashable {
        /// Awards points every time a matching event arrives.
        case event(EventMatcher)
        /// Awards points while the contact's traits match; taken back when they stop matching.
        case trait(Predicate)
    }

    public let id: String
    public let name: String
    public let group: String?
    public let points: Double
    public let condition: Condition
    public let cap: RuleCap?

    public init(id: String, name: String, group: String?, points: Double, condition: Condition, cap: RuleCap?) {
        self.id = id
        self.name = name
        self.group = group
        self.points = points
        self.condition = condition
        self.cap = cap
    }

    public static func == (lhs: ScoringRule, rhs: ScoringRule) -> Bool {
        lhs.id == rhs.id && lhs.name == rhs.name && lhs.group == rhs.group && lhs.points == rhs.points
            && lhs.condition == rhs.condition && lhs.cap == rhs.cap
    }

    public func hash(into hasher: inout Hasher) { hasher.combine(id) }
}

public struct ScoreGroup: Sendable, Hashable {
    public var id: String
    public var name: String
    public var limit: Double?
}

/// A grade band: scores at or above `minimum` get `grade` (the highest band that fits wins).
public struct GradeBand: Sendable, Hashable {
    public var grade: String
    public var minimum: Double
}

/// A lifecycle stage reached at `minimum` points (MQL at 80, SQL at 150, …).
public struct LifecycleThreshold: Sendable, Hashable {
    public var stage: String
    public var minimum: Double
}

/// A named scoring model (`fit`, `engagement`): rules, groups, limits, decay, grades and stages.
/// A reference type: the hot path reads it without copying.
public final class ScoringModel: Sendable, Equatable {
    public let id: String
    public let name: String
    /// Event points halve every `halfLife`; nil: no decay. Trait points never decay.
    public let halfLife: TimeSpan?
    /// The most points the model can hold (HubSpot's "score limit").
    public let limit: Double?
    /// The fewest points the model can hold; nil lets a score go below zero.
    public let minimum: Double?
    public let groups: [ScoreGroup]
    public let rules: [ScoringRule]
    /// Highest minimum first.
    public let grades: [GradeBand]
    /// When set, this model's grade is combined with another model's: `A` + `1` → `A1`.
    public let gradeMatrixRowModel: String?
    /// Lowest minimum first.
    public let lifecycle: [LifecycleThreshold]
    /// The JSON this model was defined with, kept for listing and versioning.
    public let source: JSONValue

    init(
        id: String, name: String, halfLife: TimeSpan?, limit: Double?, minimum: Double?, groups: [ScoreGroup],
        rules: [ScoringRule], grades: [GradeBand], gradeMatrixRowModel: String?, lifecycle: [LifecycleThreshold],
        source: JSONValue
    ) {
        self.id = id
        self.name = name
        self.halfLife = halfLife
        self.limit = limit
        self.minimum = minimum
        self.groups = groups
        self.rules = rules
        self.grades = grades
        self.gradeMatrixRowModel = gradeMatrixRowModel
        self.lifecycle = lifecycle
        self.source = source
    }

    /// Two models are the same when they were defined with the same JSON.
    public static func == (lhs: ScoringModel, rhs: ScoringModel) -> Bool { lhs.source == rhs.source }

    public func grade(for score: Double) -> String? {
        grades.first { score >= $0.minimum }?.grade
    }

    public func stage(for score: Double) -> String? {
        lifecycle.last { score >= $0.minimum }?.stage
    }

    public func rule(_ id: String) -> ScoringRule? { rules.first { $0.id == id } }
    public func group(_ id: String) -> ScoreGroup? { groups.first { $0.id == id } }
}

// MARK: - Parsing

extension ScoringModel {
    /// Parses and validates a scoring model (format: `docs/scoring.md`).
    public static func parse(_ json: JSONValue) throws(DefinitionError) -> ScoringModel {
        let reader = try DefinitionReader(json, at: "", what: "a scoring model")
        try reader.rejectUnknownKeys(allowed: [
            "id", "name", "description", "halfLifeDays", "limit", "minimum", "groups", "rules", "grades", "gradeMatrix",
            "lifecycle",
        ])
        let id = try reader.identifier("id")
        let name = try reader.string("name") ?? id
        var halfLife: TimeSpan?
        if let days = try reader.number("halfLifeDays") {
            guard days > 0, days <= 3650 else {
                throw DefinitionError(pointer: reader.path("halfLifeDays"), message: "must be more than 0 and at most 3650 days")
            }
            halfLife = TimeSpan(milliseconds: Int64(days * 86_400_000))
        }
        let limit = try reader.number("limit")
        let minimum = try reader.number("minimum")
        if let limit, let minimum, minimum >= limit {
            throw DefinitionError(pointer: reader.path("minimum"), message: "must be below the limit (\(limit))")
        }

        var groups: [ScoreGroup] = []
        for (index, value) in (try reader.array("groups") ?? []).enumerated() {
            let groupReader = try DefinitionReader(value, at: reader.path("groups") + "/\(index)", what: "a group")
            try groupReader.rejectUnknownKeys(allowed: ["id", "name", "limit"])
            let groupId = try groupReader.identifier("id")
            if groups.contains(where: { $0.id == groupId }) {
                throw DefinitionError(pointer: groupReader.path("id"), message: "group '\(groupId)' is defined twice")
            }
            let groupLimit = try groupReader.number("limit")
            if let groupLimit, groupLimit <= 0 {
                throw DefinitionError(pointer: groupReader.path("limit"), message: "must be more than 0")
            }
            groups.append(ScoreGroup(id: groupId, name: try groupReader.string("name") ?? groupId, limit: groupLimit))
        }

        guard let ruleValues = try reader.array("rules"), !ruleValues.isEmpty else {
            throw DefinitionError(pointer: reader.path("rules"), message: "a model needs at least one rule")
        }
        var rules: [ScoringRule] = []
        for (index, value) in ruleValues.enumerated() {
            let rule = try parseRule(value, at: reader.path("rules") + "/\(index)", groups: groups)
            if rules.contains(where: { $0.id == rule.id }) {
                throw DefinitionError(pointer: reader.path("rules") + "/\(index)/id", message: "rule '\(rule.id)' is defined twice")
            }
            rules.append(rule)
        }

        var grades: [GradeBand] = []
        for (index, value) in (try reader.array("grades") ?? []).enumerated() {
            let bandReader = try DefinitionReader(value, at: reader.path("grades") + "/\(index)", what: "a grade band")
            try bandReader.rejectUnknownKeys(allowed: ["grade", "min"])
            let grade = try bandReader.requiredString("grade")
            let bandMinimum = try bandReader.number("min") ?? -Double.infinity
            if let previous = grades.last, bandMinimum >= previous.minimum {
                throw DefinitionError(
                    pointer: bandReader.path("min"), message: "grade bands go from the highest minimum to the lowest")
            }
            grades.append(GradeBand(grade: grade, minimum: bandMinimum))
        }

        var matrixRow: String?
        if let matrix = reader.object["gradeMatrix"], !matrix.isNull {
            let matrixReader = try DefinitionReader(matrix, at: reader.path("gradeMatrix"), what: "a grade matrix")
            try matrixReader.rejectUnknownKeys(allowed: ["rows"])
            matrixRow = try matrixReader.requiredString("rows")
            if matrixRow == id {
                throw DefinitionError(pointer: matrixReader.path("rows"), message: "a model cannot be its own matrix row")
            }
        }

        var lifecycle: [LifecycleThreshold] = []
        for (index, value) in (try reader.array("lifecycle") ?? []).enumerated() {
            let stageReader = try DefinitionReader(value, at: reader.path("lifecycle") + "/\(index)", what: "a lifecycle stage")
            try stageReader.rejectUnknownKeys(allowed: ["stage", "min"])
            let stage = try stageReader.requiredString("stage")
            guard let stageMinimum = try stageReader.number("min") else {
                throw DefinitionError(pointer: stageReader.path("min"), message: "is required")
            }
            if let previous = lifecycle.last, stageMinimum <= previous.minimum {
                throw DefinitionError(
                    pointer: stageReader.path("min"), message: "lifecycle stages go from the lowest minimum to the highest")
            }
            lifecycle.append(LifecycleThreshold(stage: stage, minimum: stageMinimum))
        }

        return ScoringModel(
            id: id, name: name, halfLife: halfLife, limit: limit, minimum: minimum, groups: groups, rules: rules,
            grades: grades, gradeMatrixRowModel: matrixRow, lifecycle: lifecycle, source: json)
    }

    static func parseRule(_ json: JSONValue, at pointer: String, groups: [ScoreGroup]) throws(DefinitionError) -> ScoringRule {
        let reader = try DefinitionReader(json, at: pointer, what: "a rule")
        try reader.rejectUnknownKeys(allowed: ["id", "name", "group", "points", "event", "trait", "cap"])
        let id = try reader.identifier("id")
        guard let points = try reader.number("points") else {
            throw DefinitionError(pointer: reader.path("points"), message: "is required (negative points are allowed)")
        }
        guard points != 0 else {
            throw DefinitionError(pointer: reader.path("points"), message: "must not be zero")
        }
        let group = try reader.string("group")
        if let group, !groups.contains(where: { $0.id == group }) {
            throw DefinitionError(pointer: reader.path("group"), message: "unknown group '\(group)' (define it in /groups)")
        }
        let condition: ScoringRule.Condition
        switch (reader.has("event"), reader.has("trait")) {
        case (true, false):
            condition = .event(try parseMatcher(reader.object["event"]!, at: reader.path("event")))
        case (false, true):
            condition = .trait(try Predicate.parse(reader.object["trait"]!, at: reader.path("trait"), placement: .traitRule))
        default:
            throw DefinitionError(pointer: pointer, message: "a rule needs exactly one of 'event' or 'trait'")
        }
        var cap: RuleCap?
        if let capValue = reader.object["cap"], !capValue.isNull {
            guard case .event = condition else {
                throw DefinitionError(pointer: reader.path("cap"), message: "only event rules can be capped")
            }
            let capReader = try DefinitionReader(capValue, at: reader.path("cap"), what: "a cap")
            try capReader.rejectUnknownKeys(allowed: ["times", "per"])
            guard let times = try capReader.number("times"), times >= 1, times == times.rounded() else {
                throw DefinitionError(pointer: capReader.path("times"), message: "must be a whole number ≥ 1")
            }
            let periodText = try capReader.string("per") ?? "ever"
            guard let period = CapPeriod(rawValue: periodText) else {
                throw DefinitionError(
                    pointer: capReader.path("per"),
                    message: "'\(periodText)' is not a period (one of: \(CapPeriod.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            cap = RuleCap(times: Int(times), period: period)
        }
        return ScoringRule(id: id, name: try reader.string("name") ?? id, group: group, points: points, condition: condition, cap: cap)
    }

    /// `"Demo Requested"`, or `{"type": "page", "event": "Pricing", "where": {…}}`.
    static func parseMatcher(_ json: JSONValue, at pointer: String) throws(DefinitionError) -> EventMatcher {
        if case .string(let name) = json {
            guard !name.isEmpty else { throw DefinitionError(pointer: pointer, message: "an event name must not be empty") }
            return EventMatcher(type: .track, name: name, filter: nil)
        }
        let reader = try DefinitionReader(json, at: pointer, what: "an event matcher")
        try reader.rejectUnknownKeys(allowed: ["type", "event", "where"])
        let typeText = try reader.string("type") ?? "track"
        guard let type = EventType(rawValue: typeText) else {
            throw DefinitionError(pointer: reader.path("type"), message: "'\(typeText)' is not a Segment message type")
        }
        var name = try reader.string("event")
        if name == "*" || name == "" { name = nil }
        if type == .track && name == nil {
            throw DefinitionError(pointer: reader.path("event"), message: "a track rule needs an event name")
        }
        let filter = try reader.object["where"].flatMap { value throws(DefinitionError) -> Predicate? in
            value.isNull ? nil : try Predicate.parse(value, at: reader.path("where"), placement: .eventFilter)
        }
        return EventMatcher(type: type, name: name, filter: filter)
    }
}
