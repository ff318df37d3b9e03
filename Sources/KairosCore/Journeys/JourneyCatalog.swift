import Foundation

/// One version of a journey, checked against the tenant's definitions and ready to run:
/// node ids resolved to indexes, segment references to symbols, templates compiled.
public final class CompiledJourney: Sendable {
    public struct CompiledMessage: Sendable {
        public let channel: MessageChannel
        public let fields: [(name: String, template: ContentTemplate)]
    }

    public let definition: JourneyDefinition
    public let version: Int
    /// Interned `journey:<id>`: how contact state names the journey.
    public let symbol: UInt32
    public let nodeIndex: [String: Int]
    /// Steps with their predicates' segment references resolved.
    public let steps: [JourneyDefinition.Step]
    /// Per node, the indexes of `step.successors`.
    public let successors: [[Int]]
    /// Per score step, the symbol its points are recorded under in the score breakdown.
    public let scoreRuleSymbols: [Int: UInt32]
    public let startNode: Int
    public let entry: Predicate?
    public let exit: Predicate?
    public let goal: Predicate?
    public let messages: [String: CompiledMessage]
    public let zone: TimeZone
    /// The counter symbol an event trigger listens to (nil for "any event of a type").
    public let eventTriggerSymbol: UInt32?

    public init(definition: JourneyDefinition, version: Int, intern: (String) -> UInt32) throws(DefinitionError) {
        self.definition = definition
        self.version = version
        symbol = intern(JourneyCatalog.journeyKey(definition.id))
        var index: [String: Int] = [:]
        for (position, node) in definition.nodes.enumerated() { index[node.id] = position }
        nodeIndex = index
        func resolve(_ predicate: Predicate?) -> Predicate? { predicate?.resolvingSymbols(intern) }
        var ruleSymbols: [Int: UInt32] = [:]
        steps = definition.nodes.enumerated().map { position, node in
            switch node.step {
            case .branch(let condition, let then, let otherwise):
                return .branch(condition.resolvingSymbols(intern), then: then, otherwise: otherwise)
            case .score:
                ruleSymbols[position] = intern("journey-rule:\(definition.id)/\(node.id)")
                return node.step
            default:
                return node.step
            }
        }
        scoreRuleSymbols = ruleSymbols
        successors = definition.nodes.map { node in node.step.successors.map { index[$0]! } }
        startNode = index[definition.start]!
        entry = resolve(definition.entry)
        exit = resolve(definition.exit)
        goal = resolve(definition.goal)
        var messages: [String: CompiledMessage] = [:]
        for (id, message) in definition.templates {
            var fields: [(String, ContentTemplate)] = []
            for name in message.fields.keys.sorted() {
                let format: ContentFormat = message.channel == .webhook && name == "body" ? .json : .text
                fields.append((name, try ContentTemplate(message.fields[name]!, format: format, pointer: "/templates/\(id)/\(name)")))
            }
            messages[id] = CompiledMessage(channel: message.channel, fields: fields)
        }
        self.messages = messages
        zone = LocalCalendar.zone(definition.timeZone) ?? TimeZone(identifier: "UTC")!
        if case .event(let type, let name?, _, _) = definition.trigger {
            eventTriggerSymbol = intern(Event.counterName(type: type, name: name))
        } else {
            eventTriggerSymbol = nil
        }
    }

    public var id: String { definition.id }
}

/// A tenant's journeys: every version still in use, each journey's status, and the trigger
/// indexes that let an event reach only the journeys it can start. Immutable and shared.
public final class JourneyCatalog: Sendable {
    /// Current versions, in id order; a journey's position is its order.
    public let journeys: [CompiledJourney]
    public let order: [String: Int]
    /// Every version by journey symbol and version, for runs that entered an older one.
    public let versions: [UInt32: [Int: CompiledJourney]]
    public let status: [UInt32: JourneyStatus]
    /// Journey orders by the counter symbol of the event that starts them.
    public let eventTriggers: [UInt32: [Int]]
    /// Journey orders started by any event of a type (no name given), by type ordinal.
    public let typeTriggers: [[Int]]
    public let segmentEnteredTriggers: [String: [Int]]
    public let segmentLeftTriggers: [String: [Int]]
    public let traitTriggers: [String: [Int]]
    public let dateTriggers: [String: [Int]]

    public static let empty = JourneyCatalog(journeys: [], versions: [:], status: [:])

    /// The hidden segment that turns a condition trigger into "entered" events.
    public static func triggerSegmentId(_ journey: String) -> String { "journey:" + journey }
    public static func isTriggerSegment(_ segment: String) -> Bool { segment.hasPrefix("journey:") }
    public static func journeyKey(_ id: String) -> String { "journey:" + id }

