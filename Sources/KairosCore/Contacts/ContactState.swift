import Foundation

/// Points one rule has given a contact in one model.
public struct RuleContribution: Sendable, Hashable {
    public var rule: UInt32
    /// For decaying rules: the amount at the model's reference time.
    public var points: Double
    public var decays: Bool
}

/// How many times a capped rule has fired in its current period.
public struct CapUsage: Sendable, Hashable {
    public var rule: UInt32
    public var period: Int64
    public var count: Int32
}

/// A contact's standing in one scoring model.
public struct ModelScore: Sendable, Hashable {
    public var model: UInt32
    /// Decaying contributions are expressed as of this time (ms).
    public var referenceTime: Int64
    public var contributions: [RuleContribution] = []
    public var capUsage: [CapUsage] = []
    public var lastChanged: Timestamp?
    /// The stage and grade last announced by an effect.
    public var stage: String?
    public var grade: String?

    static func decayFactor(elapsed: Int64, halfLife: TimeSpan?) -> Double {
        guard let halfLife, elapsed > 0 else { return 1 }
        return pow2(-Double(elapsed) / Double(halfLife.milliseconds))
    }

    /// The points of `rule` (or of every rule) at `now`, read in place.
    @inline(__always) static func sum(of score: UnsafePointer<ModelScore>, rule: UInt32?, at now: Timestamp, halfLife: TimeSpan?) -> Double {
        let factor = decayFactor(elapsed: now.milliseconds - score.pointee.referenceTime, halfLife: halfLife)
        return score.pointee.contributions.withUnsafeBufferPointer { items in
            var sum = 0.0
            for item in items where rule == nil || item.rule == rule {
                sum += item.decays ? item.points * factor : item.points
            }
            return sum
        }
    }

    public func points(of rule: UInt32, at now: Timestamp, halfLife: TimeSpan?) -> Double {
        withUnsafePointer(to: self) { ModelScore.sum(of: $0, rule: rule, at: now, halfLife: halfLife) }
    }

    /// Folds the decay since the reference time into the stored amounts.
    mutating func advance(to now: Timestamp, halfLife: TimeSpan?) {
        guard now.milliseconds > referenceTime else { return }
        if halfLife != nil {
            let factor = ModelScore.decayFactor(elapsed: now.milliseconds - referenceTime, halfLife: halfLife)
            for index in contributions.indices where contributions[index].decays {
                contributions[index].points *= factor
            }
        }
        referenceTime = now.milliseconds
    }

    mutating func add(rule: UInt32, points: Double, decays: Bool) {
        if let index = contributions.firstIndex(where: { $0.rule == rule && $0.decays == decays }) {
            contributions[index].points += points
        } else {
            contributions.append(RuleContribution(rule: rule, points: points, decays: decays))
        }
    }

    /// The time after `now` at which the decaying score crosses `value`, if it ever does.
    func crossing(of value: Double, after now: Timestamp, halfLife: TimeSpan) -> Int64? {
        var decaying = 0.0
        var steady = 0.0
        for item in contributions {
            if item.decays { decaying += item.points } else { steady += item.points }
        }
        guard decaying != 0 else { return nil }
        let fraction = (value - steady) / decaying
        guard fraction > 0, fraction < 1 else { return nil }
        let time = Double(referenceTime) - Double(halfLife.milliseconds) * log2(fraction)
        guard time.isFinite, time > Double(now.milliseconds) else { return nil }
        return Int64(time.rounded(.up)) + 1
    }
}

/// One entry of a contact's score history: which rule gave how many points, when, for which event.
public struct ScoreChange: Sendable, Hashable {
    public var rule: UInt32
    /// The event's counter symbol, or 0 for trait rules.
    public var event: UInt32
    public var points: Float
    public var time: Int64
}

/// A contact's membership of one segment.
public struct SegmentMembership: Sendable, Hashable {
    public var segment: UInt32
    public var since: Int64
}

/// A compact record of a recent event, for reads and merges.
public struct RecentEvent: Sendable, Hashable {
    public var symbol: UInt32
    public var time: Int64
}

