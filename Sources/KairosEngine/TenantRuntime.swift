import KairosCore
import Synchronization

/// The parts of a tenant that contact actors share: read without an actor hop.
final class TenantRuntime: Sendable {
    let id: String
    let name: String
    let directory = ContactDirectory()
    let members = SegmentMembers()
    let accounts = AccountDirectory()
    let deduplicator: MessageDeduplicator
    let tallies = DecisionTallies()
    let journeyMetrics = JourneyMetrics()
    let outbox = Outbox()
    let emails = EmailIndex()
    let activity = DailyActivity()
    /// Set once the tenant is deleted: its contacts' timers no longer fire.
    let deleted = Atomic<Bool>(false)
    private let currentLimits = Mutex(TenantLimits.unlimited)
    /// Live ingest counters (since the process started; replay does not count).
    let eventsAccepted = Atomic<Int>(0)
    let duplicatesSkipped = Atomic<Int>(0)
    let scheduler: Scheduler
    let effects: EffectBus
    private let currentDefinitions = Mutex(TenantDefinitions.empty)
    private let currentCatalog = Mutex(DecisionCatalog.empty)
    private let currentJourneys = Mutex(JourneyCatalog.empty)
    private let symbolTable = Mutex(SymbolTable())
    /// The snapshot reading this tenant's contacts now (0: none), and the first contact id
    /// it does not cover (contacts created after it began are replayed from the journal).
    private let snapshotEpoch = Atomic<UInt64>(0)
    private let snapshotContactLimit = Atomic<UInt64>(0)
    private let lastSnapshotEpoch = Atomic<UInt64>(0)

    init(id: String, name: String, scheduler: Scheduler, effects: EffectBus, deduplicator: MessageDeduplicator) {
        self.id = id
        self.name = name
        self.scheduler = scheduler
        self.effects = effects
        self.deduplicator = deduplicator
    }

    /// The definitions in force now.
    var definitions: TenantDefinitions { currentDefinitions.withLock { $0 } }

    func publish(_ definitions: TenantDefinitions) { currentDefinitions.withLock { $0 = definitions } }

    /// The tenant's limits in force now.
    var limits: TenantLimits { currentLimits.withLock { $0 } }

    func publish(_ limits: TenantLimits) { currentLimits.withLock { $0 = limits } }

    /// The placements and experiments in force now.
    var catalog: DecisionCatalog { currentCatalog.withLock { $0 } }

    func publish(_ catalog: DecisionCatalog) { currentCatalog.withLock { $0 = catalog } }

    /// The journeys (every version in use) and their statuses in force now.
    var journeys: JourneyCatalog { currentJourneys.withLock { $0 } }

    func publish(_ journeys: JourneyCatalog) { currentJourneys.withLock { $0 = journeys } }

    // MARK: Snapshots while ingest continues

    /// Starts a snapshot of this tenant's contacts as they are now, called between two of its
    /// commands. Until `endSnapshot`, a contact about to change keeps its state as it was
    /// (copy on write) for the snapshot to read instead.
    func beginSnapshot() -> UInt64 {
        let epoch = lastSnapshotEpoch.add(1, ordering: .relaxed).newValue
        snapshotContactLimit.store(directory.nextContactId, ordering: .relaxed)
        snapshotEpoch.store(epoch, ordering: .releasing)
        return epoch
    }

    func endSnapshot() { snapshotEpoch.store(0, ordering: .releasing) }

    /// The running snapshot that still has to read `contact` as it was (0: none).
    func snapshotEpoch(covering contact: UInt64) -> UInt64 {
        let epoch = snapshotEpoch.load(ordering: .acquiring)
        guard epoch != 0, contact < snapshotContactLimit.load(ordering: .relaxed) else { return 0 }
        return epoch
    }

    func intern(_ name: String) -> UInt32 { symbolTable.withLock { $0.intern(name) } }

    /// Interns the counter names of a batch under one lock acquisition.
    func internCounters(of events: [Event]) -> [UInt32] {
        symbolTable.withLock { table in
            var symbols: [UInt32] = []
            symbols.reserveCapacity(events.count)
            for index in events.indices {
                symbols.append(table.internCounter(type: events[index].type, name: events[index].name))
            }
            return symbols
        }
    }

    func symbolNames() -> SymbolTable { symbolTable.withLock { $0 } }

    /// Every interned name, in symbol order (symbol 1 first), for a snapshot.
    func exportSymbols() -> [String] {
        symbolTable.withLock { table in (1...max(table.count, 1)).compactMap { table.name(of: UInt32($0)) } }
    }

    func makeContact(_ id: UInt64) -> ContactActor { ContactActor(id: id, tenant: self) }

    /// Decides placements for a contact's state (nil: a visitor not seen before). Experiments
    /// hash the user id when there is one, else the anonymous id.
    func decide(
        _ placements: [String], state: ContactState?, userId: String?, anonymousId: String?, request: RequestContext,
        now: Timestamp, seed: UInt64
    ) -> (decisions: [PlacementDecision], record: DecisionRecord) {
        let catalog = self.catalog
        let account = state?.accountId.flatMap { accounts.traits(of: $0) }
        let decider = Decider(catalog: catalog, definitions: definitions, accountTraits: account)
        var random = SeededRandom(seed: seed)
        return decider.decide(
            placements: placements, state: state, hashValue: userId ?? anonymousId ?? "", request: request, now: now,
            armStatistics: { placement in
                guard let compiled = catalog.placements[placement] else { return [] }
                let names = compiled.optimizerVariants.map { compiled.definition.variants[$0].id }
                return self.tallies.arms(placement: placement, variants: names)
            },
            random: &random)
    }
}
