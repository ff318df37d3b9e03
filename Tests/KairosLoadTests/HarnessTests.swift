import Foundation
import KairosCore
import KairosEngine
import KairosGateway
import Synchronization
import Testing

@testable import KairosLoad

@Suite("Load harness", .serialized)
struct HarnessTests {
    static func bareGet(rate: Double?, seconds: Double, port: Int, maxRequests: Int? = nil) -> LoadTest {
        var scenario = Scenario(name: "probe")
        scenario.mix = [.get: 1]
        scenario.path = "/"
        scenario.connections = 1
        scenario.rate = rate
        scenario.durationSeconds = seconds
        var configuration = RunConfiguration(scenario: scenario, tenants: [], runId: "t")
        configuration.port = port
        configuration.threads = 1
        configuration.maxRequests = maxRequests
        configuration.drainSeconds = 5
        var test = LoadTest(configuration: configuration, tenants: .existing([], operatorKey: nil))
        test.reconcile = false
        return test
    }

    @Test("open loop: a server that stalls once for a second shows the stall as latency of every request that waited")
    func openLoopShowsAStall() async throws {
        // Request 50 is held for 1 s; at 100 requests/s about 100 requests were due meanwhile.
        let server = try FakeServer { _, _, number in FakeServer.Answer(delay: number == 50 ? .seconds(1) : .zero) }
        defer { server.stop() }
        let open = HarnessTests.bareGet(rate: 100, seconds: 3, port: server.port)
        let report = try await offThread { try open.run(log: { _ in }) }
        let get = try #require(report.operations.first { $0.operation == "get" })
        #expect(get.errorCount == 0)
        #expect(get.succeeded >= 250)
        // The stalled request and those queued behind it: about a third of the run waited,
        // many of them for more than half a second.
        #expect(get.max >= 900)
        #expect(get.p90 >= 300, "p90 \(get.p90) ms hides the stall")

        // Closed loop against the same behaviour sees one slow request only (coordinated omission).
        let closedServer = try FakeServer { _, _, number in FakeServer.Answer(delay: number == 50 ? .seconds(1) : .zero) }
        defer { closedServer.stop() }
        let closed = HarnessTests.bareGet(rate: nil, seconds: 3, port: closedServer.port, maxRequests: 300)
        let closedReport = try await offThread { try closed.run(log: { _ in }) }
        let closedGet = try #require(closedReport.operations.first { $0.operation == "get" })
        #expect(closedGet.max >= 900)
        #expect(closedGet.p90 < 100)
        #if os(Linux)
        // The report says how the machine's CPU time went during the run.
        let host = try #require(closedReport.hostCPU)
        #expect(host.busyPercent + host.idlePercent + host.stealPercent > 99)
        #expect(closedReport.table().contains("host CPU during the run"))
        #endif
        // Open loop asks for real-time priority for the client's threads (granted to root),
        // closed loop never does; each report says which.
        let expectedOpen =
            ProcessInfo.processInfo.activeProcessorCount < 2 ? "client threads at normal priority"
            : geteuid() == 0 ? "client threads at real-time priority" : "client threads at normal priority: real-time refused"
        #expect(report.clientScheduling?.hasPrefix(expectedOpen) == true, "\(report.clientScheduling ?? "nil")")
        #expect(report.table().contains(expectedOpen))
        #expect(closedReport.clientScheduling == "client threads at normal priority")
    }

