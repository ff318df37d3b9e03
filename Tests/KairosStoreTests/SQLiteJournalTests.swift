import Synchronization
import Foundation
import KairosCore
import KairosEngine
import Testing
@testable import KairosStore

/// A fresh directory per test, removed afterwards.
final class TemporaryDirectory {
    let path: String
    init() throws {
        path = NSTemporaryDirectory() + "kairos-store-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

func record(_ index: Int, tenant: String = "demo") -> JournalRecord {
    JournalRecord(
        time: Timestamp(milliseconds: 1_700_000_000_000 + Int64(index)), tenant: tenant, kind: 1,
        payload: Array("event \(index)".utf8))
}

@Suite struct SQLiteJournalTests {
    @Test(arguments: DurabilityMode.allCases)
    func appendsInOrderAndReadsBack(mode: DurabilityMode) async throws {
        let directory = try TemporaryDirectory()
        let path = directory.path + "/journal.sqlite"
        let journal = try SQLiteJournal(path: path, mode: mode)
        let first = try await journal.append((0..<3).map { record($0) })
        #expect(first.map(\.sequence) == [1, 2, 3])
        let second = try await journal.append([record(3, tenant: "other")])
        #expect(second.map(\.sequence) == [4])
        #expect(journal.lastSequence == 4)
        journal.close()

        // A new process continues where the file ends.
        let reopened = try SQLiteJournal(path: path, mode: mode)
        #expect(reopened.lastSequence == 4)
        #expect(try await reopened.append([record(4)]).first?.sequence == 5)
        var read: [JournalRecord] = []
        try reopened.read(from: 2) { read.append($0) }
        #expect(read.map(\.sequence) == [2, 3, 4, 5])
        #expect(read[2].tenant == "other")
        #expect(read[0].payload == Array("event 1".utf8))
        #expect(read[0].time == Timestamp(milliseconds: 1_700_000_000_001))
    }

    /// Under sustained appends the write-ahead log is copied into the database file as it
    /// goes (by the checkpointing connection, or by the writer when that one falls behind), so
    /// the log stays a few megabytes however much is appended, and every record reads back.
    @Test(arguments: DurabilityMode.allCases)
    func theLogStaysBoundedUnderSustainedAppends(mode: DurabilityMode) async throws {
        let directory = try TemporaryDirectory()
        let path = directory.path + "/journal.sqlite"
        let journal = try SQLiteJournal(path: path, mode: mode)
        let payload = [UInt8](repeating: 7, count: 1_000)
        var largestLog = 0
        for round in 0..<80 {
            let records = (0..<1_000).map { _ in
                JournalRecord(time: Timestamp(milliseconds: Int64(round)), tenant: "demo", kind: 1, payload: payload)
            }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for part in stride(from: 0, to: records.count, by: 100) {
                    group.addTask { _ = try await journal.append(Array(records[part..<part + 100])) }
                }
                try await group.waitForAll()
            }
            let log = (try FileManager.default.attributesOfItem(atPath: path + "-wal")[.size] as? Int) ?? 0
            largestLog = max(largestLog, log)
        }
        let database = (try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
        // 80 MB appended: most of it is in the database file before the journal closes, and
        // the log never held more than the writer's own limit (8,000 pages of 4 KiB) and a round.
        #expect(database > 40_000_000)
        #expect(largestLog < SQLiteJournal.writerCheckpointPages * 4_096 + 8_000_000)
        var count = 0
        try journal.read(from: 1) { record in
            if record.payload == payload { count += 1 }
        }
        #expect(count == 80_000)
        journal.close()
    }

    @Test func readsAtMostALimit() async throws {
        let directory = try TemporaryDirectory()
        let journal = try SQLiteJournal(path: directory.path + "/journal.sqlite", mode: .fast)
        _ = try await journal.append((0..<10).map { record($0) })
        var read: [UInt64] = []
        try journal.read(from: 4, limit: 3) { read.append($0.sequence) }
        #expect(read == [4, 5, 6])
        read = []
        try journal.read(from: 9, limit: 3) { read.append($0.sequence) }
        #expect(read == [9, 10])
    }

    /// A slice holds its records' payloads in one buffer, reused from read to read: each entry
    /// finds its own bytes, and a second read replaces the first.
    @Test func readsASliceIntoOneBuffer() async throws {
        let directory = try TemporaryDirectory()
        let journal = try SQLiteJournal(path: directory.path + "/journal.sqlite", mode: .fast)
        _ = try await journal.append((0..<10).map { record($0, tenant: $0 == 5 ? "other" : "demo") })
        _ = try await journal.append([JournalRecord(time: Timestamp(milliseconds: 7), tenant: "demo", kind: 2, payload: [])])
        var slice = JournalSlice()
        try journal.read(from: 4, limit: 3, into: &slice)
        #expect(slice.entries.map(\.sequence) == [4, 5, 6])
        #expect(slice.entries.map(\.tenant) == ["demo", "demo", "other"])
        for entry in slice.entries {
            let written = record(Int(entry.sequence) - 1, tenant: entry.tenant)
            #expect(Array(slice.bytes[entry.payload]) == written.payload)
            #expect(entry.time == written.time && entry.kind == written.kind)
        }
        try journal.read(from: 10, limit: 5, into: &slice)
        #expect(slice.entries.map(\.sequence) == [10, 11])
        #expect(slice.entries[1].payload.isEmpty && slice.entries[1].kind == 2)
        #expect(slice.bytes.count == "event 9".utf8.count)
    }

    /// Recovery reads the journal in slices of 10,000: every command of a longer journal is
    /// replayed once, and a replay up to a sequence stops there, inside a slice or not.
    @Test func recoveryReplaysAJournalLongerThanASliceOnce() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.path + "/journal.sqlite"
        let journal = try SQLiteJournal(path: path, mode: .fast)
        let engine = Engine(journal: journal)
        let start = Timestamp(iso8601: "2026-03-02T00:00:00Z")!
        try await engine.createTenant(id: "t", now: start)
        for index in 0..<10_100 {
            _ = try await engine.ingest(tenant: "t", events: [.track("E", userId: "u\(index % 100)", at: start)], now: start)
        }
        journal.close()

        let recovered = Engine(journal: try SQLiteJournal(path: path, mode: .fast))
        let reported = Mutex<[UInt64]>([])
        let report = try await recovered.recover { sequence in reported.withLock { $0.append(sequence) } }
        // Progress comes as the replay goes (a report within the first slice's 10,000 records,
        // through the last command handed over to be applied), rising, ending at the last.
        let progress = reported.withLock { $0 }
        #expect(progress.count == 2 && progress[0] < 10_000 && progress.last == 10_101, "\(progress)")
        #expect(report.commandsReplayed == 10_101)
        #expect(report.eventsReplayed == 10_100)
        #expect(report.lastSequence == 10_101)
        for user in ["u0", "u7", "u99"] {
            let live = try #require(try await engine.contact(tenant: "t", .userId(user), now: start))
            #expect(try await recovered.contact(tenant: "t", .userId(user), now: start) == live)
        }

        let partial = Engine(journal: try SQLiteJournal(path: path, mode: .fast))
        let partialReports = Mutex<[UInt64]>([])
        let upTo = try await partial.recover(upTo: 10_050) { sequence in partialReports.withLock { $0.append(sequence) } }
        #expect(upTo.lastSequence == 10_050 && upTo.eventsReplayed == 10_049)
        // Progress ends where the replay stopped, inside the second slice.
        #expect(partialReports.withLock { $0 } == [progress[0], 10_050])
        // Exactly the first 10,049 events are applied (sequence 1 created the tenant): event
        // 10,048 was u48's 101st, u49 had 100 by then.
        for (user, count) in [("u48", 101), ("u49", 100), ("u0", 101)] {
            let view = try #require(try await partial.contact(tenant: "t", .userId(user), now: start))
            #expect(view.eventCounts.first { $0.event == "track:E" }?.total == count, "\(user)")
        }
    }

    @Test func concurrentAppendsGetGapFreeUniqueSequences() async throws {
        let directory = try TemporaryDirectory()
        let journal = try SQLiteJournal(path: directory.path + "/journal.sqlite", mode: .strict)
        let appended = try await withThrowingTaskGroup(of: [JournalRecord].self) { group in
            for task in 0..<16 {
                group.addTask { try await journal.append((0..<50).map { record(task * 50 + $0) }) }
            }
            var all: [JournalRecord] = []
            for try await part in group {
                // Each append's records stay together and in order.
                #expect(part.map(\.sequence) == Array(part[0].sequence..<part[0].sequence + 50))
                all += part
            }
            return all
        }
        #expect(appended.map(\.sequence).sorted() == Array(1...800))
        var count = 0
        try journal.read(from: 1) { _ in count += 1 }
        #expect(count == 800)
    }

    @Test func fullDiskIsAClearErrorAndNothingIsLost() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.path + "/journal.sqlite"
        let journal = try SQLiteJournal(path: path, mode: .strict)
        _ = try await journal.append([record(0)])
        // Cap the database file where it is, as a full disk would.
        let pages = try #require(try journalConnection(path).singleInteger("PRAGMA page_count"))
        try journalWriterLimit(journal, pages: pages)
        let big = JournalRecord(time: Timestamp(milliseconds: 0), tenant: "demo", kind: 1, payload: Array(repeating: 7, count: 1 << 20))
        do {
            _ = try await journal.append([big])
            Issue.record("a write past the limit succeeded")
        } catch let error as StoreError {
            #expect(error.code == .diskFull)
            #expect(error.description.contains("full"))
        }
        // Nothing half-written: the failed write's sequence stays a gap.
        #expect(journal.lastSequence == 1)
        try journalWriterLimit(journal, pages: 1_000_000)
        #expect(try await journal.append([record(1)]).first?.sequence == 3)
        var sequences: [UInt64] = []
        try journal.read(from: 1) { sequences.append($0.sequence) }
        #expect(sequences == [1, 3])
    }

