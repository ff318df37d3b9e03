import KairosCore
import Synchronization

/// What happened to one ingested event.
public enum IngestResult: Sendable, Hashable {
    case applied
    /// Its `messageId` was seen within the dedupe window: acknowledged, not applied again.
    case duplicate
    /// It would have created a contact past the tenant's `maxContacts`: not applied.
    case overContactLimit
}

public struct IngestReport: Sendable {
    /// One per event, in order.
    public var results: [IngestResult]
    public var effects: [Effect]

    public var appliedCount: Int { results.count { $0 == .applied } }
    public var duplicateCount: Int { results.count { $0 == .duplicate } }
    public var refusedCount: Int { results.count { $0 == .overContactLimit } }
}

/// One page of a segment's members.
public struct SegmentPage: Sendable, Hashable {
    public struct Member: Sendable, Hashable, Codable {
        public var id: UInt64
        public var userId: String?
        public var anonymousIds: [String]
    }

    public var members: [Member]
    /// Pass as `after` for the next page; nil when this was the last.
    public var nextCursor: UInt64?
    public var total: Int
}

public struct TenantStats: Sendable, Hashable, Codable {
    public var tenant: String
    public var contacts: Int
    public var accounts: Int
    public var segmentSizes: [String: Int]
    public var definitionsVersion: UInt64
}

/// Live ingest of one tenant since the process started.
public struct IngestCounters: Sendable, Hashable, Codable {
    /// Events applied.
    public var eventsAccepted: Int
    /// Events acknowledged as duplicates (their `messageId` was already applied).
    public var duplicatesSkipped: Int
}

/// The engine in process: tenants, their contacts as actors, definitions, ingest,
/// reads, timers and effects. Every call that changes state takes `now`.
public final class Engine: Sendable {
    /// A class, so passing one around (every command looks its tenant up) counts one reference,
    /// not one for each of its parts.
    final class Tenant: Sendable {
        let runtime: TenantRuntime
        let actor: TenantActor
        /// Orders the tenant's journaled commands: they apply in the order they were sequenced.
        let gate = CommandGate()
        /// The journal sequence of the tenant's last applied command.
        let applied = AppliedSequence()

        init(runtime: TenantRuntime, actor: TenantActor) {
            self.runtime = runtime
            self.actor = actor
        }
    }

    /// Parallel lanes one ingested batch is spread over (one per core here).
    static let lanesPerBatch = 2
    /// Contacts a live batch needs before it is worth more than one lane: below this, the
    /// lanes' child tasks and the thread they wake cost more than they save.
    static let contactsForLanes = 48
    /// Contacts a lane applies before it lets other waiting work run (about 0.3 ms of events).
    static let contactsBetweenYields = 32

    let tenants = Mutex<[String: Tenant]>([:])
    private let scheduler = Scheduler()
    private let bus = EffectBus()
    private let dedupeWindow: TimeSpan
    private let dedupeCapacity: Int
    /// Seeds each decision's generator (decision ids, optimizer draws): a counter from a
    /// seed that is fixed in tests and random live, mixed per decision.
    private let decisionCounter: Atomic<UInt64>
    /// Where every state-changing command goes before it is applied; nil keeps state in memory only.
    public let journal: (any Journal)?
    /// Write keys: SHA-256 (hex) → tenant.
    let writeKeyIndex = Mutex<[String: String]>([:])
    /// Keys being rotated out: SHA-256 (hex) → when they stop working (milliseconds).
    let keyExpiryIndex = Mutex<[String: Int64]>([:])
    /// Counts key revocations, so caches of key lookups know when to forget.
    let keyRevocations = Atomic<UInt64>(0)
    /// The journal position a restored snapshot started at (0 without one).
    let restoredStartSequence = AppliedSequence()
    /// Lets one snapshot run at a time (each marks the contacts it still has to read).
    let snapshotTurns = CommandGate()

    /// - Parameters:
    ///   - journal: the write-ahead journal; with one, every change is durable before it is
    ///     applied and acknowledged, and `recover()` rebuilds the state from it.
    ///   - dedupeWindow: how long a `messageId` is remembered (default 24 hours).
    ///   - dedupeCapacity: the most ids remembered per tenant (default 2,000,000; the oldest go first).
    ///   - decisionSeed: seeds decision ids and optimizer draws; fixed, it makes decisions reproducible.
    public init(
        journal: (any Journal)? = nil, dedupeWindow: TimeSpan = .hours(24), dedupeCapacity: Int = 2_000_000,
        decisionSeed: UInt64 = UInt64.random(in: 0...UInt64.max)
    ) {
        self.journal = journal
        self.decisionCounter = Atomic(decisionSeed)
        self.dedupeWindow = dedupeWindow
        self.dedupeCapacity = dedupeCapacity
    }

    // MARK: Tenants

