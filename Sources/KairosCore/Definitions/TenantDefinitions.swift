/// One tenant's definitions, compiled into the indexes the hot path reads.
///
/// Immutable and shared: contact actors read the current value without a hop,
/// and a definition change publishes a new value.
public final class TenantDefinitions: Sendable {
    /// A reference type: the hot path reads segments without copying them.
    public final class CompiledSegment: Sendable {
        public let definition: SegmentDefinition
        public let symbol: UInt32
        /// Position in evaluation order (dependencies first).
        public let order: Int
        public let dependencies: PredicateDependencies
        /// Segments whose condition uses this one, by order.
        public let dependents: [Int]

        init(definition: SegmentDefinition, symbol: UInt32, order: Int, dependencies: PredicateDependencies, dependents: [Int]) {
            self.definition = definition
            self.symbol = symbol
            self.order = order
            self.dependencies = dependencies
            self.dependents = dependents
        }
    }

    /// A counter with a filter (`where`) or a wildcard name: updated when a matching event arrives.
    public struct FilteredCounter: Sendable {
        public let symbol: UInt32
        /// The counter's `where` compiled; kept alive by the definitions' `eventFilters`.
        let matcher: Unmanaged<EventFilter>?
    }

    /// An event rule as the hot path reads it: everything awarding needs, the objects unretained
    /// (the definitions keep them), so applying an event counts no references on definitions
    /// that every core shares.
    public struct RuleReference: Sendable {
        public let model: Int
        public let rule: Int
        /// The rule's `where` compiled; kept alive by the definitions' `eventFilters`.
        let filter: Unmanaged<EventFilter>?
        let modelObject: Unmanaged<ScoringModel>
        let ruleObject: Unmanaged<ScoringRule>
        /// Set once every rule has its symbol (`compile`).
        var modelSymbol: UInt32 = 0
        var ruleSymbol: UInt32 = 0
    }

    /// Everything one event key (`track:Signed Up` or `page:*`) can touch.
    public struct EventIndexEntry: Sendable {
        public internal(set) var rules: [RuleReference] = []
        public internal(set) var filteredCounters: [FilteredCounter] = []
        public internal(set) var segments: [Int] = []
    }

    /// An `EventIndexEntry` as applying an event reads it: one object, reached unretained
    /// (`indexedEvent(of:)`). Copying the entry counted a reference on each of its arrays, which
    /// every core applying events of that name shares.
    final class IndexedEvent: Sendable {
        let rules: [RuleReference]
        let filteredCounters: [FilteredCounter]
        let segments: [Int]

        init(_ entry: EventIndexEntry) {
            rules = entry.rules
            filteredCounters = entry.filteredCounters
            segments = entry.segments
        }
    }

    public let version: UInt64
    /// The event index's compiled filters (`RuleReference.filter`, `FilteredCounter.matcher`), kept alive here.
    private let eventFilters: [EventFilter]
    public let models: [ScoringModel]
    public let modelIndex: [String: Int]
    /// In evaluation order: a segment comes after every segment its condition uses.
    public let segments: [CompiledSegment]
    /// `segments` again, for evaluation without reference counting (the array above keeps them).
    let segmentsUnmanaged: [Unmanaged<CompiledSegment>]
    public let segmentOrderBySymbol: [UInt32: Int]
    public let eventIndex: [String: EventIndexEntry]
    /// The same index by the symbol of the event's counter name (what contacts receive), as
    /// objects read unretained (`indexedEvents` keeps them); symbols are small dense integers,
    /// so an array beats hashing.
    private let indexedBySymbol: [Unmanaged<IndexedEvent>?]
    /// Entries for `type:*`, by `EventType.ordinal`, the same way.
    let indexedWildcards: [Unmanaged<IndexedEvent>?]
    private let indexedEvents: [IndexedEvent]
    /// How many recent occurrence times each counter keeps.
    public let counterDepth: [UInt32: Int]
    private let depthBySymbol: [Int32]
    public let segmentsByTrait: [String: [Int]]
    public let segmentsByScoreModel: [String: [Int]]
    /// The same by model number (an event that changes a score looks here, without hashing).
    let segmentsByModelNumber: [[Int]]
    public let accountSegments: [Int]
    public let seenSegments: [Int]
    public let timeDependentSegments: [Int]
    /// Whether a time-dependent segment uses first or last seen (then every event moves a wake-up).
    public let seenIsTimeDependent: Bool

