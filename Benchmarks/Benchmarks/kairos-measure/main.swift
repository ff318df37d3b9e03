// Measures the benchmark workloads in a plain release executable (no malloc interposer).
// Usage: swift run -c release kairos-measure ingest [FEEDERS] [none|fast|strict]
//        swift run -c release kairos-measure memory | backfill | snapshot | snapshot-pause | restart [DIR] [COMMANDS] [CONTACTS] [ids] | reference | decide | journeys [lapse|spread|ingest] [none|fast|strict]
import BenchmarkWorkload
import Foundation
import KairosCore
import KairosEngine
import KairosGateway
import KairosMemory
@_spi(Benchmarks) import KairosStore

func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

/// A flag set once, read from any task.
final class ManagedAtomicFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    var isSet: Bool { lock.withLock { value } }
    func set() { lock.withLock { value = true } }
}

/// Resident memory and the page faults that filled it so far: on a virtual machine a page
/// touched for the first time can cost more than the work that touches it.
/// The process's resident memory and page faults now, and the CPU time it spent since `since`
/// (a phase's own share: user time is the work, system time mostly the kernel zeroing new pages).
struct ResourceUse {
    var residentMegabytes: Int
    var pageFaults: Int
    var userSeconds: Double
    var systemSeconds: Double

    static func now() -> ResourceUse {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        let statm = (try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8)) ?? ""
        let pages = statm.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
        return ResourceUse(
            residentMegabytes: pages * Int(sysconf(Int32(_SC_PAGESIZE))) / 1_000_000, pageFaults: usage.ru_minflt,
            userSeconds: Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6,
            systemSeconds: Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6)
    }

    func since(_ start: ResourceUse) -> String {
        String(
            format: "%d MB resident, %d page faults, CPU %.1f s user + %.1f s system", residentMegabytes,
            pageFaults - start.pageFaults, userSeconds - start.userSeconds, systemSeconds - start.systemSeconds)
    }
}

/// How fast this machine runs now, against the costs the durability targets were planned
/// from (a plain SQLite insert loop of 450,000 rows/s, 1,000,000 idle actors created in 0.5 s):
/// the host shares its cores, and the same binary can take twice as long in a busy hour, so
/// a restart time means little without these figures from the same run.
enum MachineReference {
    actor IdleActor { var value = 0 }

    static let plannedInsertRate = 450_000.0
    static let plannedActorSeconds = 0.5

    /// The median of five plain insert loops (100,000 rows of 200 bytes, 10,000 a transaction,
    /// WAL, synchronous=NORMAL), in rows per second.
    static func insertRate() throws -> Double {
        var rates: [Double] = []
        for _ in 0..<5 {
            let path = NSTemporaryDirectory() + "kairos-reference-\(UUID().uuidString).sqlite"
            defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
            rates.append(try PlainInsertLoop.run(path: path, rows: 100_000, perTransaction: 10_000, blobSize: 200, synchronousFull: false))
        }
        return rates.sorted()[2]
    }

    /// Seconds to create 1,000,000 idle actors (kept alive until all exist, as contacts are).
    static func actorSeconds() -> Double {
        let started = ContinuousClock.now
        var actors: [IdleActor] = []
        actors.reserveCapacity(1_000_000)
        for _ in 0..<1_000_000 { actors.append(IdleActor()) }
        let elapsed = seconds(ContinuousClock.now - started)
        withExtendedLifetime(actors) {}
        return elapsed
    }

    /// Nanoseconds per dependent load at random places in 512 MB (one cycle through a random
    /// permutation): what applying an event to a contact not in cache waits for.
    static func randomLoadNanoseconds() -> Double {
        let count = 1 << 26
        var next = [Int64](repeating: 0, count: count)
        var random = SeededRandom(seed: 11)
        // Sattolo's algorithm: one cycle through every slot.
        var order = Array(0..<count)
        for index in stride(from: count - 1, to: 0, by: -1) {
            order.swapAt(index, Int(random.next() % UInt64(index)))
        }
        for index in 0..<count { next[order[index]] = Int64(order[(index + 1) % count]) }
        let loads = 10_000_000
        var position = 0
        let started = ContinuousClock.now
        next.withUnsafeBufferPointer { buffer in
            for _ in 0..<loads { position = Int(buffer[position]) }
        }
        let elapsed = seconds(ContinuousClock.now - started)
        // The cycle visits every slot once: a position outside it would mean the loads were not made.
        precondition(position >= 0 && position < count)
        return elapsed / Double(loads) * 1e9
    }

