import Benchmark
import BenchmarkWorkload
import KairosCore
import KairosEngine

/// `decide` for 3 placements (targeting rules with templates, an experiment, an optimizer) on
/// contacts with 20 traits: one iteration is 1,000 decisions by one caller, so the wall-clock
/// percentiles divided by 1,000 are per-decision times; a second benchmark uses 2 callers.
func decideBenchmarks() {
    for callers in [1, 2] {
        let prepared = Prepared()
        let placements = ["hero", "pricing-cta", "sidebar"]
        let context = RequestContext(url: "https://shop.test/pricing?utm_source=google&utm_campaign=spring", userAgent: "Mozilla/5.0")
        Benchmark(
            "Decide, 3 placements, 1,000 decisions, \(callers) caller\(callers == 1 ? "" : "s")",
            configuration: .init(metrics: [.wallClock, .throughput], maxDuration: .seconds(10), maxIterations: 200, setup: {
                let engine = try await Workload.makeEngine(Engine(decisionSeed: 1))
                try await Workload.populate(engine, contacts: 100_000)
                try await Workload.prepareDecisions(engine, contacts: 100_000)
                prepared.engine = engine
            })
        ) { benchmark in
            let engine = prepared.engine!
            var random = SeededRandom(seed: UInt64(prepared.now.milliseconds))
            prepared.now = prepared.now + .seconds(1)
            let popularity = ZipfDistribution(count: 100_000)
            let ids = (0..<1000).map { _ in "user-\(popularity.sample(&random))" }
            let now = prepared.now
            benchmark.startMeasurement()
            await withTaskGroup(of: Void.self) { group in
                for caller in 0..<callers {
                    group.addTask {
                        for index in stride(from: caller, to: ids.count, by: callers) {
                            blackHole(
                                try? await engine.decide(
                                    tenant: Workload.tenant, visitor: Visitor(userId: ids[index]), context: context,
                                    placements: placements, now: now))
                        }
                    }
                }
            }
            benchmark.stopMeasurement()
        }
    }
}