    public func createTenant(id: String, name: String? = nil, now: Timestamp = Timestamp(milliseconds: 0)) async throws(EngineError) {
        guard !id.isEmpty, id.count <= 64, id.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) else {
            throw EngineError(.invalidArgument, "tenant id '\(id)' must be 1–64 letters, digits, '-' or '_'")
        }
        guard tenants.withLock({ $0[id] == nil }) else { throw EngineError(.tenantExists, "tenant '\(id)' already exists") }
        var sequence: UInt64 = 0
        if let journal {
            let command = JournalCommand.createTenant(name: name ?? id)
            let append = journal.enqueue([JournalRecord(time: now, tenant: id, kind: command.kind, payload: command.encoded())])
            do { try await append.durable() } catch { throw EngineError.unavailable(error) }
            sequence = append.records[0].sequence
        }
        try applyCreateTenant(id: id, name: name ?? id)
        try tenant(id).applied.set(sequence)
    }

    func applyCreateTenant(id: String, name: String?) throws(EngineError) {
        try tenants.withLock { (tenants: inout [String: Tenant]) throws(EngineError) in
            guard tenants[id] == nil else { throw EngineError(.tenantExists, "tenant '\(id)' already exists") }
            let runtime = TenantRuntime(
                id: id, name: name ?? id, scheduler: scheduler, effects: bus,
                deduplicator: MessageDeduplicator(window: dedupeWindow, capacity: dedupeCapacity))
            tenants[id] = Tenant(runtime: runtime, actor: TenantActor(runtime: runtime))
        }
    }

    /// A fresh seed for one decision.
    func nextDecisionSeed() -> UInt64 {
        var mixer = SeededRandom(seed: decisionCounter.wrappingAdd(0x9E37_79B9_7F4A_7C15, ordering: .relaxed).newValue)
        return mixer.next()
    }

    public var tenantIds: [String] { tenants.withLock { $0.keys.sorted() } }

    func tenantForSnapshot(_ id: String) throws(EngineError) -> Tenant { try tenant(id) }

    func tenant(_ id: String) throws(EngineError) -> Tenant {
        guard let tenant = tenants.withLock({ $0[id] }) else {
            throw EngineError(.unknownTenant, "no tenant '\(id)'")
        }
        return tenant
    }

    public func stats(tenant id: String) async throws(EngineError) -> TenantStats {
        let tenant = try tenant(id)
        let runtime = tenant.runtime
        // The tenant's count of definition changes (kept in snapshots), not the version of the
        // compiled models and segments, which only moves when those are recompiled.
        return TenantStats(
            tenant: id, contacts: runtime.directory.count, accounts: runtime.accounts.count,
            segmentSizes: runtime.members.counts(), definitionsVersion: await tenant.actor.definitionChanges)
    }

    /// What this process's live ingest did for a tenant (replay does not count): for operators
    /// and load tests reconciling what they sent.
    public func ingestCounters(tenant id: String) throws(EngineError) -> IngestCounters {
        let runtime = try tenant(id).runtime
        return IngestCounters(
            eventsAccepted: runtime.eventsAccepted.load(ordering: .relaxed),
            duplicatesSkipped: runtime.duplicatesSkipped.load(ordering: .relaxed))
    }

    /// Changes whenever a key is revoked: a cache of key lookups is stale once it moves.
    public var keyRevocationCount: UInt64 { keyRevocations.load(ordering: .acquiring) }

    // MARK: Definitions

    /// Defines or replaces a scoring model; trait rules and stages apply to every contact before this returns.
    @discardableResult
    public func defineScoringModel(
        tenant id: String, _ json: JSONValue, now: Timestamp, progress: (@Sendable (BackfillProgress) -> Void)? = nil
    ) async throws(EngineError) -> DefinitionReceipt {
        let tenant = try tenant(id)
        _ = try await tenant.actor.validateModel(json)
        try await checkDefinitionQuota(tenant: id, .scoringModel, json: json)
        return try await journaled(tenant, .defineScoringModel(json), now: now) { () async throws(EngineError) in
            try await tenant.actor.defineModel(json, now: now, progress: progress)
        }
    }

    /// Defines or replaces a segment and evaluates it over every existing contact before returning.
    @discardableResult
    public func defineSegment(
        tenant id: String, _ json: JSONValue, now: Timestamp, progress: (@Sendable (BackfillProgress) -> Void)? = nil
    ) async throws(EngineError) -> DefinitionReceipt {
        let tenant = try tenant(id)
        _ = try await tenant.actor.validateSegment(json)
        try await checkDefinitionQuota(tenant: id, .segment, json: json)
        return try await journaled(tenant, .defineSegment(json), now: now) { () async throws(EngineError) in
            try await tenant.actor.defineSegment(json, now: now, progress: progress)
        }
    }

    /// Checks a scoring model without applying it (a dry run).
    public func validateScoringModel(tenant id: String, _ json: JSONValue) async throws(EngineError) {
        _ = try await tenant(id).actor.validateModel(json)
    }

    /// Checks a segment without applying it (a dry run).
    public func validateSegment(tenant id: String, _ json: JSONValue) async throws(EngineError) {
        _ = try await tenant(id).actor.validateSegment(json)
    }

    @discardableResult
    public func deleteDefinition(tenant id: String, _ kind: DefinitionKind, id definitionId: String, now: Timestamp)
        async throws(EngineError) -> DefinitionReceipt
    {
        let tenant = try tenant(id)
        return try await journaled(tenant, .deleteDefinition(kind, id: definitionId), now: now) { () async throws(EngineError) in
            try await tenant.actor.delete(kind, id: definitionId, now: now)
        }
    }

    /// The current version of each definition of a kind.
    public func definitions(tenant id: String, _ kind: DefinitionKind) async throws(EngineError) -> [DefinitionVersion] {
        try await tenant(id).actor.list(kind)
    }

    public func definitionHistory(tenant id: String, _ kind: DefinitionKind, id definitionId: String)
        async throws(EngineError) -> [DefinitionVersion]
    {
        try await tenant(id).actor.history(kind, id: definitionId)
    }

    /// Definitions being evaluated over existing contacts right now.
    public func backfills(tenant id: String) async throws(EngineError) -> [BackfillProgress] {
        try await tenant(id).actor.backfillProgress
    }

    // MARK: Ingest

    /// Applies a batch of events. Events for one contact apply in order; contacts run in parallel.
    /// With a journal, the new events are durable before they are applied and this returns.
    public func ingest(tenant id: String, events: [Event], now: Timestamp) async throws(EngineError) -> IngestReport {
        if let maximum = try tenant(id).runtime.limits.maxContacts {
            return try await ingest(tenant: id, events: events, now: now, contactLimit: maximum)
        }
        return try await ingestAdmitted(tenant: id, events: events, now: now)
    }

    func ingestAdmitted(tenant id: String, events: [Event], now: Timestamp) async throws(EngineError) -> IngestReport {
        let tenant = try tenant(id)
        let runtime = tenant.runtime
        let fresh = runtime.deduplicator.claim(events.messageIds(), now: now)
        let results = fresh.map { $0 ? IngestResult.applied : IngestResult.duplicate }
        let accepted = fresh.allSatisfy { $0 } ? events : zip(events, fresh).filter(\.1).map(\.0)
        guard !accepted.isEmpty else {
            runtime.duplicatesSkipped.add(events.count, ordering: .relaxed)
            return IngestReport(results: results, effects: [])
        }
        do {
            let effects = try await journaled(tenant, .ingest(accepted), now: now) { () async throws(EngineError) in
                await applyIngest(runtime, accepted, now: now)
            }
            runtime.eventsAccepted.add(accepted.count, ordering: .relaxed)
            runtime.duplicatesSkipped.add(events.count - accepted.count, ordering: .relaxed)
            return IngestReport(results: results, effects: effects)
        } catch {
            // Not durable, so not applied: forget the ids so a retry is not taken for a duplicate.
            runtime.deduplicator.release(accepted.compactMap(\.messageId))
            throw error
        }
    }

    /// Writes the command to the journal (when there is one), waits for its turn among the
    /// tenant's commands, applies it, and ends the turn.
    func journaled<Result: Sendable>(
        _ tenant: Tenant, _ command: JournalCommand, now: Timestamp,
        apply: () async throws(EngineError) -> Result
    ) async throws(EngineError) -> Result {
        guard let journal else { return try await apply() }
        let record = JournalRecord(time: now, tenant: tenant.runtime.id, kind: command.kind, payload: command.encoded())
        let (ticket, append) = tenant.gate.submit { journal.enqueue([record]) }
        var failure: (any Error)?
        do { try await append.durable() } catch { failure = error }
        await tenant.gate.waitForTurn(ticket)
        defer { tenant.gate.finishTurn() }
        if let failure { throw EngineError.unavailable(failure) }
        let result = try await apply()
        tenant.applied.set(append.records[0].sequence)
        return result
    }

    /// Applies events that are already accepted (deduplicated and, with a journal, durable).
    private func applyIngest(_ runtime: TenantRuntime, _ events: [Event], now: Timestamp) async -> [Effect] {
        let batch = ContactActor.Batch(
            events: events, counterSymbols: runtime.internCounters(of: events), definitions: runtime.definitions,
            catalog: runtime.catalog, journeys: runtime.journeys)
        let make = runtime.makeContact

        // One event (single calls, most replayed commands): no grouping, no lanes.
        if events.count == 1 && events[0].type != .group {
            let link = resolve(events, at: 0, in: runtime.directory, make: make)
            let effects = await link.target.apply([ContactActor.Item(index: 0, mergeSource: link.mergeSource)][...], of: batch, now: now)
            return recordIngested(runtime, events: 1, effects: effects, now: now)
        }
        var groups = ContactGroups(capacity: events.count)
        var accountChanges: [UInt64] = []
        var merging = false
        var lookahead = IdentityLookahead(events: events, directory: runtime.directory)
        for index in events.indices {
            let link = resolve(events, at: index, in: runtime.directory, make: make, hashed: lookahead.advance(to: index))
            if events[index].type == .group, let groupId = events[index].groupId {
                accountChanges += runtime.accounts.record(
                    groupId: groupId, traits: events[index].traits, contact: link.target.id)
            }
            if link.mergeSource != nil { merging = true }
            groups.add(ContactActor.Item(index: index, mergeSource: link.mergeSource), to: link.target)
        }

        // A merge in the batch hands one contact's state to another: the merged profile's own
        // events must meet the merge in the same order every time (replay must rebuild exactly
        // the same state), so such batches apply in one lane. Merges are rare.
        let lanes = merging || groups.count < Self.contactsForLanes ? 1 : Self.lanesPerBatch
        var effects = await applyGroups(groups.grouped(), of: batch, now: now, lanes: lanes)
        // Other contacts of an account whose traits changed.
        for contactId in Set(accountChanges).sorted() {
            if let contact = runtime.directory.lookup(id: contactId) {
                effects += await contact.accountTraitsChanged(now: now)
            }
        }
        return recordIngested(runtime, events: events.count, effects: effects, now: now)
    }

    /// Applies each contact's events of a batch, contacts in up to `lanes` lanes.
    private func applyGroups(
        _ groups: GroupedItems, of batch: ContactActor.Batch, now: Timestamp, lanes: Int
    ) async -> [Effect] {
        await inLanes(groups, of: batch, now: now, lanes: lanes) { contact, items, lane, effects in
            effects += await contact.apply(items, of: batch, now: now, reusing: lane)
        }
    }

    /// Runs `apply` for each contact's group, contacts in up to `lanes` lanes: a few lanes per
    /// batch, not a task per contact (a child task costs more than applying an event). Each
    /// lane has one evaluation context of `batch` for its calls, and one array the calls add
    /// their parts to. Returns the parts, one lane after another.
    /// `ownsContacts`: nothing else changes these contacts meanwhile (a recovery's replay), so
    /// the lanes may read further into the next contact's state for their cache hints.
    private func inLanes<Part: Sendable>(
        _ groups: GroupedItems, of batch: ContactActor.Batch, now: Timestamp, lanes: Int, ownsContacts: Bool = false,
        _ apply: @escaping @Sendable (ContactActor, ArraySlice<ContactActor.Item>, EvaluationContext, inout [Part]) async -> Void
    ) async -> [Part] {
        // Lanes yield every few contacts: hops between idle actors never give the thread up, and
        // a batch of a thousand events would otherwise hold a worker for milliseconds while
        // reads of higher priority wait.
        let lanes = min(groups.count, lanes)
        if lanes <= 1 {
            var parts: [Part] = []
            let context = batch.laneContext(now: now)
            for position in 0..<groups.count {
                if position % Self.contactsBetweenYields == Self.contactsBetweenYields - 1 { await Task.yield() }
                groups.prefetch(after: position, ownsContacts: ownsContacts)
                await apply(groups.contacts[position], groups.items(of: position), context, &parts)
            }
            return parts
        }
        let contactsOfLane = groups.balanced(lanes: lanes)
        return await withTaskGroup(of: [Part].self) { group in
            for lane in 0..<lanes {
                group.addTask {
                    var parts: [Part] = []
                    let context = batch.laneContext(now: now)
                    let order = contactsOfLane[lane]
                    for (position, index) in order.enumerated() {
                        if position % Self.contactsBetweenYields == Self.contactsBetweenYields - 1 { await Task.yield() }
                        groups.prefetch(after: position, in: order, ownsContacts: ownsContacts)
                        await apply(groups.contacts[index], groups.items(of: index), context, &parts)
                    }
                    return parts
                }
            }
            var all: [Part] = []
            for await part in group { all += part }
            return all
        }
    }

    /// What every applied batch leaves behind: its messages in the outbox, today's counts, subscribers told.
    private func recordIngested(_ runtime: TenantRuntime, events: Int, effects: [Effect], now: Timestamp) -> [Effect] {
        runtime.outbox.apply(effects)
        runtime.activity.record(events: events, effects: effects, at: now)
        bus.publish(tenant: runtime.id, effects)
        return effects
    }

    /// The contact `events[index]` goes to. The event is read field by field where it lies:
    /// passing it whole made a copy (a reference count per string and dictionary) per event.
    private func resolve(
        _ events: [Event], at index: Int, in directory: ContactDirectory, make: (UInt64) -> ContactActor,
        hashed: IdentityLookahead.Identities? = nil
    ) -> ContactDirectory.Link {
        let userId = events[index].userId
        if events[index].type == .alias, let userId, let previousId = events[index].previousId {
            let source: ContactDirectory.IdentityKey =
                directory.lookup(.user(previousId)) != nil ? .user(previousId) : .anonymous(previousId)
            return directory.link(userId: userId, source: source, sourceIsAlias: true, make: make)
        }
        let anonymousId = events[index].anonymousId
        if let userId {
            let user = hashed?.user ?? ContactDirectory.HashedKey(.user(userId))
            if let anonymousId {
                // Fast path: both ids already lead to the same contact.
                let anonymous = hashed?.anonymous ?? ContactDirectory.HashedKey(.anonymous(anonymousId))
                if let known = directory.lookup(user), directory.lookup(anonymous) === known {
                    return ContactDirectory.Link(target: known)
                }
                return directory.link(userId: userId, source: .anonymous(anonymousId), sourceIsAlias: false, make: make)
            }
            return ContactDirectory.Link(target: directory.resolve(user, make: make))
        }
        let anonymous = hashed?.anonymous ?? ContactDirectory.HashedKey(.anonymous(anonymousId ?? ""))
        return ContactDirectory.Link(target: directory.resolve(anonymous, make: make))
    }

    // MARK: Reads

    public enum ContactReference: Sendable, Hashable {
        case userId(String)
        case anonymousId(String)
        case id(UInt64)
        /// The contact whose `email` trait this is (case-insensitive).
        case email(String)
    }

    /// A contact as of `now`, or nil when unknown.
    public func contact(tenant id: String, _ reference: ContactReference, now: Timestamp) async throws(EngineError) -> ContactView? {
        let runtime = try tenant(id).runtime
        guard let actor = actor(runtime, reference) else { return nil }
        return view(of: await actor.snapshot(), runtime: runtime, now: now)
    }

    /// A contact read on the caller's thread, or why it was not.
    public enum Immediate<Answer> {
        case found(Answer)
        case unknown
        /// The contact's actor is applying a change at this moment: ask again with `contact`.
        case busy
    }

    /// A contact as of `now` without waiting for its actor, for callers that must not wait
    /// (the gateway's loop): the same answer as `contact` unless the actor is changing it.
    public func contactIfIdle(tenant id: String, _ reference: ContactReference, now: Timestamp) throws(EngineError)
        -> Immediate<ContactView>
    {
        try ifIdle(tenant: id, reference) { state, runtime in view(of: state, runtime: runtime, now: now) }
    }

    /// `contactIfIdle`'s answer as the admin API's JSON (the bytes of `ContactView.jsonBytes()`),
    /// written straight from the state instead of through a view: the gateway's hottest read.
    public func contactJSONIfIdle(tenant id: String, _ reference: ContactReference, now: Timestamp) throws(EngineError)
        -> Immediate<[UInt8]>
    {
        try ifIdle(tenant: id, reference) { state, runtime in
            ContactView.jsonBytes(
                state: state, definitions: runtime.definitions, symbols: runtime.symbolNames(),
                account: accountTraits(of: state, runtime), now: now, journeys: runtime.journeys)
        }
    }

    private func ifIdle<Answer>(
        tenant id: String, _ reference: ContactReference, _ answer: (ContactState, TenantRuntime) -> Answer
    ) throws(EngineError) -> Immediate<Answer> {
        let runtime = try tenant(id).runtime
        guard let actor = actor(runtime, reference) else { return .unknown }
        guard let state = actor.stateIfIdle() else { return .busy }
        return .found(answer(state, runtime))
    }

    private func view(of state: ContactState, runtime: TenantRuntime, now: Timestamp) -> ContactView {
        ContactView(
            state: state, definitions: runtime.definitions, symbols: runtime.symbolNames(), account: accountTraits(of: state, runtime),
            now: now, journeys: runtime.journeys)
    }

    /// The traits of the contact's account, shown with the contact.
    private func accountTraits(of state: ContactState, _ runtime: TenantRuntime) -> [String: JSONValue]? {
        state.accountId.flatMap { runtime.accounts.traits(of: $0) }
    }

    public func segmentCount(tenant id: String, segment: String) throws(EngineError) -> Int {
        let runtime = try tenant(id).runtime
        guard runtime.definitions.segment(segment) != nil else {
            throw EngineError(.unknownDefinition, "no segment '\(segment)'")
        }
        return runtime.members.count(segment)
    }

    /// Members in ascending contact id order, `limit` at a time (1…1000).
    public func segmentMembers(tenant id: String, segment: String, after cursor: UInt64? = nil, limit: Int = 100)
        async throws(EngineError) -> SegmentPage
    {
        let runtime = try tenant(id).runtime
        guard runtime.definitions.segment(segment) != nil else {
            throw EngineError(.unknownDefinition, "no segment '\(segment)'")
        }
        guard (1...1000).contains(limit) else { throw EngineError(.invalidArgument, "limit must be 1–1000, got \(limit)") }
        let (ids, total) = runtime.members.page(segment, after: cursor, limit: limit)
        var members: [SegmentPage.Member] = []
        for contactId in ids {
            guard let actor = runtime.directory.lookup(id: contactId) else { continue }
            let state = await actor.snapshot()
            members.append(SegmentPage.Member(id: contactId, userId: state.userId, anonymousIds: state.anonymousIds))
        }
        return SegmentPage(members: members, nextCursor: ids.count == limit ? ids.last : nil, total: total)
    }

    // MARK: Effects and time

    /// Every effect from now on, of every tenant.
    public func effects() -> AsyncStream<TenantEffect> { bus.subscribe() }

    /// Fires every timer due at or before `time`, each at its own due time, in order.
    /// With a journal, each round of firings is journaled per tenant before it is applied,
    /// so recovery fires exactly the same timers. Returns the effects they caused.
    @discardableResult
    public func advanceTime(to time: Timestamp) async -> [TenantEffect] {
        var fired: [TenantEffect] = []
        await advance(to: time) { tenant, _, effects in fired += effects.map { TenantEffect(tenant: tenant, effect: $0) } }
        return fired
    }

    /// Fires every timer due at or before `time` like `advanceTime`, without collecting the
    /// effects (subscribers still get them); returns how many contacts' timers fired.
    @discardableResult
    public func fireTimers(through time: Timestamp) async -> Int {
        var count = 0
        await advance(to: time) { _, contacts, _ in count += contacts }
        return count
    }

    private func advance(to time: Timestamp, collect: (String, Int, [Effect]) -> Void) async {
        while true {
            // A merged profile's timers are its new owner's now; skipping them keeps replay exact.
            // A deleted tenant's contacts fire nothing.
            let entries = scheduler.popEarliest(notAfter: time.milliseconds).filter {
                !$0.contact.isMerged && !$0.contact.tenant.deleted.load(ordering: .relaxed)
            }
            if entries.isEmpty {
                if scheduler.nextDue.map({ $0 <= time.milliseconds }) ?? false { continue }
                break
            }
            var byTenant: [String: [Scheduler.Entry]] = [:]
            for entry in entries { byTenant[entry.contact.tenant.id, default: []].append(entry) }
            for tenantId in byTenant.keys.sorted() {
                guard let tenant = tenants.withLock({ $0[tenantId] }), let due = byTenant[tenantId]?.first?.due else { continue }
                let group = byTenant[tenantId]!
                let firings = group.map { JournalCommand.TimerFiring(contact: $0.contact.id, due: $0.due) }
                let effects: [Effect]
                do {
                    effects = try await journaled(tenant, .timers(firings), now: Timestamp(milliseconds: due)) {
                        () async throws(EngineError) in
                        await fire(group.map(\.contact), due: due)
                    }
                } catch {
                    // The journal refused the firing: put the timers back and try again later.
                    for entry in group { scheduler.schedule(entry.contact, at: entry.due) }
                    return
                }
                bus.publish(tenant: tenantId, effects)
                collect(tenantId, group.count, effects)
            }
        }
    }

    /// Fires the timers of one tenant's contacts that are due at `due`, a few lanes at a time.
    private func fire(_ contacts: [ContactActor], due: Int64) async -> [Effect] {
        let lanes = min(contacts.count, 8)
        let effects = await withTaskGroup(of: [Effect].self) { group in
            for lane in 0..<lanes {
                group.addTask {
                    var effects: [Effect] = []
                    for index in stride(from: lane, to: contacts.count, by: lanes) {
                        effects += await contacts[index].fire(due: due)
                    }
                    return effects
                }
            }
            var all: [Effect] = []
            for await part in group { all += part }
            return all
        }
        contacts.first?.tenant.outbox.apply(effects)
        contacts.first?.tenant.activity.record(events: 0, effects: effects, at: Timestamp(milliseconds: due))
        return effects
    }

    /// Fires timers against `clock` until the task is cancelled (the live server's loop).
    public func runTimers(clock: any EngineClock, pollInterval: TimeSpan = .milliseconds(20)) async {
        while !Task.isCancelled {
            let now = clock.now()
            if let due = scheduler.nextDue, due <= now.milliseconds {
                await fireTimers(through: now)
                continue
            }
            try? await Task.sleep(for: .milliseconds(pollInterval.milliseconds))
        }
    }

    // MARK: Recovery

    /// What `recover()` did.
    public struct RecoveryReport: Sendable, Hashable {
        public var commandsReplayed: Int
        public var eventsReplayed: Int
        public var lastSequence: UInt64
        public var seconds: Double
    }

    /// Rebuilds the state from the journal: every command in sequence order, with its
    /// journaled time, so the result is exactly the state that was acknowledged. Call it
    /// once, on a new engine, before anything else.
    public func recover(upTo limit: UInt64 = .max, progress: (@Sendable (UInt64) -> Void)? = nil) async throws -> RecoveryReport {
        guard let journal else { return RecoveryReport(commandsReplayed: 0, eventsReplayed: 0, lastSequence: 0, seconds: 0) }
        let started = ContinuousClock.now
        var records = JournalSlice()
        var report = RecoveryReport(commandsReplayed: 0, eventsReplayed: 0, lastSequence: 0, seconds: 0)
        // Read in slices so a long journal is never all in memory at once; start after what
        // every restored tenant already holds.
        let held = tenants.withLock { $0.values.map { $0.applied.value } }
        var from: UInt64 = min(held.min() ?? 0, restoredStartSequence.value) + 1
        let slice = 10_000
        var reported: UInt64 = 0
        // The last replayed run still being applied (see `replay(_:after:recyclingInto:)`), and
        // the ones before it, oldest first.
        var applying: Task<Void, Never>?
        var applyingBefore: [Task<Void, Never>] = []
        let spareEvents = SpareEventArrays()
        // Takes the run being built (nil afterwards) for replay. Its stale events go first, while
        // `run` is their array's only holder: once the run is passed on, that would copy the array.
        // Reading and resolving run ahead of applying by a few runs at most: unbounded, they
        // finished long before the applying did and held hundreds of runs' events in memory.
        func enqueue(_ run: inout ReplayRun?) async {
            run?.dropStaleEvents()
            defer { run = nil }
            guard let pending = run, !pending.isEmpty else { return }
            if let applying { applyingBefore.append(applying) }
            if applyingBefore.count >= Self.replayRunsAhead { await applyingBefore.removeFirst().value }
            applying = await replay(pending, after: applying, recyclingInto: spareEvents)
        }
        // Ingest commands wait here to be replayed together; anything else replays them first.
        // A run goes on across slices: ended at each slice's end, runs alternated between full
        // and short ones, and each short one dropped most of its array's events for the next
        // full one to make again.
        var run: ReplayRun?
        reading: while true {
            try journal.read(from: from, limit: slice, into: &records)
            // The tenant of the previous ingest command: runs of them are the bulk of a journal,
            // and looking the tenant up again cost a lock and a hash per command.
            var cached: (id: String, tenant: Tenant)?
            for record in records.entries {
                if record.sequence > limit {
                    await enqueue(&run)
                    break reading
                }
                report.lastSequence = record.sequence
                let tenant: Tenant?
                if let cached, cached.id == record.tenant { tenant = cached.tenant } else { tenant = tenants.withLock { $0[record.tenant] } }
                // Commands a snapshot already holds are skipped.
                if let tenant, tenant.applied.value >= record.sequence { continue }
                if record.kind == JournalCommand.ingestKind, let tenant {
                    if let pending = run, !pending.admits(tenant, at: record.time) { await enqueue(&run) }
                    if run == nil { run = ReplayRun(tenant: tenant, time: record.time, events: spareEvents.take()) }
                    // Decoded straight into the run; nil for a `group` call, which changes an
                    // account other contacts share and so replays alone (below).
                    if let count = try run!.appendDecoding(records.bytes, record.payload, time: record.time, sequence: record.sequence) {
                        report.eventsReplayed += count
                        report.commandsReplayed += 1
                        if cached?.id != record.tenant { cached = (record.tenant, tenant) }
                        continue
                    }
                }
                // Other commands, and group calls, replay alone after the run before them.
                let command = try JournalCommand.decode(kind: record.kind, payload: Array(records.bytes[record.payload]))
                await enqueue(&run)
                await applying?.value
                applying = nil
                applyingBefore = []
                // Anything else may create or delete tenants: look them up afresh.
                cached = nil
                report.eventsReplayed += await replay(command, tenant: record.tenant, time: record.time)
                tenants.withLock { $0[record.tenant] }?.applied.set(record.sequence)
                report.commandsReplayed += 1
            }
            // Reported once what was handed over is applied (the run still gathering is not),
            // without waiting for that here.
            let handedOver = run?.firstSequence.map { $0 - 1 } ?? report.lastSequence
            if let progress, handedOver != reported {
                let before = applying
                applying = Task {
                    await before?.value
                    progress(handedOver)
                }
            }
            reported = handedOver
            guard records.count == slice, let last = records.entries.last else { break }
            from = last.sequence + 1
        }
        await enqueue(&run)
        await applying?.value
        // A replay stopped at `limit` inside a slice reports where it stopped too.
        if report.lastSequence != reported { progress?(report.lastSequence) }
        let elapsed = ContinuousClock.now - started
        report.seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return report
    }

    /// Ingested events as they were accepted: their ids claimed again (so resends after the
    /// restart are recognised), then applied at their journaled time.
    private func replayIngest(_ tenant: Tenant, _ events: [Event], time: Timestamp) async {
        tenant.runtime.deduplicator.reclaim(messageIdsOf: events, in: events.indices, now: time)
        _ = await applyIngest(tenant.runtime, events, now: time)
    }

    /// How many replayed runs may wait to be applied, or be applying, while the next is read
    /// and resolved. With two, the reader often waited for a run's last lane to finish while
    /// the other core sat idle; with four a million contacts' replay kept 1.87 cores busy
    /// instead of 1.81, for a few more runs' events in memory (1.5 MB each).
    static let replayRunsAhead = 4

    /// Consecutive journaled ingest commands of one tenant, replayed together by `replay(_:)`.
    struct ReplayRun {
        static let maximumEvents = 8_192
        /// How far (in activity buckets, 15 minutes) a command's time may lie from the run's
        /// first: writers running side by side journal commands whose times straddle a bucket's
        /// end for a while, and cutting a run at every crossing cut a journal of 5,000,000 such
        /// commands into 22,901 runs of 218 events on average. Far less than the buckets a tenant
        /// keeps (8 days), so recording today's counts bucket by bucket, in the order the run's
        /// buckets first came, ends as command after command would.
        static let bucketReach: Int64 = 2

        /// The run's events in one activity bucket.
        struct ActivityPart {
            let bucket: Int64
            let time: Timestamp
            var events = 0
        }

        let tenant: Tenant
        let bucket: Int64
        /// The activity buckets the run's commands fall in, in the order they first came.
        private(set) var activity: [ActivityPart] = []
        /// The part of `activity` each command counts in.
        private var partOfCommand: [Int8] = []
        /// The run's events, then (from `eventCount` on) events of an earlier run that the next
        /// commands are decoded over (see `SpareEventArrays`).
        private var slots: [Event] = []
        private(set) var eventCount = 0
        var times: [Timestamp] = []
        /// Each command's events in the run.
        var commands: [Range<Int>] = []
        /// The command (its place in `commands`) of each event.
        private var commandOfEvent: [Int32] = []
        /// Where the last decoded command's message ids lie in its slice's bytes.
        private var messageIds: [Range<Int>] = []
        var lastSequence: UInt64 = 0
        /// The sequence of the run's first command, once it has one.
        private(set) var firstSequence: UInt64?

        /// `events`: an array of an earlier run whose events and room the run reuses.
        init(tenant: Tenant, time: Timestamp, events: [Event] = []) {
            self.tenant = tenant
            self.bucket = Self.bucket(time)
            self.slots = events
        }

        var isEmpty: Bool { eventCount == 0 }

        /// Drops the events of an earlier run left past this run's own.
        mutating func dropStaleEvents() {
            if slots.count > eventCount { slots.removeSubrange(eventCount...) }
        }

        /// The events, the run keeping none: for a batch to own them alone.
        mutating func takeEvents() -> [Event] {
            dropStaleEvents()
            var taken: [Event] = []
            swap(&taken, &slots)
            return taken
        }

        static func bucket(_ time: Timestamp) -> Int64 { time.milliseconds / DailyActivity.bucketMilliseconds }

        func command(of event: Int) -> Int { Int(commandOfEvent[event]) }

        /// Whether a command of `tenant` at `time` can join the run.
        func admits(_ tenant: Tenant, at time: Timestamp) -> Bool {
            tenant.runtime === self.tenant.runtime && abs(Self.bucket(time) - bucket) <= Self.bucketReach
                && eventCount < Self.maximumEvents
        }

        /// The part of `activity` command `command` counts in.
        func activityPart(ofCommand command: Int) -> Int { Int(partOfCommand[command]) }

        /// Decodes a journaled ingest command's events onto the end of the run; its ids are
        /// claimed again at its own time, in journal order. Returns how many events it added, or
        /// nil, leaving the run as it was, when one of them is a `group` call.
        mutating func appendDecoding(_ bytes: [UInt8], _ payload: Range<Int>, time: Timestamp, sequence: UInt64) throws(CodecError) -> Int? {
            let start = eventCount
            // An error ends the recovery, so what it leaves in the run does not matter. The ids
            // stay bytes: they are only claimed again, here.
            messageIds.removeAll(keepingCapacity: true)
            let end = try [Event].decode(bytes, range: payload, into: &slots, at: start, messageIds: &messageIds)
            // Read in place: a closure or key path over the events copied each one. A group call
            // leaves its events where the next command's are decoded over them (and is decoded
            // again, whole, to replay alone).
            for index in start..<end where slots[index].type == .group { return nil }
            tenant.runtime.deduplicator.reclaim(messageIdsIn: bytes, at: messageIds[...], now: time)
            eventCount = end
            if firstSequence == nil { firstSequence = sequence }
            let added = end - start
            let commandBucket = Self.bucket(time)
            var part = 0
            while part < activity.count && activity[part].bucket != commandBucket { part += 1 }
            if part == activity.count { activity.append(ActivityPart(bucket: commandBucket, time: time)) }
            activity[part].events += added
            partOfCommand.append(Int8(part))
            commandOfEvent += repeatElement(Int32(commands.count), count: added)
            commands.append(start..<end)
            times += repeatElement(time, count: added)
            lastSequence = sequence
            return added
        }
    }

    /// Replays a run of ingest commands as one batch, contacts in lanes like a live batch, each
    /// event at its own command time: a contact's events keep their order and contacts do not
    /// see each other, so the state is what one command after another builds, at a fraction of
    /// the cost per command. A command that merges profiles (the one place where contacts
    /// meet) waits until every earlier command is applied and then applies as it did live.
    /// Messages go to the outbox command by command, as they did live.
    ///
    /// Only resolving the run's contacts happens here; the rest is applied by the returned task,
    /// after `previous` (the run before), so the next run is read and resolved meanwhile.
    ///
    /// Once applied, the run's event array goes to `spares` for a later run: a run of 8,192
    /// events is 1.5 MB, and a new array for each run (grown by doubling) was fresh memory to
    /// fault in every time, the largest part of replay's page faults.
    private func replay(
        _ pending: ReplayRun, after previous: Task<Void, Never>?, recyclingInto spares: SpareEventArrays
    ) async -> Task<Void, Never>? {
        guard !pending.isEmpty else { return previous }
        var taking = pending
        let runtime = taking.tenant.runtime
        // The batch holds the only reference to the events, so their storage can be reused.
        let events = taking.takeEvents()
        let counterSymbols = runtime.internCounters(of: events)
        let batch = ContactActor.Batch(
            events: events, counterSymbols: counterSymbols, definitions: runtime.definitions,
            catalog: runtime.catalog, journeys: runtime.journeys, times: taking.times, spares: spares)
        let run = taking
        var previous = previous
        var pending = ContactGroups(capacity: batch.events.count)
        var effects = ReplayedEffects(gathersAll: bus.hasSubscribers)
        var links: [(ContactActor, ContactActor.Item)] = []
        var lookahead = IdentityLookahead(events: batch.events, directory: runtime.directory)
        for range in run.commands {
            links.removeAll(keepingCapacity: true)
            var merging = false
            for index in range {
                let link = resolve(
                    batch.events, at: index, in: runtime.directory, make: runtime.makeContact, hashed: lookahead.advance(to: index))
                if link.mergeSource != nil { merging = true }
                let item = ContactActor.Item(index: index, mergeSource: link.mergeSource)
                // Most commands are one event that merges nothing: it joins the run at once,
                // without a stop in `links` (a reference count and a copy each way).
                if range.count == 1 && !merging {
                    pending.add(item, to: link.target)
                } else {
                    links.append((link.target, item))
                }
            }
            guard merging else {
                for (contact, item) in links { pending.add(item, to: contact) }
                continue
            }
            await previous?.value
            previous = nil
            await effects.add(applyReplayed(pending.grouped(), of: batch, run: run, lanes: Self.lanesPerBatch))
            pending = ContactGroups(capacity: batch.events.count)
            var merged = ContactGroups()
            for (contact, item) in links { merged.add(item, to: contact) }
            await effects.add(applyReplayed(merged.grouped(), of: batch, run: run, lanes: 1))
        }
        let remaining = pending.grouped()
        return Task { [effects, previous] in
            await previous?.value
            var effects = effects
            await effects.add(applyReplayed(remaining, of: batch, run: run, lanes: Self.lanesPerBatch))
            for command in effects.messagesByCommand.keys.sorted() { runtime.outbox.apply(effects.messagesByCommand[command]!) }
            // Today's counts, bucket by bucket (each command's events and stage changes in its own).
            var stageChanges = [[Effect]](repeating: [], count: run.activity.count)
            for command in effects.stageChangesByCommand.keys.sorted() {
                stageChanges[run.activityPart(ofCommand: command)] += effects.stageChangesByCommand[command]!
            }
            for (part, activity) in run.activity.enumerated() {
                runtime.activity.record(events: activity.events, effects: stageChanges[part], at: activity.time)
            }
            bus.publish(tenant: runtime.id, effects.all)
            run.tenant.applied.set(run.lastSequence)
        }
    }

    /// The effects of a replayed run, and its messages by the command that caused them.
    private struct ReplayedEffects {
        /// Every effect, for subscribers; gathered only when there were some as the run began
        /// (a recovery usually has none, and copying every effect was a few percent of replay).
        let gathersAll: Bool
        var all: [Effect] = []
        var messagesByCommand: [Int: [Effect]] = [:]
        /// Lifecycle stage changes, which today's counts record in their command's bucket.
        var stageChangesByCommand: [Int: [Effect]] = [:]

        mutating func add(_ chunks: [(command: Int, effects: [Effect])]) {
            for chunk in chunks {
                if gathersAll { all += chunk.effects }
                for effect in chunk.effects {
                    switch effect.kind {
                    case .message: messagesByCommand[chunk.command, default: []].append(effect)
                    case .lifecycleChanged: stageChangesByCommand[chunk.command, default: []].append(effect)
                    default: break
                    }
                }
            }
        }
    }

    /// `applyGroups` for a replayed run: a contact's events of the run apply in one call, which
    /// tells where each event's effects end, so every effect is known by its command. (A call
    /// per command cost an actor call per event for the contacts most events go to.)
    private func applyReplayed(
        _ groups: GroupedItems, of batch: ContactActor.Batch, run: ReplayRun, lanes: Int
    ) async -> [(command: Int, effects: [Effect])] {
        @Sendable func apply(
            _ contact: ContactActor, _ items: ArraySlice<ContactActor.Item>, lane: EvaluationContext,
            into chunks: inout [(command: Int, effects: [Effect])]
        ) async {
            let first = items.startIndex
            // Most contacts have one event in a run: their effects are all that event's, and
            // telling where each event's effects end would cost an array per contact.
            // The lane hinted this contact's storage before the call (`ownsContacts` below).
            let (effects, ends) = await contact.apply(
                items, of: batch, now: batch.times[items[first].index], reusing: lane, endingEach: items.count > 1,
                storageHinted: true)
            guard !effects.isEmpty else { return }
            guard items.count > 1 else {
                chunks.append((run.command(of: items[first].index), effects))
                return
            }
            var start = first
            var effectStart = 0
            while start < items.endIndex {
                let command = run.command(of: items[start].index)
                var end = start + 1
                while end < items.endIndex && run.command(of: items[end].index) == command { end += 1 }
                let effectEnd = Int(ends[end - 1 - first])
                if effectEnd > effectStart {
                    let part = effectStart == 0 && effectEnd == effects.count ? effects : Array(effects[effectStart..<effectEnd])
                    chunks.append((command, part))
                }
                effectStart = effectEnd
                start = end
            }
        }
        return await inLanes(groups, of: batch, now: run.times[0], lanes: lanes, ownsContacts: true, apply)
    }

    /// Applies one journaled command. A command that failed when it was first applied fails
    /// the same way now (same state, same input), so its error is ignored.
    private func replay(_ command: JournalCommand, tenant id: String, time: Timestamp) async -> Int {
        if case .createTenant(let name) = command {
            try? applyCreateTenant(id: id, name: name)
            return 0
        }
        guard let tenant = tenants.withLock({ $0[id] }) else { return 0 }
        switch command {
        case .createTenant: return 0
        case .defineScoringModel(let json): _ = try? await tenant.actor.defineModel(json, now: time, progress: nil)
        case .defineSegment(let json): _ = try? await tenant.actor.defineSegment(json, now: time, progress: nil)
        case .deleteDefinition(.writeKey, let label): try? await applyRevokeKey(tenant, label: label, now: time)
        case .deleteDefinition(let kind, let definitionId): _ = try? await tenant.actor.delete(kind, id: definitionId, now: time)
        case .ingest(let events):
            await replayIngest(tenant, events, time: time)
            return events.count
        case .timers(let firings):
            guard let due = firings.first?.due else { return 0 }
            let contacts = firings.compactMap { tenant.runtime.directory.lookup(id: $0.contact) }
            _ = await fire(contacts, due: due)
        case .definePlacement(let json): _ = try? await tenant.actor.definePlacement(json, now: time)
        case .defineExperiment(let json): _ = try? await tenant.actor.defineExperiment(json, now: time)
        case .decisions(let visitor): await applyDecisions(tenant.runtime, visitor, now: time)
        case .defineJourney(let json, let migrate): _ = try? await tenant.actor.defineJourney(json, migrate: migrate, now: time)
        case .setJourneyStatus(let journey, let status): _ = try? await tenant.actor.setJourneyStatus(journey, status, now: time)
        case .enroll(let enrollment): _ = await applyEnrollment(tenant.runtime, enrollment, now: time)
        case .addWriteKey(let label, let hash): await applyWriteKey(tenant, label: label, hash: hash, now: time)
        case .defineTemplate(let json): _ = try? await tenant.actor.defineTemplate(json, now: time)
        case .setLimits(let json): _ = try? await tenant.actor.setLimits(json, now: time)
        case .deleteTenant: applyDeleteTenant(tenant)
        case .expireKey(let label, let expiry): try? await applyExpireKey(tenant, label: label, at: expiry, now: time)
        }
        return 0
    }

    /// Timers waiting to fire (stale entries included).
    public var pendingTimers: Int { scheduler.pendingCount }
}

