import Foundation
import Mustache

/// The request's side of a decision: page, referrer, campaign (UTM), device, locale and
/// time zone, as targeting rules (`{"context": "utm.source", …}`) and templates see them.
public struct RequestContext: Sendable, Hashable {
    public var values: [String: JSONValue]

    public init(_ values: [String: JSONValue] = [:]) { self.values = values }

    /// Builds the context from the usual fields; UTM parameters missing from `utm` are read from the URL.
    public init(
        url: String? = nil, referrer: String? = nil, utm: [String: String] = [:], userAgent: String? = nil,
        locale: String? = nil, timeZone: String? = nil, extra: [String: JSONValue] = [:]
    ) {
        var values = extra
        var campaign = utm
        if let url {
            values["url"] = .string(url)
            if let mark = url.utf8.firstIndex(of: UInt8(ascii: "?")) {
                for (name, value) in QueryString.pairs(url[url.utf8.index(after: mark)...])
                where name.hasPrefix("utm_") && name.utf8.count > 4 && !value.isEmpty {
                    let key = String(name.dropFirst(4))
                    if campaign[key] == nil { campaign[key] = value }
                }
            }
        }
        if let referrer { values["referrer"] = .string(referrer) }
        if !campaign.isEmpty { values["utm"] = .object(campaign.mapValues { .string($0) }) }
        if let userAgent {
            values["user_agent"] = .string(userAgent)
            values["device"] = .string(RequestContext.deviceClass(userAgent))
        }
        if let locale { values["locale"] = .string(locale) }
        if let timeZone { values["time_zone"] = .string(timeZone) }
        self.values = values
    }

    /// `mobile`, `tablet` or `desktop` from a user agent, the way most sites segment.
    static func deviceClass(_ userAgent: String) -> String {
        // Byte by byte, ignoring ASCII case: every decide with a user agent asks this.
        func has(_ word: String) -> Bool { userAgent.localizedCaseInsensitiveContainsFast(word) }
        if has("ipad") || has("tablet") { return "tablet" }
        if has("mobi") || has("iphone") || has("android") { return "mobile" }
        return "desktop"
    }
}

/// The answer for one placement.
public struct PlacementDecision: Sendable, Hashable {
    public enum Reason: String, Sendable, Hashable, Codable {
        case rule, experiment, holdout, optimizer
        case `default`
        /// Nothing to show (no rule matched and there is no default).
        case none
        /// The placement does not exist.
        case unknownPlacement = "unknown_placement"
    }

    public struct Assignment: Sendable, Hashable {
        public var experiment: String
        /// The variant id; nil for the holdout.
        public var variant: String?
        /// Index in the experiment's variants (0 is control); -1 for the holdout.
        public var variantIndex: Int
        public var inHoldout: Bool { variantIndex < 0 }
    }

    public var placement: String
    /// Echoed back by the site with feedback events (`decision_id`).
    public var decisionId: String
    public var variant: String?
    public var content: String?
    public var format: ContentFormat?
    public var data: JSONValue?
    public var reason: Reason
    /// The targeting rule that chose, when one did.
    public var rule: String?
    public var assignment: Assignment?
}

/// The state changes a decision makes, applied to the contact after (and, with a journal,
/// journaled before) they take effect: new sticky assignments and the served decisions
/// that feedback events will refer to.
public struct DecisionRecord: Sendable, Hashable {
    public var exposures: [ExperimentAssignment]
    public var served: [ServedDecision]

    public init(exposures: [ExperimentAssignment] = [], served: [ServedDecision] = []) {
        self.exposures = exposures
        self.served = served
    }

    public var isEmpty: Bool { exposures.isEmpty && served.isEmpty }
}

/// Decides placements for one visitor: a pure function of the contact's state, the
/// catalog, the request, the optimizer's statistics and a seeded generator.
public struct Decider {
    public let catalog: DecisionCatalog
    public let definitions: TenantDefinitions
    public let accountTraits: [String: JSONValue]?

    public init(catalog: DecisionCatalog, definitions: TenantDefinitions, accountTraits: [String: JSONValue]?) {
        self.catalog = catalog
        self.definitions = definitions
        self.accountTraits = accountTraits
    }

