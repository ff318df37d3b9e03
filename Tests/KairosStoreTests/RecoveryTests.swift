import Foundation
import KairosCore
@testable import KairosEngine
import Testing
@testable import KairosStore

@Suite struct RecoveryTests {
    let start = Timestamp(iso8601: "2026-03-02T00:00:00Z")!

    /// Drives a journaled engine through traffic, timers and definition changes.
    func run(_ engine: Engine, contacts: Int, snapshotAt snapshotHour: Int? = nil, snapshot: ((Engine) async throws -> Void)? = nil) async throws -> Timestamp {
        try await DemoTenant.install(into: engine, now: start)
        var traffic = DemoTraffic(contacts: contacts, seed: 3)
        var now = start
        for hour in 0..<72 {
            now = start + .hours(Int64(hour))
            await engine.advanceTime(to: now)
            let events = (0..<60).map { _ in traffic.next(at: now) }
            _ = try await engine.ingest(tenant: DemoTenant.id, events: events, now: now)
            // Decisions and their feedback: assignments, served decisions and optimizer tallies.
            var feedback: [Event] = []
            for visitor in [hour * 7 % contacts, (hour * 13 + 5) % contacts] {
                let response = try await engine.decide(
                    tenant: DemoTenant.id, visitor: Visitor(anonymousId: "anon-\(visitor)"),
                    context: RequestContext(url: "https://demo.test/?utm_source=\(hour % 3 == 0 ? "google" : "mail")"),
                    placements: ["home-hero", "pricing-cta"], now: now)
                let id = JSONValue.string(response.decisions[1].decisionId)
                feedback.append(.track(FeedbackEvent.viewed, anonymousId: "anon-\(visitor)", properties: ["decision_id": id], at: now))
                if feedback.count == 1 {
                    feedback.append(.track(FeedbackEvent.clicked, anonymousId: "anon-\(visitor)", properties: ["decision_id": id], at: now))
                }
            }
            _ = try await engine.ingest(tenant: DemoTenant.id, events: feedback, now: now)
            if hour == 30 {
                try await engine.defineSegment(
                    tenant: DemoTenant.id,
                    try JSONValue.parse(#"{"id": "clickers", "condition": {"event": "Email Link Clicked", "count": {"op": "gte", "value": 2}, "within": {"days": 1}}}"#),
                    now: now)
            }
            if hour == 50 { try await engine.deleteDefinition(tenant: DemoTenant.id, .segment, id: "trial-pricing", now: now) }
            if hour == snapshotHour { try await snapshot?(engine) }
        }
        return now + .hours(1)
    }

    func snapshot(_ engine: Engine, contacts: Int, at now: Timestamp) async throws -> [String: ContactView] {
        var views: [String: ContactView] = [:]
        for contact in 0..<contacts {
            for reference in [Engine.ContactReference.userId("user-\(contact)"), .anonymousId("anon-\(contact)")] {
                if let view = try await engine.contact(tenant: DemoTenant.id, reference, now: now) { views["\(reference)"] = view }
            }
        }
        return views
    }

    /// Every segment's members, and which contact each demo address finds, as text.
    func indexes(_ engine: Engine, contacts: Int, at now: Timestamp) async throws -> String {
        var lines: [String] = []
        let stats = try await engine.stats(tenant: DemoTenant.id)
        for segment in stats.segmentSizes.keys.sorted() {
            var cursor: UInt64?
            repeat {
                let page = try await engine.segmentMembers(tenant: DemoTenant.id, segment: segment, after: cursor, limit: 1000)
                lines += page.members.map { "\(segment) \($0.id) \($0.userId ?? "-") \($0.anonymousIds)" }
                cursor = page.nextCursor
            } while cursor != nil
        }
        for contact in 0..<contacts {
            for domain in DemoTraffic.domains {
                let email = "Person\(contact)@\(domain)"
                if let view = try await engine.contact(tenant: DemoTenant.id, .email(email), now: now) {
                    lines.append("\(email) \(view.id)")
                }
            }
        }
        return lines.joined(separator: "\n")
    }

    @Test func restartRebuildsExactlyTheAcknowledgedState() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.path + "/journal.sqlite"
        let contacts = 300

        let journal = try SQLiteJournal(path: path, mode: .fast)
        let live = Engine(journal: journal, decisionSeed: 1)
        let end = try await run(live, contacts: contacts)
        let before = try await snapshot(live, contacts: contacts, at: end)
        let liveStats = try await live.stats(tenant: DemoTenant.id)
        journal.close()
        #expect(before.count > contacts / 2)

        let reopened = try SQLiteJournal(path: path, mode: .fast)
        let recovered = Engine(journal: reopened)
        let report = try await recovered.recover()
        #expect(report.commandsReplayed > 72)
        #expect(report.eventsReplayed == 72 * 63)
        #expect(report.lastSequence == reopened.lastSequence)

        let after = try await snapshot(recovered, contacts: contacts, at: end)
        #expect(after.count == before.count)
        for (key, view) in before {
            #expect(after[key] == view, "\(key) differs after recovery")
        }
        let recoveredStats = try await recovered.stats(tenant: DemoTenant.id)
        #expect(recoveredStats == liveStats)
        let liveArms = try live.optimizerStatistics(tenant: DemoTenant.id, placement: "pricing-cta")
        #expect(liveArms.values.map(\.trials).reduce(0, +) == 72 * 2)
        #expect(try recovered.optimizerStatistics(tenant: DemoTenant.id, placement: "pricing-cta") == liveArms)
        #expect(
            try await recovered.experimentResults(tenant: DemoTenant.id, experiment: "hero-headline")
                == (try await live.experimentResults(tenant: DemoTenant.id, experiment: "hero-headline")))
        #expect(try await recovered.definitions(tenant: DemoTenant.id, .segment).map(\.id).contains("clickers"))
        // Journeys: the same runs (in the contact views above), counts and outbox, message for message.
        for journey in ["trial-onboarding", "mql-nurture"] {
            let liveReport = try await live.journeyReport(tenant: DemoTenant.id, journey: journey)
            #expect(liveReport.entered > 0)
            #expect(try await recovered.journeyReport(tenant: DemoTenant.id, journey: journey) == liveReport)
        }
        let liveOutbox = try live.outbox(tenant: DemoTenant.id, limit: 10_000)
        #expect(!liveOutbox.isEmpty)
        #expect(try recovered.outbox(tenant: DemoTenant.id, limit: 10_000) == liveOutbox)

