import Synchronization
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

/// Journal records read together, their payloads side by side in one buffer: recovery reads
/// millions of records, and an array for each payload was an allocation and a free per command.
/// Reused from slice to slice (`removeAll` keeps the room).
public struct JournalSlice: Sendable {
    /// One record; its payload is `bytes[payload]`.
    public struct Entry: Sendable, Hashable {
        public var sequence: UInt64
        public var time: Timestamp
        public var tenant: String
        public var kind: UInt8
        public var payload: Range<Int>
    }

    public private(set) var entries: [Entry] = []
    public private(set) var bytes: [UInt8] = []

    public init() {}

    public var count: Int { entries.count }

    public mutating func removeAll() {
        entries.removeAll(keepingCapacity: true)
        bytes.removeAll(keepingCapacity: true)
    }

    public mutating func append(sequence: UInt64, time: Timestamp, tenant: String, kind: UInt8, payload: UnsafeRawBufferPointer) {
        let start = bytes.count
        bytes.append(contentsOf: payload)
        entries.append(Entry(sequence: sequence, time: time, tenant: tenant, kind: kind, payload: start..<bytes.count))
    }

    public mutating func append(_ record: JournalRecord) {
        record.payload.withUnsafeBytes {
            append(sequence: record.sequence, time: record.time, tenant: record.tenant, kind: record.kind, payload: $0)
        }
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
public protocol Journal: AnyObject, Sendable {
    /// Gives the records their sequence numbers now, in call order, and queues them for
    /// writing; the returned handle completes once they are as durable as the mode promises.
    func enqueue(_ records: [JournalRecord]) -> JournalAppend

    /// Calls `body` for every record with a sequence of at least `sequence`, in order.
    /// Sequences only grow; a failed write leaves a gap.
    func read(from sequence: UInt64, _ body: (JournalRecord) throws -> Void) throws

    /// The same for at most `limit` records (recovery reads a long journal in slices).
    func read(from sequence: UInt64, limit: Int, _ body: (JournalRecord) throws -> Void) throws

    /// At most `limit` records from `sequence` on, into `slice` (emptied first).
    func read(from sequence: UInt64, limit: Int, into slice: inout JournalSlice) throws

    /// The highest sequence durably written so far (0 when empty).
    var lastSequence: UInt64 { get }

    /// The highest sequence handed out so far, durable or not.
    var enqueuedSequence: UInt64 { get }
}

extension Journal {
    public func read(from sequence: UInt64, limit: Int, _ body: (JournalRecord) throws -> Void) throws {
        var count = 0
        do {
            try read(from: sequence) { record in
                guard count < limit else { throw ReadLimitReached() }
                count += 1
                try body(record)
            }
        } catch is ReadLimitReached {}
    }

    public func read(from sequence: UInt64, limit: Int, into slice: inout JournalSlice) throws {
        slice.removeAll()
        try read(from: sequence, limit: limit) { slice.append($0) }
    }

    /// Enqueues and waits until durable.
    public func append(_ records: [JournalRecord]) async throws -> [JournalRecord] {
        let append = enqueue(records)
        try await append.durable()
        return append.records
    }
}

/// One enqueued append: its sequenced records, and the moment they become durable.
public final class JournalAppend: Sendable {
    private enum State {
        case pending([CheckedContinuation<Void, any Error>])
        case finished(Result<Void, any Error>)
    }

    public let records: [JournalRecord]
    private let state = Mutex(State.pending([]))

    public init(records: [JournalRecord]) { self.records = records }

    /// Returns once the records are durable; throws the write's error if they never will be.
    public func durable() async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let finished: Result<Void, any Error>? = state.withLock { state in
                switch state {
                case .pending(let waiting):
                    state = .pending(waiting + [continuation])
                    return nil
                case .finished(let result): return result
                }
            }
            if let finished { continuation.resume(with: finished) }
        }
    }

    /// Called by the journal when the write is done (or failed).
    public func finish(_ result: Result<Void, any Error>) {
        let waiting: [CheckedContinuation<Void, any Error>] = state.withLock { state in
            guard case .pending(let waiting) = state else { return [] }
            state = .finished(result)
            return waiting
        }
        for continuation in waiting { continuation.resume(with: result) }
    }
}

/// Stops a journal read at its limit.
private struct ReadLimitReached: Error {}
