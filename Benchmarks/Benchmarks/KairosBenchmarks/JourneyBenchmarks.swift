import Benchmark
import BenchmarkWorkload
import KairosCore
import KairosEngine

/// Journeys: 100,000 waits that lapse at the same instant (one iteration fires them all and
/// applies the send after each), and ingest with 10,000 active journeys that the events do not
/// trigger (compare with "Ingest mix, 100K contacts, 4 feeding tasks").
func journeyBenchmarks() {
    let lapse = Prepared()
    Benchmark(
        "Journeys, 100K waits lapsing at once",
        configuration: .init(metrics: [.wallClock], warmupIterations: 0, maxIterations: 5)
    ) { benchmark in
        let engine = Engine()
        try await engine.createTenant(id: Workload.tenant)
        try await engine.defineJourney(
            tenant: Workload.tenant, JSONValue.parse(Workload.waitingJourney(id: "drip", trigger: "Enrolled")), now: Workload.start)
        try await engine.setJourneyStatus(tenant: Workload.tenant, journey: "drip", .active, now: Workload.start)
        for first in stride(from: 0, to: 100_000, by: 10_000) {
            let events = (first..<first + 10_000).map { Event.track("Enrolled", userId: "user-\($0)", at: Workload.start) }
            _ = try await engine.ingest(tenant: Workload.tenant, events: events, now: Workload.start)
        }
        lapse.engine = engine
        benchmark.startMeasurement()
        let fired = await engine.fireTimers(through: Workload.start + .hours(1))
        benchmark.stopMeasurement()
        precondition(fired == 100_000)
    }

    let loaded = Prepared()
    Benchmark(
        "Ingest mix, 100K contacts, 4 feeding tasks, 10,000 active journeys",
        configuration: .init(metrics: [.wallClock, .throughput, eventsPerSecond], setup: {
            let engine = try await Workload.makeEngine()
            try await Workload.populate(engine, contacts: 100_000)
            try await Workload.addJourneys(engine, count: 10_000, triggerNames: 1_000)
            loaded.engine = engine
        })
    ) { benchmark in
        let engine = loaded.engine!
        var batches: [[Event]] = []
        for _ in 0..<100 {
            loaded.now = loaded.now + .seconds(1)
            batches.append(loaded.stream.batch(size: 100, at: loaded.now))
        }
        let work = batches
        let now = loaded.now
        let started = ContinuousClock.now
        benchmark.startMeasurement()
        await withTaskGroup(of: Void.self) { group in
            for feeder in 0..<4 {
                group.addTask {
                    for index in stride(from: feeder, to: work.count, by: 4) {
                        blackHole(try? await engine.ingest(tenant: Workload.tenant, events: work[index], now: now))
                    }
                }
            }
        }
        benchmark.stopMeasurement()
        let elapsed = ContinuousClock.now - started
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        benchmark.measurement(eventsPerSecond, Int(10_000 / seconds))
    }
}