        // The same commands on an engine without a journal give the same state, and the
        // timers armed by the replayed state fire as they do there.
        let reference = Engine(decisionSeed: 1)
        _ = try await run(reference, contacts: contacts)
        #expect(try await snapshot(reference, contacts: contacts, at: end) == after)
        let referenceLater = await reference.advanceTime(to: end + .days(10)).map { "\($0.effect.contact) \($0.effect.kind)" }
        let recoveredLater = await recovered.advanceTime(to: end + .days(10)).map { "\($0.effect.contact) \($0.effect.kind)" }
        #expect(!recoveredLater.isEmpty)
        #expect(referenceLater.sorted() == recoveredLater.sorted())
        #expect(try await reference.stats(tenant: DemoTenant.id) == (try await recovered.stats(tenant: DemoTenant.id)))
    }

    /// Replay joins runs of ingest commands into one batch; here every command is one event,
    /// anonymous visitors identify (merges) among them, timers fire and a segment is defined
    /// between them, and a `group` call changes an account: the state must be what live
    /// command-by-command application built.
    @Test func replayOfOneEventCommandsMatchesLiveApplication() async throws {
        var merges = 0
        let (live, recovered) = try await liveAndReplayed(contacts: 60, seed: 11, commands: 3_000) { live, step, traffic in
            let now = start + .minutes(Int64(step))
            if step % 97 == 0 { await live.advanceTime(to: now) }
            if step == 1_500 {
                try await live.defineSegment(
                    tenant: DemoTenant.id,
                    try JSONValue.parse(#"{"id": "clickers", "condition": {"event": "Email Link Clicked", "count": {"op": "gte", "value": 2}, "within": {"days": 1}}}"#),
                    now: now)
            }
            let event = step == 2_000
                ? Event.group("acct-1", userId: "user-2", traits: ["plan": "enterprise"], at: now)
                : traffic.next(at: now)
            let report = try await live.ingest(tenant: DemoTenant.id, events: [event], now: now)
            merges += report.effects.filter { if case .merged = $0.kind { return true } else { return false } }.count
        }
        #expect(merges > 3, "the traffic should merge some anonymous profiles")
        for journey in ["trial-onboarding", "mql-nurture"] {
            #expect(
                try await recovered.journeyReport(tenant: DemoTenant.id, journey: journey)
                    == (try await live.journeyReport(tenant: DemoTenant.id, journey: journey)))
        }
        #expect(try recovered.outbox(tenant: DemoTenant.id, limit: 10_000) == (try live.outbox(tenant: DemoTenant.id, limit: 10_000)))
        // Today's counts are kept in 15-minute buckets; every bucket boundary gives the same totals.
        for quarter in stride(from: Int64(0), through: 3_000 / 15, by: 1) {
            let since = start + .minutes(quarter * 15)
            #expect(try recovered.activity(tenant: DemoTenant.id, since: since) == (try live.activity(tenant: DemoTenant.id, since: since)))
        }
    }

    /// Writers side by side journal commands whose times go back and forth across a bucket's
    /// end; replay batches them across it and still counts each command in its own bucket.
    @Test func commandsStraddlingABucketEndCountWhereTheyWereLive() async throws {
        let (live, recovered) = try await liveAndReplayed(contacts: 40, seed: 5, commands: 2_000) { live, step, traffic in
            // Two writers, one about 11 minutes behind the other: every bucket end is crossed
            // by one while the other is still before it.
            let ahead = start + .seconds(Int64(step) * 3)
            let now = step % 2 == 0 ? ahead : ahead - .minutes(11)
            _ = try await live.ingest(tenant: DemoTenant.id, events: [traffic.next(at: now)], now: now)
        }
        var stageEntries = 0
        for quarter in stride(from: Int64(-1), through: 8, by: 1) {
            let since = start + .minutes(quarter * 15)
            let replayed = try recovered.activity(tenant: DemoTenant.id, since: since)
            #expect(replayed == (try live.activity(tenant: DemoTenant.id, since: since)), "since quarter \(quarter)")
            if quarter == -1 {
                #expect(replayed.events == 2_000)
                stageEntries = replayed.stages.values.reduce(0, +)
            }
        }
        #expect(stageEntries > 0, "the traffic should move some contacts to a lifecycle stage")
    }

    /// A journaled engine with the demo tenant, `step` run for each of `commands` steps (each
    /// ingests one command of one event), and a fresh engine recovered from its journal; checks
    /// that every command was replayed and that contacts (as seen three days after the start)
    /// and statistics came back as they were, and returns both engines for more checks.
    func liveAndReplayed(
        contacts: Int, seed: UInt64, commands: Int,
        _ step: (Engine, Int, inout DemoTraffic) async throws -> Void
    ) async throws -> (live: Engine, recovered: Engine) {
        let directory = try TemporaryDirectory()
        let path = directory.path + "/journal.sqlite"
        let journal = try SQLiteJournal(path: path, mode: .fast)
        let live = Engine(journal: journal, decisionSeed: 1)
        try await DemoTenant.install(into: live, now: start)
        var traffic = DemoTraffic(contacts: contacts, seed: seed)
        for index in 0..<commands { try await step(live, index, &traffic) }
        let end = start + .days(3)
        let before = try await snapshot(live, contacts: contacts, at: end)
        let liveStats = try await live.stats(tenant: DemoTenant.id)
        journal.close()

        let recovered = Engine(journal: try SQLiteJournal(path: path, mode: .fast))
        #expect(try await recovered.recover().eventsReplayed == commands)
        #expect(try await snapshot(recovered, contacts: contacts, at: end) == before)
        #expect(try await recovered.stats(tenant: DemoTenant.id) == liveStats)
        return (live, recovered)
    }

    @Test func snapshotPlusJournalTailRebuildsTheSameState() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.path + "/journal.sqlite"
        let contacts = 200
        let journal = try SQLiteJournal(path: path, mode: .fast)
        let live = Engine(journal: journal, decisionSeed: 1)
        var captured: EngineSnapshot?
        var viewsAtSnapshot: [String: ContactView] = [:]
        var indexesAtSnapshot = ""
        let end = try await run(live, contacts: contacts, snapshotAt: 40) { engine in
            captured = try await engine.snapshot()
            viewsAtSnapshot = try await snapshot(engine, contacts: contacts, at: start + .hours(41))
            indexesAtSnapshot = try await indexes(engine, contacts: contacts, at: start + .hours(41))
        }
        journal.close()
        let bytes = try #require(captured?.bytes)
        #expect(captured?.tenants == 1)

        // The snapshot alone is the state at hour 40.
        let atSnapshot = Engine()
        let restored = try await atSnapshot.restore(snapshot: bytes)
        #expect(restored.contacts == captured?.contacts)
        #expect(try await snapshot(atSnapshot, contacts: contacts, at: start + .hours(41)) == viewsAtSnapshot)
        // So are the indexes rebuilt beside the contacts: segment members and the email index.
        #expect(indexesAtSnapshot.contains("@"))
        #expect(try await indexes(atSnapshot, contacts: contacts, at: start + .hours(41)) == indexesAtSnapshot)

        // Snapshot + the journal after it = the end state; only the tail is replayed.
        let recovered = Engine(journal: try SQLiteJournal(path: path, mode: .fast))
        _ = try await recovered.restore(snapshot: bytes)
        let report = try await recovered.recover()
        #expect(report.eventsReplayed == (72 - 41) * 63)
        let reference = Engine(decisionSeed: 1)
        _ = try await run(reference, contacts: contacts)
        #expect(try await snapshot(recovered, contacts: contacts, at: end) == (try await snapshot(reference, contacts: contacts, at: end)))
        #expect(try await recovered.stats(tenant: DemoTenant.id) == (try await reference.stats(tenant: DemoTenant.id)))
        let referenceLater = await reference.advanceTime(to: end + .days(10)).map { "\($0.effect.contact) \($0.effect.kind)" }
        let recoveredLater = await recovered.advanceTime(to: end + .days(10)).map { "\($0.effect.contact) \($0.effect.kind)" }
        #expect(referenceLater.sorted() == recoveredLater.sorted())
        for journey in ["trial-onboarding", "mql-nurture"] {
            #expect(
                try await recovered.journeyReport(tenant: DemoTenant.id, journey: journey)
                    == (try await reference.journeyReport(tenant: DemoTenant.id, journey: journey)))
        }
        #expect(try recovered.outbox(tenant: DemoTenant.id, limit: 10_000) == reference.outbox(tenant: DemoTenant.id, limit: 10_000))
        // Definition history survives the snapshot.
        #expect(try await recovered.definitionHistory(tenant: DemoTenant.id, .segment, id: "trial-pricing").count == 2)
    }

    /// Replaying the whole journal from empty gives the live engine's state byte for byte:
    /// both snapshots are identical.
    @Test func replayIsByteIdenticalToTheLiveEngine() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.path + "/journal.sqlite"
        let journal = try SQLiteJournal(path: path, mode: .fast)
        let live = Engine(journal: journal, decisionSeed: 1)
        _ = try await run(live, contacts: 150)
        let liveBytes = try await live.snapshot().bytes
        journal.close()

        let replayed = Engine(journal: try SQLiteJournal(path: path, mode: .fast))
        _ = try await replayed.recover()
        let replayedBytes = try await replayed.snapshot().bytes
        #expect(liveBytes.count > 10_000)
        #expect(liveBytes.count == replayedBytes.count)
        let firstDifference = zip(liveBytes, replayedBytes).enumerated().first { $0.element.0 != $0.element.1 }?.offset
        #expect(firstDifference == nil, "first difference at byte \(firstDifference ?? -1): \(String(decoding: liveBytes[max(0, (firstDifference ?? 0) - 80)..<min(liveBytes.count, (firstDifference ?? 0) + 40)].map { $0 >= 32 && $0 < 127 ? $0 : 46 }, as: UTF8.self))")
    }

    /// A snapshot taken while ingest goes on holds every contact as it was at the snapshot's
    /// point: the snapshot alone equals a replay of the journal up to that point, and the
    /// snapshot plus the journal after it equals the live engine byte for byte.
    @Test func aSnapshotTakenWhileIngestRunsIsExactAtItsPoint() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.path + "/journal.sqlite"
        let journal = try SQLiteJournal(path: path, mode: .fast)
        let live = Engine(journal: journal, decisionSeed: 1)
        try await DemoTenant.install(into: live, now: start)
        let contacts = 500
        var traffic = DemoTraffic(contacts: contacts, seed: 5)
        func batches(_ count: Int, from minute: Int) -> [(events: [Event], now: Timestamp)] {
            (0..<count).map { index in
                let now = start + .minutes(Int64(minute + index))
                return ((0..<50).map { _ in traffic.next(at: now) }, now)
            }
        }
        for batch in batches(20, from: 0) { _ = try await live.ingest(tenant: DemoTenant.id, events: batch.events, now: batch.now) }

        // Commands applied between the freeze and the reading of the contacts (the tenant must
        // be free to apply them, or this would never return), and a feeder running alongside.
        let during = batches(10, from: 20)
        let alongside = batches(100, from: 30)
        let feeder = Task {
            for batch in alongside { _ = try await live.ingest(tenant: DemoTenant.id, events: batch.events, now: batch.now) }
        }
        let snapshot = try await live.snapshot(afterFreezing: { tenant in
            for batch in during { _ = try? await live.ingest(tenant: tenant, events: batch.events, now: batch.now) }
        })
        try await feeder.value
        let end = start + .minutes(300)
        let lastSequence = journal.lastSequence
        let liveBytes = try await live.snapshot().bytes
        journal.close()
        #expect(snapshot.contacts > contacts / 2)
        #expect(snapshot.startSequence < lastSequence - UInt64(during.count))

        // The snapshot alone is the journal replayed up to its point.
        let restored = Engine()
        _ = try await restored.restore(snapshot: snapshot.bytes)
        let replayedToPoint = Engine(journal: try SQLiteJournal(path: path, mode: .fast))
        _ = try await replayedToPoint.recover(upTo: snapshot.startSequence)
        #expect(try await self.snapshot(restored, contacts: contacts, at: end) == (try await self.snapshot(replayedToPoint, contacts: contacts, at: end)))
        let restoredStats = try await restored.stats(tenant: DemoTenant.id)
        let replayedStats = try await replayedToPoint.stats(tenant: DemoTenant.id)
        #expect(restoredStats == replayedStats)

        // Snapshot + journal tail = the live engine, byte for byte.
        let recovered = Engine(journal: try SQLiteJournal(path: path, mode: .fast))
        _ = try await recovered.restore(snapshot: snapshot.bytes)
        let report = try await recovered.recover()
        #expect(report.eventsReplayed > (during.count + alongside.count) * 50 / 2)
        let recoveredBytes = try await recovered.snapshot().bytes
        #expect(liveBytes.count == recoveredBytes.count)
        #expect(liveBytes == recoveredBytes)
    }

    /// A snapshot of more contacts than one chunk holds is decoded chunk by chunk, on every core,
    /// straight from the file's bytes: every contact, identity, address, membership and timer
    /// comes back, and the restored engine snapshots to the same bytes.
    @Test func aSnapshotOfManyChunksRestoresExactly() async throws {
        let live = Engine(decisionSeed: 1)
        try await DemoTenant.install(into: live, now: start)
        let contacts = Engine.snapshotChunk * 2 + 500
        var traffic = DemoTraffic(contacts: contacts, seed: 11)
        for first in stride(from: 0, to: contacts, by: 1000) {
            let identified = (first..<min(first + 1000, contacts)).map { contact in
                Event.identify(
                    userId: "user-\(contact)", anonymousId: "anon-\(contact)",
                    traits: ["email": .string("person\(contact)@example.com"), "plan": contact % 3 == 0 ? "trial" : "free"], at: start)
            }
            _ = try await live.ingest(tenant: DemoTenant.id, events: identified + (0..<1000).map { _ in traffic.next(at: start) }, now: start)
        }
        let snapshot = try await live.snapshot()
        #expect(snapshot.contacts >= contacts)

        let restored = Engine()
        let counts = try await restored.restore(snapshot: snapshot.bytes)
        #expect(counts.contacts == snapshot.contacts)
        #expect(try await restored.snapshot().bytes == snapshot.bytes)
        #expect(try await restored.stats(tenant: DemoTenant.id) == (try await live.stats(tenant: DemoTenant.id)))
        for contact in [0, Engine.snapshotChunk - 1, Engine.snapshotChunk, contacts - 1] {
            let liveView = try #require(try await live.contact(tenant: DemoTenant.id, .userId("user-\(contact)"), now: start))
            let byAnonymousId = try await restored.contact(tenant: DemoTenant.id, .anonymousId("anon-\(contact)"), now: start)
            #expect(byAnonymousId == liveView)
            guard case .string(let email)? = liveView.traits["email"] else {
                Issue.record("user-\(contact) has no email")
                continue
            }
            #expect(try await restored.contact(tenant: DemoTenant.id, .email(email), now: start)?.userId == "user-\(contact)")
        }
    }

    @Test func deduplicationSurvivesARestart() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.path + "/journal.sqlite"
        let journal = try SQLiteJournal(path: path)
        let engine = Engine(journal: journal, decisionSeed: 1)
        try await DemoTenant.install(into: engine, now: start)
        let event = Event.track("Demo Requested", userId: "ana", messageId: "m-42", at: start)
        #expect(try await engine.ingest(tenant: DemoTenant.id, events: [event], now: start).results == [.applied])
        // Several events in one command, ids of any characters, one event with none.
        let batch = [
            Event.page("Pricing", userId: "bo", messageId: "Ünïcode-ä-🙂", at: start),
            Event.page("Docs", userId: "bo", at: start),
            Event.track("Signed Up", userId: "cy", messageId: String(repeating: "long-", count: 40), at: start),
        ]
        #expect(try await engine.ingest(tenant: DemoTenant.id, events: batch, now: start).results == [.applied, .applied, .applied])
        journal.close()

        let recovered = Engine(journal: try SQLiteJournal(path: path))
        _ = try await recovered.recover()
        // A client retrying after the restart is acknowledged, not applied twice.
        #expect(try await recovered.ingest(tenant: DemoTenant.id, events: [event], now: start + .minutes(5)).results == [.duplicate])
        #expect(
            try await recovered.ingest(tenant: DemoTenant.id, events: batch, now: start + .minutes(5)).results
                == [.duplicate, .applied, .duplicate])
        let ana = try #require(try await recovered.contact(tenant: DemoTenant.id, .userId("ana"), now: start))
        #expect(ana.score("engagement")?.score == 50)
    }

    @Test func aFullDiskRefusesTheChangeAndLosesNothing() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.path + "/journal.sqlite"
        let journal = try SQLiteJournal(path: path)
        let engine = Engine(journal: journal, decisionSeed: 1)
        try await DemoTenant.install(into: engine, now: start)
        _ = try await engine.ingest(tenant: DemoTenant.id, events: [.track("Signed Up", userId: "bo", at: start)], now: start)

        let pages = try #require(try journalConnection(path).singleInteger("PRAGMA page_count"))
        try journalWriterLimit(journal, pages: pages)
        let big: [String: JSONValue] = ["blob": .string(String(repeating: "x", count: 2_000_000))]
        let event = Event.track("Demo Requested", userId: "bo", properties: big, messageId: "m-7", at: start)
        do {
            _ = try await engine.ingest(tenant: DemoTenant.id, events: [event], now: start)
            Issue.record("ingest succeeded on a full disk")
        } catch {
            #expect(error.code == .unavailable)
            #expect(error.message.contains("could not be made durable"))
        }
        // Not applied, and reads keep working.
        let bo = try #require(try await engine.contact(tenant: DemoTenant.id, .userId("bo"), now: start))
        #expect(bo.scoreHistory.allSatisfy { $0.rule != "demo-request" })

        // Space comes back: the client's retry (same messageId) is applied exactly once.
        try journalWriterLimit(journal, pages: 1_000_000)
        #expect(try await engine.ingest(tenant: DemoTenant.id, events: [event], now: start).results == [.applied])
        #expect(try await engine.ingest(tenant: DemoTenant.id, events: [event], now: start).results == [.duplicate])
        journal.close()

        let recovered = Engine(journal: try SQLiteJournal(path: path))
        _ = try await recovered.recover()
        let replayed = try #require(try await recovered.contact(tenant: DemoTenant.id, .userId("bo"), now: start))
        #expect(replayed == (try await engine.contact(tenant: DemoTenant.id, .userId("bo"), now: start)))
    }
}

