import DequeModule
import Foundation
import KairosCore

/// What `Engine.snapshot()` captured.
public struct EngineSnapshot: Sendable {
    /// The snapshot in its binary form (see `snapshots/README.md`).
    public var bytes: [UInt8]
    public var tenants: Int
    public var contacts: Int
    /// Every tenant in the snapshot holds the effect of all journal records up to here:
    /// recovery replays from the next one, and the journal may be truncated through it.
    public var startSequence: UInt64
    /// The longest time a tenant's commands waited on the snapshot (its freeze).
    public var longestPause: Duration = .zero
}

extension Engine {
    /// 2 added decision tallies per tenant (and contacts in codec version 2), 3 journey metrics
    /// and the outbox (contacts in codec version 3), 4 activity by 15 minutes; 1 to 3 are still read.
    static let snapshotVersion: UInt8 = 4
    /// Contacts per independently encoded chunk of a snapshot.
    static let snapshotChunk = 4096
    /// Tasks encoding a snapshot's contacts at once.
    static let snapshotWorkers = max(1, ProcessInfo.processInfo.activeProcessorCount)

    /// Encodes contacts as snapshot `epoch` sees them, with their identity keys.
    static func encode(_ contacts: [ContactActor], epoch: UInt64) async -> [UInt8] {
        var writer = BinaryWriter(capacity: contacts.count * 400)
        for contact in contacts {
            let (state, keys) = await contact.capture(epoch: epoch)
            state.encode(into: &writer)
            writer.writeVarint(UInt64(keys.count))
            keys.forEachKey { key in
                switch key {
                case .user(let userId):
                    writer.writeByte(0)
                    writer.write(userId)
                case .anonymous(let anonymousId):
                    writer.writeByte(1)
                    writer.write(anonymousId)
                }
            }
        }
        return writer.bytes
    }

    /// The address the email index keeps for a restored contact: its `email` trait when a
    /// non-empty string.
    static func indexedEmail(_ state: ContactState) -> String? {
        guard !state.traits.isEmpty, case .string(let email)? = state.traits["email"], !email.isEmpty else { return nil }
        return email
    }

    /// Decodes one chunk of contacts, handing each to `body` with its identity keys.
    static func decodeChunk(
        _ chunk: BinaryReader, _ body: (consuming ContactState, ContactDirectory.IdentityKeys) throws -> Void
    ) throws {
        var reader = chunk
        while !reader.isAtEnd {
            let state = try ContactState.decode(from: &reader)
            let count = try reader.readElementCount()
            var keys = ContactDirectory.IdentityKeys()
            for _ in 0..<count {
                let kind = try reader.readByte()
                let value = try reader.readString()
                keys.append(kind == 0 ? .user(value) : .anonymous(value))
            }
            try body(consume state, keys)
        }
    }

    /// A tenant as it was between two of its commands, taken in a moment: the parts are
    /// copies on write, and its contacts are read afterwards as they were then.
    private struct FrozenTenant {
        var tenant: Tenant
        var epoch: UInt64
        var applied: UInt64
        var symbols: [String]
        var history: [DefinitionVersion]
        var definitionsVersion: UInt64
        var nextContactId: UInt64
        var contactTables: [ContactSlots]
        var accounts: [String: AccountDirectory.Account]
        var tallies: DecisionTallies.Totals
        var reports: [String: JourneyReport]
        var outbox: Outbox.State
        var activity: [Int64: DailyActivity.Bucket]
    }

    /// Captures every tenant's whole state while ingest goes on. Each tenant is stopped only
    /// between two of its commands, long enough to mark the point (its journal sequence) and
    /// copy its small parts; its contacts are then read while it keeps applying commands, each
    /// as it was at that point (a contact changed before it is read keeps a copy of its state
    /// for the snapshot). So every tenant is consistent with the sequence it records.
    public func snapshot() async throws(EngineError) -> EngineSnapshot { try await snapshot(afterFreezing: nil) }