    /// - Parameters:
    ///   - state: the contact, or nil for a visitor Kairos has never seen.
    ///   - hashValue: the id experiments hash when the contact has no assignment yet.
    ///   - armStatistics: the optimizer's statistics for a placement, per optimizer variant.
    public func decide(
        placements: [String], state: ContactState?, hashValue: String, request: RequestContext, now: Timestamp,
        armStatistics: (String) -> [ArmStatistics], random: inout SeededRandom
    ) -> (decisions: [PlacementDecision], record: DecisionRecord) {
        let context = EvaluationContext(now: now, definitions: definitions, accountTraits: accountTraits)
        var subjectState = state ?? ContactState(id: 0)
        subjectState.context = context
        let subject = DecisionSubject(state: subjectState, request: request)
        var decisions: [PlacementDecision] = []
        decisions.reserveCapacity(placements.count)
        var record = DecisionRecord()
        for placementId in placements {
            let decisionId = random.next()
            let idText = DecisionIdentifier.format(decisionId)
            guard let placement = catalog.placements[placementId] else {
                decisions.append(PlacementDecision(placement: placementId, decisionId: idText, reason: .unknownPlacement))
                continue
            }
            var chosen: Int?
            var reason = PlacementDecision.Reason.none
            var ruleId: String?
            var assignment: PlacementDecision.Assignment?
            for (index, rule) in placement.rules.enumerated() where rule.evaluate(subject) {
                let definition = placement.definition.rules[index]
                chosen = placement.definition.variantIndex(definition.variant)
                reason = .rule
                ruleId = definition.id
                break
            }
            if chosen == nil, let experiment = placement.experiment {
                let existing = state?.assignments.first { $0.experiment == experiment.id }
                    ?? record.exposures.first { $0.experiment == experiment.id }
                var variantIndex: Int?
                if let existing, existing.variant < experiment.variants.count {
                    variantIndex = existing.variant
                } else if experiment.isHeldOut(hashValue) {
                    variantIndex = -1
                } else {
                    variantIndex = experiment.assign(hashValue)
                }
                if let variantIndex {
                    if existing == nil {
                        record.exposures.append(
                            ExperimentAssignment(experiment: experiment.id, variant: variantIndex, exposedAt: now.milliseconds))
                    }
                    let variantId = variantIndex >= 0 ? experiment.variants[variantIndex] : nil
                    assignment = PlacementDecision.Assignment(
                        experiment: experiment.id, variant: variantId, variantIndex: variantIndex)
                    if let variantId {
                        chosen = placement.definition.variantIndex(variantId)
                        reason = .experiment
                    } else {
                        reason = .holdout
                    }
                }
            }
            if chosen == nil, reason != .holdout, placement.definition.optimizer != nil, !placement.optimizerVariants.isEmpty {
                var arms = armStatistics(placementId)
                if arms.count != placement.optimizerVariants.count {
                    arms = Array(repeating: ArmStatistics(), count: placement.optimizerVariants.count)
                }
                let arm = ThompsonSampling.choose(
                    arms, minimumExploration: placement.definition.optimizer!.minimumExploration, random: &random)
                chosen = placement.optimizerVariants[arm]
                reason = .optimizer
            }
            if chosen == nil, let fallback = placement.definition.defaultVariant {
                chosen = placement.definition.variantIndex(fallback)
                if reason != .holdout { reason = .default }
            }
            var decision = PlacementDecision(
                placement: placementId, decisionId: idText, reason: reason, rule: ruleId, assignment: assignment)
            if let chosen {
                let variant = placement.definition.variants[chosen]
                let scope = TemplateScope(subject: subject, placement: placementId, variant: variant.id)
                decision.variant = variant.id
                decision.content = variant.template.render(scope: scope)
                decision.format = variant.template.format
                decision.data = variant.data
                record.served.append(
                    ServedDecision(
                        id: decisionId, placement: placementId, variant: variant.id,
                        experiment: reason == .experiment ? assignment?.experiment : nil, optimized: reason == .optimizer,
                        time: now.milliseconds))
            }
            decisions.append(decision)
        }
        return (decisions, record)
    }
}

/// Decision ids as sites see them: 16 lowercase hex digits.
public enum DecisionIdentifier {
    public static func format(_ id: UInt64) -> String {
        let hex = String(id, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }

    public static func parse(_ text: String) -> UInt64? {
        guard text.utf8.count == 16 else { return nil }
        return UInt64(text, radix: 16)
    }
}

/// A contact plus the request, for targeting rules: `context` reads the request.
/// A class: templates box it into existentials many times per render, and a reference
/// is one retain where the state's fields would be a dozen.
final class DecisionSubject: PredicateSubject {
    let state: ContactState
    let request: RequestContext

