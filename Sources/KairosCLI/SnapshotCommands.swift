import ArgumentParser
import Foundation
import KairosCore
import KairosEngine
import KairosStore

/// `kairos snapshot …`, also built alone as `kairos-snapshot` (tools/kairos-snapshot).
public struct SnapshotCommand: AsyncParsableCommand {
    public static let subcommands: [any ParsableCommand.Type] = [List.self, Verify.self, Inspect.self, Export.self, Take.self, Restore.self]
    public static let abstract = "List, verify, inspect, export and restore snapshots of a data directory."

    public static let configuration = CommandConfiguration(commandName: "snapshot", abstract: abstract, subcommands: subcommands)

    public init() {}
}

extension SnapshotCommand {
    public struct List: AsyncParsableCommand {
        public init() {}
        public static let configuration = CommandConfiguration(abstract: "List snapshots, newest first, with their checksum status.")
        @OptionGroup var storage: StorageOptions

        public func run() async throws {
            let entries = try storage.snapshots.list()
            if entries.isEmpty { printError("no snapshots in \(storage.snapshots.directory)") }
            print("SEQUENCE    CREATED                   SIZE        TENANTS  CONTACTS  CHECKSUM  FILE")
            for entry in entries {
                var tenants = "-"
                var contacts = "-"
                var status = "ok"
                var reason = ""
                do {
                    let payload = try storage.snapshots.read(entry)
                    let summary = try await summarize(payload)
                    tenants = "\(summary.tenants)"
                    contacts = "\(summary.contacts)"
                } catch let error as StoreError {
                    status = "BAD"
                    reason = " (\(error.message))"
                }
                print(
                    String(entry.sequence).padding(toLength: 12, withPad: " ", startingAt: 0)
                        + entry.createdAt.iso8601.padding(toLength: 26, withPad: " ", startingAt: 0)
                        + String(entry.size).padding(toLength: 12, withPad: " ", startingAt: 0)
                        + tenants.padding(toLength: 9, withPad: " ", startingAt: 0)
                        + contacts.padding(toLength: 10, withPad: " ", startingAt: 0)
                        + status.padding(toLength: 10, withPad: " ", startingAt: 0) + entry.path + reason)
            }
        }
    }

    public struct Verify: AsyncParsableCommand {
        public init() {}
        public static let configuration = CommandConfiguration(
            abstract: "Check every snapshot's checksum and decode it fully; exit 1 if any is damaged.")
        @OptionGroup var storage: StorageOptions

        public func run() async throws {
            var failures = 0
            for entry in try storage.snapshots.list() {
                do {
                    let summary = try await summarize(try storage.snapshots.read(entry))
                    print("ok   \(entry.path): \(summary.tenants) tenants, \(summary.contacts) contacts")
                } catch {
                    failures += 1
                    print("BAD  \(entry.path): \(error)")
                }
            }
            if failures > 0 { throw ExitCode(1) }
        }
    }

    public struct Inspect: AsyncParsableCommand {
        public init() {}
        public static let configuration = CommandConfiguration(
            abstract: "Summarize a snapshot, or print one contact of it as JSON.",
            discussion: "Example: kairos snapshot inspect --data-dir data --tenant demo --user-id ana")
        @OptionGroup var storage: StorageOptions
        @Option(help: "The snapshot's sequence (default: the newest valid one).") var sequence: UInt64?
        @Option(help: "A tenant to look into.") var tenant: String?
        @Option(help: "Print this contact (with --tenant).") var userId: String?
        @Option(help: "Print this anonymous contact (with --tenant).") var anonymousId: String?

