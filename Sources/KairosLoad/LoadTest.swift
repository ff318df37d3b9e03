import Foundation
import KairosCore
import Synchronization

/// A whole run: set up tenants, read the server's counters, drive the load, read them again,
/// reconcile, and judge.
public struct LoadTest: Sendable {
    public enum Tenants: Sendable {
        /// Create `scenario.tenants` new tenants with the demo definitions (needs the operator key).
        case create(operatorKey: String)
        /// Use existing tenants (e.g. the demo tenant).
        case existing([TenantKeys], operatorKey: String?)
    }

    public var configuration: RunConfiguration
    public var tenants: Tenants
    /// Fail when more than this share of requests fail.
    public var maximumErrorRate = 0.001
    /// How long to wait for a campaign's enrollments after the load ends.
    public var campaignWaitSeconds = 120.0
    /// Skip reconciliation (e.g. against a server that is not Kairos).
    public var reconcile = true

    public init(configuration: RunConfiguration, tenants: Tenants) {
        self.configuration = configuration
        self.tenants = tenants
    }

    public func run(log: @Sendable (String) -> Void, progress: (@Sendable (RunProgress) -> Void)? = nil, runner: ((LoadRunner) -> Void)? = nil)
        throws -> RunReport
    {
        var configuration = self.configuration
        let scenario = configuration.scenario
        let client = AdminClient(host: configuration.host, port: configuration.port)
        let operatorKey: String?
        let needsTenants = scenario.connections > 0 && scenario.mix.keys.contains { $0 != .get } || scenario.streamConnections > 0
            || scenario.campaignContacts != nil
        switch tenants {
        case .create(let key):
            operatorKey = key
            if needsTenants {
                log("creating \(scenario.tenants) tenant(s) with the demo definitions")
                configuration.tenants = try RunSetup.createTenants(client, operatorKey: key, runId: configuration.runId, count: scenario.tenants)
            }
        case .existing(let keys, let key):
            operatorKey = key
            configuration.tenants = keys
        }
        if configuration.tenants.isEmpty { configuration.tenants = [TenantKeys(id: "-", writeKey: "", secretKey: nil)] }
        if scenario.mix[.admin, default: 0] > 0, configuration.tenants.contains(where: { $0.secretKey == nil }) {
            throw LoadError("admin reads need each tenant's secret key")
        }
        if scenario.campaignContacts != nil {
            log("defining the campaign segment and journey \(RunSetup.campaignJourney(configuration.runId))")
            try RunSetup.defineCampaign(client, tenants: configuration.tenants, runId: configuration.runId)
        }
        let reconciling = reconcile && needsTenants && configuration.tenants.allSatisfy { $0.secretKey != nil }
        let before = reconciling ? try counters(client, configuration.tenants) : []
        let serverBefore = operatorKey.flatMap { try? client.expect("GET", "/v1/admin/status", key: $0) }

        let startedAt = ISO8601DateFormatter().string(from: Date())
        let loadRunner = LoadRunner(configuration: configuration)
        runner?(loadRunner)
        // A campaign's enrollments are watched while the load runs, so their time is exact to ~50 ms.
        let enrolledAt = Mutex<Double?>(nil)
        let watching = Atomic<Bool>(true)
        if let contacts = scenario.campaignContacts {
            let journey = RunSetup.campaignJourney(configuration.runId)
            let tenants = configuration.tenants
            let wait = campaignWaitSeconds
            Thread {
                let deadline = Date().addingTimeInterval(wait + scenario.durationSeconds)
                while watching.load(ordering: .relaxed), Date() < deadline {
                    let entered = tenants.map { tenant in
                        let metrics = try? client.expect("GET", "/v1/admin/journeys/\(journey)/metrics", key: tenant.secretKey)
                        return Int(metrics?.objectValue?["entered"]?.numberValue ?? 0)
                    }.min() ?? 0
                    if entered >= contacts {
                        enrolledAt.withLock { $0 = loadRunner.secondsSinceStart }
                        return
                    }
                    Thread.sleep(forTimeInterval: 0.05)
                }
            }.start()
        }
        let cpuBefore = HostCPUSample.read()
        let measurements = try loadRunner.run(progress: progress)
        let cpuAfter = HostCPUSample.read()

        var campaignReport: CampaignReport?
        if let contacts = scenario.campaignContacts {
            let journey = RunSetup.campaignJourney(configuration.runId)
            var enrolled = 0
            let deadline = Date().addingTimeInterval(campaignWaitSeconds)
            while enrolledAt.withLock({ $0 }) == nil, Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
            watching.store(false, ordering: .relaxed)
            let enrolledSeconds = enrolledAt.withLock { $0 }
            enrolled = try configuration.tenants.map { tenant in
                let metrics = try client.expect("GET", "/v1/admin/journeys/\(journey)/metrics", key: tenant.secretKey)
                return Int(metrics.objectValue?["entered"]?.numberValue ?? 0)
            }.min() ?? 0
            campaignReport = CampaignReport(
                journey: journey, contacts: contacts, sentSeconds: measurements.campaignSentSeconds, enrolledSeconds: enrolledSeconds,
                enrolled: enrolled)
        }

        let after = reconciling ? try counters(client, configuration.tenants) : []
        let serverAfter = operatorKey.flatMap { try? client.expect("GET", "/v1/admin/status", key: $0) }
        var reconciliation: [TenantReconciliation] = []
        for (index, tenant) in configuration.tenants.enumerated() where reconciling {
            reconciliation.append(
                TenantReconciliation(
                    tenant: tenant.id, acknowledged: measurements.acknowledgedEvents[index], inDoubt: measurements.inDoubtEvents[index],
                    counted: after[index].accepted - before[index].accepted, duplicates: after[index].duplicates - before[index].duplicates))
        }
        let operations = RunReport.operations(measurements.recorder, elapsed: measurements.elapsedSeconds)
        var failures: [String] = []
        for tenant in reconciliation where !tenant.matches {
            failures.append(
                "tenant \(tenant.tenant): the server counted \(tenant.counted) events (\(tenant.duplicates) duplicates) but acknowledged \(tenant.acknowledged) (+\(tenant.inDoubt) in doubt)")
        }
        let total = operations.reduce(0) { $0 + $1.succeeded + $1.errorCount }
        let errors = operations.reduce(0) { $0 + $1.errorCount }
        if total == 0 { failures.append("no request completed") }
        if total > 0, Double(errors) / Double(total) > maximumErrorRate {
            failures.append(String(format: "%d of %d requests failed (%.2f%%, allowed %.2f%%)", errors, total, 100 * Double(errors) / Double(total), 100 * maximumErrorRate))
        }
        if let campaignReport, campaignReport.enrolledSeconds == nil {
            failures.append("the campaign enrolled \(campaignReport.enrolled) of \(campaignReport.contacts) contacts within \(Int(campaignWaitSeconds)) s")
        }
        let mode = configuration.openLoop
            ? String(format: "open loop at %.0f req/s over %d connections", scenario.rate ?? 0, scenario.connections)
            : "closed loop over \(scenario.connections) connections"
        let streamMode = scenario.streamConnections > 0
            ? ", \(scenario.streamConnections) stream connection(s) " + ((scenario.streamRate ?? 0) > 0 ? String(format: "at %.0f frames/s", scenario.streamRate!) : "as fast as acks allow")
            : ""
        return RunReport(
            scenario: scenario, runId: configuration.runId, target: "\(configuration.host):\(configuration.port)", mode: mode + streamMode,
            startedAt: startedAt, elapsedSeconds: measurements.elapsedSeconds, operations: operations,
            timeline: measurements.recorder.timeline.map { Dictionary(uniqueKeysWithValues: $0.map { ($0.key.rawValue, $0.value) }) },
            reconciliation: reconciliation, campaign: campaignReport, serverBefore: serverBefore, serverAfter: serverAfter,
            hostCPU: cpuBefore.flatMap { before in cpuAfter.map { HostCPUUsage(from: before, to: $0) } },
            clientScheduling: measurements.clientScheduling, failures: failures)
    }

    private func counters(_ client: AdminClient, _ tenants: [TenantKeys]) throws -> [(accepted: Int, duplicates: Int)] {
        try tenants.map { tenant in
            let overview = try client.expect("GET", "/v1/admin/overview", key: tenant.secretKey)
            return (Int(overview.objectValue?["eventsAccepted"]?.numberValue ?? -1), Int(overview.objectValue?["duplicatesSkipped"]?.numberValue ?? 0))
        }
    }
}
