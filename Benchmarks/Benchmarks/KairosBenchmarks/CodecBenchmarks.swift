import Benchmark
import BenchmarkWorkload
import KairosCore
import KairosEngine

/// Encoding and decoding the benchmark mix's events; one iteration = 10,000 events.
func codecBenchmarks() {
    let nanosecondsPerEvent = BenchmarkMetric.custom("ns per event", polarity: .prefersSmaller, useScalingFactor: false)
    var stream = Workload.Stream(contacts: 100_000, seed: 11)
    let events = (0..<100).flatMap { _ in stream.batch(size: 100, at: Workload.start) }
    let encoded = events.encoded()
    func measure(_ benchmark: Benchmark, _ body: () throws -> Void) rethrows {
        let started = ContinuousClock.now
        try body()
        let elapsed = ContinuousClock.now - started
        let nanoseconds = Double(elapsed.components.seconds) * 1e9 + Double(elapsed.components.attoseconds) / 1e9
        benchmark.measurement(nanosecondsPerEvent, Int(nanoseconds / Double(events.count)))
    }
    Benchmark(
        "Event codec, encode (\(encoded.count / events.count) bytes per event)",
        configuration: .init(metrics: [.wallClock, nanosecondsPerEvent])
    ) { benchmark in
        measure(benchmark) { blackHole(events.encoded()) }
    }
    Benchmark("Event codec, decode", configuration: .init(metrics: [.wallClock, nanosecondsPerEvent])) { benchmark in
        try measure(benchmark) { blackHole(try [Event].decode(encoded)) }
    }
}