    /// A fake Kairos: acknowledges every ingest call, and its overview counts what it received
    /// minus `missing`.
    static func fakeKairos(missing: Int) throws -> FakeServer {
        let received = Mutex(0)
        let server = try FakeServer { method, path, _ in
            if path.hasPrefix("/v1/admin/overview") {
                let count = received.withLock { $0 }
                return FakeServer.Answer(body: #"{"eventsAccepted": \#(max(0, count - missing)), "duplicatesSkipped": 0}"#)
            }
            if method == "POST" { received.withLock { $0 += 1 } }
            return FakeServer.Answer()
        }
        return server
    }

    static func pageViews(port: Int) -> LoadTest {
        var scenario = Scenario(name: "pages")
        scenario.mix = [.page: 1]
        scenario.connections = 2
        scenario.rate = 200
        scenario.durationSeconds = 1
        var configuration = RunConfiguration(scenario: scenario, tenants: [], runId: "r")
        configuration.port = port
        configuration.threads = 1
        return LoadTest(
            configuration: configuration, tenants: .existing([TenantKeys(id: "fake", writeKey: "wk_fake", secretKey: "sk_fake")], operatorKey: nil))
    }

    @Test("reconciliation catches a server that drops one acknowledged event")
    func reconciliationCatchesADrop() async throws {
        let honest = try HarnessTests.fakeKairos(missing: 0)
        defer { honest.stop() }
        let good = HarnessTests.pageViews(port: honest.port)
        let passing = try await offThread { try good.run(log: { _ in }) }
        #expect(passing.passed, "\(passing.failures)")
        #expect(passing.reconciliation.first?.acknowledged ?? 0 >= 150)

        let dropping = try HarnessTests.fakeKairos(missing: 1)
        defer { dropping.stop() }
        let bad = HarnessTests.pageViews(port: dropping.port)
        let failing = try await offThread { try bad.run(log: { _ in }) }
        #expect(!failing.passed)
        let tenant = try #require(failing.reconciliation.first)
        #expect(!tenant.matches && tenant.counted == tenant.acknowledged - 1)
        #expect(failing.failures.contains { $0.contains("counted") })
    }

    @Test("against a real gateway: tenants set up over the admin API, every operation, the stream and a campaign reconcile exactly")
    func realGateway() async throws {
        let engine = Engine(decisionSeed: 3)
        var configuration = GatewayConfiguration()
        configuration.httpPort = 0
        configuration.streamPort = 0
        configuration.operatorKey = "ok_harness"
        let gateway = Gateway(engine: engine, configuration: configuration)
        try await gateway.start()
        gateway.setReady(true)
        defer { Task { await gateway.shutDown() } }
        let timers = Task { await engine.runTimers(clock: SystemClock()) }
        defer { timers.cancel() }

        var scenario = Scenario(name: "everything")
        scenario.tenants = 2
        scenario.contactsPerTenant = 2_000
        scenario.mix = [.page: 4, .track: 2, .identify: 1, .batch: 1, .decide: 2, .admin: 1]
        scenario.batchSize = 10
        scenario.rate = 150
        scenario.connections = 4
        scenario.durationSeconds = 2
        scenario.streamConnections = 1
        scenario.streamRate = 300
        scenario.campaignContacts = 300
        var run = RunConfiguration(scenario: scenario, tenants: [], runId: "it")
        run.port = gateway.httpPort
        run.streamPort = gateway.streamPort ?? 0
        run.threads = 1
        var test = LoadTest(configuration: run, tenants: .create(operatorKey: "ok_harness"))
        test.campaignWaitSeconds = 60
        let loadTest = test
        let report = try await offThread { try loadTest.run(log: { _ in }) }
        #expect(report.passed, "\(report.failures)\n\(report.table())")
        let operations = Set(report.operations.map(\.operation))
        #expect(operations.isSuperset(of: ["page", "track", "decide", "admin", "stream", "campaign"]))
        #expect(report.reconciliation.count == 2)
        for tenant in report.reconciliation {
            #expect(tenant.matches && tenant.counted > 300)
            let stats = try engine.ingestCounters(tenant: tenant.tenant)
            #expect(stats.eventsAccepted == tenant.counted)
        }
        #expect(report.campaign?.enrolled == 300 && report.campaign?.enrolledSeconds != nil)
        let html = report.html()
        #expect(html.contains("<svg") && html.contains("polyline") && !html.contains("<script"))
        let decoded = try JSONSerialization.jsonObject(with: report.json()) as? [String: Any]
        #expect(decoded?["operations"] != nil && decoded?["reconciliation"] != nil)
    }
}
