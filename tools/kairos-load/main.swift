import ArgumentParser
import Foundation
import KairosGateway
import KairosLoad

@main
struct KairosLoadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kairos-load",
        abstract: "Drive a running Kairos server with realistic traffic and report honest latencies.",
        discussion: """
            Sends Segment HTTP ingest (single calls and batches), event-stream frames, decide calls \
            and admin reads in a scenario's mix. With a rate, requests are scheduled by time (open \
            loop) and every latency counts from when the request was due, so a stall shows as \
            latency; without one, each connection sends as fast as answers come (closed loop).

            At the end it checks the server: the events it acknowledged must equal the events the \
            server counted for each tenant, and errors must stay under --max-error-rate; it exits \
            1 when a check fails.

            Built-in scenarios: site-traffic, event-firehose, campaign-burst, bare-get. Or a JSON \
            file (fields in docs/load-testing.md).

            Examples:
              kairos-load run site-traffic --operator-key-file data/operator-key
              kairos-load run event-firehose --duration 30 --json out.json --html out.html
              kairos-load run bare-get --no-reconcile --port 9090  # against fixed-server
            """,
        subcommands: [Run.self, FixedServer.self, Scenarios.self],
        defaultSubcommand: Run.self
    )
}

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run a scenario against a server.")

    @Argument(help: "A built-in scenario (site-traffic, event-firehose, campaign-burst, bare-get) or a scenario JSON file.")
    var scenario = "site-traffic"

    @Option(help: "Server address (IPv4). Only addresses given here are targeted.")
    var host = "127.0.0.1"

    @Option(help: "HTTP port.")
    var port = 8080

    @Option(help: "Event-stream port.")
    var streamPort = 8081

    @Option(help: "Operator key (creates the run's tenants, reads server status); or KAIROS_OPERATOR_KEY.")
    var operatorKey = ProcessInfo.processInfo.environment["KAIROS_OPERATOR_KEY"] ?? ""

    @Option(help: "File holding the operator key (kairos serve writes DATA_DIR/operator-key).")
    var operatorKeyFile: String?

    @Option(help: "Use this tenant's write key instead of creating tenants (with --secret-key for admin reads and reconciliation).")
    var writeKey: String?

    @Option(help: "The existing tenant's secret key.")
    var secretKey: String?

    @Option(help: "Requests per second over all HTTP connections (open loop); 0 runs closed loop. Overrides the scenario.")
    var rate: Double?

    @Option(help: "Event-stream frames per second (0: as fast as acks allow). Overrides the scenario.")
    var streamRate: Double?

    @Option(help: "Seconds to run. Overrides the scenario.")
    var duration: Double?

    @Option(help: "Stop after this many requests and frames in all.")
    var maxRequests: Int?

    @Option(help: "HTTP connections. Overrides the scenario.")
    var connections: Int?

    @Option(help: "Client threads.")
    var threads = 2

    @Option(help: "Fail when more than this share of requests fail.")
    var maxErrorRate = 0.001

    @Flag(help: "Skip reconciling acknowledged events with the server's counts.")
    var noReconcile = false

    @Option(help: "Write the report as JSON to this file ('-' for standard output).")
    var json: String?

    @Option(help: "Write an HTML report with latency and throughput charts to this file.")
    var html: String?

    @Flag(
        help: """
            Keep the client's threads at normal priority. By default an open-loop run asks for real-time priority \
            (SCHED_FIFO; root or CAP_SYS_NICE) so that the client's own waits for a CPU are not counted as the \
            server's latency; the report says what it got.
            """)
    var normalPriority = false

    @Flag(help: "No live progress line.")
    var quiet = false

    func validate() throws {
        guard (1...64).contains(threads) else { throw ValidationError("--threads must be 1–64") }
        if let duration, !(duration > 0 && duration <= 3600) { throw ValidationError("--duration must be above 0 and at most 3600 seconds") }
        if let maxRequests, maxRequests <= 0 { throw ValidationError("--max-requests must be above 0") }
        if (rate ?? 0) < 0 || (streamRate ?? 0) < 0 { throw ValidationError("rates must be ≥ 0") }
    }

    func run() async throws {
        var scenario = try Scenario.load(self.scenario)
        if let rate { scenario.rate = rate }
        if let streamRate { scenario.streamRate = streamRate }
        if let duration { scenario.durationSeconds = duration }
        if let connections { scenario.connections = connections }
        try scenario.validate()

        var key = operatorKey
        if key.isEmpty, let operatorKeyFile {
            key = (try String(contentsOfFile: operatorKeyFile, encoding: .utf8)).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let runId = String(UInt64.random(in: 0...UInt64.max), radix: 36)
        var configuration = RunConfiguration(scenario: scenario, tenants: [], runId: runId)
        configuration.host = host
        configuration.port = port
        configuration.streamPort = streamPort
        configuration.threads = threads
        configuration.maxRequests = maxRequests
        configuration.realtimeClient = !normalPriority
        let tenants: LoadTest.Tenants
        if let writeKey {
            tenants = .existing([TenantKeys(id: "given", writeKey: writeKey, secretKey: secretKey)], operatorKey: key.isEmpty ? nil : key)
        } else if !key.isEmpty {
            tenants = .create(operatorKey: key)
        } else if scenario.mix.keys.allSatisfy({ $0 == .get }) && scenario.streamConnections == 0 && scenario.campaignContacts == nil {
            tenants = .existing([], operatorKey: nil)
        } else {
            throw ValidationError("give --operator-key (or --operator-key-file) to create tenants, or --write-key for an existing tenant")
        }
        var test = LoadTest(configuration: configuration, tenants: tenants)
        test.maximumErrorRate = maxErrorRate
        test.reconcile = !noReconcile
        let quiet = self.quiet
        let progress: @Sendable (RunProgress) -> Void = { progress in
            guard !quiet else { return }
            let line = String(
                format: "\r%5.1f s  %d done  %.0f/s  %d errors  %d in flight   ", progress.elapsedSeconds, progress.completed,
                Double(progress.completed) / max(progress.elapsedSeconds, 0.001), progress.errors, progress.inFlight)
            FileHandle.standardError.write(Data(line.utf8))
        }
        let log: @Sendable (String) -> Void = { FileHandle.standardError.write(Data(("kairos-load: " + $0 + "\n").utf8)) }
        let loadTest = test
        let report = try await offThread { try loadTest.run(log: log, progress: progress) }
        if !quiet { FileHandle.standardError.write(Data("\n".utf8)) }

        if json == "-" {
            FileHandle.standardOutput.write(try report.json())
            FileHandle.standardOutput.write(Data("\n".utf8))
        } else {
            print(report.table())
            if let json {
                try report.json().write(to: URL(fileURLWithPath: json))
                log("wrote \(json)")
            }
        }
        if let html {
            try Data(report.html().utf8).write(to: URL(fileURLWithPath: html))
            log("wrote \(html)")
        }
        if !report.passed { throw ExitCode(1) }
    }
}