/// Limits, shared templates, key rotation, imports, deleted tenants and activity counts come
/// back the same from the journal alone and from a snapshot.
@Suite struct TenancyRecoveryTests {
    let start = Timestamp(iso8601: "2026-03-02T09:00:00Z")!

    func drive(_ engine: Engine) async throws -> (oldKey: String, newKey: String) {
        try await DemoTenant.install(into: engine, tenant: "a", now: start)
        try await engine.createTenant(id: "b", now: start)
        try await engine.setLimits(tenant: "a", ["maxContacts": 1000, "requestsPerSecond": 50, "corsOrigins": ["https://a.example.com"]], now: start)
        try await engine.defineTemplate(
            tenant: "a", ["id": "hello", "channel": "email", "subject": "Hello {{traits.name}}", "body": "Hi"], now: start)
        try await engine.defineJourney(
            tenant: "a", ["id": "greet", "trigger": ["event": "Greet Me"], "nodes": [["id": "m", "type": "send", "template": "hello", "next": "e"], ["id": "e", "type": "exit"]]],
            now: start)
        try await engine.setJourneyStatus(tenant: "a", journey: "greet", .active, now: start)
        let oldKey = try await engine.createKey(tenant: "a", scope: .write, now: start)
        let rotated = try await engine.rotateKey(tenant: "a", label: String(oldKey.prefix(11)), overlap: .hours(1), now: start + .minutes(1))
        let rows = (0..<50).map { ImportRow(line: $0 + 2, userId: "u\($0)", traits: ["email": .string("U\($0)@a.io"), "name": .string("N\($0)")]) }
        let imported = try await engine.importContacts(tenant: "a", rows: rows, importId: "one", now: start + .minutes(2))
        #expect(imported.imported == 50)
        _ = try await engine.ingest(tenant: "a", events: [.track("Greet Me", userId: "u1", at: start + .minutes(3))], now: start + .minutes(3))
        try await engine.defineTemplate(
            tenant: "a", ["id": "hello", "channel": "email", "subject": "Hey {{traits.name}}", "body": "Hi"], now: start + .minutes(4))
        _ = try await engine.ingest(tenant: "a", events: [.track("Greet Me", userId: "u2", at: start + .minutes(5))], now: start + .minutes(5))
        _ = try await engine.ingest(tenant: "b", events: [.track("X", userId: "b1", at: start)], now: start + .minutes(5))
        try await engine.deleteTenant(id: "b", now: start + .minutes(6))
        return (oldKey, rotated.key)
    }