    /// A counter window some segment waits on.
    public struct WindowLeaf: Sendable, Hashable {
        public let symbol: UInt32
        public let window: TimeSpan
    }

    /// A first/last-seen span some segment waits on.
    public struct SeenLeaf: Sendable, Hashable {
        public let first: Bool
        public let span: TimeSpan
    }

    /// The leaves of time-dependent segments that lapse by themselves, flattened, deduplicated
    /// and sorted by counter symbol (as a contact's counters are, see `CounterSet.earliestLapse`).
    public let windowLeaves: [WindowLeaf]
    public let seenLeaves: [SeenLeaf]
    /// Models with trait rules, by the trait keys those rules read.
    public let traitRuleModelsByTrait: [String: [Int]]
    public let accountTraitRuleModels: [Int]
    /// Interned `model:ID` per model, as contacts store them.
    public let modelSymbols: [UInt32]
    /// Interned `rule:MODEL/RULE` per model and rule.
    public let ruleSymbols: [[UInt32]]
    /// Per decaying model: the score values at which something observable changes
    /// (stages, grades, segment thresholds), so a contact knows when to wake up.
    public let decayBoundaries: [Int: [Double]]
    /// Models that decay, by number (an array: read on every event).
    public let decayingModels: [Int]

    public static let empty = TenantDefinitions(
        version: 0, models: [], modelIndex: [:], segments: [], segmentOrderBySymbol: [:], eventIndex: [:],
        eventIndexBySymbol: [], wildcardIndex: EventType.allCases.map { _ in nil },
        counterDepth: [:], segmentsByTrait: [:], segmentsByScoreModel: [:], accountSegments: [], seenSegments: [],
        timeDependentSegments: [], traitRuleModelsByTrait: [:], accountTraitRuleModels: [], modelSymbols: [],
        ruleSymbols: [], decayBoundaries: [:])

    init(
        version: UInt64, models: [ScoringModel], modelIndex: [String: Int], segments: [CompiledSegment],
        segmentOrderBySymbol: [UInt32: Int], eventIndex: [String: EventIndexEntry],
        eventIndexBySymbol: [EventIndexEntry?], wildcardIndex: [EventIndexEntry?], counterDepth: [UInt32: Int],
        segmentsByTrait: [String: [Int]], segmentsByScoreModel: [String: [Int]], accountSegments: [Int],
        seenSegments: [Int], timeDependentSegments: [Int], traitRuleModelsByTrait: [String: [Int]],
        accountTraitRuleModels: [Int], modelSymbols: [UInt32], ruleSymbols: [[UInt32]], decayBoundaries: [Int: [Double]],
        eventFilters: [EventFilter] = []
    ) {
        self.eventFilters = eventFilters
        self.version = version
        self.models = models
        self.modelIndex = modelIndex
        self.segments = segments
        self.segmentsUnmanaged = segments.map { Unmanaged.passUnretained($0) }
        self.segmentOrderBySymbol = segmentOrderBySymbol
        self.eventIndex = eventIndex
        var indexedEvents: [IndexedEvent] = []
        func indexed(_ entry: EventIndexEntry?) -> Unmanaged<IndexedEvent>? {
            entry.map { Unmanaged.passUnretained(IndexedEvent($0), keptIn: &indexedEvents) }
        }
        self.indexedBySymbol = eventIndexBySymbol.map(indexed)
        self.indexedWildcards = wildcardIndex.map(indexed)
        self.indexedEvents = indexedEvents
        self.counterDepth = counterDepth
        var depths = [Int32](repeating: 0, count: Int(counterDepth.keys.max() ?? 0) + 1)
        for (symbol, depth) in counterDepth { depths[Int(symbol)] = Int32(depth) }
        self.depthBySymbol = depths
        self.segmentsByTrait = segmentsByTrait
        self.segmentsByScoreModel = segmentsByScoreModel
        self.segmentsByModelNumber = models.map { segmentsByScoreModel[$0.id] ?? [] }
        self.accountSegments = accountSegments
        self.seenSegments = seenSegments
        self.timeDependentSegments = timeDependentSegments
        self.seenIsTimeDependent = timeDependentSegments.contains { segments[$0].dependencies.usesSeen }
        var windows: [WindowLeaf] = []
        var seen: [SeenLeaf] = []
        for order in timeDependentSegments {
            segments[order].definition.condition.collectTimeLeaves(windows: &windows, seen: &seen)
        }
        self.windowLeaves = windows.sorted { ($0.symbol, $0.window.milliseconds) < ($1.symbol, $1.window.milliseconds) }
        self.seenLeaves = seen
        self.traitRuleModelsByTrait = traitRuleModelsByTrait
        self.accountTraitRuleModels = accountTraitRuleModels
        self.modelSymbols = modelSymbols
        self.ruleSymbols = ruleSymbols
        self.decayBoundaries = decayBoundaries
        self.decayingModels = decayBoundaries.keys.sorted()
    }