    /// `afterFreezing` runs after each tenant is frozen and before its contacts are read (tests
    /// change contacts there: the tenant must be free to apply commands).
    func snapshot(afterFreezing: (@Sendable (String) async -> Void)?) async throws(EngineError) -> EngineSnapshot {
        let (turn, _) = snapshotTurns.submit { () }
        await snapshotTurns.waitForTurn(turn)
        defer { snapshotTurns.finishTurn() }
        let startSequence = journal?.enqueuedSequence ?? 0
        let ids = tenantIds
        var writer = BinaryWriter(capacity: 1 << 20)
        writer.writeByte(Engine.snapshotVersion)
        writer.writeVarint(startSequence)
        writer.writeVarint(UInt64(ids.count))
        var contactCount = 0
        var heldThrough = startSequence
        var longestPause = Duration.zero
        for id in ids {
            let tenant = try tenantForSnapshot(id)
            let (ticket, _) = tenant.gate.submit { () }
            await tenant.gate.waitForTurn(ticket)
            let frozenAt = ContinuousClock.now
            let frozen = await freeze(tenant)
            tenant.gate.finishTurn()
            longestPause = max(longestPause, ContinuousClock.now - frozenAt)
            defer { tenant.runtime.endSnapshot() }
            heldThrough = min(heldThrough, frozen.applied)
            await afterFreezing?(id)
            contactCount += await write(frozen, into: &writer)
        }
        return EngineSnapshot(
            bytes: writer.bytes, tenants: ids.count, contacts: contactCount, startSequence: heldThrough, longestPause: longestPause)
    }

    /// Called between two of the tenant's commands: the pause its ingest sees.
    private func freeze(_ tenant: Tenant) async -> FrozenTenant {
        let runtime = tenant.runtime
        let (history, version) = await tenant.actor.exportDefinitions()
        return FrozenTenant(
            tenant: tenant, epoch: runtime.beginSnapshot(), applied: tenant.applied.value, symbols: runtime.exportSymbols(),
            history: history, definitionsVersion: version, nextContactId: runtime.directory.nextContactId,
            contactTables: runtime.directory.contactTables(), accounts: runtime.accounts.export(), tallies: runtime.tallies.export(),
            reports: runtime.journeyMetrics.export(), outbox: runtime.outbox.export(), activity: runtime.activity.export())
    }

