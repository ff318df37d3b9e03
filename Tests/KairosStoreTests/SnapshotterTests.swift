import Foundation
import KairosCore
import KairosEngine
import Synchronization
import Testing
@testable import KairosStore

@Suite struct SnapshotterTests {
    let start = Timestamp(iso8601: "2026-03-02T00:00:00Z")!

    @Test func dueByTimeOrByJournalGrowth() async throws {
        let directory = try TemporaryDirectory()
        let journal = try SQLiteJournal(path: directory.path + "/journal.sqlite")
        let engine = Engine(journal: journal)
        try await DemoTenant.install(into: engine, now: start)
        let snapshotter = Snapshotter(
            engine: engine, journal: journal, store: SnapshotStore(directory: directory.path + "/snapshots"),
            interval: .minutes(5), commands: 20)
        let base = journal.lastSequence
        #expect(!snapshotter.isDue(now: start + .minutes(4), lastTime: start, lastSequence: base))
        #expect(snapshotter.isDue(now: start + .minutes(5), lastTime: start, lastSequence: base))
        for index in 0..<20 {
            _ = try await engine.ingest(tenant: DemoTenant.id, events: [.track("E", userId: "u\(index)", at: start)], now: start)
        }
        #expect(snapshotter.isDue(now: start, lastTime: start, lastSequence: base))
        let entry = try await snapshotter.snapshotNow(at: start)
        #expect(entry.sequence == journal.lastSequence)
        // The journal before the snapshot is gone, but for its newest record.
        var kept = 0
        try journal.read(from: 1) { _ in kept += 1 }
        #expect(kept == 1)
    }

    @Test func runsOnItsOwnWhileIngestContinues() async throws {
        let directory = try TemporaryDirectory()
        let journal = try SQLiteJournal(path: directory.path + "/journal.sqlite", mode: .fast)
        let engine = Engine(journal: journal)
        try await DemoTenant.install(into: engine, now: start)
        let store = SnapshotStore(directory: directory.path + "/snapshots")
        let snapshotter = Snapshotter(engine: engine, journal: journal, store: store, interval: nil, commands: 10)
        let written = Mutex(0)
        let task = Task { await snapshotter.run(clock: SystemClock(), poll: .milliseconds(5)) { result in
            if case .success = result { written.withLock { $0 += 1 } }
        } }
        for index in 0..<60 {
            _ = try await engine.ingest(tenant: DemoTenant.id, events: [.track("E", userId: "u\(index % 7)", at: start)], now: start)
            try await Task.sleep(for: .milliseconds(2))
        }
        // Bounded wait for the last one.
        for _ in 0..<500 where written.withLock({ $0 }) < 2 { try await Task.sleep(for: .milliseconds(10)) }
        task.cancel()
        await task.value
        #expect(written.withLock { $0 } >= 2)

        // The newest snapshot plus the journal tail gives the live state.
        journal.close()
        let recovered = Engine(journal: try SQLiteJournal(path: directory.path + "/journal.sqlite"))
        let (_, payload) = try #require(try store.newestValid())
        _ = try await recovered.restore(snapshot: payload)
        _ = try await recovered.recover()
        for user in 0..<7 {
            let live = try await engine.contact(tenant: DemoTenant.id, .userId("u\(user)"), now: start)
            #expect(try await recovered.contact(tenant: DemoTenant.id, .userId("u\(user)"), now: start) == live)
        }
    }
}