/// Event arrays of applied replay runs, kept with their events for later runs to decode over (see
/// `Engine.replay(_:after:recyclingInto:)`).
final class SpareEventArrays: Sendable {
    /// Runs being decoded, resolved and applied at once: a few arrays are enough.
    private static let kept = Engine.replayRunsAhead + 2
    private let arrays = Mutex<[[Event]]>([])

    /// An array of an earlier run, its events still in it for the next run to decode over
    /// (`ReplayRun`), or a new one.
    func take() -> [Event] {
        arrays.withLock { $0.popLast() } ?? []
    }

    /// Keeps a done batch's events, from its `deinit`, for `take`.
    func keep(_ events: [Event]) {
        arrays.withLock { if $0.count < Self.kept { $0.append(events) } }
    }
}

/// A batch's events gathered by contact, contacts in the order of their first event.
struct ContactGroups {
    private(set) var contacts: [ContactActor] = []
    /// Each item added and the place of its contact in `contacts`, in the order added.
    private var added: [ContactActor.Item] = []
    private var groupOfAdded: [Int32] = []
    /// Each contact's place in `contacts`, found by the actor's address (see `PositionTable`).
    private var positions: PositionTable

    /// `capacity`: about how many items will be added (a replayed run's events), so nothing grows on the way.
    init(capacity: Int = 0) {
        positions = PositionTable(capacity: capacity)
        contacts.reserveCapacity(capacity)
        added.reserveCapacity(capacity)
        groupOfAdded.reserveCapacity(capacity)
    }

