import KairosCore
import Synchronization
import Testing
@testable import KairosEngine

let t0 = Timestamp(iso8601: "2026-03-02T09:00:00Z")!

func json(_ text: String) -> JSONValue {
    do { return try JSONValue.parse(text) } catch { fatalError("test JSON does not parse: \(error)\n\(text)") }
}

func demoEngine() async throws -> Engine {
    let engine = Engine()
    try await DemoTenant.install(into: engine, now: t0)
    return engine
}

@Suite struct EngineTests {
    @Test func ingestScoresAndSegmentsAContact() async throws {
        let engine = try await demoEngine()
        let events: [Event] = [
            .identify(userId: "ana", traits: ["email": "ana@acme.com", "company_size": 800, "title": "VP Marketing", "plan": "trial"], at: t0),
            .page("Pricing", userId: "ana", properties: ["path": "/pricing"], at: t0 + .minutes(1)),
            .page("Pricing", userId: "ana", properties: ["path": "/pricing/enterprise"], at: t0 + .minutes(2)),
            .track("Demo Requested", userId: "ana", at: t0 + .minutes(3)),
        ]
        let report = try await engine.ingest(tenant: "demo", events: events, now: t0 + .minutes(3))
        #expect(report.appliedCount == 4)
        let contact = try #require(try await engine.contact(tenant: "demo", .userId("ana"), now: t0 + .minutes(3)))
        let fit = try #require(contact.score("fit"))
        #expect(fit.score == 45)
        #expect(Set(fit.rules.map(\.rule)) == ["company-large", "decision-maker"])
        let engagement = try #require(contact.score("engagement"))
        // 2 page views (+1 each), 2 pricing views (+20 each), a demo request (+50).
        #expect(abs(engagement.score - 92) < 0.01)
        #expect(engagement.stage == "MQL")
        #expect(engagement.grade == "B2")
        #expect(engagement.groups.first { $0.group == "web" }.map { abs($0.points - 42) < 0.01 } == true)
        #expect(contact.scoreHistory.contains { $0.rule == "demo-request" && $0.event == "track:Demo Requested" && $0.points == 50 })
        #expect(Set(contact.segments.map(\.segment)) == ["trial-users", "pricing-interest", "trial-pricing", "mqls", "hot-leads"])
        #expect(report.effects.contains { $0.kind == .lifecycleChanged(model: "engagement", from: nil, to: "MQL") })
        #expect(try engine.segmentCount(tenant: "demo", segment: "trial-pricing") == 1)
        #expect(contact.recentEvents.first?.event == "track:Demo Requested")
        #expect(contact.eventCounts.first { $0.event == "page:Pricing" }?.total == 2)
    }

    @Test func windowLapsesWithoutNewEvents() async throws {
        let engine = try await demoEngine()
        let effects = engine.effects()
        _ = try await engine.ingest(
            tenant: "demo",
            events: [
                .page("Pricing", anonymousId: "v1", properties: ["path": "/pricing"], at: t0),
                .page("Pricing", anonymousId: "v1", properties: ["path": "/pricing"], at: t0 + .hours(1)),
            ], now: t0 + .hours(1))
        #expect(try engine.segmentCount(tenant: "demo", segment: "pricing-interest") == 1)
        await engine.advanceTime(to: t0 + .days(7) - .seconds(1))
        #expect(try engine.segmentCount(tenant: "demo", segment: "pricing-interest") == 1)
        let fired = await engine.advanceTime(to: t0 + .days(7))
        #expect(fired.contains { $0.effect.kind == .segmentLeft(segment: "pricing-interest") && $0.effect.time == t0 + .days(7) })
        #expect(try engine.segmentCount(tenant: "demo", segment: "pricing-interest") == 0)
        // 30 days after the last visit the visitor turns dormant, on the dot.
        let dormant = await engine.advanceTime(to: t0 + .days(40))
        #expect(dormant.contains { $0.effect.kind == .segmentEntered(segment: "dormant") && $0.effect.time == t0 + .hours(1) + .days(30) })
        #expect(try engine.segmentCount(tenant: "demo", segment: "dormant") == 1)
        // The subscriber saw the same effects in order.
        var seen: [Effect.Kind] = []
        for await effect in effects {
            seen.append(effect.effect.kind)
            if effect.effect.kind == .segmentEntered(segment: "dormant") { break }
        }
        #expect(seen.firstIndex(of: .segmentLeft(segment: "pricing-interest"))! < seen.firstIndex(of: .segmentEntered(segment: "dormant"))!)
    }