/// What an evaluation needs besides the contact itself; set for the length of one command.
///
/// A class so the hot path passes one reference instead of copying four fields. One instance
/// can serve command after command (`prepare(now:accountTraits:)`), as a lane of a batch does:
/// creating one per command cost an allocation and a reference count on each shared definition.
/// `@unchecked Sendable`: an instance is used by one command at a time, inside that command's
/// actor turn only, and dropped (`ContactState.context` is nil again) before the state can
/// leave the actor.
public final class EvaluationContext: @unchecked Sendable {
    public private(set) var now: Timestamp
    public let definitions: TenantDefinitions
    public private(set) var accountTraits: [String: JSONValue]?
    /// Placements and experiments, for attributing feedback events.
    public let catalog: DecisionCatalog
    public let journeys: JourneyCatalog
    /// Traits that journey steps changed during this command (they can trigger journeys too).
    var traitsChangedBySteps: [String] = []
    /// Each model's score at `now` (NaN: not computed yet), kept while segments are
    /// evaluated (scores do not change meanwhile); only models a condition asks for are computed.
    var scores: [Double] = []
    var cachesScores = false
    /// Room for the segments an event may move, kept between commands (see `takeCandidates`).
    private var candidates: [Int] = []
    /// Room for the models an event changes, kept between commands likewise.
    private var changedModels: [Int] = []

    public init(
        now: Timestamp, definitions: TenantDefinitions, accountTraits: [String: JSONValue]? = nil,
        catalog: DecisionCatalog = .empty, journeys: JourneyCatalog = .empty
    ) {
        self.now = now
        self.definitions = definitions
        self.accountTraits = accountTraits
        self.catalog = catalog
        self.journeys = journeys
    }

    /// Readies the context for the next command, with what it held before forgotten.
    public func prepare(now: Timestamp, accountTraits: [String: JSONValue]?) {
        self.now = now
        self.accountTraits = accountTraits
        if !traitsChangedBySteps.isEmpty { traitsChangedBySteps.removeAll(keepingCapacity: true) }
        scores.removeAll(keepingCapacity: true)
        cachesScores = false
    }

    /// An empty array with the capacity an earlier command left; give it back with
    /// `returnCandidates`. An evaluation nested inside another gets a new one.
    func takeCandidates() -> [Int] { Self.take(&candidates) }

    func returnCandidates(_ used: inout [Int]) { Self.give(&used, back: &candidates) }

    /// `takeCandidates` for the models an event changes: most events change one, and a new
    /// array for it was an allocation per event.
    func takeChangedModels() -> [Int] { Self.take(&changedModels) }

    func returnChangedModels(_ used: inout [Int]) { Self.give(&used, back: &changedModels) }

    private static func take(_ kept: inout [Int]) -> [Int] {
        var taken: [Int] = []
        swap(&taken, &kept)
        return taken
    }

    private static func give(_ used: inout [Int], back kept: inout [Int]) {
        // Emptied while only the caller holds it, so no copy is made.
        used.removeAll(keepingCapacity: true)
        swap(&used, &kept)
    }
}

/// Everything Kairos knows about one contact. Pure data plus pure functions:
/// a `ContactActor` owns one and applies commands to it one at a time.
public struct ContactState: Sendable {
    public static let recentEventLimit = 16
    public static let scoreHistoryLimit = 16

    public let id: UInt64
    public var userId: String?
    public var anonymousIds: [String]
    public var traits = JSONObject() {
        // Changed in place (the observer does not read the old value), so no copy is made.
        didSet { traitsVersion &+= 1 }
    }
    /// Moves whenever `traits` changes, so a reader can tell cheaply that they did not.
    public internal(set) var traitsVersion: UInt32 = 0
    /// Messages sent on `messageDay` (a local day number), for frequency caps across journeys.
    /// (Beside `traitsVersion`: two 4-byte fields share 8 bytes.)
    public var messagesOnDay: UInt32 = 0
    public var accountId: String?
    /// Times kept as milliseconds, `Int64.min` standing for none (`none` below): an
    /// optional takes 16 bytes (9 and padding) where 8 do, and at 448 bytes instead of 496 an
    /// actor fits mimalloc's next smaller size class (64 MB less for a million contacts).
    private var firstSeenMilliseconds = ContactState.none
    private var lastSeenMilliseconds = ContactState.none
    private var nextWakeStored = ContactState.none
    private var journeyWakeStored = ContactState.none
    public var counters = CounterSet()
    public var scores: [ModelScore] = []
    public var scoreHistory: [ScoreChange] = []
    /// Sorted by segment symbol.
    public var segments: [SegmentMembership] = []
    public var recent: [RecentEvent] = []
    /// Sticky experiment assignments, one per experiment.
    public var assignments: [ExperimentAssignment] = []
    /// The most recent decisions served, oldest first, for attributing feedback.
    public var decisions: [ServedDecision] = []
    /// The journal sequence of the last command applied (0 before any).
    public var lastSequence: UInt64 = 0
    /// Journey runs in progress (waiting at a step) and date-triggered entries still to come.
    public var journeyRuns: [JourneyRun] = []
    /// Entries per journey, for re-entry rules.
    public var journeyEntries: [JourneyEntries] = []
    public var messageDay: Int64 = 0
    /// The time zone the contact's events report (`context.timezone`); the `timezone` trait wins.
    public var timeZone: String?

