import Benchmark
import Foundation
import BenchmarkWorkload
import KairosCore
import KairosEngine
@_spi(Benchmarks) import KairosStore

/// Journal appends of ~200-byte records from 100 concurrent appenders of 100 records each
/// (one iteration = 10,000 records), in both durability modes.
func journalBenchmarks() {
    let recordsPerSecond = BenchmarkMetric.custom("records per second", polarity: .prefersLarger, useScalingFactor: false)
    for mode in DurabilityMode.allCases {
        let directory = NSTemporaryDirectory() + "kairos-bench-journal-\(mode.rawValue)-\(UUID().uuidString)"
        nonisolated(unsafe) var journal: SQLiteJournal?
        Benchmark(
            "Journal append, \(mode.rawValue) mode, 100 appenders × 100 records",
            configuration: .init(
                metrics: [.wallClock, recordsPerSecond],
                setup: {
                    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                    journal = try SQLiteJournal(path: directory + "/journal.sqlite", mode: mode)
                },
                teardown: {
                    journal?.close()
                    journal = nil
                    try? FileManager.default.removeItem(atPath: directory)
                })
        ) { benchmark in
            let target = journal!
            let payload = [UInt8](repeating: 42, count: 200)
            let batch = (0..<100).map { _ in
                JournalRecord(time: Timestamp(milliseconds: 0), tenant: "bench", kind: 1, payload: payload)
            }
            let started = ContinuousClock.now
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<100 { group.addTask { _ = try await target.append(batch) } }
                try await group.waitForAll()
            }
            let elapsed = ContinuousClock.now - started
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            benchmark.measurement(recordsPerSecond, Int(10_000 / seconds))
        }
    }
}

/// The same records through a bare prepared-INSERT loop (10,000 rows a transaction), in the
/// same run: the physical limit the journal is compared with.
func plainInsertBenchmarks() {
    let recordsPerSecond = BenchmarkMetric.custom("records per second", polarity: .prefersLarger, useScalingFactor: false)
    for synchronousFull in [false, true] {
        Benchmark(
            "Plain SQLite insert loop, synchronous=\(synchronousFull ? "FULL" : "NORMAL"), 10K rows a transaction",
            configuration: .init(metrics: [.wallClock, recordsPerSecond])
        ) { benchmark in
            let path = NSTemporaryDirectory() + "kairos-bench-plain-\(UUID().uuidString).sqlite"
            defer {
                for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
            }
            let rate = try PlainInsertLoop.run(path: path, rows: 10_000, perTransaction: 10_000, blobSize: 200, synchronousFull: synchronousFull)
            benchmark.measurement(recordsPerSecond, Int(rate))
        }
    }
}
