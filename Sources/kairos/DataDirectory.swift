import ArgumentParser
import Foundation
import KairosCore
import KairosEngine
import KairosStore

/// Options shared by commands that work on a data directory.
struct StorageOptions: ParsableArguments {
    @Option(help: "Directory holding the journal (created when missing).")
    var dataDir = "data"

    @Option(help: "strict: acknowledge after the journal is synced (survives power loss); fast: after it is written (survives a crash).")
    var durability: DurabilityMode = .strict

    /// Opens the journal and rebuilds the engine's state from it, saying how long it took.
    func openEngine(quiet: Bool = false) async throws -> (Engine, SQLiteJournal) {
        try FileManager.default.createDirectory(atPath: dataDir, withIntermediateDirectories: true)
        let journal = try SQLiteJournal(path: dataDir + "/journal.sqlite", mode: durability)
        let engine = Engine(journal: journal)
        let report = try await engine.recover()
        if !quiet && report.commandsReplayed > 0 {
            printError(
                String(
                    format: "recovered %d commands (%d events) up to sequence %llu in %.2f s from %@",
                    report.commandsReplayed, report.eventsReplayed, report.lastSequence, report.seconds, journal.path))
        }
        return (engine, journal)
    }
}

extension DurabilityMode: ExpressibleByArgument {}

func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}