    var count: Int { contacts.count }

    mutating func add(_ item: ContactActor.Item, to contact: ContactActor) {
        let position = positions.position(of: contact, otherwise: contacts.count)
        if position == contacts.count { contacts.append(contact) }
        groupOfAdded.append(Int32(position))
        added.append(item)
    }

    /// The items with each contact's side by side, in the order they were added: one array for
    /// the batch instead of one per contact (an allocation per contact and event).
    func grouped() -> GroupedItems {
        // Every contact once (most live batches): the items are grouped already.
        guard added.count > contacts.count else {
            return GroupedItems(contacts: contacts, items: added, starts: Array(0...added.count))
        }
        var starts = [Int](repeating: 0, count: contacts.count + 1)
        for group in groupOfAdded { starts[Int(group) + 1] += 1 }
        for group in 0..<contacts.count { starts[group + 1] += starts[group] }
        var next = starts
        var items = added
        for (position, group) in groupOfAdded.enumerated() {
            items[next[Int(group)]] = added[position]
            next[Int(group)] += 1
        }
        return GroupedItems(contacts: contacts, items: items, starts: starts)
    }
}

/// Open addressing from an actor's address to a small number, for `ContactGroups`: a
/// dictionary keyed by `ObjectIdentifier` hashed every address with `Hasher` and grew by
/// rehashing as a replayed run of thousands of contacts filled it.
struct PositionTable {
    /// Address and position per slot; address 0 marks an empty slot.
    private var addresses: [UInt]
    private var positions: [Int32]
    private var used = 0
    private var shift: Int

