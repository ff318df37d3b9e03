import Foundation
import HashTreeCollections

/// One version of a journey, checked against the tenant's definitions and ready to run:
/// node ids resolved to indexes, segment references to symbols, templates compiled.
public final class CompiledJourney: Sendable {
    public struct CompiledMessage: Sendable {
        public let channel: MessageChannel
        public let fields: [(name: String, template: ContentTemplate)]

        init(id: String, _ message: JourneyDefinition.Message) throws(DefinitionError) {
            var fields: [(String, ContentTemplate)] = []
            for name in message.fields.keys.sorted() {
                let format: ContentFormat = message.channel == .webhook && name == "body" ? .json : .text
                fields.append((name, try ContentTemplate(message.fields[name]!, format: format, pointer: "/templates/\(id)/\(name)")))
            }
            channel = message.channel
            self.fields = fields
        }
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

    /// - Parameter sharedTemplates: the tenant's templates, for send steps that name a template
    ///   the journey does not define itself (its own `/templates` win).
    public init(
        definition: JourneyDefinition, version: Int, sharedTemplates: [String: JourneyDefinition.Message] = [:],
        intern: (String) -> UInt32
    ) throws(DefinitionError) {
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
        for (id, message) in definition.templates { messages[id] = try CompiledMessage(id: id, message) }
        for id in definition.sharedTemplateIds {
            guard messages[id] == nil, let message = sharedTemplates[id] else { continue }
            messages[id] = try CompiledMessage(id: id, message)
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
/// indexes that let an event reach only the journeys it can start. Immutable and shared;
/// `updating` derives the next one without recompiling the others.
public final class JourneyCatalog: Sendable {
    /// Current versions by id and by symbol.
    public let byId: TreeDictionary<String, CompiledJourney>
    public let bySymbol: TreeDictionary<UInt32, CompiledJourney>
    /// Every version by journey symbol and version, for runs that entered an older one.
    public let versions: TreeDictionary<UInt32, [Int: CompiledJourney]>
    public let status: TreeDictionary<UInt32, JourneyStatus>
    /// Journeys by the counter symbol of the event that starts them.
    public let eventTriggers: TreeDictionary<UInt32, [CompiledJourney]>
    /// Journeys started by any event of a type (no name given), by type ordinal.
    public let typeTriggers: [[CompiledJourney]]
    public let segmentEnteredTriggers: TreeDictionary<String, [CompiledJourney]>
    public let segmentLeftTriggers: TreeDictionary<String, [CompiledJourney]>
    public let traitTriggers: TreeDictionary<String, [CompiledJourney]>
    public let dateTriggers: TreeDictionary<String, [CompiledJourney]>

    public static let empty = JourneyCatalog(
        byId: [:], bySymbol: [:], versions: [:], status: [:], eventTriggers: [:],
        typeTriggers: EventType.allCases.map { _ in [] }, segmentEnteredTriggers: [:], segmentLeftTriggers: [:], traitTriggers: [:],
        dateTriggers: [:])

    /// The hidden segment that turns a condition trigger into "entered" events.
    public static func triggerSegmentId(_ journey: String) -> String { "journey:" + journey }
    public static func isTriggerSegment(_ segment: String) -> Bool { segment.hasPrefix("journey:") }
    public static func journeyKey(_ id: String) -> String { "journey:" + id }

    init(
        byId: TreeDictionary<String, CompiledJourney>, bySymbol: TreeDictionary<UInt32, CompiledJourney>,
        versions: TreeDictionary<UInt32, [Int: CompiledJourney]>, status: TreeDictionary<UInt32, JourneyStatus>,
        eventTriggers: TreeDictionary<UInt32, [CompiledJourney]>, typeTriggers: [[CompiledJourney]],
        segmentEnteredTriggers: TreeDictionary<String, [CompiledJourney]>, segmentLeftTriggers: TreeDictionary<String, [CompiledJourney]>,
        traitTriggers: TreeDictionary<String, [CompiledJourney]>, dateTriggers: TreeDictionary<String, [CompiledJourney]>
    ) {
        self.byId = byId
        self.bySymbol = bySymbol
        self.versions = versions
        self.status = status
        self.eventTriggers = eventTriggers
        self.typeTriggers = typeTriggers
        self.segmentEnteredTriggers = segmentEnteredTriggers
        self.segmentLeftTriggers = segmentLeftTriggers
        self.traitTriggers = traitTriggers
        self.dateTriggers = dateTriggers
    }

    public var isEmpty: Bool { byId.isEmpty }

    public func journey(_ id: String) -> CompiledJourney? { byId[id] }

    public func version(_ symbol: UInt32, _ version: Int) -> CompiledJourney? { versions[symbol]?[version] }

    public func isActive(_ symbol: UInt32) -> Bool { status[symbol] == .active }

    /// The trigger indexes, edited one journey at a time.
    private struct Indexes {
        var events: TreeDictionary<UInt32, [CompiledJourney]>
        var types: [[CompiledJourney]]
        var entered: TreeDictionary<String, [CompiledJourney]>
        var left: TreeDictionary<String, [CompiledJourney]>
        var traits: TreeDictionary<String, [CompiledJourney]>
        var dates: TreeDictionary<String, [CompiledJourney]>

        init(_ catalog: JourneyCatalog) {
            events = catalog.eventTriggers
            types = catalog.typeTriggers
            entered = catalog.segmentEnteredTriggers
            left = catalog.segmentLeftTriggers
            traits = catalog.traitTriggers
            dates = catalog.dateTriggers
        }

        /// Adds or removes a journey; lists stay in id order (simultaneous triggers enter in that order).
        mutating func edit(_ journey: CompiledJourney, add: Bool) {
            func edit<Key: Hashable>(_ table: inout TreeDictionary<Key, [CompiledJourney]>, _ key: Key) {
                if add {
                    var list = table[key] ?? []
                    let position = list.firstIndex { $0.id > journey.id } ?? list.count
                    list.insert(journey, at: position)
                    table[key] = list
                } else {
                    table[key]?.removeAll { $0 === journey }
                    if table[key]?.isEmpty == true { table[key] = nil }
                }
            }
            switch journey.definition.trigger {
            case .event(let type, let name, _, _):
                if let symbol = journey.eventTriggerSymbol {
                    edit(&events, symbol)
                } else if name == nil {
                    var table: TreeDictionary<Int, [CompiledJourney]> = [0: types[type.ordinal]]
                    edit(&table, 0)
                    types[type.ordinal] = table[0] ?? []
                }
            case .segmentEntered(let segment): edit(&entered, segment)
            case .segmentLeft(let segment): edit(&left, segment)
            case .condition: edit(&entered, JourneyCatalog.triggerSegmentId(journey.id))
            case .traitChanged(let trait): edit(&traits, trait)
            case .dateTrait(let trait, _): edit(&dates, trait)
            case .manual: break
            }
        }
    }

    private convenience init(
        byId: TreeDictionary<String, CompiledJourney>, bySymbol: TreeDictionary<UInt32, CompiledJourney>,
        versions: TreeDictionary<UInt32, [Int: CompiledJourney]>, status: TreeDictionary<UInt32, JourneyStatus>, indexes: Indexes
    ) {
        self.init(
            byId: byId, bySymbol: bySymbol, versions: versions, status: status, eventTriggers: indexes.events,
            typeTriggers: indexes.types, segmentEnteredTriggers: indexes.entered, segmentLeftTriggers: indexes.left,
            traitTriggers: indexes.traits, dateTriggers: indexes.dates)
    }

    /// A catalog with `journey` as its id's current version (added to the versions kept) and
    /// the given status; only that journey's index entries change.
    public func updating(_ journey: CompiledJourney, status newStatus: JourneyStatus) -> JourneyCatalog {
        var byId = self.byId
        var bySymbol = self.bySymbol
        var versions = self.versions
        var status = self.status
        var indexes = Indexes(self)
        if let previous = byId[journey.id] { indexes.edit(previous, add: false) }
        indexes.edit(journey, add: true)
        byId[journey.id] = journey
        bySymbol[journey.symbol] = journey
        versions[journey.symbol, default: [:]][journey.version] = journey
        status[journey.symbol] = newStatus
        return JourneyCatalog(byId: byId, bySymbol: bySymbol, versions: versions, status: status, indexes: indexes)
    }

    /// The same journeys with one journey's status changed.
    public func updating(status newStatus: JourneyStatus, of symbol: UInt32) -> JourneyCatalog {
        var status = self.status
        status[symbol] = newStatus
        return JourneyCatalog(byId: byId, bySymbol: bySymbol, versions: versions, status: status, indexes: Indexes(self))
    }

    /// Which definition a compile error belongs to.
    public struct CompileError: Error, Sendable, Hashable {
        public var journey: String
        public var error: DefinitionError
    }

    /// Checks journeys' references (segments, scoring models, other journeys) and compiles
    /// every version given; `current` holds each journey's latest version number. Used when
    /// segments or models change and on restore; versions found in `reuse` are not compiled again.
    public static func compile(
        versions: [String: [Int: JourneyDefinition]], current: [String: Int], status: [String: JourneyStatus],
        definitions: TenantDefinitions, templates: [String: JourneyDefinition.Message] = [:], reuse: JourneyCatalog = .empty,
        recompilingUsers template: String? = nil, intern: (String) -> UInt32
    ) throws(CompileError) -> JourneyCatalog {
        let ids = Set(current.keys)
        var byId: TreeDictionary<String, CompiledJourney> = [:]
        var bySymbol: TreeDictionary<UInt32, CompiledJourney> = [:]
        var all: TreeDictionary<UInt32, [Int: CompiledJourney]> = [:]
        var statuses: TreeDictionary<UInt32, JourneyStatus> = [:]
        var indexes = Indexes(.empty)
        for id in current.keys.sorted() {
            let symbol = intern(journeyKey(id))
            let previous = reuse.versions[symbol]
            for (number, definition) in versions[id] ?? [:] {
                let isCurrent = number == current[id]
                if isCurrent { try check(definition, definitions: definitions, templates: templates, journeys: { ids.contains($0) }) }
                let compiled: CompiledJourney
                if let cached = previous?[number], template.map({ !definition.sharedTemplateIds.contains($0) }) ?? true {
                    compiled = cached  // a version never changes once defined (but a shared template it sends may)
                } else {
                    do {
                        compiled = try CompiledJourney(definition: definition, version: number, sharedTemplates: templates, intern: intern)
                    } catch {
                        throw CompileError(journey: id, error: error)
                    }
                }
                all[symbol, default: [:]][number] = compiled
                guard isCurrent else { continue }
                byId[id] = compiled
                bySymbol[symbol] = compiled
                statuses[symbol] = status[id] ?? .draft
                indexes.edit(compiled, add: true)
            }
        }
        return JourneyCatalog(byId: byId, bySymbol: bySymbol, versions: all, status: statuses, indexes: indexes)
    }

    public static func check(
        _ journey: JourneyDefinition, definitions: TenantDefinitions, templates: [String: JourneyDefinition.Message] = [:],
        journeys exists: (String) -> Bool
    ) throws(CompileError) {
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
            case .send(let template, _):
                guard journey.templates[template] != nil || templates[template] != nil else {
                    throw fail("/nodes/\(index)/template", "no template '\(template)' in /templates or among the tenant's templates")
                }
            case .score(let model, _, _):
                guard definitions.model(model) != nil else { throw fail("/nodes/\(index)/model", "unknown scoring model '\(model)'") }
            case .enroll(let other, _):
                guard exists(other) || other == journey.id else { throw fail("/nodes/\(index)/journey", "unknown journey '\(other)'") }
                guard other != journey.id else {
                    throw fail("/nodes/\(index)/journey", "a journey cannot enroll contacts in itself (use a wait and a loop)")
                }
            default: break
            }
        }
    }
}
