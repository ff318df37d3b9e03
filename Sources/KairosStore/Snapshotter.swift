import Foundation
import KairosCore
import KairosEngine

/// Writes snapshots on a schedule: when `interval` has passed since the last one, or when
/// the journal has grown by `commands` records, whichever comes first; then truncates the
/// journal behind the oldest kept snapshot.
public struct Snapshotter: Sendable {
    public let engine: Engine
    public let journal: SQLiteJournal
    public let store: SnapshotStore
    public let interval: TimeSpan?
    public let commands: UInt64?

    public init(engine: Engine, journal: SQLiteJournal, store: SnapshotStore, interval: TimeSpan?, commands: UInt64?) {
        self.engine = engine
        self.journal = journal
        self.store = store
        self.interval = interval
        self.commands = commands
    }

    /// Writes a snapshot now; returns the file written.
    @discardableResult
    public func snapshotNow(at time: Timestamp) async throws -> SnapshotStore.Entry {
        try await store.write(try await engine.snapshot(), at: time, truncating: journal)
    }

    /// Whether a snapshot is due, given the last one's time and sequence.
    public func isDue(now: Timestamp, lastTime: Timestamp, lastSequence: UInt64) -> Bool {
        if let interval, now - lastTime >= interval { return true }
        if let commands, journal.lastSequence >= lastSequence &+ commands { return true }
        return false
    }

    /// Checks every `poll` (wall clock) and writes snapshots when due, until cancelled.
    /// `report` hears about each snapshot written or failed.
    public func run(clock: any EngineClock, poll: Duration = .milliseconds(200), report: @Sendable (Result<SnapshotStore.Entry, any Error>) -> Void) async {
        var lastTime = clock.now()
        var lastSequence = journal.lastSequence
        while !Task.isCancelled {
            try? await Task.sleep(for: poll)
            let now = clock.now()
            guard isDue(now: now, lastTime: lastTime, lastSequence: lastSequence) else { continue }
            do {
                let entry = try await snapshotNow(at: now)
                report(.success(entry))
            } catch {
                report(.failure(error))
            }
            lastTime = now
            lastSequence = journal.lastSequence
        }
    }
}