    init(capacity: Int) {
        // At most half full, at least 16 slots.
        var slots = 16
        while slots < capacity * 2 { slots *= 2 }
        addresses = [UInt](repeating: 0, count: slots)
        positions = [Int32](repeating: 0, count: slots)
        shift = UInt.bitWidth - slots.trailingZeroBitCount
    }

    /// The slot an address starts probing at. Fibonacci hashing: objects are 16-byte aligned,
    /// so the low bits alone would crowd.
    private func home(_ address: UInt) -> Int { Int(truncatingIfNeeded: (address &* 0x9E37_79B9_7F4A_7C15) >> UInt(shift)) }

    /// The position recorded for `object`; records `new` for it first if there is none.
    mutating func position(of object: AnyObject, otherwise new: Int) -> Int {
        let address = UInt(bitPattern: ObjectIdentifier(object))
        let mask = addresses.count - 1
        var slot = home(address)
        while true {
            let found = addresses[slot]
            if found == address { return Int(positions[slot]) }
            if found == 0 { break }
            slot = (slot + 1) & mask
        }
        addresses[slot] = address
        positions[slot] = Int32(new)
        used += 1
        if used * 2 > addresses.count { grow() }
        return new
    }

    private mutating func grow() {
        let (oldAddresses, oldPositions) = (addresses, positions)
        addresses = [UInt](repeating: 0, count: oldAddresses.count * 2)
        positions = [Int32](repeating: 0, count: oldAddresses.count * 2)
        shift -= 1
        let mask = addresses.count - 1
        for (address, position) in zip(oldAddresses, oldPositions) where address != 0 {
            var slot = home(address)
            while addresses[slot] != 0 { slot = (slot + 1) & mask }
            addresses[slot] = address
            positions[slot] = position
        }
    }
}