    /// Megabytes per second of memory touched for the first time (512 MB, one write per 4 KiB),
    /// on 2 MiB pages (as mimalloc maps the contacts) or on 4 KiB pages: on a virtual machine
    /// whose host takes free memory back, the host backs each page again as well, and the two
    /// sizes can differ severalfold.
    static func freshMemoryRate(largePages: Bool) -> Double {
        let size = 512 << 20
        let alignment = 2 << 20
        guard let mapped = mmap(nil, size + alignment, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
            mapped != MAP_FAILED
        else { return 0 }
        defer { munmap(mapped, size + alignment) }
        let start = (Int(bitPattern: mapped) + alignment - 1) & ~(alignment - 1)
        let region = UnsafeMutableRawPointer(bitPattern: start)!
        _ = madvise(region, size, largePages ? MADV_HUGEPAGE : MADV_NOHUGEPAGE)
        let bytes = region.assumingMemoryBound(to: UInt8.self)
        let started = ContinuousClock.now
        for offset in stride(from: 0, to: size, by: 4096) { bytes[offset] = 1 }
        return Double(size) / 1e6 / seconds(ContinuousClock.now - started)
    }

    static func report() throws -> String {
        let rate = try insertRate()
        let actors = actorSeconds()
        let load = randomLoadNanoseconds()
        let large = freshMemoryRate(largePages: true)
        let small = freshMemoryRate(largePages: false)
        return String(
            format: "machine now: plain SQLite insert loop %.0f rows/s (%.0f %% of the planned %.0f), 1,000,000 actors created in %.2f s (planned %.1f s), a random memory load %.0f ns, fresh memory %.0f MB/s on 2 MiB pages and %.0f MB/s on 4 KiB pages",
            rate, rate / plannedInsertRate * 100, plannedInsertRate, actors, plannedActorSeconds, load, large, small)
    }
}

/// Writes a line at once (unbuffered), so progress shows when the output goes to a file.
func print(_ line: String) { FileHandle.standardOutput.write(Data((line + "\n").utf8)) }

let arguments = Array(CommandLine.arguments.dropFirst())
MemoryAllocator.useLargePages()
print("allocator: \(MemoryAllocator.description)")
switch arguments.first ?? "help" {
case "ingest":
    let feeders = arguments.count > 1 ? Int(arguments[1]) ?? 4 : 4
    let journalMode = arguments.count > 2 ? arguments[2] : "none"
    var journal: SQLiteJournal?
    if journalMode != "none" {
        let path = NSTemporaryDirectory() + "kairos-measure-\(UUID().uuidString).sqlite"
        journal = try SQLiteJournal(path: path, mode: journalMode == "strict" ? .strict : .fast)
    }
    let engine = try await Workload.makeEngine(Engine(journal: journal))
    try await Workload.populate(engine, contacts: 100_000)
    var stream = Workload.Stream(contacts: 100_000, seed: 7)
    var now = Workload.start
    var rates: [Int] = []
    for round in 0..<10 {
        var batches: [[Event]] = []
        for _ in 0..<500 {
            now = now + .seconds(1)
            batches.append(stream.batch(size: 100, at: now))
        }
        let work = batches
        let at = now
        let started = ContinuousClock.now
        await withTaskGroup(of: Void.self) { group in
            for feeder in 0..<feeders {
                group.addTask {
                    for index in stride(from: feeder, to: work.count, by: feeders) {
                        _ = try? await engine.ingest(tenant: Workload.tenant, events: work[index], now: at)
                    }
                }
            }
        }
        rates.append(Int(50_000 / seconds(ContinuousClock.now - started)))
        print("round \(round + 1): \(rates.last!) events/s")
    }
    print("ingest, \(feeders) feeders, journal \(journalMode): best \(rates.max()!) events/s, median \(rates.sorted()[rates.count / 2]) events/s")
case "memory":
    let engine = try await Workload.makeEngine()
    let before = Workload.residentBytes()
    for start in stride(from: 0, to: 100_000, by: 1000) {
        var events: [Event] = []
        for contact in start..<start + 1000 {
            events.append(Workload.identify(contact: contact, at: Workload.start))
            for name in Workload.eventNames { events.append(.track(name, userId: "user-\(contact)", at: Workload.start)) }
        }
        _ = try await engine.ingest(tenant: Workload.tenant, events: events, now: Workload.start)
    }
    let perContact = (Workload.residentBytes() - before) / 100_000
    let stats = try await engine.stats(tenant: Workload.tenant)
    let memberships = Double(stats.segmentSizes.values.reduce(0, +)) / 100_000
    print("memory: \(perContact) bytes per contact (10 traits, 20 event names, \(String(format: "%.1f", memberships)) segments)")
case "backfill":
    let engine = Engine()
    try await engine.createTenant(id: Workload.tenant)
    try await Workload.populate(engine, contacts: 1_000_000)
    let started = ContinuousClock.now
    let segment = try JSONValue.parse(
        #"{"id": "new-segment", "condition": {"all": [{"trait": "country", "op": "eq", "value": "FR"}, {"trait": "company_size", "op": "gt", "value": 100}]}}"#)
    let receipt = try await engine.defineSegment(tenant: Workload.tenant, segment, now: Workload.start + .seconds(1))
    print("backfill: new segment over \(receipt.contactsEvaluated) contacts in \(String(format: "%.2f", seconds(ContinuousClock.now - started))) s")
case "snapshot":
    let engine = try await Workload.makeEngine()
    try await Workload.populate(engine, contacts: 1_000_000)
    var started = ContinuousClock.now
    let snapshot = try await engine.snapshot()
    print("snapshot: 1M contacts captured and encoded in \(String(format: "%.2f", seconds(ContinuousClock.now - started))) s, \(snapshot.bytes.count / 1_000_000) MB")
    let restored = Engine()
    started = ContinuousClock.now
    _ = try await restored.restore(snapshot: snapshot.bytes)
    print("restore: 1M contacts in \(String(format: "%.2f", seconds(ContinuousClock.now - started))) s")
case "decide":
    // 100,000 contacts with 20 traits; 3 placements (rules + templates, an experiment, an optimizer).
    let engine = try await Workload.makeEngine(Engine(decisionSeed: 1))
    try await Workload.populate(engine, contacts: 100_000)
    try await Workload.prepareDecisions(engine, contacts: 100_000)
    var warm = Workload.Stream(contacts: 100_000, seed: 3)
    for _ in 0..<200 { _ = try await engine.ingest(tenant: Workload.tenant, events: warm.batch(size: 100, at: Workload.start), now: Workload.start) }
    let sample = try await engine.contact(tenant: Workload.tenant, .userId("user-4"), now: Workload.start)
    print("decide: contact user-4 has \(sample?.traits.count ?? 0) traits and \(sample?.segments.count ?? 0) segments")
    let placements = ["hero", "pricing-cta", "sidebar"]
    let context = RequestContext(url: "https://shop.test/pricing?utm_source=google&utm_campaign=spring", userAgent: "Mozilla/5.0")
    let popularity = ZipfDistribution(count: 100_000)
    var random = SeededRandom(seed: 9)
    let ids = (0..<200_000).map { _ in "user-\(popularity.sample(&random))" }
    for id in ids.prefix(20_000) {
        _ = try await engine.decide(tenant: Workload.tenant, visitor: Visitor(userId: id), context: context, placements: placements, now: Workload.start)
    }
    // Measured from a task of the global executor, as a server's request handlers run (top-level
    // code runs on the main actor, and every call would hop to the main thread and back).
    var latencies = await Task.detached {
        var latencies: [Double] = []
        latencies.reserveCapacity(ids.count)
        for id in ids {
            let started = ContinuousClock.now
            _ = try? await engine.decide(
                tenant: Workload.tenant, visitor: Visitor(userId: id), context: context, placements: placements, now: Workload.start)
            latencies.append(seconds(ContinuousClock.now - started) * 1e6)
        }
        return latencies
    }.value
    latencies.sort()
    func percentile(_ p: Double) -> String { String(format: "%.1f", latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))]) }
    print("decide: one caller, 3 placements: median \(percentile(0.5)) µs, p90 \(percentile(0.9)) µs, p99 \(percentile(0.99)) µs, p99.9 \(percentile(0.999)) µs")
    for tasks in [1, 2, 4, 8] {
        let started = ContinuousClock.now
        await withTaskGroup(of: Void.self) { group in
            for task in 0..<tasks {
                group.addTask {
                    for index in stride(from: task, to: ids.count, by: tasks) {
                        _ = try? await engine.decide(
                            tenant: Workload.tenant, visitor: Visitor(userId: ids[index]), context: context, placements: placements,
                            now: Workload.start)
                    }
                }
            }
        }
        let rate = Double(ids.count) / seconds(ContinuousClock.now - started)
        print("decide: \(tasks) concurrent caller\(tasks == 1 ? "" : "s"): \(Int(rate)) decisions/s (3 placements each)")
    }