    @Test func duplicatesAreAcknowledgedButNotApplied() async throws {
        let engine = try await demoEngine()
        let event = Event.track("Demo Requested", userId: "bo", messageId: "m-1", at: t0)
        let first = try await engine.ingest(tenant: "demo", events: [event, event], now: t0)
        #expect(first.results == [.applied, .duplicate])
        let second = try await engine.ingest(tenant: "demo", events: [event], now: t0 + .hours(1))
        #expect(second.results == [.duplicate])
        let contact = try #require(try await engine.contact(tenant: "demo", .userId("bo"), now: t0))
        #expect(contact.score("engagement")?.score == 50)
        // After the window the id is forgotten.
        let later = try await engine.ingest(tenant: "demo", events: [event], now: t0 + .hours(25))
        #expect(later.results == [.applied])
    }

    @Test func accountTraitsReachEveryContactOfTheAccount() async throws {
        let engine = try await demoEngine()
        _ = try await engine.ingest(
            tenant: "demo",
            events: [
                .group("acme", userId: "a", traits: ["employees": 200], at: t0),
                .group("acme", userId: "b", at: t0),
            ], now: t0)
        #expect(try engine.segmentCount(tenant: "demo", segment: "enterprise-accounts") == 0)
        let report = try await engine.ingest(
            tenant: "demo", events: [.group("acme", userId: "c", traits: ["employees": 5000], at: t0 + .minutes(1))],
            now: t0 + .minutes(1))
        #expect(try engine.segmentCount(tenant: "demo", segment: "enterprise-accounts") == 3)
        #expect(report.effects.filter { $0.kind == .segmentEntered(segment: "enterprise-accounts") }.count == 3)
        let b = try #require(try await engine.contact(tenant: "demo", .userId("b"), now: t0 + .minutes(1)))
        #expect(b.accountTraits?["employees"] == 5000)
        #expect(b.score("fit")?.rules.contains { $0.rule == "enterprise-account" } == true)
    }

