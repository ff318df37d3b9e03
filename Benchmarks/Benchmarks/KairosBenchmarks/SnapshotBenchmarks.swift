import Benchmark
import Foundation
import BenchmarkWorkload
import KairosCore
import KairosEngine
@_spi(Benchmarks) import KairosStore

/// Snapshots of 1,000,000 contacts (10 traits each, in the 50-segment benchmark tenant):
/// capture and encode, write to disk (checksummed, synced), and restore.
func snapshotBenchmarks() {
    let megabytes = BenchmarkMetric.custom("snapshot size (MB)", polarity: .prefersSmaller, useScalingFactor: false)
    let shared = Prepared()
    nonisolated(unsafe) var bytes = ReadOnlyBytes(copying: [])
    Benchmark(
        "Snapshot of 1M contacts: capture, encode and write",
        configuration: .init(
            metrics: [.wallClock, megabytes, .peakMemoryResident], warmupIterations: 0, maxIterations: 3,
            setup: {
                let engine = try await Workload.makeEngine()
                try await Workload.populate(engine, contacts: 1_000_000)
                shared.engine = engine
            })
    ) { benchmark in
        let directory = NSTemporaryDirectory() + "kairos-bench-snapshots-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let snapshot = try await shared.engine!.snapshot()
        try SnapshotStore(directory: directory).write(snapshot.bytes, sequence: snapshot.startSequence, at: Workload.start)
        bytes = ReadOnlyBytes(copying: snapshot.bytes)
        benchmark.measurement(megabytes, snapshot.bytes.count / 1_000_000)
    }
    Benchmark(
        "Snapshot of 1M contacts: restore",
        configuration: .init(
            metrics: [.wallClock], warmupIterations: 0, maxIterations: 3,
            setup: {
                let engine = try await Workload.makeEngine()
                try await Workload.populate(engine, contacts: 1_000_000)
                bytes = ReadOnlyBytes(copying: try await engine.snapshot().bytes)
            })
    ) { benchmark in
        let engine = Engine()
        benchmark.startMeasurement()
        let restored = try await engine.restore(snapshot: bytes)
        benchmark.stopMeasurement()
        precondition(restored.contacts == 1_000_000)
        // Freeing a million actors is not part of a restore: keep this engine until the next round.
        shared.engine = engine
    }
}