case "journeys":
    let part = arguments.count > 1 ? arguments[1] : "all"
    let journalMode = arguments.count > 2 ? arguments[2] : "none"
    func dripEngine() async throws -> Engine {
        var journal: SQLiteJournal?
        if journalMode != "none" {
            let path = NSTemporaryDirectory() + "kairos-measure-\(UUID().uuidString).sqlite"
            journal = try SQLiteJournal(path: path, mode: journalMode == "strict" ? .strict : .fast)
        }
        let engine = Engine(journal: journal)
        try await engine.createTenant(id: Workload.tenant)
        try await engine.defineJourney(
            tenant: Workload.tenant, JSONValue.parse(Workload.waitingJourney(id: "drip", trigger: "Enrolled")), now: Workload.start)
        try await engine.setJourneyStatus(tenant: Workload.tenant, journey: "drip", .active, now: Workload.start)
        return engine
    }
    if part == "all" || part == "lapse" {
        // 1,000,000 contacts wait in a journey; every wait lapses at the same instant.
        let engine = try await dripEngine()
        var started = ContinuousClock.now
        for first in stride(from: 0, to: 1_000_000, by: 10_000) {
            let events = (first..<first + 10_000).map { Event.track("Enrolled", userId: "user-\($0)", at: Workload.start) }
            _ = try await engine.ingest(tenant: Workload.tenant, events: events, now: Workload.start)
        }
        print("journeys: 1,000,000 contacts enrolled in \(String(format: "%.2f", seconds(ContinuousClock.now - started))) s")
        started = ContinuousClock.now
        let fired = await engine.fireTimers(through: Workload.start + .hours(1))
        let elapsed = seconds(ContinuousClock.now - started)
        let report = try await engine.journeyReport(tenant: Workload.tenant, journey: "drip")
        print("journeys (journal \(journalMode)): 1,000,000 waits lapsing at once: \(fired) fired, \(report.messages) sends applied in \(String(format: "%.2f", elapsed)) s (\(Int(Double(fired) / elapsed)) firings/s); the last \(String(format: "%.2f", elapsed)) s after its due time")
    }
    if part == "all" || part == "spread" {
        // 100,000 waits lapsing 10 per millisecond (10,000 a second) for 10 s, against a clock
        // running at wall speed; lateness is sampled from the journey's count every 2 ms.
        let engine = try await dripEngine()
        for millisecond in 0..<10_000 {
            let at = Workload.start + .milliseconds(Int64(millisecond))
            let events = (0..<10).map { Event.track("Enrolled", userId: "user-\(millisecond * 10 + $0)", at: at) }
            _ = try await engine.ingest(tenant: Workload.tenant, events: events, now: at)
        }
        final class WallClock: EngineClock, @unchecked Sendable {
            let origin = ContinuousClock.now
            let base: Timestamp
            init(base: Timestamp) { self.base = base }
            func now() -> Timestamp { base + .milliseconds(Int64(seconds(ContinuousClock.now - origin) * 1000)) }
        }
        let firstDue = Workload.start + .hours(1)
        let clock = WallClock(base: firstDue - .seconds(1))
        let timers = Task.detached { await engine.runTimers(clock: clock, pollInterval: .milliseconds(2)) }
        var lateness: [Double] = []
        while true {
            let now = clock.now()
            let sent = try await engine.journeyReport(tenant: Workload.tenant, journey: "drip").messages
            if sent >= 100_000 { break }
            // The next send due is number `sent` (10 per millisecond from the first due time).
            let nextDue = firstDue.milliseconds + Int64(sent / 10)
            if now.milliseconds >= nextDue { lateness.append(Double(now.milliseconds - nextDue)) }
            if now.milliseconds > firstDue.milliseconds + 30_000 { break }
            try await Task.sleep(for: .milliseconds(2))
        }
        timers.cancel()
        lateness.sort()
        func late(_ p: Double) -> String {
            lateness.isEmpty ? "0" : String(format: "%.0f", lateness[min(lateness.count - 1, Int(Double(lateness.count) * p))])
        }
        print("journeys (journal \(journalMode)): 10,000 firings/s for 10 s: oldest unfired wait behind its due time, sampled every 2 ms: median \(late(0.5)) ms, p99 \(late(0.99)) ms, max \(late(1.0)) ms")
    }
    if part == "all" || part == "ingest" {
        // Ingest with 10,000 active journeys (triggered by 1,000 other event names) against none.
        let plain = try await Workload.makeEngine()
        try await Workload.populate(plain, contacts: 100_000)
        let loaded = try await Workload.makeEngine()
        try await Workload.populate(loaded, contacts: 100_000)
        let started = ContinuousClock.now
        try await Workload.addJourneys(loaded, count: 10_000, triggerNames: 1_000)
        print("journeys: 10,000 journeys defined and activated in \(String(format: "%.2f", seconds(ContinuousClock.now - started))) s")
        var plainStream = Workload.Stream(contacts: 100_000, seed: 7)
        var loadedStream = Workload.Stream(contacts: 100_000, seed: 7)
        var now = Workload.start
        var ratios: [Double] = []
        for round in 0..<6 {
            var rates: [Double] = []
            for (engine, which) in [(plain, 0), (loaded, 1)] {
                var batches: [[Event]] = []
                for _ in 0..<300 {
                    batches.append(which == 0 ? plainStream.batch(size: 100, at: now) : loadedStream.batch(size: 100, at: now))
                }
                let work = batches
                let at = now
                let begun = ContinuousClock.now
                await withTaskGroup(of: Void.self) { group in
                    for feeder in 0..<4 {
                        group.addTask {
                            for index in stride(from: feeder, to: work.count, by: 4) {
                                _ = try? await engine.ingest(tenant: Workload.tenant, events: work[index], now: at)
                            }
                        }
                    }
                }
                rates.append(30_000 / seconds(ContinuousClock.now - begun))
            }
            now = now + .seconds(1)
            ratios.append(rates[1] / rates[0])
            print("round \(round + 1): no journeys \(Int(rates[0])) events/s, 10,000 journeys \(Int(rates[1])) events/s (\(Int(rates[1] / rates[0] * 100)) %)")
        }
        print("journeys: ingest with 10,000 active journeys at median \(Int(ratios.sorted()[ratios.count / 2] * 100)) % of the rate with none")
    }
