import ArgumentParser
import Foundation
import KairosCLI
import KairosCore
import KairosEngine
import KairosGateway
import KairosMemory
import KairosStore
import Synchronization

extension Kairos {
    struct Serve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run the Kairos server: Segment-compatible ingest and decisions over HTTP.",
            discussion: """
                Recovers the state in the data directory (newest valid snapshot, then the \
                journal), then listens. On first start with an empty data directory it creates \
                the demo tenant (scoring models, segments, placements, an experiment and two \
                journeys) and prints its write key with copy-paste curl examples.

                Endpoints: POST /v1/track, /v1/identify, /v1/page, /v1/screen, /v1/group, \
                /v1/alias, /v1/batch (Segment's HTTP Tracking API; the write key as the Basic auth \
                user name); POST or GET /v1/decide; GET /healthz and /readyz. The event stream \
                (newline-delimited JSON over TCP, docs/stream-protocol.md) on --stream-port.

                Every option can also come from the environment: KAIROS_HOST, KAIROS_PORT, \
                KAIROS_STREAM_PORT, KAIROS_DATA_DIR, KAIROS_DURABILITY, KAIROS_SNAPSHOT_DIR, KAIROS_SNAPSHOT_SECONDS, \
                KAIROS_CORS_ORIGINS, KAIROS_MAX_CONNECTIONS, KAIROS_LOOP_PRIORITY, KAIROS_LOG_LEVEL.

                SIGTERM or SIGINT: stop accepting, answer the requests in flight, write a final \
                snapshot, exit 0.
                """
        )

        @Option(help: "Address to listen on (KAIROS_HOST).")
        var host = ProcessInfo.processInfo.environment["KAIROS_HOST"] ?? "127.0.0.1"

        @Option(help: "HTTP port; 0 picks a free one (KAIROS_PORT).")
        var port = Int(ProcessInfo.processInfo.environment["KAIROS_PORT"] ?? "") ?? 8080

        @Option(help: "Port of the event stream (newline-delimited JSON over TCP); 0 picks a free one, -1 turns it off (KAIROS_STREAM_PORT).")
        var streamPort = Int(ProcessInfo.processInfo.environment["KAIROS_STREAM_PORT"] ?? "") ?? 8081

        @Option(help: "Directory holding the journal and snapshots (KAIROS_DATA_DIR).")
        var dataDir = ProcessInfo.processInfo.environment["KAIROS_DATA_DIR"] ?? "data"

        @Option(help: "strict: acknowledge after the journal is synced; fast: after it is written (KAIROS_DURABILITY).")
        var durability = DurabilityMode(rawValue: ProcessInfo.processInfo.environment["KAIROS_DURABILITY"] ?? "") ?? .fast

        @Option(help: "Directory of snapshots (default DATA_DIR/snapshots; KAIROS_SNAPSHOT_DIR).")
        var snapshotDir = ProcessInfo.processInfo.environment["KAIROS_SNAPSHOT_DIR"] ?? ""

        @Option(help: "Seconds between scheduled snapshots; 0 for none (KAIROS_SNAPSHOT_SECONDS).")
        var snapshotSeconds = Int(ProcessInfo.processInfo.environment["KAIROS_SNAPSHOT_SECONDS"] ?? "") ?? 300

        @Option(help: "Journal records between scheduled snapshots.")
        var snapshotEvery: UInt64 = 5_000_000

        @Option(help: "Origins allowed to call from browsers, comma-separated, or * (KAIROS_CORS_ORIGINS).")
        var corsOrigins = ProcessInfo.processInfo.environment["KAIROS_CORS_ORIGINS"] ?? "*"

        @Option(help: "Most connections open at once (KAIROS_MAX_CONNECTIONS).")
        var maxConnections = Int(ProcessInfo.processInfo.environment["KAIROS_MAX_CONNECTIONS"] ?? "") ?? 10_000

        @Option(help: "Seconds a keep-alive connection may stay idle.")
        var idleTimeout = 30

        @Option(help: "Seconds a request may take to arrive in full (slow clients).")
        var requestTimeout = 10

        @Option(
            help: """
                The operator key for /v1/admin/tenants, /v1/admin/status and /v1/admin/snapshots (KAIROS_OPERATOR_KEY). \
                Without one, a key is generated on first start and kept in DATA_DIR/operator-key (readable by its owner only).
                """)
        var operatorKey = ProcessInfo.processInfo.environment["KAIROS_OPERATOR_KEY"] ?? ""

        @Option(
            help: """
                realtime: the gateway's loop thread (reads, decisions, acks) runs under SCHED_FIFO, so on a busy \
                machine it does not wait behind the threads applying ingest; needs root, CAP_SYS_NICE or an \
                RLIMIT_RTPRIO, else the loop runs normally and the log says why. normal: the fair scheduler \
                (KAIROS_LOOP_PRIORITY).
                """)
        var loopPriority = LoopPriority(rawValue: ProcessInfo.processInfo.environment["KAIROS_LOOP_PRIORITY"] ?? "") ?? .realtime

        @Option(help: "info or debug (KAIROS_LOG_LEVEL).")
        var logLevel = ProcessInfo.processInfo.environment["KAIROS_LOG_LEVEL"] ?? "info"

        func validate() throws {
            // A misspelt value in the environment is an error, not the default.
            let environment = ProcessInfo.processInfo.environment
            for (name, allowed) in [
                ("KAIROS_DURABILITY", DurabilityMode.allCases.map(\.rawValue)), ("KAIROS_LOOP_PRIORITY", LoopPriority.allCases.map(\.rawValue)),
            ] {
                if let value = environment[name], !value.isEmpty, !allowed.contains(value) {
                    throw ValidationError("\(name) must be \(allowed.joined(separator: " or ")), not '\(value)'")
                }
            }
            guard (0...65535).contains(port) else { throw ValidationError("--port must be 0–65535") }
            guard (-1...65535).contains(streamPort) else { throw ValidationError("--stream-port must be 0–65535, or -1 for none") }
            guard snapshotSeconds >= 0, maxConnections > 0, idleTimeout > 0, requestTimeout > 0 else {
                throw ValidationError("--snapshot-seconds must be ≥ 0; --max-connections, --idle-timeout and --request-timeout > 0")
            }
        }

        func run() async throws {
            // Past a file size limit (ulimit -f), a write fails like a full disk instead of killing the server.
            signal(SIGXFSZ, SIG_IGN)
            let stop = StopSignal()
            var storageArguments = ["--data-dir", dataDir, "--durability", durability.rawValue]
            if !snapshotDir.isEmpty { storageArguments += ["--snapshot-dir", snapshotDir] }
            let storage = try StorageOptions.parse(storageArguments)
            let started = ContinuousClock.now
            let (engine, journal) = try await storage.openEngine()
            let recovery = ContinuousClock.now - started
            defer { journal.close() }
            let clock = SystemClock()
            var demoKey: String?
            var demoSecretKey: String?
            if engine.tenantIds.isEmpty {
                try await DemoTenant.install(into: engine, now: clock.now())
                demoKey = try await engine.createWriteKey(tenant: DemoTenant.id, now: clock.now())
                demoSecretKey = try await engine.createKey(tenant: DemoTenant.id, scope: .secret, now: clock.now())
            }

            var configuration = GatewayConfiguration()
            configuration.host = host
            configuration.httpPort = port
            configuration.streamPort = streamPort >= 0 ? streamPort : nil
            configuration.corsOrigins = corsOrigins.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                .filter { !$0.isEmpty }
            configuration.limits.maximumConnections = maxConnections
            configuration.limits.idleTimeout = .seconds(idleTimeout)
            configuration.limits.requestTimeout = .seconds(requestTimeout)
            configuration.loopPriority = loopPriority
            configuration.operatorKey = try operatorKey.isEmpty ? Serve.storedOperatorKey(dataDir: dataDir) : operatorKey
            let recoverySeconds = Double(recovery.components.seconds) + Double(recovery.components.attoseconds) / 1e18
            let durabilityName = durability.rawValue
            let launched = Date()
            let startedLoop = StartedLoop()
            let operations = ServerOperations(
                takeSnapshot: {
                    let written = try await storage.writeSnapshot(engine, journal: journal, quiet: true)
                    return [
                        "path": .string(written.entry.path), "sequence": .number(Double(written.entry.sequence)),
                        "bytes": .number(Double(written.entry.size)), "tenants": .number(Double(written.tenants)),
                        "contacts": .number(Double(written.contacts)),
                    ]
                },
                status: {
                    let snapshots = (try? storage.snapshots.list()) ?? []
                    let journalBytes = ["", "-wal"].reduce(0) { total, suffix in
                        total + ((try? FileManager.default.attributesOfItem(atPath: journal.path + suffix)[.size] as? Int) ?? 0)
                    }
                    return [
                        "version": .string(Kairos.configuration.version), "uptimeSeconds": .number(Date().timeIntervalSince(launched).rounded()),
                        "recoverySeconds": .number(recoverySeconds), "durability": .string(durabilityName),
                        "memoryAllocator": .string(MemoryAllocator.description),
                        "loopPriority": .string((startedLoop.scheduling.withLock { $0 }?.priority ?? .normal).rawValue),
                        "tenants": .number(Double(engine.tenantIds.count)), "pendingTimers": .number(Double(engine.pendingTimers)),
                        "journalBytes": .number(Double(journalBytes)),
                        "snapshots": .array(snapshots.map { ["path": .string($0.path), "sequence": .number(Double($0.sequence)), "bytes": .number(Double($0.size))] }),
                    ]
                })
            let gateway = Gateway(engine: engine, configuration: configuration, clock: clock, operations: operations)
            try await gateway.start()
            startedLoop.scheduling.withLock { $0 = gateway.loopScheduling }
            gateway.setReady(true)
            let address = "http://\(host):\(gateway.httpPort)"
            let streamText = gateway.streamPort.map { ", event stream on \(host):\($0)" } ?? ""
            printError("kairos: listening on \(address)\(streamText) (\(engine.tenantIds.count) tenants, ready in \(seconds(since: started)))")
            if operatorKey.isEmpty { printError("kairos: operator key in \(dataDir)/operator-key") }
            let scheduling = gateway.loopScheduling
            if let refusal = scheduling.refusal {
                printError("kairos: gateway loop at normal priority, \(refusal) (needs root, CAP_SYS_NICE or an RLIMIT_RTPRIO)")
            } else if scheduling.priority == .realtime {
                printError("kairos: gateway loop at real-time priority (SCHED_FIFO 1)")
            }
            if let demoKey, let demoSecretKey {
                printDemoInstructions(address: address, streamPort: gateway.streamPort, key: demoKey, secretKey: demoSecretKey)
            }

            let timers = Task { await engine.runTimers(clock: clock) }
            let snapshotter = Snapshotter(
                engine: engine, journal: journal, store: storage.snapshots,
                interval: snapshotSeconds > 0 ? .seconds(Int64(snapshotSeconds)) : nil, commands: snapshotEvery)
            let verbose = logLevel == "debug"
            let schedule = Task {
                await snapshotter.run(clock: clock) { result in
                    switch result {
                    case .success(let entry): if verbose { printError("kairos: wrote snapshot \(entry.path)") }
                    case .failure(let error): printError("kairos: scheduled snapshot failed: \(error)")
                    }
                }
            }
            while !stop.requested { try? await Task.sleep(for: .milliseconds(50)) }
            printError("kairos: \(stop.name ?? "signal") received: finishing requests in flight")
            gateway.setReady(false)
            await gateway.shutDown()
            schedule.cancel()
            timers.cancel()
            _ = await schedule.value
            _ = await timers.value
            try await storage.writeSnapshot(engine, journal: journal)
            printError("kairos: stopped")
        }

        /// The operator key kept in the data directory, created (owner-readable only) when missing.
        static func storedOperatorKey(dataDir: String) throws -> String {
            let path = dataDir + "/operator-key"
            if let text = try? String(contentsOfFile: path, encoding: .utf8) {
                let key = text.trimmingCharacters(in: .whitespacesAndNewlines)
                if !key.isEmpty { return key }
            }
            var generator = SystemRandomNumberGenerator()
            let key = "ok_" + (0..<4).map { _ in
                let text = String(generator.next() as UInt64, radix: 16)
                return String(repeating: "0", count: 16 - text.count) + text
            }.joined()
            guard FileManager.default.createFile(atPath: path, contents: Data((key + "\n").utf8), attributes: [.posixPermissions: 0o600]) else {
                throw ValidationError("cannot write the operator key to \(path)")
            }
            return key
        }

        func printDemoInstructions(address: String, streamPort: Int?, key: String, secretKey: String) {
            let stream = streamPort.map { port in
                """

                Stream events (one JSON frame per line; the server acks the highest durable seq):
                    printf '%s\\n' '{"type": "hello", "writeKey": "\(key)", "client": "shell"}' \\
                      '{"seq": 1, "type": "track", "userId": "ana", "event": "Viewed Pricing"}' | nc -q 1 \(host) \(port)


                """
            } ?? ""
            // Written at once (not buffered), so it shows when the output goes to a file or pipe.
            FileHandle.standardOutput.write(Data(
                """

                Demo tenant 'demo' created. Its write key (shown once; only its hash is stored):

                    \(key)

                Send an event:
                    curl -u '\(key):' \(address)/v1/track -H 'content-type: application/json' \\
                      -d '{"userId": "ana", "event": "Signed Up", "properties": {"plan": "trial"}}'

                Ask for a decision:
                    curl -u '\(key):' \(address)/v1/decide -H 'content-type: application/json' \\
                      -d '{"userId": "ana", "placements": ["home-hero", "pricing-cta"], "context": {"url": "https://example.com/?utm_source=google"}}'

                Its secret key, for the admin API (keep it on servers):

                    \(secretKey)

                Read a contact, list segments:
                    curl -H 'authorization: Bearer \(secretKey)' '\(address)/v1/admin/contacts?userId=ana'
                    curl -H 'authorization: Bearer \(secretKey)' \(address)/v1/admin/segments

                Check the server:
                    curl \(address)/readyz
                \(stream)
                """.utf8))
        }
    }

    struct Tenant: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create tenants and write keys in a data directory (run it while the server is stopped).",
            subcommands: [Create.self, Key.self]
        )

        struct Create: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Create a tenant and print its write key (shown once; only its hash is stored).",
                discussion: "Example: kairos tenant create acme --data-dir data")

            @Argument(help: "The tenant id: 1–64 letters, digits, '-' or '_'.")
            var name: String

            @OptionGroup var storage: StorageOptions

            func run() async throws {
                let (engine, journal) = try await storage.openEngine(quiet: true)
                defer { journal.close() }
                let now = SystemClock().now()
                try await engine.createTenant(id: name, now: now)
                let key = try await engine.createWriteKey(tenant: name, now: now)
                print("tenant \(name) created; write key: \(key)")
            }
        }

        struct Key: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Create another write key for an existing tenant and print it.",
                discussion: "Example: kairos tenant key demo --data-dir data")

            @Argument(help: "The tenant id.")
            var name: String

            @OptionGroup var storage: StorageOptions

            func run() async throws {
                let (engine, journal) = try await storage.openEngine(quiet: true)
                defer { journal.close() }
                let key = try await engine.createWriteKey(tenant: name, now: SystemClock().now())
                print("new write key for \(name): \(key)")
            }
        }
    }
}

/// How the gateway's loop thread runs, for the status answer: known once the gateway has started.
private final class StartedLoop: Sendable {
    let scheduling = Mutex<LoopScheduling?>(nil)
}

extension LoopPriority: ExpressibleByArgument {}