    public func modelNumber(ofSymbol symbol: UInt32) -> Int? { modelSymbols.firstIndex(of: symbol) }

    public static func modelKey(_ id: String) -> String { "model:" + id }
    public static func ruleKey(model: String, rule: String) -> String { "rule:\(model)/\(rule)" }

    public func model(_ id: String) -> ScoringModel? { modelNumber(id).map { models[$0] } }

    /// A model's position; a scan beats hashing for the handful of models a tenant has.
    @inline(__always) public func modelNumber(_ id: String) -> Int? {
        if models.count <= 8 {
            for index in models.indices where models[index].id == id { return index }
            return nil
        }
        return modelIndex[id]
    }

    /// Recent occurrence times kept for a counter.
    @inline(__always) public func depth(of symbol: UInt32) -> Int {
        Int(symbol) < depthBySymbol.count ? Int(depthBySymbol[Int(symbol)]) : 0
    }

    /// The index entry of a counter symbol, unretained (the definitions keep it).
    @inline(__always) func indexedEvent(of symbol: UInt32) -> Unmanaged<IndexedEvent>? {
        Int(symbol) < indexedBySymbol.count ? indexedBySymbol[Int(symbol)] : nil
    }

    public func segment(_ id: String) -> CompiledSegment? {
        segments.first { $0.definition.id == id }
    }

    /// Which definition a cross-reference error belongs to, for messages.
    public enum Owner: Sendable, Hashable {
        case model(String)
        case segment(String)
    }

    /// A definition set that does not hold together (unknown reference, cycle).
    public struct CompileError: Error, Sendable, Hashable {
        public var owner: Owner
        public var error: DefinitionError
    }