/// `ContactGroups` once gathered: contact `g` of `contacts` has `items[starts[g]..<starts[g + 1]]`.
struct GroupedItems: Sendable {
    let contacts: [ContactActor]
    let items: [ContactActor.Item]
    let starts: [Int]

    var count: Int { contacts.count }

    func items(of group: Int) -> ArraySlice<ContactActor.Item> { items[starts[group]..<starts[group + 1]] }

    /// Cache hints for what a lane applies next: the actor of the contact after next, and the
    /// arrays of the next one (whose actor the previous call hinted). None is retained: a
    /// reference count is a write that waits for the memory the hints are meant to bring in.
    ///
    /// With `ownsContacts` (nothing else changes them meanwhile), each hint comes one contact
    /// earlier, and the next contact's arrays, hinted by the previous call, are read for the
    /// arrays inside them (`ContactState.prefetchStorage`): the contact's own call then skips
    /// that step (`storageHinted`).
    ///
    /// `position` is the place in `order` (the groups a lane applies, all of them in turn when nil)
    /// of the contact about to be applied.
    func prefetch(after position: Int, in order: [Int]? = nil, ownsContacts: Bool) {
        contacts.withUnsafeBufferPointer { actors in
            func actor(_ ahead: Int) -> Unmanaged<ContactActor>? {
                var group = position + ahead
                if let order {
                    guard group < order.count else { return nil }
                    group = order[group]
                }
                guard group < actors.count else { return nil }
                return Unmanaged.passUnretained(actors[group])
            }
            guard ownsContacts else {
                actor(2)?._withUnsafeGuaranteedRef { $0.prefetchObject() }
                actor(1)?._withUnsafeGuaranteedRef { $0.prefetchArrays() }
                return
            }
            actor(3)?._withUnsafeGuaranteedRef { $0.prefetchObject() }
            actor(2)?._withUnsafeGuaranteedRef { $0.prefetchArrays() }
            actor(1)?._withUnsafeGuaranteedRef { $0.prefetchStorageOwned() }
            // The contact applied now had its storage hinted one step ago, save the first.
            if position == 0 { actor(0)?._withUnsafeGuaranteedRef { $0.prefetchStorageOwned() } }
        }
    }