    private func write(_ frozen: FrozenTenant, into writer: inout BinaryWriter) async -> Int {
        let runtime = frozen.tenant.runtime
        writer.write(runtime.id)
        writer.write(runtime.name)
        writer.writeVarint(frozen.applied)
        writer.writeVarint(UInt64(frozen.symbols.count))
        for name in frozen.symbols { writer.write(name) }

        writer.writeVarint(frozen.definitionsVersion)
        writer.writeVarint(UInt64(frozen.history.count))
        for entry in frozen.history {
            writer.write(entry.kind.rawValue)
            writer.write(entry.id)
            writer.writeVarint(UInt64(entry.version))
            writer.write(entry.definedAt)
            if let source = entry.source {
                writer.writeByte(1)
                writer.write(source)
            } else {
                writer.writeByte(0)
            }
        }

        writer.writeVarint(frozen.nextContactId)
        var contacts: [ContactActor] = []
        contacts.reserveCapacity(frozen.contactTables.reduce(0) { $0 + $1.count })
        for table in frozen.contactTables { contacts.append(contentsOf: table.values) }
        contacts.sort { $0.id < $1.id }
        writer.writeVarint(UInt64(contacts.count))
        // Contacts go in chunks, each prefixed with its length, encoded in parallel (and
        // decoded in parallel on restore).
        let chunks = stride(from: 0, to: contacts.count, by: Engine.snapshotChunk).map {
            Array(contacts[$0..<min($0 + Engine.snapshotChunk, contacts.count)])
        }
        let epoch = frozen.epoch
        // One worker per core, yielding after each chunk: ingest keeps its share of the cores
        // (a task per chunk filled the queue ahead of it for seconds). Not at background
        // priority: starved background threads held the pool's threads from other work.
        let workers = min(chunks.count, Engine.snapshotWorkers)
        let encoded = await withTaskGroup(of: [(Int, [UInt8])].self) { group in
            for worker in 0..<workers {
                group.addTask {
                    var done: [(Int, [UInt8])] = []
                    for index in stride(from: worker, to: chunks.count, by: workers) {
                        done.append((index, await Engine.encode(chunks[index], epoch: epoch)))
                        await Task.yield()
                    }
                    return done
                }
            }
            var parts = [[UInt8]](repeating: [], count: chunks.count)
            for await done in group {
                for (index, bytes) in done { parts[index] = bytes }
            }
            return parts
        }
        writer.writeVarint(UInt64(encoded.count))
        for part in encoded {
            writer.writeVarint(UInt64(part.count))
            writer.writeBytes(part)
        }

        let accounts = frozen.accounts
        writer.writeVarint(UInt64(accounts.count))
        for id in accounts.keys.sorted() {
            writer.write(id)
            writer.write(accounts[id]!.traits)
            let members = accounts[id]!.contacts.sorted()
            writer.writeVarint(UInt64(members.count))
            for member in members { writer.writeVarint(member) }
        }

        // Ids claimed after the frozen point are kept too: their commands replay after it,
        // and replay applies them whatever the deduplicator says.
        let seen = runtime.deduplicator.export()
        writer.writeVarint(UInt64(seen.count))
        for entry in seen {
            writer.writeVarint(entry.first)
            writer.writeVarint(entry.second)
            writer.writeSigned(entry.time)
        }

        let tallies = frozen.tallies
        writer.writeVarint(UInt64(tallies.experiments.count))
        for experiment in tallies.experiments.keys.sorted() {
            writer.write(experiment)
            let variants = tallies.experiments[experiment]!
            writer.writeVarint(UInt64(variants.count))
            for variant in variants.keys.sorted() {
                writer.writeSigned(Int64(variant))
                writer.writeSigned(Int64(variants[variant]!.units))
                writer.writeSigned(Int64(variants[variant]!.conversions))
            }
        }
        writer.writeVarint(UInt64(tallies.arms.count))
        for placement in tallies.arms.keys.sorted() {
            writer.write(placement)
            let arms = tallies.arms[placement]!
            writer.writeVarint(UInt64(arms.count))
            for variant in arms.keys.sorted() {
                writer.write(variant)
                writer.writeSigned(Int64(arms[variant]!.trials))
                writer.writeSigned(Int64(arms[variant]!.rewards))
            }
        }

        let reports = frozen.reports
        writer.writeVarint(UInt64(reports.count))
        for journey in reports.keys.sorted() {
            let report = reports[journey]!
            writer.write(journey)
            for value in [report.entered, report.active, report.waiting, report.completed, report.goalReached, report.messages, report.messagesSkipped] {
                writer.writeSigned(Int64(value))
            }
            writer.writeVarint(UInt64(report.exited.count))
            for reason in report.exited.keys.sorted() {
                writer.write(reason)
                writer.writeSigned(Int64(report.exited[reason]!))
            }
            writer.writeVarint(UInt64(report.nodes.count))
            for node in report.nodes.keys.sorted() {
                let metrics = report.nodes[node]!
                writer.write(node)
                for value in [metrics.arrived, metrics.waiting, metrics.messages, metrics.messagesSkipped] { writer.writeSigned(Int64(value)) }
            }
        }
        let outbox = frozen.outbox
        writer.writeVarint(outbox.nextPosition)
        writer.writeVarint(outbox.dropped)
        writer.writeVarint(UInt64(outbox.entries.count))
        for entry in outbox.entries {
            writer.writeVarint(entry.position)
            writer.writeVarint(entry.contact)
            writer.writeOptional(entry.userId)
            writer.write(entry.time)
            writer.write(entry.message.idempotencyKey)
            writer.write(entry.message.journey)
            writer.write(entry.message.node)
            writer.write(entry.message.channel.rawValue)
            writer.writeVarint(UInt64(entry.message.fields.count))
            for name in entry.message.fields.keys.sorted() {
                writer.write(name)
                writer.write(entry.message.fields[name]!)
            }
        }
        let activity = frozen.activity
        writer.writeVarint(UInt64(activity.count))
        for index in activity.keys.sorted() {
            let bucket = activity[index]!
            writer.writeSigned(index)
            writer.writeSigned(Int64(bucket.events))
            writer.writeVarint(UInt64(bucket.stages.count))
            for stage in bucket.stages.keys.sorted() {
                writer.write(stage)
                writer.writeSigned(Int64(bucket.stages[stage]!))
            }
        }
        return contacts.count
    }

    /// `restore(snapshot:)` for a snapshot held in an array.
    public func restore(snapshot bytes: [UInt8]) async throws -> (tenants: Int, contacts: Int) {
        try await restore(snapshot: ReadOnlyBytes(copying: bytes))
    }

