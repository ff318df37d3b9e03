import KairosCore

/// One journaled command: what happened, to which tenant, at which time, in which order.
public struct JournalRecord: Sendable, Hashable {
    /// Global, gap-free, starting at 1; assigned by the journal.
    public var sequence: UInt64
    /// The command's time (`now` when it was accepted); replay uses it.
    public var time: Timestamp
    public var tenant: String
    /// What the payload holds (ingested events, a definition change, a timer firing, …).
    public var kind: UInt8
    public var payload: [UInt8]

    public init(sequence: UInt64 = 0, time: Timestamp, tenant: String, kind: UInt8, payload: [UInt8]) {
        self.sequence = sequence
        self.time = time
        self.tenant = tenant
        self.kind = kind
        self.payload = payload
    }
}

/// How durable an acknowledged command is.
public enum DurabilityMode: String, Sendable, CaseIterable {
    /// Acknowledge after the commit is synced to disk: survives power loss.
    case strict
    /// Acknowledge after the commit is written to the operating system, not synced:
    /// survives a process crash; a power loss may lose the most recent commits (SQLite's
    /// WAL with `synchronous=NORMAL`, synced at checkpoints).
    case fast
}

/// The write-ahead journal: every state-changing command is appended here before it is
/// applied or acknowledged. The engine owns the protocol; storage lives at the edge.
public protocol Journal: Sendable {
    /// Appends records in order and returns them with their sequence numbers once they
    /// are as durable as the journal's mode promises.
    func append(_ records: [JournalRecord]) async throws -> [JournalRecord]

    /// Calls `body` for every record with a sequence of at least `sequence`, in order.
    func read(from sequence: UInt64, _ body: (JournalRecord) throws -> Void) throws

    /// The highest sequence written so far (0 when empty).
    var lastSequence: UInt64 { get }
}