        public func run() async throws {
            let (entry, engine) = try await loadSnapshot(storage, sequence: sequence)
            if let tenant, userId != nil || anonymousId != nil {
                let reference: Engine.ContactReference = userId.map { .userId($0) } ?? .anonymousId(anonymousId!)
                guard let view = try await engine.contact(tenant: tenant, reference, now: entry.createdAt) else {
                    printError("no such contact in tenant '\(tenant)' of \(entry.path)")
                    throw ExitCode(2)
                }
                print(try prettyJSON(view))
                return
            }
            print("snapshot \(entry.path)\n  journal sequence: \(entry.sequence)\n  created: \(entry.createdAt)")
            for id in engine.tenantIds where tenant == nil || tenant == id {
                let stats = try await engine.stats(tenant: id)
                print("  tenant \(id): \(stats.contacts) contacts, \(stats.accounts) accounts")
                for (segment, size) in stats.segmentSizes.sorted(by: { $0.key < $1.key }) {
                    print("    segment \(segment): \(size)")
                }
                for journey in try await engine.definitions(tenant: id, .journey).map(\.id) {
                    let status = try await engine.journeyStatus(tenant: id, journey: journey)
                    let report = try await engine.journeyReport(tenant: id, journey: journey)
                    print(
                        "    journey \(journey) (\(status.rawValue)): entered \(report.entered), in progress \(report.active), "
                            + "waiting \(report.waiting), goal \(report.goalReached), messages \(report.messages)")
                }
                let outbox = try engine.outbox(tenant: id, limit: 10_000).count
                if outbox > 0 { print("    outbox: \(outbox == 10_000 ? "10,000+" : String(outbox)) messages") }
            }
        }
    }

    public struct Export: AsyncParsableCommand {
        public init() {}
        public static let configuration = CommandConfiguration(
            abstract: "Export a tenant's contacts from a snapshot as NDJSON (full profiles) or CSV (one row each).")
        @OptionGroup var storage: StorageOptions
        @Option(help: "The snapshot's sequence (default: the newest valid one).") var sequence: UInt64?
        @Option(help: "The tenant.") var tenant = DemoTenant.id
        @Option(help: "ndjson or csv.") var format = "ndjson"

        public func validate() throws {
            guard ["ndjson", "csv"].contains(format) else { throw ValidationError("--format is ndjson or csv") }
        }

        public func run() async throws {
            let (entry, engine) = try await loadSnapshot(storage, sequence: sequence)
            let stats = try await engine.stats(tenant: tenant)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            if format == "csv" { print("id,user_id,anonymous_ids,first_seen,last_seen,segments,scores") }
            var exported = 0
            var id: UInt64 = 0
            // Contact ids are dense from 1; merged ones are gone.
            while exported < stats.contacts && id < UInt64.max {
                id += 1
                guard let view = try await engine.contact(tenant: tenant, .id(id), now: entry.createdAt) else {
                    if id > UInt64(stats.contacts) * 4 + 1000 { break }
                    continue
                }
                exported += 1
                if format == "ndjson" {
                    print(String(decoding: try encoder.encode(view), as: UTF8.self))
                } else {
                    let scores = view.scores.map { "\($0.model)=\(String(format: "%.1f", $0.score))" }.joined(separator: ";")
                    let fields = [
                        String(view.id), view.userId ?? "", view.anonymousIds.joined(separator: ";"),
                        view.firstSeen?.iso8601 ?? "", view.lastSeen?.iso8601 ?? "",
                        view.segments.map(\.segment).joined(separator: ";"), scores,
                    ]
                    print(fields.map(csvField).joined(separator: ","))
                }
                if exported % 100_000 == 0 { printError("… \(exported) of \(stats.contacts) contacts") }
            }
            printError("exported \(exported) contacts of tenant '\(tenant)'")
        }
    }

    public struct Take: AsyncParsableCommand {
        public init() {}
        public static let configuration = CommandConfiguration(abstract: "Recover the data directory and write a snapshot now.")
        @OptionGroup var storage: StorageOptions

        public func run() async throws {
            let (engine, journal) = try await storage.openEngine()
            defer { journal.close() }
            try await storage.writeSnapshot(engine, journal: journal)
        }
    }