    func check(_ engine: Engine, keys: (oldKey: String, newKey: String)) async throws {
        #expect(engine.tenantIds == ["a"])
        #expect(try engine.limits(tenant: "a") == TenantLimits(requestsPerSecond: 50, maxContacts: 1000, corsOrigins: ["https://a.example.com"]))
        #expect(try await engine.contact(tenant: "a", .email("u7@A.IO"), now: start)?.userId == "u7")
        #expect(engine.tenant(forKey: keys.oldKey, scope: .write, at: start + .minutes(30)) == "a")
        #expect(engine.tenant(forKey: keys.oldKey, scope: .write, at: start + .hours(2)) == nil)
        #expect(engine.tenant(forKey: keys.newKey, scope: .write, at: start + .hours(2)) == "a")
        #expect(try engine.outbox(tenant: "a").map { $0.message.fields["subject"] ?? "" } == ["Hello N1", "Hey N2"])
        #expect(try engine.activity(tenant: "a", since: start).events == 52)
        #expect(try await engine.definitionHistory(tenant: "a", .template, id: "hello").count == 2)
    }

    @Test func tenancyChangesReplayAndSnapshotExactly() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.path + "/journal.sqlite"
        let journal = try SQLiteJournal(path: path, mode: .fast)
        let live = Engine(journal: journal, decisionSeed: 1)
        let keys = try await drive(live)
        try await check(live, keys: keys)
        let liveBytes = try await live.snapshot().bytes
        journal.close()

        let replayed = Engine(journal: try SQLiteJournal(path: path, mode: .fast))
        _ = try await replayed.recover()
        try await check(replayed, keys: keys)
        #expect(try await replayed.snapshot().bytes == liveBytes)

        let restored = Engine()
        _ = try await restored.restore(snapshot: liveBytes)
        try await check(restored, keys: keys)
    }
}