    init(state: ContactState, request: RequestContext) {
        self.state = state
        self.request = request
    }

    var now: Timestamp { state.now }
    func field(_ scope: FieldScope, path: String) -> JSONValue? {
        scope == .context ? request.values.value(atPath: path) : state.field(scope, path: path)
    }
    func score(model: String) -> Double? { state.score(model: model) }
    func grade(model: String) -> String? { state.grade(model: model) }
    func lifecycleStage(model: String) -> String? { state.lifecycleStage(model: model) }
    func isMember(segmentSymbol: UInt32) -> Bool { state.isMember(of: segmentSymbol) }
    func eventCount(_ condition: EventCondition) -> Int { 0 }
    var firstSeen: Timestamp? { state.firstSeen }
    var lastSeen: Timestamp? { state.lastSeen }
}

/// What a template sees: `traits`, `account`, `context`, `scores`, `grades`, `stages`,
/// `segments`, `contact`, `placement`, `variant`; any other name is looked up in the traits.
final class TemplateScope: MustacheParent {
    let subject: DecisionSubject
    let placement: String
    let variant: String

    init(subject: DecisionSubject, placement: String, variant: String) {
        self.subject = subject
        self.placement = placement
        self.variant = variant
    }

    func child(named name: String) -> Any? {
        switch name {
        case "traits": return TemplateTraits(traits: subject.state.traits)
        case "account": return TemplateObject(object: subject.state.context?.accountTraits ?? [:])
        case "context": return TemplateObject(object: subject.request.values)
        case "scores": return Lookup { [subject] model in subject.score(model: model).map(TemplateObject.format) }
        case "grades": return Lookup { [subject] in subject.grade(model: $0) }
        case "stages": return Lookup { [subject] in subject.lifecycleStage(model: $0) }
        case "segments":
            let definitions = subject.state.context?.definitions
            return Lookup { [subject] id in
                guard let segment = definitions?.segment(id) else { return nil }
                return subject.state.isMember(of: segment.symbol) ? true : nil
            }
        case "contact":
            var fields: [String: JSONValue] = [:]
            if let userId = subject.state.userId { fields["user_id"] = .string(userId) }
            if let anonymousId = subject.state.anonymousIds.first { fields["anonymous_id"] = .string(anonymousId) }
            return TemplateObject(object: fields)
        case "placement": return placement
        case "variant": return variant
        default: return subject.state.traits[name].flatMap(TemplateObject.value)
        }
    }

    /// What `child(named:)` and the library's dotted lookup find at `path`, as a scalar.
    func scalar(at path: [String]) -> TemplateScalar {
        guard let name = path.first else { return .unsupported }
        let rest = path.dropFirst()
        func leaf(_ text: String?) -> TemplateScalar {
            guard let text else { return .missing }
            return rest.count > 1 ? .missing : .text(text)
        }
        switch name {
        case "traits": return rest.isEmpty ? .unsupported : TemplateObject.scalar(subject.state.traits, rest)
        case "account": return rest.isEmpty ? .unsupported : TemplateObject.scalar(subject.state.context?.accountTraits ?? [:], rest)
        case "context": return rest.isEmpty ? .unsupported : TemplateObject.scalar(subject.request.values, rest)
        case "scores", "grades", "stages", "segments", "contact":
            guard let key = rest.first else { return .unsupported }
            switch name {
            case "scores": return leaf(subject.score(model: key).map(TemplateObject.format))
            case "grades": return leaf(subject.grade(model: key))
            case "stages": return leaf(subject.lifecycleStage(model: key))
            case "segments":
                guard let segment = subject.state.context?.definitions.segment(key) else { return .missing }
                return leaf(subject.state.isMember(of: segment.symbol) ? "true" : nil)
            default:
                switch key {
                case "user_id": return leaf(subject.state.userId)
                case "anonymous_id": return leaf(subject.state.anonymousIds.first)
                default: return .missing
                }
            }
        case "placement": return rest.isEmpty ? .text(placement) : .missing
        case "variant": return rest.isEmpty ? .text(variant) : .missing
        default: return TemplateObject.scalar(subject.state.traits, path[...])
        }
    }

    struct Lookup: MustacheParent {
        let find: (String) -> Any?
        func child(named name: String) -> Any? { find(name) }
    }
}
