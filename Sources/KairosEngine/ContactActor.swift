import KairosCore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// One contact, live in memory. Owns its `ContactState` and applies commands to it one
/// at a time; contacts of one tenant run in parallel. The only lock is for readers that
/// must not wait for the actor (`stateIfIdle`): they copy the state between changes.
actor ContactActor {
    /// An ingested batch, shared by reference by every contact it touches, so events are
    /// not copied on their way to their actors.
    final class Batch: Sendable {
        /// Constant: the lanes read it with no exclusivity checks and no reference counting.
        let events: [Event]
        let counterSymbols: [UInt32]
        /// The definitions in force when the batch was accepted: read once per batch.
        let definitions: TenantDefinitions
        let catalog: DecisionCatalog
        let journeys: JourneyCatalog
        /// Each event's own command time, when the batch joins several journaled commands
        /// (replay); empty when every event takes the time of the call.
        let times: [Timestamp]
        /// Where the events' storage goes for reuse once the batch is done (replay).
        let spares: SpareEventArrays?

        init(
            events: [Event], counterSymbols: [UInt32], definitions: TenantDefinitions, catalog: DecisionCatalog,
            journeys: JourneyCatalog, times: [Timestamp] = [], spares: SpareEventArrays? = nil
        ) {
            self.events = events
            self.counterSymbols = counterSymbols
            self.definitions = definitions
            self.catalog = catalog
            self.journeys = journeys
            self.times = times
            self.spares = spares
        }

        deinit { spares?.keep(events) }

        /// A context for one lane of the batch to reuse, command after command (`apply(_:of:now:reusing:)`).
        func laneContext(now: Timestamp) -> EvaluationContext {
            EvaluationContext(now: now, definitions: definitions, catalog: catalog, journeys: journeys)
        }
    }

    /// One event of a batch on its way to this contact.
    struct Item: Sendable {
        var index: Int
        /// A profile to merge into this one before applying the event (identify/alias).
        var mergeSource: ContactActor?
    }

    private struct Identity {
        var keys = ContactDirectory.IdentityKeys()
        var merged = false
        /// The keys as a running snapshot must see them (see `preserveForSnapshot`); boxed, as
        /// it exists only while a snapshot runs and the keys change.
        var preserved: PreservedKeys?
        var capturedEpoch: UInt64 = 0

        /// Before the keys change: keeps them as they were for a running snapshot that has
        /// not read this contact yet.
        mutating func preserve(for epoch: UInt64) {
            guard epoch != 0, capturedEpoch != epoch, preserved?.epoch != epoch else { return }
            preserved = PreservedKeys(epoch: epoch, keys: keys)
        }
    }

    private final class PreservedKeys: Sendable {
        let epoch: UInt64
        let keys: ContactDirectory.IdentityKeys

        init(epoch: UInt64, keys: ContactDirectory.IdentityKeys) {
            self.epoch = epoch
            self.keys = keys
        }
    }

    nonisolated let id: UInt64
    nonisolated let tenant: TenantRuntime
    private nonisolated let identity = Mutex(Identity())

    /// Changed only by the actor, inside `changing`; read by the actor freely and by other
    /// threads only through `stateIfIdle`, under `stateLock`.
    private nonisolated(unsafe) var state: ContactState
    /// Held while the actor changes `state` and while another thread copies it.
    private nonisolated let stateLock = Atomic<Bool>(false)
    /// The traits' version `indexedAddress` was read from (most commands do not change traits).
    /// Beside the lock: two small fields share one 8-byte slot.
    private var indexedTraitsVersion: UInt32 = 0
    /// Set once this profile has been merged into another: later calls go there.
    private var forward: ContactActor?
    /// The due time of the scheduler entry this contact is waiting for (`.max`: none).
    private var scheduledWake: Int64 = .max
    /// The address the tenant's email index holds for this contact (from its `email` trait).
    private var indexedAddress: String?
    /// The latest command time applied, so a late timer never evaluates in the past.
    private var latestNow: Int64 = .min
    /// The state as a running snapshot must see it: kept when a command changes the contact
    /// after the snapshot began and before it read this contact (copy on write). Boxed: held
    /// inline, a second `ContactState` made every actor about 270 bytes larger for a copy that
    /// exists only while a snapshot runs.
    private var preserved: PreservedState?
    private var capturedEpoch: UInt64 = 0

    init(id: UInt64, tenant: TenantRuntime) {
        self.id = id
        self.tenant = tenant
        self.state = ContactState(id: id)
    }

    /// A contact from a snapshot, with its identity keys; the caller registers them with the
    /// directory and arms its timer (`nextWake`) with the scheduler.
    /// `indexedAddress`: `Engine.indexedEmail(state)`, which the restore puts in the email index.
    init(
        restoring state: consuming ContactState, keys: ContactDirectory.IdentityKeys, indexedAddress: String?, tenant: TenantRuntime
    ) {
        self.id = state.id
        self.tenant = tenant
        self.scheduledWake = state.nextWakeMilliseconds ?? .max
        self.indexedAddress = indexedAddress
        self.indexedTraitsVersion = state.traitsVersion
        // Last, so the state moves in instead of being copied (a reference count for each of
        // its arrays and strings, a million times over in a restore).
        self.state = consume state
        identity.withLock { $0.keys = keys }
    }

    // MARK: Identity bookkeeping (called by the directory under its locks)

    nonisolated func addKey(_ key: ContactDirectory.IdentityKey) {
        let epoch = tenant.snapshotEpoch(covering: id)
        identity.withLock { record in
            guard !record.keys.contains(key) else { return }
            record.preserve(for: epoch)
            record.keys.append(key)
        }
    }

    nonisolated func takeKeys() -> ContactDirectory.IdentityKeys {
        let epoch = tenant.snapshotEpoch(covering: id)
        return identity.withLock { record in
            record.preserve(for: epoch)
            defer { record.keys = ContactDirectory.IdentityKeys() }
            return record.keys
        }
    }

    nonisolated var keys: ContactDirectory.IdentityKeys { identity.withLock { $0.keys } }

    /// An anonymous profile not merged yet.
    nonisolated var isLinkable: Bool {
        identity.withLock { record in
            !record.merged && !record.keys.contains { if case .user = $0 { return true } else { return false } }
        }
    }

    nonisolated func markMerged() { identity.withLock { $0.merged = true } }

    nonisolated var isMerged: Bool { identity.withLock { $0.merged } }

    // MARK: Commands

    /// Hints the cache to load this contact's arrays, for a caller about to apply events to it
    /// (see `ContactState.prefetchArrays`). Reads only the addresses the state holds, without
    /// the actor: stale ones, if the actor is changing the state meanwhile, only waste the hint.
    nonisolated func prefetchArrays() {
        withUnsafeMutablePointer(to: &state) { $0.pointee.prefetchArrays() }
    }

    /// `ContactState.prefetchStorage` from outside the actor, for a caller that owns this
    /// contact for the moment (a recovery's lane: nothing else changes it meanwhile): it reads
    /// the state's arrays, not only their addresses.
    nonisolated func prefetchStorageOwned() {
        withUnsafeMutablePointer(to: &state) { $0.pointee.prefetchStorage() }
    }

    /// Hints the cache to load this actor's own memory, where its state lies.
    nonisolated func prefetchObject() {
        CacheHint.prefetchForWrite(UnsafeRawPointer(Unmanaged.passUnretained(self).toOpaque()), bytes: Self.objectBytes)
    }

    /// The size of an instance (448 bytes when measured: seven cache lines).
    static let objectBytes = 448

    private func effectiveNow(_ now: Timestamp) -> Timestamp {
        latestNow = max(latestNow, now.milliseconds)
        return Timestamp(milliseconds: latestNow)
    }

    /// Applies `items` of `batch` in order. `lane`, made by `batch.laneContext`, is reused for
    /// each command instead of a new context; the caller uses it for one call at a time.
    /// A slice, so a caller passing part of a contact's items copies nothing.
    func apply(_ items: ArraySlice<Item>, of batch: Batch, now: Timestamp, reusing lane: EvaluationContext? = nil) async -> [Effect] {
        await apply(items, of: batch, now: now, reusing: lane, endingEach: false).effects
    }

    /// `apply(_:of:now:reusing:)` that also tells, for each item, how many of the effects it
    /// returns were there once that item was applied (`ends`, empty unless `endingEach`): a
    /// replay applies a contact's items of many commands in one call and still knows each
    /// command's effects. `storageHinted`: the caller already hinted this state's storage
    /// (`prefetchStorageOwned`, a recovery's lane), so it is not hinted again here.
    func apply(
        _ items: ArraySlice<Item>, of batch: Batch, now: Timestamp, reusing lane: EvaluationContext?, endingEach: Bool,
        storageHinted: Bool = false
    ) async -> (effects: [Effect], ends: [Int32]) {
        // Before anything else, so the loads overlap with this call's bookkeeping.
        if !storageHinted && forward == nil { changing { $0.prefetchStorage() } }
        preserveForSnapshot()
        var effects: [Effect] = []
        var ends: [Int32] = []
        if endingEach { ends.reserveCapacity(items.count) }
        var position = items.startIndex
        while position < items.endIndex {
            if let forward {
                let rest = await forward.apply(items[position...], of: batch, now: now, reusing: lane, endingEach: endingEach)
                let before = Int32(effects.count)
                effects += rest.effects
                ends += rest.ends.map { $0 + before }
                return (effects, ends)
            }
            let commandNow = effectiveNow(batch.times.isEmpty ? now : batch.times[items[position].index])
            if let source = items[position].mergeSource,
                let (absorbed, left) = await source.surrender(into: self, targetHasAddress: indexedAddress != nil, now: commandNow)
            {
                effects += left
                let evaluation = context(commandNow)
                changing { $0.absorb(absorbed, context: evaluation, effects: &effects) }
            }
            // A group call moves the contact to its account before the event is evaluated.
            let index = items[position].index
            let accountId = batch.events[index].type == .group ? batch.events[index].groupId : state.accountId
            let evaluation: EvaluationContext
            if let lane {
                lane.prepare(now: commandNow, accountTraits: accountTraits(accountId, definitions: batch.definitions))
                evaluation = lane
            } else {
                evaluation = context(
                    commandNow, accountId: accountId, definitions: batch.definitions, catalog: batch.catalog, journeys: batch.journeys)
            }
            // Read in place: the batch outlives the call and its events never change.
            batch.events.withUnsafeBufferPointer { events in
                changing {
                    $0.apply(eventAt: events.baseAddress! + index, counterSymbol: batch.counterSymbols[index], context: evaluation, effects: &effects)
                }
            }
            if endingEach { ends.append(Int32(effects.count)) }
            position += 1
        }
        finish(effects)
        return (effects, ends)
    }

    /// Hands this profile's state over to `target` exactly once; later calls are forwarded.
    /// Returns the state and the effects of leaving (its segments, the merge itself). The
    /// address indexed for this profile moves to the target unless it has one (`targetHasAddress`),
    /// as the merged traits keep the target's own `email`.
    func surrender(into target: ContactActor, targetHasAddress: Bool, now: Timestamp) -> (ContactState, [Effect])? {
        guard forward == nil else { return nil }
        preserveForSnapshot()
        var effects: [Effect] = []
        let definitions = tenant.definitions
        let commandNow = effectiveNow(now)
        let surrendered = changing { $0.surrender(into: target.id, definitions: definitions, now: commandNow, effects: &effects) }
        forward = target
        if let indexedAddress {
            tenant.emails.merge(indexedAddress, from: id, into: target.id, targetHasAddress: targetHasAddress)
            self.indexedAddress = nil
        }
        tenant.directory.unregister(id: id)
        tenant.members.apply(effects)
        return (surrendered, effects)
    }

    /// Called by the scheduler for an entry due at `due`.
    func fire(due: Int64) async -> [Effect] {
        if let forward { return await forward.fire(due: due) }
        preserveForSnapshot()
        if scheduledWake == due { scheduledWake = .max }
        var effects: [Effect] = []
        if let next = state.nextWakeMilliseconds, next <= due {
            let evaluation = context(effectiveNow(Timestamp(milliseconds: due)))
            changing { $0.wake(context: evaluation, effects: &effects) }
        }
        finish(effects)
        return effects
    }

    func reevaluate(segments: [Int]?, now: Timestamp) async -> [Effect] {
        if let forward { return await forward.reevaluate(segments: segments, now: now) }
        preserveForSnapshot()
        var effects: [Effect] = []
        let evaluation = context(effectiveNow(now))
        changing { $0.reevaluate(segments: segments, context: evaluation, effects: &effects) }
        finish(effects)
        return effects
    }

    func accountTraitsChanged(now: Timestamp) async -> [Effect] {
        if let forward { return await forward.accountTraitsChanged(now: now) }
        preserveForSnapshot()
        var effects: [Effect] = []
        let evaluation = context(effectiveNow(now))
        changing { $0.accountTraitsChanged(context: evaluation, effects: &effects) }
        finish(effects)
        return effects
    }

    // MARK: Journeys

    /// Manual or API enrollment; returns whether the contact entered.
    func enroll(journey: String, key: String?, now: Timestamp) async -> (entered: Bool, effects: [Effect]) {
        if let forward { return await forward.enroll(journey: journey, key: key, now: now) }
        preserveForSnapshot()
        var effects: [Effect] = []
        let evaluation = context(effectiveNow(now))
        let entered = changing { $0.enroll(journey: journey, key: key, context: evaluation, effects: &effects) }
        finish(effects)
        return (entered, effects)
    }

    /// After a journey was resumed: runs whose wait lapsed meanwhile move on.
    func wakeJourneys(now: Timestamp) async -> [Effect] {
        if let forward { return await forward.wakeJourneys(now: now) }
        guard !state.journeyRuns.isEmpty else { return [] }
        preserveForSnapshot()
        var effects: [Effect] = []
        let evaluation = context(effectiveNow(now))
        changing { $0.wakeJourneys(context: evaluation, effects: &effects) }
        finish(effects)
        return effects
    }

    /// Ends every run of a journey (archived).
    func endRuns(journey symbol: UInt32, versions: [Int: CompiledJourney], now: Timestamp) async -> [Effect] {
        if let forward { return await forward.endRuns(journey: symbol, versions: versions, now: now) }
        guard state.journeyRuns.contains(where: { $0.journey == symbol }) else { return [] }
        preserveForSnapshot()
        var effects: [Effect] = []
        let evaluation = context(effectiveNow(now))
        changing { $0.endRuns(journey: symbol, reason: .archived, versions: versions, context: evaluation, effects: &effects) }
        finish(effects)
        return effects
    }

    /// Moves runs to a newly published version where their step still exists.
    func migrateRuns(to target: CompiledJourney, from versions: [Int: CompiledJourney]) async -> Int {
        if let forward { return await forward.migrateRuns(to: target, from: versions) }
        guard state.journeyRuns.contains(where: { $0.journey == target.symbol }) else { return 0 }
        preserveForSnapshot()
        return changing { $0.migrateRuns(to: target, from: versions) }
    }

    func dropMembership(symbol: UInt32) {
        preserveForSnapshot()
        changing { $0.dropMembership(symbol: symbol) }
    }

    /// The state now, for reads.
    func snapshot() -> ContactState { state }

    /// The state now, read from any thread without waiting for the actor; nil while the actor
    /// is changing it (then ask `snapshot()`). The copy shares storage with the live state until
    /// the next change.
    nonisolated func stateIfIdle() -> ContactState? {
        guard stateLock.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else { return nil }
        defer { stateLock.store(false, ordering: .releasing) }
        return state
    }

    /// Every change of `state` runs in here, so `stateIfIdle` never copies a half-changed state.
    private func changing<Result>(_ change: (inout ContactState) -> Result) -> Result {
        var spins = 0
        // A reader holds the lock only while it copies the state (a few retains).
        while !stateLock.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged {
            spins += 1
            if spins.isMultiple(of: 64) { sched_yield() }
        }
        defer { stateLock.store(false, ordering: .releasing) }
        return change(&state)
    }

    /// The state and identity keys as they were when snapshot `epoch` began (see
    /// `TenantRuntime.beginSnapshot`); later changes no longer keep a copy for it.
    func capture(epoch: UInt64) -> (state: ContactState, keys: ContactDirectory.IdentityKeys) {
        let captured = preserved.flatMap { $0.epoch == epoch ? $0.state : nil } ?? state
        preserved = nil
        capturedEpoch = epoch
        let keys = identity.withLock { record in
            defer {
                record.preserved = nil
                record.capturedEpoch = epoch
            }
            return record.preserved?.epoch == epoch ? record.preserved!.keys : record.keys
        }
        return (captured, keys)
    }

    /// Before the state changes: keeps it as it was for a running snapshot that has not read
    /// this contact yet. Every change of `state` goes through here first.
    private func preserveForSnapshot() {
        let epoch = tenant.snapshotEpoch(covering: id)
        guard epoch != 0, capturedEpoch != epoch, preserved?.epoch != epoch else { return }
        preserved = PreservedState(epoch: epoch, state: state)
    }

    private final class PreservedState {
        let epoch: UInt64
        let state: ContactState

        init(epoch: UInt64, state: ContactState) {
            self.epoch = epoch
            self.state = state
        }
    }

    // MARK: Decisions

    /// Decides `placements` from this contact's state; with `recordNow` the decision's
    /// record (assignments, served decisions) is applied at once, otherwise the caller
    /// journals it and applies it with `record(_:now:)`.
    func decide(
        _ placements: [String], userId: String?, anonymousId: String?, request: RequestContext, now: Timestamp,
        seed: UInt64, recordNow: Bool
    ) async -> (decisions: [PlacementDecision], record: DecisionRecord) {
        if let forward {
            return await forward.decide(
                placements, userId: userId, anonymousId: anonymousId, request: request, now: now, seed: seed, recordNow: recordNow)
        }
        let result = tenant.decide(
            placements, state: state, userId: userId ?? state.userId, anonymousId: anonymousId ?? state.anonymousIds.first,
            request: request, now: now, seed: seed)
        if recordNow && !result.record.isEmpty {
            preserveForSnapshot()
            var effects: [Effect] = []
            changing { $0.record(result.record, effects: &effects) }
            finish(effects)
        }
        return result
    }

    func record(_ record: DecisionRecord, now: Timestamp) async -> [Effect] {
        if let forward { return await forward.record(record, now: now) }
        preserveForSnapshot()
        _ = effectiveNow(now)
        var effects: [Effect] = []
        changing { $0.record(record, effects: &effects) }
        finish(effects)
        return effects
    }

    // MARK: Helpers

    private func context(_ now: Timestamp) -> EvaluationContext {
        context(now, accountId: state.accountId, definitions: tenant.definitions, catalog: tenant.catalog, journeys: tenant.journeys)
    }

    private func context(
        _ now: Timestamp, accountId: String?, definitions: TenantDefinitions, catalog: DecisionCatalog, journeys: JourneyCatalog
    ) -> EvaluationContext {
        EvaluationContext(
            now: now, definitions: definitions, accountTraits: accountTraits(accountId, definitions: definitions), catalog: catalog,
            journeys: journeys)
    }

    /// The account's traits, when some definition reads them.
    private func accountTraits(_ accountId: String?, definitions: TenantDefinitions) -> [String: JSONValue]? {
        guard let accountId, !definitions.accountSegments.isEmpty || !definitions.accountTraitRuleModels.isEmpty else { return nil }
        return tenant.accounts.traits(of: accountId)
    }

    /// Publishes membership changes, keeps exactly one scheduler entry for the next wake-up and
    /// the tenant's email index in step with the `email` trait, whatever changed it (an event, a
    /// journey's update step, a merge).
    private func finish(_ effects: [Effect]) {
        if state.traitsVersion != indexedTraitsVersion {
            indexedTraitsVersion = state.traitsVersion
            let address: String??
            switch state.traits.isEmpty ? nil : state.traits["email"] {
            case .string(let text)? where !text.isEmpty: address = text
            case nil, .null?: address = .some(nil)
            default: address = nil  // not an address: the index keeps what it had, as for events
            }
            if let address, address != indexedAddress {
                tenant.emails.set(contact: id, email: address, previous: indexedAddress)
                indexedAddress = address
            }
        }
        if !effects.isEmpty {
            tenant.members.apply(effects)
            tenant.tallies.apply(effects)
            tenant.journeyMetrics.apply(effects)
        }
        if let next = state.nextWakeMilliseconds, next < scheduledWake {
            scheduledWake = next
            tenant.scheduler.schedule(self, at: next)
        }
    }
}
