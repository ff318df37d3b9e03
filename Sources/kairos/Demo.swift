import ArgumentParser
import Foundation
import KairosCore
import KairosEngine
import KairosCLI
import KairosStore
import Synchronization

extension Kairos {
    struct Demo: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run the engine in process on the demo tenant with simulated traffic.",
            discussion: """
                Creates the demo tenant (scoring models 'fit' and 'engagement', live segments, \
                two placements, an experiment and two active journeys), then replays simulated \
                days of website and email traffic on a virtual clock, firing timers as windows \
                lapse and journey waits end. Prints progress per day, segment sizes, journey \
                counts and a message from the outbox, the hottest leads with the rules that \
                explain their scores, and what the demo placements would show them. With --data-dir, SIGINT or SIGTERM stops after \
                the current batch, writes a final snapshot and exits 0.
                """
        )

        @Option(help: "How many contacts the simulated traffic comes from.")
        var contacts = 20_000

        @Option(help: "How many days to simulate.")
        var days = 14

        @Option(help: "Events per simulated day.")
        var eventsPerDay = 50_000

        @Option(help: "Seed of the traffic generator (the same seed gives the same run).")
        var seed: UInt64 = 42

        @Option(help: "How many top leads to show.")
        var top = 5

        @Option(help: "Keep the demo's state in this directory (journal and snapshots) and continue from it next time; omit to run in memory only.")
        var dataDir: String?

        func validate() throws {
            guard contacts > 0, days > 0, eventsPerDay > 0 else {
                throw ValidationError("--contacts, --days and --events-per-day must be positive")
            }
        }

        func run() async throws {
            var start = Timestamp(iso8601: "2026-03-02T00:00:00Z")!
            let engine: Engine
            var storage: StorageOptions?
            var journal: SQLiteJournal?
            if let dataDir {
                let options = try StorageOptions.parse(["--data-dir", dataDir, "--durability", "fast"])
                let (opened, openedJournal) = try await options.openEngine()
                engine = opened
                storage = options
                journal = openedJournal
                // Continue the simulated calendar after what the journal already holds.
                var last: Timestamp?
                try openedJournal.read(from: openedJournal.lastSequence) { last = $0.time }
                if let last, last >= start { start = Timestamp(milliseconds: (last.dayNumber + 1) * 86_400_000) }
            } else {
                engine = Engine()
            }
            defer { journal?.close() }
            if !engine.tenantIds.contains(DemoTenant.id) {
                try await DemoTenant.install(into: engine, now: start)
            }
            print("Kairos demo: tenant '\(DemoTenant.id)', \(contacts) contacts, \(days) days, \(eventsPerDay) events a day (seed \(seed))")

            // A continued run gets new visitors' messages, not replays of the first run's.
            var traffic = DemoTraffic(contacts: contacts, seed: dataDir == nil ? seed : seed &+ UInt64(max(0, start.dayNumber)))
            let batchSize = 100
            let batchesPerHour = max(1, eventsPerDay / 24 / batchSize)
            var effectCount = 0
            var eventCount = 0
            let stop = StopSignal()
            let wall = ContinuousClock.now
            simulation: for day in 0..<days {
                for hour in 0..<24 {
                    if stop.requested {
                        print("stopping: \(stop.name ?? "signal") received, finishing with a final snapshot")
                        break simulation
                    }
                    let hourStart = start + .days(Int64(day)) + .hours(Int64(hour))
                    effectCount += await engine.advanceTime(to: hourStart).count
                    for batch in 0..<batchesPerHour {
                        let offset = TimeSpan(milliseconds: Int64(batch) * 3_600_000 / Int64(batchesPerHour))
                        let now = hourStart + offset
                        let events = (0..<batchSize).map { _ in traffic.next(at: now) }
                        let report = try await engine.ingest(tenant: DemoTenant.id, events: events, now: now)
                        effectCount += report.effects.count
                        eventCount += report.appliedCount
                    }
                }
                let stats = try await engine.stats(tenant: DemoTenant.id)
                let sizes = stats.segmentSizes.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
                print("day \(day + 1)/\(days): \(eventCount) events, \(effectCount) effects, \(stats.contacts) contacts | \(sizes)")
            }
            let elapsed = ContinuousClock.now - wall
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            print(String(format: "applied %d events in %.2f s (%.0f events/s, in process)", eventCount, seconds, Double(eventCount) / seconds))

            if let storage, let journal { try await storage.writeSnapshot(engine, journal: journal) }
            let end = start + .days(Int64(days))
            if stop.requested { return }
            print("\nJourneys:")
            for journey in try await engine.definitions(tenant: DemoTenant.id, .journey).map(\.id) {
                let report = try await engine.journeyReport(tenant: DemoTenant.id, journey: journey)
                let exits = report.exited.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
                print("  \(journey): entered \(report.entered), waiting \(report.waiting), messages \(report.messages), exits: \(exits.isEmpty ? "none" : exits)")
                let steps = report.nodes.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value.arrived)" }.joined(separator: ", ")
                print("      steps reached: \(steps)")
            }
            if let message = try engine.outbox(tenant: DemoTenant.id, limit: 1).first {
                let fields = message.message.fields.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: " | ")
                print("  outbox: first of the messages to deliver — \(message.message.channel.rawValue) to \(message.userId ?? "contact \(message.contact)"): \(fields)")
            }

            let page = try await engine.segmentMembers(tenant: DemoTenant.id, segment: "mqls", limit: 1000)
            var leads: [ContactView] = []
            for member in page.members {
                if let view = try await engine.contact(tenant: DemoTenant.id, .id(member.id), now: end) { leads.append(view) }
            }
            leads.sort { ($0.score("engagement")?.score ?? 0) > ($1.score("engagement")?.score ?? 0) }
            print("\nTop \(min(top, leads.count)) of \(page.total) marketing-qualified leads:")
            for lead in leads.prefix(top) {
                let engagement = lead.score("engagement")
                let fit = lead.score("fit")
                print(String(format: "  %@  engagement %.1f (%@, grade %@)  fit %.0f (grade %@)",
                    lead.userId ?? "contact \(lead.id)", engagement?.score ?? 0, engagement?.stage ?? "-",
                    engagement?.grade ?? "-", fit?.score ?? 0, fit?.grade ?? "-"))
                for rule in (engagement?.rules ?? []) + (fit?.rules ?? []) {
                    print(String(format: "      %+7.1f  %@", rule.points, rule.name))
                }
                if let userId = lead.userId {
                    let answer = try await engine.decide(
                        tenant: DemoTenant.id, visitor: Visitor(userId: userId), placements: ["home-hero", "pricing-cta"], now: end)
                    for decision in answer.decisions {
                        print("      \(decision.placement) → \(decision.variant ?? "nothing") (\(decision.reason.rawValue)): \(decision.content ?? "")")
                    }
                }
            }
        }
    }
}

/// SIGINT and SIGTERM ask the demo to stop at the next batch boundary instead of killing it,
/// so it can write its final snapshot.
final class StopSignal {
    private final class Received: Sendable {
        let name = Mutex<String?>(nil)
    }

    private let received = Received()
    private var sources: [any DispatchSourceSignal] = []

    init() {
        let received = self.received
        for (number, name) in [(SIGINT, "SIGINT"), (SIGTERM, "SIGTERM")] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { received.name.withLock { if $0 == nil { $0 = name } } }
            source.resume()
            sources.append(source)
        }
    }

    var requested: Bool { received.name.withLock { $0 != nil } }
    var name: String? { received.name.withLock { $0 } }
}
