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
    let scheduler: Scheduler
    let effects: EffectBus
    private let currentDefinitions = Mutex(TenantDefinitions.empty)
    private let symbolTable = Mutex(SymbolTable())

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
}