    public struct Restore: AsyncParsableCommand {
        public init() {}
        public static let configuration = CommandConfiguration(
            abstract: "Make a chosen snapshot the one the next start uses, optionally replaying the journal to a sequence.",
            discussion: """
                Newer snapshots are moved aside (into a 'set-aside-TIME' folder). With --to-sequence, \
                the journal is replayed from the snapshot up to that sequence (point-in-time \
                recovery), a new snapshot is written there, and the journal records after it are \
                discarded; a copy of the journal is kept next to it first.
                """)
        @OptionGroup var storage: StorageOptions
        @Option(help: "The snapshot's sequence.") var sequence: UInt64
        @Option(help: "Replay the journal up to this sequence (inclusive).") var toSequence: UInt64?

        public func run() async throws {
            let store = storage.snapshots
            guard let chosen = try store.list().first(where: { $0.sequence == sequence }) else {
                throw ValidationError("no snapshot with sequence \(sequence) in \(store.directory) (see 'kairos snapshot list')")
            }
            _ = try store.read(chosen)
            let aside = store.directory + "/set-aside-\(Int(Date().timeIntervalSince1970))"
            for newer in try store.list() where newer.sequence > chosen.sequence || (newer.sequence == chosen.sequence && newer.path != chosen.path && newer.createdAt > chosen.createdAt) {
                try FileManager.default.createDirectory(atPath: aside, withIntermediateDirectories: true)
                try FileManager.default.moveItem(atPath: newer.path, toPath: aside + "/" + (newer.path as NSString).lastPathComponent)
                printError("set aside \(newer.path)")
            }
            guard let limit = toSequence else {
                printError("the next start loads \(chosen.path) and replays the journal after it")
                return
            }
            guard limit >= chosen.sequence else { throw ValidationError("--to-sequence must be at least the snapshot's sequence \(chosen.sequence)") }
            let journalPath = storage.dataDir + "/journal.sqlite"
            let copy = journalPath + ".before-restore-\(Int(Date().timeIntervalSince1970))"
            try FileManager.default.copyItem(atPath: journalPath, toPath: copy)
            printError("kept a copy of the journal at \(copy)")
            let journal = try SQLiteJournal(path: journalPath, mode: storage.durability)
            defer { journal.close() }
            let engine = Engine(journal: journal)
            _ = try await engine.restore(snapshot: try store.read(chosen))
            let report = try await engine.recover(upTo: limit) { sequence in printError("… replayed to sequence \(sequence)") }
            try journal.discard(after: limit)
            try await storage.writeSnapshot(engine, journal: journal)
            printError("restored to sequence \(report.lastSequence) (\(report.commandsReplayed) commands replayed)")
        }
    }
}

private func summarize(_ payload: ReadOnlyBytes) async throws -> (tenants: Int, contacts: Int) {
    let engine = Engine()
    return try await engine.restore(snapshot: payload)
}

private func loadSnapshot(_ storage: StorageOptions, sequence: UInt64?) async throws -> (SnapshotStore.Entry, Engine) {
    let store = storage.snapshots
    let chosen: (SnapshotStore.Entry, ReadOnlyBytes)
    if let sequence {
        guard let entry = try store.list().first(where: { $0.sequence == sequence }) else {
            throw ValidationError("no snapshot with sequence \(sequence) in \(store.directory)")
        }
        chosen = (entry, try store.read(entry))
    } else {
        guard let newest = try store.newestValid(skipped: { entry, error in printError("skipping \(entry.path): \(error)") }) else {
            throw ValidationError("no valid snapshot in \(store.directory)")
        }
        chosen = newest
    }
    let engine = Engine()
    _ = try await engine.restore(snapshot: chosen.1)
    return (chosen.0, engine)
}

public func prettyJSON<T: Encodable>(_ value: T) throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    return String(decoding: try encoder.encode(value), as: UTF8.self)
}

private func csvField(_ text: String) -> String {
    text.contains(",") || text.contains("\"") || text.contains("\n") ? "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : text
}