    @Test func truncationKeepsSequencesGrowing() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.path + "/journal.sqlite"
        let journal = try SQLiteJournal(path: path)
        _ = try await journal.append((0..<5).map { record($0) })
        try journal.truncate(through: 5)
        journal.close()
        let reopened = try SQLiteJournal(path: path)
        #expect(try await reopened.append([record(5)]).first?.sequence == 6)
        var sequences: [UInt64] = []
        try reopened.read(from: 1) { sequences.append($0.sequence) }
        #expect(sequences == [5, 6])
    }

    @Test func closedJournalRefusesAppends() async throws {
        let directory = try TemporaryDirectory()
        let journal = try SQLiteJournal(path: directory.path + "/journal.sqlite")
        journal.close()
        await #expect(throws: StoreError.self) { _ = try await journal.append([record(0)]) }
    }

    @Test func unopenablePathIsAClearError() {
        #expect(throws: StoreError.self) { _ = try SQLiteJournal(path: "/nonexistent-dir/journal.sqlite") }
    }
}

func journalConnection(_ path: String) throws -> Connection { try Connection(path: path, readOnly: true) }

/// Sets SQLite's page limit on the journal's own writer connection (test hook).
func journalWriterLimit(_ journal: SQLiteJournal, pages: Int64) throws {
    try journal.withWriterForTesting { try $0.execute("PRAGMA max_page_count=\(pages)") }
}