    /// Validates cross-references and builds the indexes.
    /// `intern` turns counter keys and segment keys into symbols.
    public static func compile(
        version: UInt64, models: [ScoringModel], segments: [SegmentDefinition], intern: (String) -> UInt32
    ) throws(CompileError) -> TenantDefinitions {
        var modelIndex: [String: Int] = [:]
        for (index, model) in models.enumerated() { modelIndex[model.id] = index }
        for model in models {
            if let row = model.gradeMatrixRowModel, modelIndex[row] == nil {
                throw CompileError(
                    owner: .model(model.id),
                    error: DefinitionError(pointer: "/gradeMatrix/rows", message: "unknown scoring model '\(row)'"))
            }
        }

        // Check references, then order segments so that each comes after those it uses.
        let byId = Dictionary(segments.map { ($0.id, $0) }, uniquingKeysWith: { _, last in last })
        var dependencies: [String: PredicateDependencies] = [:]
        for segment in segments {
            let deps = segment.condition.dependencies
            for model in deps.scoreModels.sorted() where modelIndex[model] == nil {
                let pointer = segment.source.pointer(ofKey: "score", value: model)
                    ?? segment.source.pointer(ofKey: "grade", value: model)
                    ?? segment.source.pointer(ofKey: "lifecycle", value: model) ?? "/condition"
                throw CompileError(
                    owner: .segment(segment.id),
                    error: DefinitionError(pointer: pointer, message: "unknown scoring model '\(model)'"))
            }
            for used in deps.segments.sorted() where byId[used] == nil {
                throw CompileError(
                    owner: .segment(segment.id),
                    error: DefinitionError(
                        pointer: segment.source.pointer(ofKey: "segment", value: used) ?? "/condition",
                        message: "unknown segment '\(used)'"))
            }
            dependencies[segment.id] = deps
        }
        var ordered: [SegmentDefinition] = []
        var state: [String: Int] = [:]  // 1 visiting, 2 done
        func visit(_ id: String, path: [String]) throws(CompileError) {
            if state[id] == 2 { return }
            if state[id] == 1 {
                let cycle = (path.drop { $0 != id } + [id]).joined(separator: " → ")
                let owner = path.last ?? id
                throw CompileError(
                    owner: .segment(owner),
                    error: DefinitionError(
                        pointer: byId[owner]?.source.pointer(ofKey: "segment", value: id) ?? "/condition",
                        message: "segments may not use each other in a cycle: \(cycle)"))
            }
            state[id] = 1
            for used in dependencies[id]!.segments.sorted() { try visit(used, path: path + [id]) }
            state[id] = 2
            ordered.append(byId[id]!)
        }
        for segment in segments { try visit(segment.id, path: []) }

        // Counters and the event index.
        var eventIndex: [String: EventIndexEntry] = [:]
        var counterDepth: [UInt32: Int] = [:]
        var filteredSeen: Set<UInt32> = []
        // Event filters compiled for the hot path, owned by the definitions (the index refers to them unretained).
        var eventFilters: [EventFilter] = []
        func compileFilter(_ filter: Predicate?) -> Unmanaged<EventFilter>? {
            filter.map { Unmanaged.passUnretained(EventFilter($0), keptIn: &eventFilters) }
        }
        func registerCounter(_ condition: EventCondition, key: String) -> UInt32 {
            let symbol = intern(condition.counterKey)
            counterDepth[symbol] = max(counterDepth[symbol] ?? 0, condition.requiredDepth)
            if (condition.filter != nil || condition.name == nil) && filteredSeen.insert(symbol).inserted {
                eventIndex[key, default: EventIndexEntry()].filteredCounters.append(
                    FilteredCounter(symbol: symbol, matcher: compileFilter(condition.filter)))
            }
            return symbol
        }

        var orderById: [String: Int] = [:]
        for (order, definition) in ordered.enumerated() { orderById[definition.id] = order }
        var dependentsByOrder = Array(repeating: [Int](), count: ordered.count)
        for (order, definition) in ordered.enumerated() {
            for used in dependencies[definition.id]!.segments { dependentsByOrder[orderById[used]!].append(order) }
        }
        var compiled: [CompiledSegment] = []
        var orderBySymbol: [UInt32: Int] = [:]
        var segmentsByTrait: [String: [Int]] = [:]
        var segmentsByScoreModel: [String: [Int]] = [:]
        var accountSegments: [Int] = []
        var seenSegments: [Int] = []
        var timeDependent: [Int] = []
        for (order, definition) in ordered.enumerated() {
            let deps = dependencies[definition.id]!
            for condition in deps.eventConditions {
                let key = condition.name.map { Event.counterName(type: condition.type, name: $0) }
                    ?? "\(condition.type.rawValue):*"
                _ = registerCounter(condition, key: key)
                var entry = eventIndex[key, default: EventIndexEntry()]
                if entry.segments.last != order { entry.segments.append(order) }
                eventIndex[key] = entry
            }
            for trait in deps.traitKeys { segmentsByTrait[trait, default: []].append(order) }
            for model in deps.scoreModels {
                segmentsByScoreModel[model, default: []].append(order)
                // A matrix grade (A1) also moves with its row model.
                if let row = modelIndex[model].flatMap({ models[$0].gradeMatrixRowModel }) {
                    segmentsByScoreModel[row, default: []].append(order)
                }
            }
            if deps.usesAccount { accountSegments.append(order) }
            if deps.usesSeen { seenSegments.append(order) }
            let decays = deps.scoreModels.contains { modelIndex[$0].map { models[$0].halfLife != nil } ?? false }
            if deps.isTimeDependent || decays { timeDependent.append(order) }
            var resolved = definition
            resolved.condition = definition.condition.resolvingSymbols(intern)
            let symbol = intern(SymbolTable.segmentKey(definition.id))
            orderBySymbol[symbol] = order
            compiled.append(
                CompiledSegment(
                    definition: resolved, symbol: symbol, order: order, dependencies: deps,
                    dependents: dependentsByOrder[order].sorted()))
        }

        var traitRuleModelsByTrait: [String: [Int]] = [:]
        var accountTraitRuleModels: [Int] = []
        for (modelNumber, model) in models.enumerated() {
            for (ruleNumber, rule) in model.rules.enumerated() {
                switch rule.condition {
                case .event(let matcher):
                    // A rule's filter is checked per event; the index only narrows by name.
                    eventIndex[matcher.indexKey, default: EventIndexEntry()].rules.append(
                        RuleReference(
                            model: modelNumber, rule: ruleNumber, filter: compileFilter(matcher.filter),
                            modelObject: Unmanaged.passUnretained(model), ruleObject: Unmanaged.passUnretained(rule)))
                case .trait(let predicate):
                    let deps = predicate.dependencies
                    for key in deps.traitKeys where traitRuleModelsByTrait[key]?.last != modelNumber {
                        traitRuleModelsByTrait[key, default: []].append(modelNumber)
                    }
                    if deps.usesAccount && accountTraitRuleModels.last != modelNumber {
                        accountTraitRuleModels.append(modelNumber)
                    }
                }
            }
        }

        var decayBoundaries: [Int: [Double]] = [:]
        for (number, model) in models.enumerated() where model.halfLife != nil {
            var values = Set(model.lifecycle.map(\.minimum) + model.grades.map(\.minimum).filter(\.isFinite))
            for segment in compiled {
                segment.definition.condition.collectScoreThresholds(model: model.id, into: &values)
            }
            decayBoundaries[number] = values.sorted()
        }
        let modelSymbols = models.map { intern(modelKey($0.id)) }
        // Sorted: interning order decides symbol numbers, which must not depend on hashing.
        let keySymbols = eventIndex.keys.sorted().filter { !$0.hasSuffix(":*") }.map { (key: $0, symbol: intern($0)) }
        let ruleSymbols = models.map { model in model.rules.map { intern(ruleKey(model: model.id, rule: $0.id)) } }
        // Interned in this order since the first version (symbol numbers are kept in snapshots);
        // the index's rules learn their symbols afterwards.
        for key in eventIndex.keys {
            for position in eventIndex[key]!.rules.indices {
                let (model, rule) = (eventIndex[key]!.rules[position].model, eventIndex[key]!.rules[position].rule)
                eventIndex[key]!.rules[position].modelSymbol = modelSymbols[model]
                eventIndex[key]!.rules[position].ruleSymbol = ruleSymbols[model][rule]
            }
        }
        var eventIndexBySymbol = [EventIndexEntry?](repeating: nil, count: Int(keySymbols.map(\.symbol).max() ?? 0) + 1)
        for (key, symbol) in keySymbols { eventIndexBySymbol[Int(symbol)] = eventIndex[key] }
        let wildcardIndex = EventType.allCases.map { eventIndex["\($0.rawValue):*"] }

        return TenantDefinitions(
            version: version, models: models, modelIndex: modelIndex, segments: compiled,
            segmentOrderBySymbol: orderBySymbol, eventIndex: eventIndex, eventIndexBySymbol: eventIndexBySymbol,
            wildcardIndex: wildcardIndex, counterDepth: counterDepth,
            segmentsByTrait: segmentsByTrait, segmentsByScoreModel: segmentsByScoreModel,
            accountSegments: accountSegments, seenSegments: seenSegments, timeDependentSegments: timeDependent,
            traitRuleModelsByTrait: traitRuleModelsByTrait, accountTraitRuleModels: accountTraitRuleModels,
            modelSymbols: modelSymbols, ruleSymbols: ruleSymbols, decayBoundaries: decayBoundaries, eventFilters: eventFilters)
    }
}