    init(journeys: [CompiledJourney], versions: [UInt32: [Int: CompiledJourney]], status: [UInt32: JourneyStatus]) {
        self.journeys = journeys
        self.versions = versions
        self.status = status
        var order: [String: Int] = [:]
        var events: [UInt32: [Int]] = [:]
        var types = EventType.allCases.map { _ in [Int]() }
        var entered: [String: [Int]] = [:]
        var left: [String: [Int]] = [:]
        var traits: [String: [Int]] = [:]
        var dates: [String: [Int]] = [:]
        for (position, journey) in journeys.enumerated() {
            order[journey.id] = position
            switch journey.definition.trigger {
            case .event(let type, let name, _, _):
                if let symbol = journey.eventTriggerSymbol {
                    events[symbol, default: []].append(position)
                } else if name == nil {
                    types[type.ordinal].append(position)
                }
            case .segmentEntered(let segment): entered[segment, default: []].append(position)
            case .segmentLeft(let segment): left[segment, default: []].append(position)
            case .condition: entered[JourneyCatalog.triggerSegmentId(journey.id), default: []].append(position)
            case .traitChanged(let trait): traits[trait, default: []].append(position)
            case .dateTrait(let trait, _): dates[trait, default: []].append(position)
            case .manual: break
            }
        }
        self.order = order
        eventTriggers = events
        typeTriggers = types
        segmentEnteredTriggers = entered
        segmentLeftTriggers = left
        traitTriggers = traits
        dateTriggers = dates
    }

    public var isEmpty: Bool { journeys.isEmpty }

    public func journey(_ id: String) -> CompiledJourney? { order[id].map { journeys[$0] } }

    public func version(_ symbol: UInt32, _ version: Int) -> CompiledJourney? { versions[symbol]?[version] }

    public func isActive(_ symbol: UInt32) -> Bool { status[symbol] == .active }

    /// Which definition a compile error belongs to.
    public struct CompileError: Error, Sendable, Hashable {
        public var journey: String
        public var error: DefinitionError
    }

    /// Checks journeys' references (segments, scoring models, other journeys) and compiles
    /// every version given. `current` holds each journey's latest version number. Versions
    /// found in `reuse` (the previous catalog's) are not compiled again, and only the journeys
    /// in `checking` (all when nil) are checked: defining one of 10,000 journeys stays cheap.
    public static func compile(
        versions: [String: [Int: JourneyDefinition]], current: [String: Int], status: [String: JourneyStatus],
        definitions: TenantDefinitions, checking: Set<String>? = nil, reuse: JourneyCatalog = .empty,
        intern: (String) -> UInt32
    ) throws(CompileError) -> JourneyCatalog {
        var compiledCurrent: [CompiledJourney] = []
        var all: [UInt32: [Int: CompiledJourney]] = [:]
        var statuses: [UInt32: JourneyStatus] = [:]
        let ids = Set(current.keys)
        for id in current.keys.sorted() {
            let symbol = intern(journeyKey(id))
            let previous = reuse.versions[symbol]
            for (number, definition) in versions[id] ?? [:] {
                let isCurrent = number == current[id]
                if isCurrent, checking?.contains(id) ?? true { try check(definition, definitions: definitions, journeys: ids) }
                let compiled: CompiledJourney
                if let cached = previous?[number], cached.definition == definition {
                    compiled = cached
                } else {
                    do { compiled = try CompiledJourney(definition: definition, version: number, intern: intern) } catch {
                        throw CompileError(journey: id, error: error)
                    }
                }
                all[symbol, default: [:]][number] = compiled
                if isCurrent {
                    compiledCurrent.append(compiled)
                    statuses[symbol] = status[id] ?? .draft
                }
            }
        }
        return JourneyCatalog(journeys: compiledCurrent, versions: all, status: statuses)
    }

    public static func check(_ journey: JourneyDefinition, definitions: TenantDefinitions, journeys: Set<String>) throws(CompileError) {
        func fail(_ pointer: String, _ message: String) -> CompileError {
            CompileError(journey: journey.id, error: DefinitionError(pointer: pointer, message: message))
        }
        func checkPredicate(_ predicate: Predicate?, at pointer: String) throws(CompileError) {
            guard let predicate else { return }
            let dependencies = predicate.dependencies
            for segment in dependencies.segments.sorted() where definitions.segment(segment) == nil {
                throw fail(journey.source.pointer(ofKey: "segment", value: segment, from: "") ?? pointer, "unknown segment '\(segment)'")
            }
            for model in dependencies.scoreModels.sorted() where definitions.model(model) == nil {
                throw fail(pointer, "unknown scoring model '\(model)'")
            }
        }
        switch journey.trigger {
        case .segmentEntered(let segment), .segmentLeft(let segment):
            guard definitions.segment(segment) != nil else { throw fail("/trigger", "unknown segment '\(segment)'") }
        case .condition(let predicate): try checkPredicate(predicate, at: "/trigger")
        default: break
        }
        try checkPredicate(journey.entry, at: "/entry")
        try checkPredicate(journey.exit, at: "/exit")
        try checkPredicate(journey.goal, at: "/goal")
        for (index, node) in journey.nodes.enumerated() {
            switch node.step {
            case .branch(let condition, _, _): try checkPredicate(condition, at: "/nodes/\(index)/condition")
            case .score(let model, _, _):
                guard definitions.model(model) != nil else { throw fail("/nodes/\(index)/model", "unknown scoring model '\(model)'") }
            case .enroll(let other, _):
                guard journeys.contains(other) else { throw fail("/nodes/\(index)/journey", "unknown journey '\(other)'") }
                guard other != journey.id else {
                    throw fail("/nodes/\(index)/journey", "a journey cannot enroll contacts in itself (use a wait and a loop)")
                }
            default: break
            }
        }
    }
}
