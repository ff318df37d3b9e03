import ArgumentParser
import Foundation
import KairosCore
import KairosEngine
import KairosStore

/// Options shared by commands that work on a data directory.
public struct StorageOptions: ParsableArguments {
    public init() {}

    @Option(help: "Directory holding the journal (created when missing).")
    public var dataDir = "data"

    @Option(help: "strict: acknowledge after the journal is synced (survives power loss); fast: after it is written (survives a crash).")
    public var durability: DurabilityMode = .strict

    @Option(help: "Directory of snapshots (default: DATA_DIR/snapshots).")
    public var snapshotDir: String?

    @Option(help: "How many snapshots to keep.")
    public var keepSnapshots = 3

    public var snapshots: SnapshotStore { SnapshotStore(directory: snapshotDir ?? dataDir + "/snapshots", keep: keepSnapshots) }

    /// Loads the newest snapshot that verifies (falling back to older ones), then replays the
    /// journal after it, saying what each phase took.
    public func openEngine(quiet: Bool = false) async throws -> (Engine, SQLiteJournal) {
        try FileManager.default.createDirectory(atPath: dataDir, withIntermediateDirectories: true)
        let journal = try SQLiteJournal(path: dataDir + "/journal.sqlite", mode: durability)
        let engine = Engine(journal: journal)
        let loading = ContinuousClock.now
        let newest = try snapshots.newestValid { entry, error in
            printError("snapshot \(entry.path) is unusable (\(error)); trying an older one")
        }
        if let (entry, payload) = newest {
            let restored = try await engine.restore(snapshot: payload)
            if !quiet {
                printError(
                    "loaded snapshot \(entry.path): \(restored.tenants) tenants, \(restored.contacts) contacts in \(seconds(since: loading))")
            }
        }
        let report = try await engine.recover()
        if !quiet && report.commandsReplayed > 0 {
            printError(
                String(
                    format: "replayed %d commands (%d events) up to sequence %llu in %.2f s from %@",
                    report.commandsReplayed, report.eventsReplayed, report.lastSequence, report.seconds, journal.path))
        }
        return (engine, journal)
    }

    /// Writes a snapshot of the engine and drops the journal no kept snapshot needs any more.
    @discardableResult
    public func writeSnapshot(_ engine: Engine, journal: SQLiteJournal, quiet: Bool = false) async throws
        -> (entry: SnapshotStore.Entry, tenants: Int, contacts: Int)
    {
        let started = ContinuousClock.now
        let snapshot = try await engine.snapshot()
        let entry = try await snapshots.write(snapshot, at: Timestamp(seconds: Date().timeIntervalSince1970), truncating: journal)
        if !quiet {
            let pause = Double(snapshot.longestPause.components.attoseconds) / 1e15 + Double(snapshot.longestPause.components.seconds) * 1000
            printError(
                "wrote snapshot \(entry.path): \(snapshot.tenants) tenants, \(snapshot.contacts) contacts, \(entry.size) bytes in "
                    + "\(seconds(since: started)) (ingest paused at most \(String(format: "%.1f", pause)) ms)")
        }
        return (entry, snapshot.tenants, snapshot.contacts)
    }
}

public func seconds(since start: ContinuousClock.Instant) -> String {
    let elapsed = ContinuousClock.now - start
    return String(format: "%.2f s", Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
}

extension DurabilityMode: ExpressibleByArgument {}

public func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

// Parsed options are plain values (strings and numbers) that nothing mutates after parsing.
extension StorageOptions: @unchecked Sendable {}