case "json":
    // Parsing a Segment event body: Foundation's decoder against simdjson (through the gateway's
    // C wrapper), both into the same JSONValue; then Segment validation into an Event.
    let body = Array(#"{"type":"track","userId":"user-4812","anonymousId":"7f3c2a9e-1b4d-4c8e-9a2f-3d5e6f7a8b9c","event":"Order Completed","messageId":"ajs-next-1700000000000-7f3c2a9e","timestamp":"2026-03-02T09:00:00.000Z","sentAt":"2026-03-02T09:00:00.120Z","properties":{"order_id":"50314b8e9bcf000000000000","total":27.5,"currency":"EUR","products":[{"product_id":"507f1f77","sku":"45790-32","price":19,"quantity":1}],"coupon":"hasbros"},"context":{"ip":"8.8.8.8","locale":"fr-FR","page":{"path":"/checkout","url":"https://shop.example/checkout"},"library":{"name":"analytics.js","version":"2.11.1"}}}"#.utf8)
    let count = 100_000
    let fast = FastJSON()
    var started = ContinuousClock.now
    for _ in 0..<count { _ = try fast.parse(body) }
    let simd = seconds(ContinuousClock.now - started) / Double(count) * 1e6
    started = ContinuousClock.now
    let data = Data(body)
    for _ in 0..<(count / 10) { _ = try JSONValue.parse(data) }
    let foundation = seconds(ContinuousClock.now - started) / Double(count / 10) * 1e6
    let decoder = EventDecoder()
    let value = try fast.parse(body)
    started = ContinuousClock.now
    for _ in 0..<count { _ = decoder.decode(value, receivedAt: Workload.start) }
    let decode = seconds(ContinuousClock.now - started) / Double(count) * 1e6
    print(String(format: "json: %d-byte Segment event into JSONValue: simdjson %.2f µs, Foundation %.2f µs; Segment validation into an Event %.2f µs", body.count, simd, foundation, decode))
case "contact-read":
    // A contact read as the gateway answers it on its loop: the view at `now`, then its JSON.
    // The contact has the history a popular visitor has after the load harness's stream: the
    // demo tenant's definitions, 400 page views and tracked events over a few hours, an identify.
    let engine = Engine(decisionSeed: 1)
    let start = Workload.start
    try await DemoTenant.install(into: engine, now: start)
    let tracked = ["Pricing Viewed", "Form Submitted", "Email Link Clicked", "Order Completed", "Signed Up", "Demo Requested", "Webinar Attended"]
    let paths = ["/", "/blog/launch", "/docs/getting-started", "/pricing", "/pricing/enterprise", "/features", "/customers"]
    var events: [Event] = [.identify(userId: "u1", traits: ["email": "u1@acme.com", "company_size": 120, "title": "CTO"], at: start)]
    for index in 1...400 {
        let time = start + .seconds(Int64(index) * 30)
        events.append(
            index % 5 < 3
                ? .page(paths[index % paths.count], userId: "u1", properties: ["path": .string(paths[index % paths.count]), "url": "https://site.example.com/?utm_source=google"], at: time)
                : .track(tracked[index % tracked.count], userId: "u1", properties: ["revenue": 42.5, "currency": "USD"], at: time))
    }
    for chunk in stride(from: 0, to: events.count, by: 50) {
        let part = Array(events[chunk..<min(chunk + 50, events.count)])
        _ = try await engine.ingest(tenant: DemoTenant.id, events: part, now: part.last!.timestamp ?? start)
    }
    let now = start + .hours(4)
    guard case .found(let sample) = try engine.contactIfIdle(tenant: DemoTenant.id, .userId("u1"), now: now) else { fatalError("no contact") }
    print("contact-read: the contact's answer is \(sample.jsonBytes().count) bytes (\(sample.scoreHistory.count) score changes, \(sample.recentEvents.count) recent events, \(sample.eventCounts.count) event counts)")
    let reads = 50_000
    for round in 1...3 {
        var bytes = 0
        var started = ContinuousClock.now
        var views: [ContactView] = []
        views.reserveCapacity(reads)
        for _ in 0..<reads {
            if case .found(let view) = try engine.contactIfIdle(tenant: DemoTenant.id, .userId("u1"), now: now) { views.append(view) }
        }
        let viewTime = seconds(ContinuousClock.now - started) / Double(reads) * 1e6
        started = ContinuousClock.now
        for view in views { bytes &+= view.jsonBytes().count }
        let jsonTime = seconds(ContinuousClock.now - started) / Double(reads) * 1e6
        views = []
        started = ContinuousClock.now
        for _ in 0..<reads {
            if case .found(let view) = try engine.contactIfIdle(tenant: DemoTenant.id, .userId("u1"), now: now) { bytes &+= view.jsonBytes().count }
        }
        let both = seconds(ContinuousClock.now - started) / Double(reads) * 1e6
        started = ContinuousClock.now
        for _ in 0..<reads {
            if case .found(let json) = try engine.contactJSONIfIdle(tenant: DemoTenant.id, .userId("u1"), now: now) { bytes &+= json.count }
        }
        let direct = seconds(ContinuousClock.now - started) / Double(reads) * 1e6
        print(
            String(
                format: "contact-read %d: view %.2f µs, its JSON %.2f µs, both in turn %.2f µs; JSON straight from the state %.2f µs per read (%d bytes written)",
                round, viewTime, jsonTime, both, direct, bytes))
    }
case "stream":
    // Events durable per second through the gateway on loopback, with the journal (`fast` by
    // default): a client thread pushes Segment messages as fast as the server takes them and
    // another reads the acks until the last one.
    let mode = arguments.count > 1 ? arguments[1] : "fast"
    let path = NSTemporaryDirectory() + "kairos-measure-\(UUID().uuidString).sqlite"
    let journal = try SQLiteJournal(path: path, mode: mode == "strict" ? .strict : .fast)
    let engine = try await Workload.makeEngine(Engine(journal: journal))
    try await Workload.populate(engine, contacts: 100_000)
    let key = try await engine.createWriteKey(tenant: Workload.tenant, now: Workload.start)
    var configuration = GatewayConfiguration()
    configuration.httpPort = 0
    configuration.streamPort = 0
    let gateway = Gateway(engine: engine, configuration: configuration)
    try await gateway.start()
    let port = gateway.streamPort!
    let total = 1_000_000
    var stream = Workload.Stream(contacts: 100_000, seed: 11)
    var payload = Array((#"{"type": "hello", "writeKey": "\#(key)", "client": "measure"}"# + "\n").utf8)
    for sequence in 1...total {
        let event = stream.batch(size: 1, at: Workload.start)[0]
        let name = event.name.map { #""event": "\#($0)", "#} ?? ""
        payload += Array(#"{"seq": \#(sequence), "type": "\#(event.type.rawValue)", "userId": "\#(event.userId ?? "anonymous")", \#(name)"properties": {"path": "/pricing", "plan": "pro", "n": \#(sequence)}}"#.utf8)
        payload.append(10)
    }
    let socketDescriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(socketDescriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    let frames = payload
    let started = ContinuousClock.now
    let writer = Thread {
        var offset = 0
        while offset < frames.count {
            let written = frames[offset...].withUnsafeBytes { send(socketDescriptor, $0.baseAddress, min($0.count, 1 << 20), Int32(MSG_NOSIGNAL)) }
            if written <= 0 { return }
            offset += written
        }
    }
    writer.start()
    var pending: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    var lastAck = 0
    var nextReport = 200_000
    reading: while lastAck < total {
        let count = chunk.withUnsafeMutableBytes { recv(socketDescriptor, $0.baseAddress, $0.count, 0) }
        if count <= 0 { break }
        pending += chunk[0..<count]
        while let newline = pending.firstIndex(of: 10) {
            let line = String(decoding: pending[..<newline], as: UTF8.self)
            pending.removeSubrange(...newline)
            if line.contains("\"error\"") && !line.contains("\"seq\"") { print("stream: \(line)"); break reading }
            if let range = line.range(of: #""seq":(\d+)"#, options: .regularExpression) {
                lastAck = Int(line[range].dropFirst(6)) ?? lastAck
            }
        }
        if lastAck >= nextReport {
            print("stream: \(lastAck) acked after \(String(format: "%.2f", seconds(ContinuousClock.now - started))) s")
            nextReport += 200_000
        }
    }
    let elapsed = seconds(ContinuousClock.now - started)
    print("stream (journal \(mode)): \(lastAck) events durable in \(String(format: "%.2f", elapsed)) s = \(Int(Double(lastAck) / elapsed)) events/s")
    close(socketDescriptor)
    await gateway.shutDown()
case "snapshot-pause":
    // How long a tenant's ingest stops while a snapshot of its 1,000,000 contacts is taken:
    // two feeders keep sending batches of 100 events (journal `fast`); every batch's latency
    // and the gaps between completed batches are compared before and during the snapshot.
    let path = NSTemporaryDirectory() + "kairos-measure-\(UUID().uuidString).sqlite"
    let journal = try SQLiteJournal(path: path, mode: .fast)
    defer { try? FileManager.default.removeItem(atPath: path) }
    let engine = try await Workload.makeEngine(Engine(journal: journal))
    try await Workload.populate(engine, contacts: 1_000_000)
    print("snapshot-pause: 1M contacts ready")
    final class Timeline: @unchecked Sendable {
        let lock = NSLock()
        var completions: [(at: ContinuousClock.Instant, latency: Duration)] = []
        func add(_ at: ContinuousClock.Instant, _ latency: Duration) { lock.withLock { completions.append((at, latency)) } }
    }
    let timeline = Timeline()
    let stop = ManagedAtomicFlag()
    let feeders = (0..<2).map { feeder in
        Task {
            var stream = Workload.Stream(contacts: 1_000_000, seed: UInt64(feeder + 20))
            var now = Workload.start
            while !stop.isSet {
                now = now + .milliseconds(10)
                let batch = stream.batch(size: 100, at: now)
                let sent = ContinuousClock.now
                _ = try? await engine.ingest(tenant: Workload.tenant, events: batch, now: now)
                timeline.add(ContinuousClock.now, ContinuousClock.now - sent)
            }
        }
    }
    try await Task.sleep(for: .seconds(3))
    let snapshotStarted = ContinuousClock.now
    let snapshot = try await engine.snapshot()
    let snapshotEnded = ContinuousClock.now
    try await Task.sleep(for: .seconds(1))
    stop.set()
    for feeder in feeders { await feeder.value }
    func summary(_ from: ContinuousClock.Instant, _ to: ContinuousClock.Instant) -> String {
        let window = timeline.lock.withLock { timeline.completions.filter { $0.at >= from && $0.at <= to } }
        let latencies = window.map { seconds($0.latency) * 1000 }.sorted()
        var gap = 0.0
        for index in window.indices.dropFirst() { gap = max(gap, seconds(window[index].at - window[index - 1].at) * 1000) }
        let p50 = latencies.isEmpty ? 0 : latencies[latencies.count / 2]
        return String(
            format: "%d batches, %.0f events/s, batch latency p50 %.1f ms max %.1f ms, longest gap between batches %.1f ms",
            window.count, Double(window.count * 100) / seconds(to - from), p50, latencies.last ?? 0, gap)
    }
    print("before the snapshot: " + summary(snapshotStarted - .seconds(2), snapshotStarted))
    print(
        String(
            format: "snapshot: %d contacts, %d MB in %.2f s; the tenant stopped for %.2f ms", snapshot.contacts,
            snapshot.bytes.count / 1_000_000, seconds(snapshotEnded - snapshotStarted), seconds(snapshot.longestPause) * 1000))
    print("during the snapshot: " + summary(snapshotStarted, snapshotEnded))
case "restart":
    // A data directory with a snapshot of CONTACTS (default 1,000,000) contacts and COMMANDS (default 5,000,000)
    // journaled commands of one event each after it (with `ids`, each event has a messageId);
    // then the startup `kairos serve` does (newest valid snapshot, replay of the journal after
    // it), timed phase by phase. The directory is kept (`kairos serve --data-dir DIR` starts from it).
    let directory = arguments.count > 1 ? arguments[1] : NSTemporaryDirectory() + "kairos-restart"
    let commands = arguments.count > 2 ? Int(arguments[2]) ?? 5_000_000 : 5_000_000
    let contacts = arguments.count > 3 ? Int(arguments[3]) ?? 1_000_000 : 1_000_000
    // `ids`: every event carries a messageId, which replay claims again for deduplication.
    let messageIds = arguments.count > 4 && arguments[4] == "ids"
    let store = SnapshotStore(directory: directory + "/snapshots")
    if !FileManager.default.fileExists(atPath: directory + "/journal.sqlite") {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let journal = try SQLiteJournal(path: directory + "/journal.sqlite", mode: .fast)
        let engine = try await Workload.makeEngine(Engine(journal: journal))
        try await Workload.populate(engine, contacts: contacts)
        let snapshot = try await engine.snapshot()
        try store.write(snapshot.bytes, sequence: snapshot.startSequence, at: Workload.start)
        print("restart: snapshot of \(snapshot.contacts) contacts written; journaling \(commands) commands")
        let written = ContinuousClock.now
        await withTaskGroup(of: Void.self) { group in
            for feeder in 0..<8 {
                group.addTask {
                    var stream = Workload.Stream(contacts: contacts, seed: UInt64(feeder + 40), messageIds: messageIds)
                    for index in stride(from: feeder, to: commands, by: 8) {
                        let now = Workload.start + .milliseconds(Int64(index))
                        _ = try? await engine.ingest(tenant: Workload.tenant, events: stream.batch(size: 1, at: now), now: now)
                        if feeder == 0 && index % 500_000 == 0 { print("restart: \(index) commands journaled") }
                    }
                }
            }
        }
        print(String(format: "restart: %d commands journaled in %.1f s", commands, seconds(ContinuousClock.now - written)))
        journal.close()
    }
    let started = ContinuousClock.now
    let journal = try SQLiteJournal(path: directory + "/journal.sqlite", mode: .fast)
    let engine = Engine(journal: journal)
    guard let (entry, payload) = try store.newestValid() else { fatalError("no valid snapshot in \(directory)/snapshots") }
    let read = ContinuousClock.now
    let beforeRestore = ResourceUse.now()
    let restored = try await engine.restore(snapshot: payload)
    let loaded = ContinuousClock.now
    let memoryWhenRestored = ResourceUse.now().since(beforeRestore)
    let beforeReplay = ResourceUse.now()
    let report = try await engine.recover()
    let ready = ContinuousClock.now
    let memoryWhenReady = ResourceUse.now().since(beforeReplay)
    print(String(format: "restart: snapshot read and verified in %.2f s (%d MB, %@)", seconds(read - started), entry.size / 1_000_000, entry.path))
    print(String(format: "restart: %d contacts restored in %.2f s (%@)", restored.contacts, seconds(loaded - read), memoryWhenRestored))
    print(String(format: "restart: %d commands (%d events) replayed in %.2f s (%@)", report.commandsReplayed, report.eventsReplayed, seconds(ready - loaded), memoryWhenReady))
    print(String(format: "restart: ready in %.2f s", seconds(ready - started)))
    print("restart: \(try MachineReference.report())")
case "reference":
    print(try MachineReference.report())
default:
    print("usage: kairos-measure ingest [FEEDERS] [none|fast|strict] | memory | backfill | snapshot | decide | journeys [lapse|spread|ingest] [none|fast|strict] | json | contact-read | stream [fast|strict] | snapshot-pause | restart [DIR] [COMMANDS] [CONTACTS] [ids] | reference")
}
