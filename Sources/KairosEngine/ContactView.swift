import KairosCore

/// A contact as people and APIs read it: names instead of symbols, scores at `now`,
/// every point explained.
public struct ContactView: Sendable, Codable, Hashable {
    public struct RulePoints: Sendable, Codable, Hashable {
        public var rule: String
        public var name: String
        public var group: String?
        public var points: Double
    }

    public struct GroupPoints: Sendable, Codable, Hashable {
        public var group: String
        public var points: Double
        public var limit: Double?
    }

    public struct Score: Sendable, Codable, Hashable {
        public var model: String
        public var score: Double
        public var grade: String?
        public var stage: String?
        public var lastChanged: Timestamp?
        public var rules: [RulePoints]
        public var groups: [GroupPoints]
    }

    public struct ScoreHistoryEntry: Sendable, Codable, Hashable {
        public var model: String
        public var rule: String
        /// The event that earned the points (`track:Demo Requested`); nil for trait rules.
        public var event: String?
        public var points: Double
        public var time: Timestamp
    }

    public struct Membership: Sendable, Codable, Hashable {
        public var segment: String
        public var name: String
        public var since: Timestamp
    }

    public struct Activity: Sendable, Codable, Hashable {
        public var event: String
        public var time: Timestamp
    }

    public struct EventCount: Sendable, Codable, Hashable {
        public var event: String
        public var total: Int
        public var last: Timestamp?
    }

    public var id: UInt64
    public var userId: String?
    public var anonymousIds: [String]
    public var traits: [String: JSONValue]
    public var accountId: String?
    public var accountTraits: [String: JSONValue]?
    public var firstSeen: Timestamp?
    public var lastSeen: Timestamp?
    public var scores: [Score]
    public var scoreHistory: [ScoreHistoryEntry]
    public var segments: [Membership]
    public var recentEvents: [Activity]
    public var eventCounts: [EventCount]
    public var nextWake: Timestamp?
    public var experiments: [Assignment]
    /// Recent decisions served, newest first.
    public var decisions: [Decision]
    /// Journey runs in progress and date-triggered entries to come.
    public var journeys: [JourneyEnrollment]

    public struct JourneyEnrollment: Sendable, Codable, Hashable {
        public var journey: String
        public var version: Int
        /// The step the run is at (nil for an entry still to come).
        public var step: String?
        /// `waiting`, `held` (a send held by quiet hours or a frequency cap) or `scheduled`.
        public var state: String
        public var key: String?
        public var entry: Int
        public var enteredAt: Timestamp
        public var due: Timestamp?
    }

    public struct Assignment: Sendable, Codable, Hashable {
        public var experiment: String
        /// Index in the experiment's variants (0 is control); −1 for the holdout.
        public var variantIndex: Int
        public var exposedAt: Timestamp
        public var convertedAt: Timestamp?
    }

    public struct Decision: Sendable, Codable, Hashable {
        public var decisionId: String
        public var placement: String
        public var variant: String
        public var experiment: String?
        public var optimized: Bool
        public var time: Timestamp
        public var viewed: Bool
        public var rewarded: Bool
    }

    public func score(_ model: String) -> Score? { scores.first { $0.model == model } }

    public func isMember(of segment: String) -> Bool { segments.contains { $0.segment == segment } }
}

/// Symbol names as a contact's answer shows them.
struct ContactNames {
    let symbols: SymbolTable

    func name(_ symbol: UInt32) -> String { symbols.name(of: symbol) ?? "#\(symbol)" }

    /// Rule symbols are "rule:MODEL/RULE" or "journey-rule:STEP"; split by UTF-8 index, as
    /// answers name many of them.
    func ruleName(_ symbol: UInt32) -> (model: String, rule: String) {
        let full = name(symbol)
        if full.hasPrefix("journey-rule:") { return ("", "journey:" + full.dropFirst("journey-rule:".count)) }
        return withRuleParts(full) { model, rule in
            (String(decoding: model, as: UTF8.self), String(decoding: rule, as: UTF8.self))
        }
    }

    /// The MODEL and RULE bytes of a scoring rule's name ("rule:MODEL/RULE"; both the text after
    /// "rule:" when it has no slash), without making strings of them.
    @inline(__always) func withRuleParts<Result>(
        _ name: String, _ body: (UnsafeBufferPointer<UInt8>, UnsafeBufferPointer<UInt8>) -> Result
    ) -> Result {
        var name = name
        return name.withUTF8 { bytes in
            let text = UnsafeBufferPointer(rebasing: bytes[min(5, bytes.count)...])
            guard let slash = text.firstIndex(of: 47) else { return body(text, text) }
            return body(UnsafeBufferPointer(rebasing: text[..<slash]), UnsafeBufferPointer(rebasing: text[(slash + 1)...]))
        }
    }
}

extension ContactView {
    init(
        state: ContactState, definitions: TenantDefinitions, symbols: SymbolTable, account: [String: JSONValue]?, now: Timestamp,
        journeys: JourneyCatalog = .empty
    ) {
        let names = ContactNames(symbols: symbols)
        self.id = state.id
        self.userId = state.userId
        self.anonymousIds = state.anonymousIds
        self.traits = state.traits.dictionary
        self.accountId = state.accountId
        self.accountTraits = account
        self.firstSeen = state.firstSeen
        self.lastSeen = state.lastSeen
        self.scores = ContactView.scores(state, definitions, names, now)
        self.scoreHistory = state.scoreHistory.map { ContactView.historyEntry($0, state, definitions, names) }
        self.segments = state.segments.compactMap { ContactView.membership($0, definitions) }
        self.recentEvents = state.recent.reversed().map { Activity(event: names.name($0.symbol), time: Timestamp(milliseconds: $0.time)) }
        self.eventCounts = ContactView.eventCounts(state, names)
        self.nextWake = state.nextWake
        self.experiments = state.assignments.map(ContactView.assignment)
        self.decisions = state.decisions.reversed().map(ContactView.decision)
        self.journeys = ContactView.enrollments(state, names, journeys)
    }