    /// Set while a command is being applied; nil otherwise.
    var context: EvaluationContext?

    public init(id: UInt64, userId: String? = nil, anonymousId: String? = nil) {
        self.id = id
        self.userId = userId
        self.anonymousIds = anonymousId.map { [$0] } ?? []
    }

    public var isKnown: Bool { userId != nil }

    /// The stored value of a time that is not set.
    private static let none = Int64.min

    @inline(__always) private static func time(_ stored: Int64) -> Timestamp? {
        stored == none ? nil : Timestamp(milliseconds: stored)
    }

    public var firstSeen: Timestamp? {
        @inline(__always) get { Self.time(firstSeenMilliseconds) }
        set { firstSeenMilliseconds = newValue?.milliseconds ?? Self.none }
    }

    public var lastSeen: Timestamp? {
        @inline(__always) get { Self.time(lastSeenMilliseconds) }
        set { lastSeenMilliseconds = newValue?.milliseconds ?? Self.none }
    }

    public var nextWake: Timestamp? {
        @inline(__always) get { Self.time(nextWakeStored) }
        set { nextWakeStored = newValue?.milliseconds ?? Self.none }
    }

    /// The earliest due time among runs of active journeys.
    public var journeyWake: Int64? {
        @inline(__always) get { journeyWakeStored == Self.none ? nil : journeyWakeStored }
        set { journeyWakeStored = newValue ?? Self.none }
    }

    /// `nextWake` in milliseconds; a narrow accessor so callers in other modules do not copy the state.
    public var nextWakeMilliseconds: Int64? {
        @inline(__always) get {
            guard let journeyWake else { return nextWake?.milliseconds }
            return min(journeyWake, nextWake?.milliseconds ?? .max)
        }
    }

    public func isMember(of symbol: UInt32) -> Bool { membershipIndex(symbol).found }

    func membershipIndex(_ symbol: UInt32) -> (found: Bool, index: Int) {
        var low = 0
        var high = segments.count
        while low < high {
            let mid = (low + high) / 2
            let value = segments[mid].segment
            if value == symbol { return (true, mid) }
            if value < symbol { low = mid + 1 } else { high = mid }
        }
        return (false, low)
    }

    /// The score of `scores[index]` now, read in place: a subscript read (even of an
    /// unsafe buffer) copies the whole `ModelScore`, retaining its arrays and strings.
    @inline(__always) func scoreTotal(_ index: Int, at now: Timestamp, halfLife: TimeSpan?) -> Double {
        scores.withUnsafeBufferPointer { ModelScore.sum(of: $0.baseAddress! + index, rule: nil, at: now, halfLife: halfLife) }
    }

    @inline(__always) func scorePoints(_ index: Int, of rule: UInt32, at now: Timestamp, halfLife: TimeSpan?) -> Double {
        scores.withUnsafeBufferPointer { ModelScore.sum(of: $0.baseAddress! + index, rule: rule, at: now, halfLife: halfLife) }
    }

    func scoreIndex(of symbol: UInt32) -> Int? {
        // A plain loop: `firstIndex(where:)` would copy each ModelScore into the closure.
        var index = 0
        while index < scores.count {
            if scores[index].model == symbol { return index }
            index += 1
        }
        return nil
    }

    /// The model's score now, decay included.
    public func score(model number: Int, definitions: TenantDefinitions, now: Timestamp) -> Double {
        guard let index = scoreIndex(of: definitions.modelSymbols[number]) else { return 0 }
        return scoreTotal(index, at: now, halfLife: definitions.models[number].halfLife)
    }

    /// The model's grade now; for a matrix model, the row model's grade followed by this one's (`A1`).
    public func grade(model number: Int, definitions: TenantDefinitions, now: Timestamp) -> String? {
        let model = definitions.models[number]
        guard let own = model.grade(for: score(model: number, definitions: definitions, now: now)) else { return nil }
        guard let rowId = model.gradeMatrixRowModel, let row = definitions.modelIndex[rowId] else { return own }
        guard let rowGrade = definitions.models[row].grade(for: score(model: row, definitions: definitions, now: now))
        else { return nil }
        return rowGrade + own
    }
}

@inline(__always) func pow2(_ x: Double) -> Double { exp2(x) }