struct FixedServer: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fixed-server",
        abstract: "Serve a fixed body on every request (Kairos's libuv HTTP layer, no engine), to measure the client.",
        discussion: "Example: kairos-load fixed-server --port 9090 & wrk -t2 -c32 -d5s http://127.0.0.1:9090/ ; kairos-load run bare-get --port 9090")

    @Option(help: "Port on the loopback address (0: any free port).")
    var port = 9090

    @Option(help: "Seconds to serve before exiting (0: until killed).")
    var seconds = 0

    func run() async throws {
        let server = FixedResponseServer()
        let bound = try await server.start(port: port)
        FileHandle.standardError.write(Data("kairos-load: fixed-body server on 127.0.0.1:\(bound)\n".utf8))
        if seconds > 0 {
            try await Task.sleep(for: .seconds(seconds))
        } else {
            while true { try await Task.sleep(for: .seconds(3600)) }
        }
        await server.stop()
    }
}

struct Scenarios: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the built-in scenarios as JSON (a starting point for your own).")

    func run() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        for name in Scenario.builtIn.keys.sorted() {
            print(String(decoding: try encoder.encode(Scenario.builtIn[name]!), as: UTF8.self))
        }
    }
}

/// Runs blocking work on its own thread, off the concurrency pool.
func offThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try work() }) }.start()
    }
}