    static func scores(_ state: ContactState, _ definitions: TenantDefinitions, _ names: ContactNames, _ now: Timestamp) -> [Score] {
        var scores: [Score] = []
        scores.reserveCapacity(definitions.models.count)
        for (number, model) in definitions.models.enumerated() {
            let total = state.score(model: number, definitions: definitions, now: now)
            let stored = state.scores.first { $0.model == definitions.modelSymbols[number] }
            var rules: [RulePoints] = []
            var groups: [String: Double] = [:]
            for (ruleNumber, rule) in model.rules.enumerated() {
                guard let stored else { break }
                let points = stored.points(of: definitions.ruleSymbols[number][ruleNumber], at: now, halfLife: model.halfLife)
                guard points != 0 else { continue }
                rules.append(RulePoints(rule: rule.id, name: rule.name, group: rule.group, points: points))
                if let group = rule.group { groups[group, default: 0] += points }
            }
            // Points that journey steps gave or took.
            for contribution in stored?.contributions ?? [] where names.name(contribution.rule).hasPrefix("journey-rule:") {
                let step = "journey:" + names.name(contribution.rule).dropFirst("journey-rule:".count)
                let points = stored!.points(of: contribution.rule, at: now, halfLife: model.halfLife)
                guard points != 0, !rules.contains(where: { $0.rule == step }) else { continue }
                rules.append(RulePoints(rule: step, name: "Journey step \(step.dropFirst("journey:".count))", group: nil, points: points))
            }
            scores.append(
                Score(
                    model: model.id, score: total,
                    grade: state.grade(model: number, definitions: definitions, now: now),
                    stage: model.stage(for: total), lastChanged: stored?.lastChanged, rules: rules,
                    groups: model.groups.compactMap { group in
                        groups[group.id].map { GroupPoints(group: group.id, points: $0, limit: group.limit) }
                    }))
        }
        return scores
    }

    static func historyEntry(_ change: ScoreChange, _ state: ContactState, _ definitions: TenantDefinitions, _ names: ContactNames) -> ScoreHistoryEntry {
        let (model, rule) = names.ruleName(change.rule)
        let modelName = model.isEmpty
            ? (definitions.models.indices.first { number in
                state.scores.first { $0.model == definitions.modelSymbols[number] }?.contributions.contains { $0.rule == change.rule } ?? false
            }.map { definitions.models[$0].id } ?? "")
            : model
        return ScoreHistoryEntry(
            model: modelName, rule: rule, event: change.event == 0 ? nil : names.name(change.event),
            points: Double(change.points), time: Timestamp(milliseconds: change.time))
    }

    static func membership(_ membership: SegmentMembership, _ definitions: TenantDefinitions) -> Membership? {
        definitions.listedSegment(membership.segment).map {
            Membership(segment: $0.id, name: $0.name, since: Timestamp(milliseconds: membership.since))
        }
    }

    static func eventCounts(_ state: ContactState, _ names: ContactNames) -> [EventCount] {
        state.counters.counters.compactMap { counter -> EventCount? in
            let key = names.name(counter.symbol)
            guard !key.utf8.contains(124) else { return nil }  // filtered counters ("|") are internal
            return EventCount(
                event: key, total: Int(counter.total),
                last: counter.last == .min ? nil : Timestamp(milliseconds: counter.last))
        }.sorted { $0.event < $1.event }
    }

    static func assignment(_ assignment: ExperimentAssignment) -> Assignment {
        Assignment(
            experiment: assignment.experiment, variantIndex: assignment.variant, exposedAt: Timestamp(milliseconds: assignment.exposedAt),
            convertedAt: assignment.convertedAt.map { Timestamp(milliseconds: $0) })
    }

    static func decision(_ decision: ServedDecision) -> Decision {
        Decision(
            decisionId: DecisionIdentifier.format(decision.id), placement: decision.placement, variant: decision.variant,
            experiment: decision.experiment, optimized: decision.optimized, time: Timestamp(milliseconds: decision.time),
            viewed: decision.viewed, rewarded: decision.rewarded)
    }

    static func enrollments(_ state: ContactState, _ names: ContactNames, _ journeys: JourneyCatalog) -> [JourneyEnrollment] {
        state.journeyRuns.map { run in
            let journeyId = String(names.name(run.journey).dropFirst("journey:".count))
            let compiled = journeys.version(run.journey, Int(run.version))
            let stateName: String
            switch run.phase {
            case .scheduled: stateName = "scheduled"
            case .waiting: stateName = "waiting"
            case .held: stateName = "held"
            }
            return JourneyEnrollment(
                journey: journeyId, version: Int(run.version),
                step: run.node >= 0 ? compiled?.definition.nodes[Int(run.node)].id : nil, state: stateName, key: run.key,
                entry: Int(run.entry), enteredAt: Timestamp(milliseconds: run.enteredAt),
                due: run.due == .max ? nil : Timestamp(milliseconds: run.due))
        }.sorted { ($0.journey, $0.entry) < ($1.journey, $1.entry) }
    }
}

extension TenantDefinitions {
    /// The segment a membership symbol stands for, unless it is a journey's hidden trigger segment.
    func listedSegment(_ symbol: UInt32) -> SegmentDefinition? {
        guard let order = segmentOrderBySymbol[symbol] else { return nil }
        let definition = segments[order].definition
        return JourneyCatalog.isTriggerSegment(definition.id) ? nil : definition
    }
}