    /// The contacts (their places in `contacts`) each of `lanes` lanes applies, in order: each
    /// contact goes to the lane with the fewest items so far. With Zipf-like traffic a few
    /// contacts hold a large share of a batch's events, and dealing contacts out in turn left
    /// one lane with much more to do while the other waited.
    func balanced(lanes: Int) -> [[Int]] {
        var contactsOfLane = [[Int]](repeating: [], count: lanes)
        var load = [Int](repeating: 0, count: lanes)
        for lane in 0..<lanes { contactsOfLane[lane].reserveCapacity(count / lanes + 1) }
        for group in 0..<count {
            var lightest = 0
            for lane in 1..<lanes where load[lane] < load[lightest] { lightest = lane }
            contactsOfLane[lightest].append(group)
            load[lightest] += starts[group + 1] - starts[group]
        }
        return contactsOfLane
    }
}

/// Resolves a batch's events in order with the cache hinted ahead: the directory entries of the
/// identities of the event `distance` places on, and the actor of the one half as far (its
/// entry hinted by then). Each identity is hashed once, when first hinted. Resolving a
/// million contacts' events otherwise waited for memory at each lookup, and again at the actor.
struct IdentityLookahead {
    struct Identities {
        var user: ContactDirectory.HashedKey?
        var anonymous: ContactDirectory.HashedKey?
    }

