import Benchmark
import BenchmarkWorkload
import KairosCore
import KairosEngine

/// Holds state built once per benchmark, outside the measured region.
final class Prepared: @unchecked Sendable {
    // Written in setup, read in the measured closure that runs after it: no overlap.
    var engine: Engine?
    var stream = Workload.Stream(contacts: 100_000, seed: 7)
    var now = Workload.start
}

/// Events applied per second, computed from each iteration's 10,000 events.
let eventsPerSecond = BenchmarkMetric.custom("events per second", polarity: .prefersLarger, useScalingFactor: false)

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .peakMemoryResident],
        warmupIterations: 1,
        maxDuration: .seconds(10),
        maxIterations: 20
    )

    // 100,000 contacts with Zipf popularity, 10 rules, 50 segments (10 windowed).
    // One iteration ingests 100 batches of 100 events (10,000 events).
    for tasks in [1, 4] {
        let prepared = Prepared()
        Benchmark(
            "Ingest mix, 100K contacts, \(tasks) feeding task\(tasks == 1 ? "" : "s")",
            configuration: .init(metrics: [.wallClock, eventsPerSecond, .peakMemoryResident], setup: {
                let engine = try await Workload.makeEngine()
                // Every contact exists with its traits before measuring.
                try await Workload.populate(engine, contacts: 100_000)
                prepared.engine = engine
            })
        ) { benchmark in
            let engine = prepared.engine!
            var batches: [[Event]] = []
            for _ in 0..<100 {
                prepared.now = prepared.now + .seconds(1)
                batches.append(prepared.stream.batch(size: 100, at: prepared.now))
            }
            let now = prepared.now
            let work = batches
            let started = ContinuousClock.now
            benchmark.startMeasurement()
            await withTaskGroup(of: Void.self) { group in
                for task in 0..<tasks {
                    group.addTask {
                        for index in stride(from: task, to: work.count, by: tasks) {
                            _ = try? await engine.ingest(tenant: Workload.tenant, events: work[index], now: now)
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

    // Resident memory per contact: 100,000 contacts with 10 traits, about 3 segments,
    // and counters for 20 event names each.
    Benchmark(
        "Memory per contact (100K contacts, 10 traits, 20 event names)",
        configuration: .init(metrics: [.custom("bytes per contact", polarity: .prefersSmaller, useScalingFactor: false)],
            warmupIterations: 0, maxIterations: 1)
    ) { benchmark in
        let engine = try await Workload.makeEngine()
        let contacts = 100_000
        let before = Workload.residentBytes()
        for start in stride(from: 0, to: contacts, by: 1000) {
            var events: [Event] = []
            for contact in start..<start + 1000 {
                events.append(Workload.identify(contact: contact, at: Workload.start))
                for name in Workload.eventNames {
                    events.append(.track(name, userId: "user-\(contact)", at: Workload.start))
                }
            }
            _ = try await engine.ingest(tenant: Workload.tenant, events: events, now: Workload.start)
        }
        let after = Workload.residentBytes()
        blackHole(try await engine.stats(tenant: Workload.tenant))
        benchmark.measurement(.custom("bytes per contact", polarity: .prefersSmaller, useScalingFactor: false),
            (after - before) / contacts)
    }

    journalBenchmarks()
    plainInsertBenchmarks()
    codecBenchmarks()
    snapshotBenchmarks()
    decideBenchmarks()
    journeyBenchmarks()

    // A new segment evaluated over 1,000,000 existing contacts.
    let large = Prepared()
    Benchmark(
        "New segment over 1M contacts",
        configuration: .init(metrics: [.wallClock], warmupIterations: 0, maxIterations: 3, setup: {
            let engine = Engine()
            try await engine.createTenant(id: Workload.tenant)
            try await Workload.populate(engine, contacts: 1_000_000)
            large.engine = engine
        })
    ) { benchmark in
        let engine = large.engine!
        large.now = large.now + .seconds(1)
        let country = Workload.countries[Int(large.now.milliseconds / 1000) % Workload.countries.count]
        let segment = try JSONValue.parse(
            #"{"id": "new-segment", "condition": {"all": [{"trait": "country", "op": "eq", "value": "\#(country)"}, {"trait": "company_size", "op": "gt", "value": 100}]}}"#)
        benchmark.startMeasurement()
        let receipt = try await engine.defineSegment(tenant: Workload.tenant, segment, now: large.now)
        benchmark.stopMeasurement()
        precondition(receipt.contactsEvaluated == 1_000_000)
    }
}