extension Predicate {
    func collectScoreThresholds(model: String, into values: inout Set<Double>) {
        switch self {
        case .all(let items), .any(let items): items.forEach { $0.collectScoreThresholds(model: model, into: &values) }
        case .not(let item): item.collectScoreThresholds(model: model, into: &values)
        case .score(let scored, _, let value) where scored == model: values.insert(value)
        default: break
        }
    }
}

extension Predicate {
    func collectTimeLeaves(windows: inout [TenantDefinitions.WindowLeaf], seen: inout [TenantDefinitions.SeenLeaf]) {
        switch self {
        case .all(let items), .any(let items):
            for item in items { item.collectTimeLeaves(windows: &windows, seen: &seen) }
        case .not(let item): item.collectTimeLeaves(windows: &windows, seen: &seen)
        case .event(let condition):
            guard let window = condition.window else { return }
            let leaf = TenantDefinitions.WindowLeaf(symbol: condition.counterSymbol, window: window)
            if !windows.contains(leaf) { windows.append(leaf) }
        case .firstSeen(let condition), .lastSeen(let condition):
            let first: Bool
            if case .firstSeen = self { first = true } else { first = false }
            switch condition {
            case .within(let span), .olderThan(let span):
                let leaf = TenantDefinitions.SeenLeaf(first: first, span: span)
                if !seen.contains(leaf) { seen.append(leaf) }
            case .before, .after: break
            }
        default: break
        }
    }
}

extension Unmanaged {
    /// An unretained reference to `object`, which `owners` keeps alive.
    static func passUnretained(_ object: Instance, keptIn owners: inout [Instance]) -> Unmanaged {
        owners.append(object)
        return passUnretained(object)
    }
}
