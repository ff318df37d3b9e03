import ArgumentParser
import KairosCLI
import Foundation
import KairosCore
import KairosEngine
import KairosStore

extension Kairos {
    struct Import: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Import Segment events (NDJSON) into a tenant of a data directory.",
            discussion: """
                Reads one Segment message per line (track, identify, page, screen, group, alias; \
                a line may also be a {"batch": [...]} object) from FILE, or standard input when \
                FILE is '-'. Events are validated; a bad line is reported with its line number and \
                skipped, the others are imported. Each batch is journaled before it is applied; \
                with --ack, a line 'ack N' is printed once the first N input lines are durable. \
                Re-importing the same events is safe: messageIds already seen are not applied twice.

                Example: kairos import --data-dir data --tenant demo events.ndjson
                """
        )

        @OptionGroup var storage: StorageOptions

        @Option(help: "The tenant to import into (created when missing).")
        var tenant = DemoTenant.id

        @Option(help: "Events per journaled batch.")
        var batchSize = 100

        @Flag(help: "Print 'ack N' on standard output as soon as the first N lines are durable.")
        var ack = false

        @Option(help: "Also write a snapshot every N batches (0: only at the end).")
        var snapshotEvery = 0

        @Option(help: "Also write a snapshot every N seconds while importing (0: off).")
        var snapshotSeconds = 0

        @Argument(help: "An NDJSON file, or '-' for standard input.")
        var file = "-"

        func validate() throws {
            guard (1...10_000).contains(batchSize) else { throw ValidationError("--batch-size must be 1…10000") }
        }

        func run() async throws {
            let (engine, journal) = try await storage.openEngine()
            defer { journal.close() }
            if !engine.tenantIds.contains(tenant) {
                if tenant == DemoTenant.id {
                    try await DemoTenant.install(into: engine, now: Timestamp(seconds: Date().timeIntervalSince1970))
                } else {
                    try await engine.createTenant(id: tenant, now: Timestamp(seconds: Date().timeIntervalSince1970))
                }
            }
            if file != "-" {
                // Read the file through standard input, so both sources share one line reader.
                let descriptor = open(file, O_RDONLY)
                guard descriptor >= 0, dup2(descriptor, STDIN_FILENO) >= 0 else {
                    throw ValidationError("cannot read '\(file)' (\(String(cString: strerror(errno))))")
                }
                close(descriptor)
            }
            // Snapshots on a clock while the import runs.
            let snapshotter = Snapshotter(
                engine: engine, journal: journal, store: storage.snapshots,
                interval: snapshotSeconds > 0 ? .seconds(Int64(snapshotSeconds)) : nil, commands: nil)
            let periodic = snapshotSeconds > 0
                ? Task { await snapshotter.run(clock: SystemClock()) { result in
                    if case .failure(let error) = result { printError("snapshot failed: \(error)") }
                } }
                : nil
            defer { periodic?.cancel() }
            let decoder = EventDecoder()
            var batch: [Event] = []
            var lineNumber = 0
            var imported = 0
            var duplicates = 0
            var rejected = 0
            let started = Date()

            var batches = 0
            func flush() async throws {
                guard !batch.isEmpty else { return }
                batches += 1
                let now = Timestamp(seconds: Date().timeIntervalSince1970)
                let report = try await engine.ingest(tenant: tenant, events: batch, now: now)
                imported += report.appliedCount
                duplicates += report.duplicateCount
                batch.removeAll(keepingCapacity: true)
                if ack { FileHandle.standardOutput.write(Data("ack \(lineNumber)\n".utf8)) }
                if snapshotEvery > 0 && batches % snapshotEvery == 0 {
                    try await storage.writeSnapshot(engine, journal: journal, quiet: true)
                }
            }

            while let line = readLine(strippingNewline: true) {
                lineNumber += 1
                let trimmed = line.trimmingCharacters(in: .whitespaces)
                if trimmed.isEmpty { continue }
                let receivedAt = Timestamp(seconds: Date().timeIntervalSince1970)
                let results: [Result<Event, EventValidationError>]
                do {
                    let json = try JSONValue.parse(trimmed)
                    if case .object(let object) = json, object["batch"] != nil {
                        switch decoder.decodeBatch(json, receivedAt: receivedAt) {
                        case .success(let items): results = items
                        case .failure(let error): results = [.failure(error)]
                        }
                    } else {
                        results = [decoder.decode(json, receivedAt: receivedAt)]
                    }
                } catch {
                    rejected += 1
                    printError("line \(lineNumber): not valid JSON")
                    continue
                }
                for result in results {
                    switch result {
                    case .success(let event): batch.append(event)
                    case .failure(let error):
                        rejected += 1
                        printError("line \(lineNumber): \(error)")
                    }
                }
                if batch.count >= batchSize { try await flush() }
                if lineNumber % 100_000 == 0 { printError("… \(lineNumber) lines, \(imported) events imported") }
            }
            try await flush()
            try await storage.writeSnapshot(engine, journal: journal)
            let seconds = Date().timeIntervalSince(started)
            printError(
                String(
                    format: "imported %d events (%d duplicates skipped, %d rejected) from %d lines in %.2f s",
                    imported, duplicates, rejected, lineNumber, seconds))
        }
    }

    struct Contact: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print one contact of a data directory as JSON.",
            discussion: """
                Recovers the state from the journal, then prints the contact: traits, scores with \
                their per-rule breakdown and history, segments, recent activity and event counts.

                Example: kairos contact --data-dir data --tenant demo --user-id ana
                """
        )

        @OptionGroup var storage: StorageOptions

        @Option(help: "The tenant.")
        var tenant = DemoTenant.id

        @Option(help: "The contact's userId.")
        var userId: String?

        @Option(help: "The contact's anonymousId.")
        var anonymousId: String?

        func validate() throws {
            guard (userId == nil) != (anonymousId == nil) else { throw ValidationError("give exactly one of --user-id or --anonymous-id") }
        }

        func run() async throws {
            let (engine, journal) = try await storage.openEngine(quiet: true)
            defer { journal.close() }
            let reference: Engine.ContactReference = userId.map { .userId($0) } ?? .anonymousId(anonymousId!)
            guard let view = try await engine.contact(tenant: tenant, reference, now: Timestamp(seconds: Date().timeIntervalSince1970))
            else {
                printError("no such contact in tenant '\(tenant)'")
                throw ExitCode(2)
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(view), as: UTF8.self))
        }
    }
}