    @Test func definitionsAreVersionedValidatedAndDeletable() async throws {
        let engine = try await demoEngine()
        do {
            try await engine.defineSegment(tenant: "demo", json(#"{"id": "x", "condition": {"segment": "nope"}}"#), now: t0)
            Issue.record("accepted a segment using an unknown segment")
        } catch {
            #expect(error.code == .invalidDefinition)
            #expect(error.definitionError?.pointer == "/condition/segment")
            #expect(error.message == "segment 'x' is invalid at /condition/segment: unknown segment 'nope'")
        }
        do {
            try await engine.validateScoringModel(tenant: "demo", json(#"{"id": "m", "rules": [{"id": "r", "points": "ten", "event": "E"}]}"#))
            Issue.record("accepted points as a string")
        } catch {
            #expect(error.definitionError == DefinitionError(pointer: "/rules/0/points", message: "must be a number, got string"))
        }
        do {
            try await engine.deleteDefinition(tenant: "demo", .segment, id: "trial-users", now: t0)
            Issue.record("deleted a segment another one uses")
        } catch {
            #expect(error.code == .definitionInUse)
            #expect(error.message == "segment 'trial-users' is used by segment 'trial-pricing'")
        }
        try await engine.defineSegment(
            tenant: "demo", json(#"{"id": "trial-users", "condition": {"trait": "plan", "op": "in", "value": ["trial", "poc"]}}"#),
            now: t0 + .minutes(1))
        let history = try await engine.definitionHistory(tenant: "demo", .segment, id: "trial-users")
        #expect(history.map(\.version) == [1, 2])
        try await engine.deleteDefinition(tenant: "demo", .segment, id: "trial-pricing", now: t0 + .minutes(2))
        let segments = try await engine.definitions(tenant: "demo", .segment)
        #expect(!segments.map(\.id).contains("trial-pricing"))
        #expect(try await engine.definitionHistory(tenant: "demo", .segment, id: "trial-pricing").last?.source == nil)
        do {
            _ = try engine.segmentCount(tenant: "demo", segment: "trial-pricing")
            Issue.record("counted a deleted segment")
        } catch {
            #expect(error.code == .unknownDefinition)
        }
    }

    @Test func unknownTenantIsAClearError() async {
        let engine = Engine()
        await #expect(throws: EngineError(.unknownTenant, "no tenant 'ghost'")) {
            _ = try await engine.ingest(tenant: "ghost", events: [], now: t0)
        }
        await #expect(throws: EngineError.self) { try await engine.createTenant(id: "bad tenant!") }
    }

    @Test func membersArePagedInIdOrder() async throws {
        let engine = try await demoEngine()
        let events = (0..<250).map { Event.identify(userId: "u\($0)", traits: ["plan": "trial"], at: t0) }
        _ = try await engine.ingest(tenant: "demo", events: events, now: t0)
        var cursor: UInt64?
        var seen: [UInt64] = []
        repeat {
            let page = try await engine.segmentMembers(tenant: "demo", segment: "trial-users", after: cursor, limit: 100)
            #expect(page.total == 250)
            seen += page.members.map(\.id)
            cursor = page.nextCursor
        } while cursor != nil
        #expect(seen.count == 250)
        #expect(seen == seen.sorted())
        #expect(Set(seen).count == 250)
    }
}

@Suite struct KeyTableTests {
    /// The table against a Dictionary under random claims and removals, through many growths
    /// and long probe chains (keys chosen to share their home slots).
    @Test func behavesLikeADictionary() {
        var table = KeyTable()
        var reference: [MessageDeduplicator.Key: Int64] = [:]
        var random = SeededRandom(seed: 7)
        for step in 0..<60_000 {
            // Few distinct `first` values with equal `second`s: collisions and clusters on purpose.
            let value = random.next() % 5_000
            let key = MessageDeduplicator.Key(first: value % 3 == 0 ? value : value << 40, second: value % 7)
            let time = Int64(step)
            switch random.next() % 4 {
            case 0, 1:
                let horizon = time - 1_000
                let claimed = table.claim(key, at: time, after: horizon)
                let expected = (reference[key].map { $0 <= horizon }) ?? true
                #expect(claimed == expected)
                if expected { reference[key] = time }
            case 2:
                table.remove(key)
                reference[key] = nil
            default:
                if let at = reference[key] {
                    let matches = random.next() % 2 == 0
                    table.remove(key, ifClaimedAt: matches ? at : at + 1)
                    if matches { reference[key] = nil }
                }
            }
            if step % 997 == 0 {
                #expect(table.count == reference.count)
                for (key, time) in reference { #expect(table.time(of: key) == time) }
            }
        }
        #expect(table.count == reference.count)
        for (key, time) in reference { #expect(table.time(of: key) == time) }
    }

    /// An id's key is the same from its string and from its bytes (replay hashes the journal's
    /// bytes; snapshots hold keys made from strings).
    @Test func keysFromBytesEqualKeysFromStrings() {
        for id in ["", "m-1", "Ünïcode-ä-🙂", String(repeating: "long-", count: 40), "e" + "\u{301}"] {
            let fromBytes = Array(id.utf8).withUnsafeBufferPointer { MessageDeduplicator.Key(utf8: $0) }
            #expect(fromBytes == MessageDeduplicator.Key(id), "\(id)")
        }
        #expect(MessageDeduplicator.Key("m-1") != MessageDeduplicator.Key("m-2"))
        // Snapshots store these numbers: they must never change.
        #expect(MessageDeduplicator.Key("m-1") == MessageDeduplicator.Key(first: 0x08db_a019_181b_0c9a, second: 0xc40c_3506_5642_9091))
        #expect(
            MessageDeduplicator.Key("Ünïcode-ä-🙂") == MessageDeduplicator.Key(first: 0xa8c6_5335_e0fe_dca2, second: 0xd683_ab6e_87eb_0bad))
    }

    /// Room reserved ahead (as a restore does) holds the same ids as room grown claim by claim,
    /// and claims, expiries and removals go on as before.
    @Test func reservedRoomKeepsEveryId() {
        var reserved = KeyTable()
        var grown = KeyTable()
        let keys = (0..<20_000).map { MessageDeduplicator.Key("message-\($0)") }
        func claimBoth(_ key: MessageDeduplicator.Key, at step: Int) {
            let intoReserved = reserved.claim(key, at: Int64(step), after: -1)
            let intoGrown = grown.claim(key, at: Int64(step), after: -1)
            #expect(intoReserved && intoGrown)
        }
        for (step, key) in keys.prefix(3_000).enumerated() { claimBoth(key, at: step) }
        reserved.reserve(20_000)
        reserved.reserve(10)
        for (step, key) in keys.enumerated().dropFirst(3_000) { claimBoth(key, at: step) }
        #expect(reserved.count == 20_000 && grown.count == 20_000)
        for (step, key) in keys.enumerated() where step % 7 == 0 {
            let claimedAgain = reserved.claim(key, at: 30_000, after: 9_999)
            #expect(claimedAgain == (step <= 9_999))
            reserved.remove(key)
        }
        for (step, key) in keys.enumerated() {
            #expect(reserved.time(of: key) == (step % 7 == 0 ? nil : Int64(step)))
            #expect(grown.time(of: key) == Int64(step))
        }
    }

    /// A window restored from a snapshot refuses its ids again, takes new ones, and forgets the
    /// oldest first once it is over capacity.
    @Test func restoredWindowDedupesAndExpiresInOrder() {
        let window = MessageDeduplicator(window: .hours(1), capacity: 1_000)
        let keys = (0..<1_000).map { MessageDeduplicator.Key("restored-\($0)") }
        window.restore(keys.enumerated().map { (first: $1.first, second: $1.second, time: Int64($0)) })
        #expect(window.count == 1_000)
        #expect(window.claim(["restored-5", "restored-999", "new-1"], now: Timestamp(milliseconds: 2_000)) == [false, false, true])
        // Over capacity by one: the oldest restored id went (and comes back as new), the next
        // oldest is still there.
        #expect(window.claim(["restored-0", "restored-2"], now: Timestamp(milliseconds: 2_001)) == [true, false])
        #expect(window.export().map(\.time).first == 1)
    }
}

@Suite struct EmailIndexTests {
    @Test func keysAreCaseInsensitiveLikeLowercased() {
        for address in ["ana@example.com", "Ana@Example.COM", "ZED@A.IO", "a.b+c@x-y.org", "Élise@Exemple.fr", "ÅSA@EXAMPLE.SE", "@[]^_`{"] {
            #expect(EmailIndex.key(address) == address.lowercased(), "\(address)")
        }
    }

    @Test func restoredPartsAndLaterChangesFindTheSameContacts() {
        let index = EmailIndex()
        index.restore((0..<5_000).map { (contact: UInt64($0), email: "User\($0)@Example.com") })
        #expect(index.contact(email: "user42@example.com") == 42)
        index.set(contact: 42, email: "new@example.com", previous: "User42@Example.com")
        index.set(contact: 7, email: nil, previous: "User7@Example.com")
        #expect(index.contact(email: "USER42@example.com") == nil)
        #expect(index.contact(email: "New@Example.com") == 42)
        #expect(index.contact(email: "user7@example.com") == nil)
        #expect(index.contact(email: "user4999@example.com") == 4_999)
    }

    @Test func anAddressAndItsLowercaseShareAShard() {
        for address in ["Ana@Example.COM", "Élise@Exemple.fr", "ÅSA@EXAMPLE.SE", "plain@example.com"] {
            let key = EmailIndex.indexKey(address)
            #expect(key.text == address.lowercased())
            #expect(EmailIndex.indexKey(key.text).shard == key.shard, "\(address)")
            #expect((0..<EmailIndex.shardCount).contains(key.shard))
        }
        let shards = Set((0..<1_000).map { EmailIndex.indexKey("user\($0)@example.com").shard })
        #expect(shards.count == EmailIndex.shardCount)
    }

    @Test func movesTakesAndMergesKeepOneOwnerPerAddress() {
        let index = EmailIndex()
        index.set(contact: 1, email: "Shared@Example.com", previous: nil)
        index.set(contact: 2, email: "shared@example.com", previous: nil)  // another contact takes the address
        #expect(index.contact(email: "shared@example.com") == 2)
        index.set(contact: 1, email: nil, previous: "Shared@Example.com")  // the first one clearing it leaves the second its owner
        #expect(index.contact(email: "shared@example.com") == 2)
        // A merged profile's address moves to the target when the target has none...
        index.set(contact: 3, email: "anon@example.com", previous: nil)
        index.merge("anon@example.com", from: 3, into: 4, targetHasAddress: false)
        #expect(index.contact(email: "anon@example.com") == 4)
        index.set(contact: 4, email: "known@example.com", previous: "anon@example.com")
        #expect(index.contact(email: "anon@example.com") == nil)
        // ...and is dropped when the target has its own.
        index.set(contact: 5, email: "other@example.com", previous: nil)
        index.merge("other@example.com", from: 5, into: 4, targetHasAddress: true)
        #expect(index.contact(email: "other@example.com") == nil)
        #expect(index.contact(email: "known@example.com") == 4)
        #expect(index.search(prefix: "SH", after: 0, limit: 10) == [2])
        #expect(index.search(prefix: "", after: 0, limit: 10) == [2, 4])
    }

    @Test func concurrentChangesOfDifferentContactsAllLand() async {
        let index = EmailIndex()
        await withTaskGroup(of: Void.self) { group in
            for lane in 0..<4 {
                group.addTask {
                    for round in 0..<3 {
                        for contact in stride(from: lane, to: 4_000, by: 4) {
                            let previous = round == 0 ? nil : "c\(contact)-r\(round - 1)@example.com"
                            index.set(contact: UInt64(contact), email: "c\(contact)-r\(round)@example.com", previous: previous)
                        }
                    }
                }
            }
        }
        for contact in 0..<4_000 {
            #expect(index.contact(email: "c\(contact)-r2@example.com") == UInt64(contact))
            #expect(index.contact(email: "c\(contact)-r1@example.com") == nil)
        }
        #expect(index.search(prefix: "c", after: 0, limit: 10_000).count == 3_999)
    }
}

@Suite struct ContactGroupsTests {
    let runtime = TenantRuntime(
        id: "t", name: "t", scheduler: Scheduler(), effects: EffectBus(),
        deduplicator: MessageDeduplicator(window: .hours(1), capacity: 100))

    /// Items come out with each contact's side by side, contacts in the order of their first
    /// item and each contact's items in the order they were added.
    @Test func itemsAreGroupedByContactInOrder() {
        let contacts = (0..<3).map { ContactActor(id: UInt64($0), tenant: runtime) }
        var groups = ContactGroups()
        for (index, contact) in [1, 0, 1, 2, 1, 0].enumerated() {
            groups.add(ContactActor.Item(index: index, mergeSource: nil), to: contacts[contact])
        }
        let grouped = groups.grouped()
        #expect(grouped.contacts.map(\.id) == [1, 0, 2])
        #expect((0..<3).map { grouped.items(of: $0).map(\.index) } == [[0, 2, 4], [1, 5], [3]])

        var single = ContactGroups()
        for index in 0..<3 { single.add(ContactActor.Item(index: index, mergeSource: nil), to: contacts[2 - index]) }
        #expect((0..<3).map { single.grouped().items(of: $0).map(\.index) } == [[0], [1], [2]])
    }

    /// Many contacts, items interleaved at random, a table that starts small and grows: the
    /// groups are those a dictionary by contact gives.
    @Test func manyContactsGroupAsADictionaryWould() {
        let contacts = (0..<3_000).map { ContactActor(id: UInt64($0), tenant: runtime) }
        var random = SystemRandomNumberGenerator()
        let picks = (0..<20_000).map { _ in Int.random(in: 0..<contacts.count, using: &random) }
        var groups = ContactGroups()
        var expected: [Int: [Int]] = [:]
        var order: [Int] = []
        for (index, contact) in picks.enumerated() {
            groups.add(ContactActor.Item(index: index, mergeSource: nil), to: contacts[contact])
            if expected[contact] == nil { order.append(contact) }
            expected[contact, default: []].append(index)
        }
        let grouped = groups.grouped()
        #expect(grouped.contacts.map { Int($0.id) } == order)
        #expect((0..<grouped.count).map { grouped.items(of: $0).map(\.index) } == order.map { expected[$0]! })
    }

    /// Each contact goes to the lane with the fewest items so far: a contact with most of a
    /// batch's items has a lane nearly to itself, and every contact is applied exactly once.
    @Test func lanesGetEvenShares() {
        let contacts = (0..<6).map { ContactActor(id: UInt64($0), tenant: runtime) }
        var groups = ContactGroups()
        var index = 0
        for (contact, count) in [(0, 10), (1, 2), (2, 2), (3, 2), (4, 2), (5, 2)] {
            for _ in 0..<count {
                groups.add(ContactActor.Item(index: index, mergeSource: nil), to: contacts[contact])
                index += 1
            }
        }
        let lanes = groups.grouped().balanced(lanes: 2)
        #expect(lanes == [[0], [1, 2, 3, 4, 5]])
        #expect(groups.grouped().balanced(lanes: 3).flatMap { $0 }.sorted() == Array(0..<6))
    }
}

@Suite struct ReplayBufferTests {
    /// A replayed run's event array is reused by a later run once its batch is done, storage and
    /// all (new arrays for every run were the largest part of replay's page faults), its events
    /// still in it for the next run to decode over.
    @Test func aDoneReplayBatchLeavesItsEventStorageForALaterRun() throws {
        let spares = SpareEventArrays()
        #expect(spares.take().capacity == 0)
        var events: [Event] = []
        events.reserveCapacity(500)
        for index in 0..<300 { events.append(.track("E", userId: "u\(index)", properties: ["n": .number(Double(index))], at: t0)) }
        let storage = events.withUnsafeBufferPointer { UInt(bitPattern: $0.baseAddress) }
        var batch: ContactActor.Batch? = ContactActor.Batch(
            events: events, counterSymbols: [], definitions: .empty, catalog: .empty, journeys: .empty, spares: spares)
        events = []
        #expect(batch?.events.count == 300)
        batch = nil
        let reused = spares.take()
        #expect(reused.count == 300)
        #expect(reused[299].userId == "u299")
        #expect(reused.capacity >= 500)
        #expect(reused.withUnsafeBufferPointer { UInt(bitPattern: $0.baseAddress) } == storage)
        #expect(spares.take().capacity == 0)
    }
}

@Suite struct IdentityTableTests {
    let runtime = TenantRuntime(
        id: "t", name: "t", scheduler: Scheduler(), effects: EffectBus(),
        deduplicator: MessageDeduplicator(window: .hours(1), capacity: 100))

    /// Every key added leads to its actor through growth after growth, user and anonymous keys
    /// with the same text stay apart, and a key pointed elsewhere leads there alone.
    @Test func keysLeadToTheirActorsThroughGrowthAndRepointing() {
        var table = IdentityTable()
        let actors = (0..<5_000).map { ContactActor(id: UInt64($0), tenant: runtime) }
        for (number, actor) in actors.enumerated() {
            let user = ContactDirectory.IdentityKey.user("u\(number)")
            table.set(user, hash: IdentityTable.hash(user), to: actor)
            let anonymous = ContactDirectory.IdentityKey.anonymous("u\(number)")
            table.set(anonymous, hash: IdentityTable.hash(anonymous), to: actors[(number + 1) % actors.count])
        }
        #expect(table.count == 10_000)
        for number in [0, 1, 77, 4_095, 4_999] {
            let user = ContactDirectory.IdentityKey.user("u\(number)")
            let anonymous = ContactDirectory.IdentityKey.anonymous("u\(number)")
            #expect(table.find(user, hash: IdentityTable.hash(user))?.id == UInt64(number))
            #expect(table.find(anonymous, hash: IdentityTable.hash(anonymous))?.id == UInt64((number + 1) % 5_000))
        }
        let missing = ContactDirectory.IdentityKey.user("u5000")
        #expect(table.find(missing, hash: IdentityTable.hash(missing)) == nil)

        let moved = ContactDirectory.IdentityKey.anonymous("u42")
        table.set(moved, hash: IdentityTable.hash(moved), to: actors[7])
        #expect(table.count == 10_000)
        #expect(table.find(moved, hash: IdentityTable.hash(moved))?.id == 7)
        // Hints change nothing, for keys present or not.
        table.prefetch(hash: IdentityTable.hash(missing))
        table.prefetchActor(of: moved, hash: IdentityTable.hash(moved))
        table.prefetchActor(of: missing, hash: IdentityTable.hash(missing))
        #expect(table.find(moved, hash: IdentityTable.hash(moved))?.id == 7)
    }

    /// Keys whose hashes share a home slot are all found: the probe walks past the others.
    @Test func keysWithTheSameHomeSlotAreAllFound() {
        var table = IdentityTable()
        table.reserveCapacity(100)
        let actors = (0..<40).map { ContactActor(id: UInt64($0), tenant: runtime) }
        // Hashes chosen to collide: same bits above the shard's, different keys.
        for (number, actor) in actors.enumerated() {
            table.set(.user("k\(number)"), hash: 0x1234_5600 | number, to: actor)
        }
        for number in actors.indices {
            #expect(table.find(.user("k\(number)"), hash: 0x1234_5600 | number)?.id == UInt64(number))
        }
        #expect(table.find(.user("k40"), hash: 0x1234_5600) == nil)
    }
}

@Suite struct ContactIdSetTests {
    /// The set against a `Set<UInt64>` under random inserts and removals spread over blocks with
    /// gaps between them (whole blocks never touched, blocks emptied again).
    @Test func behavesLikeASet() {
        var bits = ContactIdSet()
        var reference = Set<UInt64>()
        var random = SeededRandom(seed: 3)
        for _ in 0..<40_000 {
            // Numbers in blocks 0, 1, 5 and 40 only, so the iteration must skip missing blocks.
            let block = [0, 1, 5, 40][Int(random.next() % 4)]
            let number = UInt64(block * ContactIdSet.numbersPerBlock) + random.next() % UInt64(ContactIdSet.numbersPerBlock)
            if random.next() % 3 == 0 {
                #expect(bits.remove(number) == (reference.remove(number) != nil))
            } else {
                #expect(bits.insert(number) == reference.insert(number).inserted)
            }
        }
        #expect(bits.count == reference.count)
        #expect(Array(bits) == reference.sorted())
        for probe in [0, 1, 4095, 4096, 8191, 20_000, 163_839, 163_840, 10_000_000] as [UInt64] {
            #expect(bits.contains(probe) == reference.contains(probe), "contains \(probe)")
        }
        // Pages from any start, inside a block, at a block's edge, in a missing block, past the end.
        for start in [0, 1, 63, 64, 4095, 4096, 9000, 20_479, 20_480, 163_840, 200_000] as [UInt64] {
            let expected = Array(reference.filter { $0 >= start }.sorted().prefix(37))
            #expect(bits.ascending(from: start, limit: 37) == expected, "from \(start)")
        }
        // Emptied entirely, it is empty however many blocks it keeps.
        for number in reference { bits.remove(number) }
        #expect(bits.isEmpty)
        #expect(Array(bits).isEmpty)
    }

    @Test func unionCountsEachMemberOnce() {
        var left = ContactIdSet([1, 2, 3, 70, 5000])
        let right = ContactIdSet([3, 70, 71, 100_000])
        left.formUnion(right)
        #expect(left.count == 7)
        #expect(Array(left) == [1, 2, 3, 70, 71, 5000, 100_000])
        // The right set is not changed by the left one's later changes (blocks are values).
        left.insert(72)
        #expect(!right.contains(72))
        #expect(left == ContactIdSet([1, 2, 3, 70, 71, 72, 5000, 100_000]))
    }

    /// Members of a segment paged across shards: every id once, ascending, from any cursor.
    @Test func segmentPagesFollowCursors() {
        let members = SegmentMembers()
        let ids: [UInt64] = [1, 2, 15, 16, 17, 31, 32, 33, 100, 4095, 4096, 65_537, 1_000_003]
        members.add(["s": SegmentMembers.shardedSets(of: [Array(ids.prefix(6)), Array(ids.dropFirst(6))])])
        #expect(members.count("s") == ids.count)
        for cursor in [nil, 0, 1, 15, 16, 30, 33, 99, 4096, 65_537, 1_000_003] as [UInt64?] {
            let page = members.page("s", after: cursor, limit: 4)
            #expect(page.total == ids.count)
            #expect(page.ids == Array(ids.filter { $0 > (cursor ?? 0) }.prefix(4)), "after \(String(describing: cursor))")
        }
    }
}

@Suite struct ContactSlotsTests {
    /// Places set, replaced and emptied in any order: the count follows, missing places read as
    /// empty, and the contacts come out by place.
    @Test func placesCountAndListTheirContacts() {
        let runtime = TenantRuntime(
            id: "slots", name: "slots", scheduler: Scheduler(), effects: EffectBus(),
            deduplicator: MessageDeduplicator(window: .hours(1), capacity: 100))
        let contacts = (0..<5).map { ContactActor(id: UInt64($0), tenant: runtime) }
        var slots = ContactSlots()
        slots[7] = contacts[0]
        slots[2] = contacts[1]
        slots[2] = contacts[2]  // replaced: still one there
        slots[10] = nil  // emptying a place never set changes nothing
        #expect(slots.count == 2)
        #expect(slots[2] === contacts[2] && slots[7] === contacts[0] && slots[3] == nil && slots[1_000] == nil)
        #expect(slots.values.map(\.id) == [2, 0])
        #expect(slots.remove(at: 7) === contacts[0])
        #expect(slots.remove(at: 7) == nil)
        #expect(slots.count == 1)
        #expect(slots.values.map(\.id) == [2])
    }
}