    /// Loads a snapshot into this engine, which must have no tenants yet. Follow with
    /// `recover()` to replay what the journal holds beyond it.
    public func restore(snapshot bytes: ReadOnlyBytes) async throws -> (tenants: Int, contacts: Int) {
        guard tenantIds.isEmpty else { throw EngineError(.invalidArgument, "restore needs an engine with no tenants") }
        var reader = BinaryReader(bytes)
        let version = try reader.readByte()
        guard (1...Engine.snapshotVersion).contains(version) else {
            throw CodecError(offset: 0, message: "snapshot format version \(version) is not supported (expected \(Engine.snapshotVersion))")
        }
        // Tenants created after the capture began have records after this point.
        restoredStartSequence.set(try reader.readVarint())
        let tenantCount = try reader.readCount()
        var contactCount = 0
        for _ in 0..<tenantCount {
            let id = try reader.readString()
            let name = try reader.readString()
            let applied = try reader.readVarint()
            try applyCreateTenant(id: id, name: name)
            let tenant = try tenantForSnapshot(id)
            tenant.applied.set(applied)
            let runtime = tenant.runtime
            for _ in 0..<(try reader.readCount()) { _ = runtime.intern(try reader.readString()) }

            let definitionsVersion = try reader.readVarint()
            var history: [DefinitionVersion] = []
            for _ in 0..<(try reader.readCount()) {
                let kindText = try reader.readString()
                guard let kind = DefinitionKind(rawValue: kindText) else {
                    throw CodecError(offset: reader.offset, message: "unknown definition kind '\(kindText)'")
                }
                let definitionId = try reader.readString()
                let definitionVersion = Int(try reader.readVarint())
                let definedAt = try reader.readTimestamp()
                let source: JSONValue? = try reader.readByte() == 1 ? try reader.readJSON() : nil
                history.append(DefinitionVersion(kind: kind, id: definitionId, version: definitionVersion, definedAt: definedAt, source: source))
            }
            try await tenant.actor.restoreDefinitions(history: history, version: definitionsVersion)
            let definitions = runtime.definitions

            let nextId = try reader.readVarint()
            let expected = try reader.readCount(limit: 1 << 30)
            // Chunks are decoded where they lie in the snapshot: a copy of each would be as much
            // fresh memory again as the snapshot itself, and on a virtual machine touching fresh
            // memory costs more than decoding into it.
            let chunks = try (0..<reader.readCount()).map { _ in try reader.skip(try reader.readCount(limit: 1 << 30)) }
            // Sized once for what the snapshot says it holds: a contact has one identity key
            // (a little more after merges) and at most one indexed address. Untouched room costs
            // no memory, and a table that needs more still grows.
            runtime.directory.reserve(contacts: expected, keys: expected + expected / 8)
            runtime.emails.reserve(expected)
            // Hidden journey trigger segments are not listed (SegmentMembers ignores them).
            let segmentIds = definitions.segments.map(\.definition.id)
            let orderBySymbol = definitions.segmentOrderBySymbol
            // One task per core, each decoding its chunks and turning each into actors, directory
            // entries and timers at once: no chunk's decoded states outlive it, so their memory is
            // reused for the next chunk instead of a million states held side by side.
            let workers = max(1, min(chunks.count, Engine.snapshotWorkers))
            let parts = try await withThrowingTaskGroup(of: (count: Int, memberships: [[UInt64]]).self) { group in
                for worker in 0..<workers {
                    group.addTask {
                        // By the segment's position: an array index instead of a string's hash per membership.
                        var memberships = [[UInt64]](repeating: [], count: segmentIds.count)
                        var count = 0
                        var actors: [(actor: ContactActor, keys: ContactDirectory.IdentityKeys)] = []
                        var emails: [(contact: UInt64, email: String)] = []
                        for index in stride(from: worker, to: chunks.count, by: workers) {
                            actors.removeAll(keepingCapacity: true)
                            emails.removeAll(keepingCapacity: true)
                            try Engine.decodeChunk(BinaryReader(bytes, range: chunks[index])) { state, keys in
                                let id = state.id
                                let email = Engine.indexedEmail(state)
                                if let email { emails.append((id, email)) }
                                for membership in state.segments {
                                    if let order = orderBySymbol[membership.segment] { memberships[order].append(id) }
                                }
                                let next = state.nextWakeMilliseconds
                                // The state's last use: it moves into the actor.
                                let actor = ContactActor(restoring: consume state, keys: keys, indexedAddress: email, tenant: runtime)
                                actors.append((actor, keys))
                                if let next { runtime.scheduler.schedule(actor, at: next) }
                            }
                            runtime.directory.restore(actors, nextId: nextId)
                            runtime.emails.restore(emails)
                            count += actors.count
                            await Task.yield()
                        }
                        return (count, memberships)
                    }
                }
                var all: [(count: Int, memberships: [[UInt64]])] = []
                for try await part in group { all.append(part) }
                return all
            }
            let decodedCount = parts.reduce(0) { $0 + $1.count }
            // Each segment's member sets (one a shard): a bit per member, set in a few milliseconds
            // for a million (hashed sets took 0.6 s).
            var memberSets: [String: [ContactIdSet]] = [:]
            for order in segmentIds.indices where parts.contains(where: { !$0.memberships[order].isEmpty }) {
                memberSets[segmentIds[order]] = SegmentMembers.shardedSets(of: parts.map { $0.memberships[order] })
            }
            contactCount += decodedCount
            guard decodedCount == expected else {
                throw CodecError(offset: reader.offset, message: "tenant '\(id)' should hold \(expected) contacts")
            }
            runtime.members.add(memberSets)

            var accounts: [String: AccountDirectory.Account] = [:]
            for _ in 0..<(try reader.readCount()) {
                let accountId = try reader.readString()
                var account = AccountDirectory.Account(traits: try reader.readObject())
                for _ in 0..<(try reader.readCount()) { account.contacts.insert(try reader.readVarint()) }
                accounts[accountId] = account
            }
            runtime.accounts.restore(accounts)

            let seenCount = try reader.readCount()
            var seen: [(first: UInt64, second: UInt64, time: Int64)] = []
            seen.reserveCapacity(seenCount)
            for _ in 0..<seenCount {
                seen.append((try reader.readVarint(), try reader.readVarint(), try reader.readSigned()))
            }
            runtime.deduplicator.restore(seen)

            guard version >= 2 else { continue }
            var tallies = DecisionTallies.Totals()
            for _ in 0..<(try reader.readCount()) {
                let experiment = try reader.readString()
                var variants: [Int: ConversionCounts] = [:]
                for _ in 0..<(try reader.readCount()) {
                    variants[Int(try reader.readSigned())] = ConversionCounts(
                        units: Int(try reader.readSigned()), conversions: Int(try reader.readSigned()))
                }
                tallies.experiments[experiment] = variants
            }
            for _ in 0..<(try reader.readCount()) {
                let placement = try reader.readString()
                var arms: [String: ArmStatistics] = [:]
                for _ in 0..<(try reader.readCount()) {
                    arms[try reader.readString()] = ArmStatistics(trials: Int(try reader.readSigned()), rewards: Int(try reader.readSigned()))
                }
                tallies.arms[placement] = arms
            }
            runtime.tallies.restore(tallies)

            guard version >= 3 else { continue }
            var reports: [String: JourneyReport] = [:]
            for _ in 0..<(try reader.readCount()) {
                var report = JourneyReport(journey: try reader.readString())
                report.entered = Int(try reader.readSigned())
                report.active = Int(try reader.readSigned())
                report.waiting = Int(try reader.readSigned())
                report.completed = Int(try reader.readSigned())
                report.goalReached = Int(try reader.readSigned())
                report.messages = Int(try reader.readSigned())
                report.messagesSkipped = Int(try reader.readSigned())
                for _ in 0..<(try reader.readCount()) { report.exited[try reader.readString()] = Int(try reader.readSigned()) }
                for _ in 0..<(try reader.readCount()) {
                    let node = try reader.readString()
                    report.nodes[node] = JourneyNodeMetrics(
                        arrived: Int(try reader.readSigned()), waiting: Int(try reader.readSigned()), messages: Int(try reader.readSigned()),
                        messagesSkipped: Int(try reader.readSigned()))
                }
                reports[report.journey] = report
            }
            runtime.journeyMetrics.restore(reports)
            var outbox = Outbox.State()
            outbox.nextPosition = try reader.readVarint()
            outbox.dropped = try reader.readVarint()
            for _ in 0..<(try reader.readCount()) {
                let position = try reader.readVarint()
                let contact = try reader.readVarint()
                let userId = try reader.readOptionalString()
                let time = try reader.readTimestamp()
                let key = try reader.readString()
                let journey = try reader.readString()
                let node = try reader.readString()
                let channelText = try reader.readString()
                guard let channel = MessageChannel(rawValue: channelText) else {
                    throw CodecError(offset: reader.offset, message: "unknown message channel '\(channelText)'")
                }
                var fields: [String: String] = [:]
                for _ in 0..<(try reader.readCount()) { fields[try reader.readString()] = try reader.readString() }
                outbox.entries.append(
                    OutboxEntry(
                        position: position, contact: contact, userId: userId, time: time,
                        message: OutboxMessage(idempotencyKey: key, journey: journey, node: node, channel: channel, fields: fields)))
            }
            runtime.outbox.restore(outbox)

            guard version >= 4 else { continue }
            var activity: [Int64: DailyActivity.Bucket] = [:]
            for _ in 0..<(try reader.readCount()) {
                let index = try reader.readSigned()
                var bucket = DailyActivity.Bucket(events: Int(try reader.readSigned()))
                for _ in 0..<(try reader.readCount()) { bucket.stages[try reader.readString()] = Int(try reader.readSigned()) }
                activity[index] = bucket
            }
            runtime.activity.restore(activity)
        }
        guard reader.isAtEnd else { throw CodecError(offset: reader.offset, message: "unexpected bytes after the last tenant") }
        await indexWriteKeys()
        return (tenantCount, contactCount)
    }
}