    static let distance = 8
    private let events: [Event]
    private let directory: ContactDirectory
    /// The identities of events `index` to `index + distance`, at `index % ring.count`.
    private var ring = [Identities](repeating: Identities(), count: 16)
    /// Events up to here are hashed and hinted.
    private var hinted = -1

    init(events: [Event], directory: ContactDirectory) {
        self.events = events
        self.directory = directory
    }

    /// Hints what lies ahead of event `index` (events must come in order, none skipped) and
    /// returns its identities, hashed.
    mutating func advance(to index: Int) -> Identities {
        while hinted < min(index + Self.distance, events.count - 1) {
            hinted += 1
            var identities = Identities()
            if let userId = events[hinted].userId { identities.user = ContactDirectory.HashedKey(.user(userId)) }
            if let anonymousId = events[hinted].anonymousId {
                identities.anonymous = ContactDirectory.HashedKey(.anonymous(anonymousId))
            }
            if let user = identities.user { directory.prefetch(user) }
            if let anonymous = identities.anonymous { directory.prefetch(anonymous) }
            ring[hinted % ring.count] = identities
        }
        let nearer = index + Self.distance / 2
        if nearer <= hinted, let key = ring[nearer % ring.count].user ?? ring[nearer % ring.count].anonymous {
            directory.prefetchContact(key)
        }
        return ring[index % ring.count]
    }
}
