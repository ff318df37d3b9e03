import CSQLite
import Dispatch
import KairosCore
import KairosEngine
import Synchronization

/// The write-ahead journal in a SQLite file (WAL mode), written by one writer with group
/// commit: appends that arrive while a transaction is being written go together into
/// the next one, so the commit cost is shared by everything waiting.
public final class SQLiteJournal: Journal {
    private struct Queue {
        var pending: [JournalAppend] = []
        var draining = false
        var closed = false
        var nextSequence: UInt64 = 1
    }

    public let path: String
    public let mode: DurabilityMode
    /// The most records one transaction takes (the rest wait for the next one).
    public let maximumBatch: Int

    private let writer: Connection
    private let queue = Mutex(Queue())
    private let writerQueue = DispatchQueue(label: "kairos.journal.writer")
    private let highestSequence: Atomic<UInt64>
    /// The read-only connection slice reads share: recovery reads hundreds of slices, and a
    /// connection per slice read the schema and filled a new page cache every time.
    private let sliceReader = Mutex<Connection?>(nil)

    /// Checkpoints (copying the write-ahead log into the database file) run on a connection
    /// of their own, beside the writer: run by the writer at its commits, as SQLite does by
    /// default, each one held up the appends behind it (about every 1,000 pages, half the
    /// iterations of the append benchmark took twice as long).
    private let checkpointer: Connection
    private let checkpointQueue = DispatchQueue(label: "kairos.journal.checkpoint")
    private let checkpointRunning = Atomic<Bool>(false)
    private let logSize = WriteAheadLogSize()
    /// Pages in the log that start a checkpoint (SQLite's own default).
    static let checkpointPages = 1_000
    /// Pages at which the writer checkpoints itself, when the other connection cannot keep up
    /// (the log would otherwise grow without bound under sustained appends).
    static let writerCheckpointPages = 8_000

    /// Opens (or creates) the journal at `path`.
    public init(path: String, mode: DurabilityMode = .strict, maximumBatch: Int = 10_000) throws {
        self.path = path
        self.mode = mode
        self.maximumBatch = maximumBatch
        writer = try Connection(path: path)
        try writer.execute("PRAGMA journal_mode=WAL")
        let synchronous = "PRAGMA synchronous=\(mode == .strict ? "FULL" : "NORMAL")"
        try writer.execute(synchronous)
        writer.trackLogSize(logSize)
        checkpointer = try Connection(path: path)
        try checkpointer.execute(synchronous)
        try writer.execute(
            """
            CREATE TABLE IF NOT EXISTS journal (
                sequence INTEGER PRIMARY KEY,
                time INTEGER NOT NULL,
                tenant TEXT NOT NULL,
                kind INTEGER NOT NULL,
                payload BLOB NOT NULL
            )
            """)
        let last = try writer.singleInteger("SELECT COALESCE(MAX(sequence), 0) FROM journal").map(UInt64.init) ?? 0
        highestSequence = Atomic(last)
        queue.withLock { $0.nextSequence = last + 1 }
        try writer.prepareInsert("INSERT INTO journal (sequence, time, tenant, kind, payload) VALUES (?, ?, ?, ?, ?)")
    }

    public var lastSequence: UInt64 { highestSequence.load(ordering: .acquiring) }

    public var enqueuedSequence: UInt64 { queue.withLock { $0.nextSequence - 1 } }

    public func enqueue(_ records: [JournalRecord]) -> JournalAppend {
        var sequenced = records
        let (append, start): (JournalAppend, Bool?) = queue.withLock { queue in
            guard !queue.closed else { return (JournalAppend(records: []), nil) }
            for index in sequenced.indices {
                sequenced[index].sequence = queue.nextSequence
                queue.nextSequence += 1
            }
            let append = JournalAppend(records: sequenced)
            guard !sequenced.isEmpty else { return (append, false) }
            queue.pending.append(append)
            if queue.draining { return (append, false) }
            queue.draining = true
            return (append, true)
        }
        switch start {
        case nil: append.finish(.failure(StoreError(.closed, "the journal is closed", operation: "append")))
        case true?: writerQueue.async { self.drain() }
        case false?: if records.isEmpty { append.finish(.success(())) }
        }
        return append
    }

    /// Writes waiting appends, a group per transaction, until none are left.
    private func drain() {
        while true {
            let group: [JournalAppend] = queue.withLock { queue in
                var taken: [JournalAppend] = []
                var count = 0
                while !queue.pending.isEmpty && (taken.isEmpty || count + queue.pending[0].records.count <= maximumBatch) {
                    let next = queue.pending.removeFirst()
                    count += next.records.count
                    taken.append(next)
                }
                if taken.isEmpty { queue.draining = false }
                return taken
            }
            if group.isEmpty { return }
            do {
                try writer.execute("BEGIN IMMEDIATE")
                for append in group {
                    for record in append.records { try writer.insert(record) }
                }
                try writer.execute("COMMIT")
            } catch {
                // The group's sequence numbers stay unused: readers see a gap, never a half write.
                try? writer.execute("ROLLBACK")
                for append in group { append.finish(.failure(error)) }
                continue
            }
            if let last = group.last?.records.last?.sequence { highestSequence.store(last, ordering: .releasing) }
            for append in group { append.finish(.success(())) }
            checkpointIfDue()
        }
    }

    /// After a commit, on the writer queue: starts a checkpoint on the other connection when
    /// the log has grown enough, or runs one here when that one has fallen far behind. A
    /// checkpoint that fails (a full disk) leaves the records safe in the log; the next retries.
    private func checkpointIfDue() {
        let pages = logSize.pages.load(ordering: .relaxed)
        guard pages >= Self.checkpointPages else { return }
        if pages >= Self.writerCheckpointPages {
            try? writer.checkpoint()
            return
        }
        guard checkpointRunning.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else { return }
        checkpointQueue.async {
            try? self.checkpointer.checkpoint()
            self.checkpointRunning.store(false, ordering: .releasing)
        }
    }

    public func read(from sequence: UInt64, _ body: (JournalRecord) throws -> Void) throws {
        try read(from: sequence, limit: .max, body)
    }

    public func read(from sequence: UInt64, limit: Int, _ body: (JournalRecord) throws -> Void) throws {
        let reader = try Connection(path: path, readOnly: true)
        try reader.forEach(Self.selectRecords(limit: limit), binding: Int64(bitPattern: sequence), body)
    }

    public func read(from sequence: UInt64, limit: Int, into slice: inout JournalSlice) throws {
        slice.removeAll()
        try sliceReader.withLock { (cached: inout Connection?) throws in
            let reader = try cached ?? Connection(path: path, readOnly: true)
            cached = reader
            try reader.forEachRow(Self.selectRecords(limit: limit), binding: Int64(bitPattern: sequence)) { row in
                slice.append(sequence: row.sequence, time: row.time, tenant: row.tenant, kind: row.kind, payload: row.payload)
            }
        }
    }

    /// At most `limit` records from the bound sequence on, in order.
    private static func selectRecords(limit: Int) -> String {
        "SELECT sequence, time, tenant, kind, payload FROM journal WHERE sequence >= ? ORDER BY sequence LIMIT \(max(0, limit))"
    }

    /// Deletes records up to and including `sequence` (a snapshot holds their effect). The
    /// newest record always stays, so sequence numbers keep growing after a restart.
    public func truncate(through sequence: UInt64) throws {
        try writerQueue.sync {
            try writer.execute(
                "DELETE FROM journal WHERE sequence <= \(sequence) AND sequence < (SELECT MAX(sequence) FROM journal)")
        }
    }

    /// Deletes records after `sequence` (point-in-time restore; callers keep a copy first).
    public func discard(after sequence: UInt64) throws {
        try writerQueue.sync { try writer.execute("DELETE FROM journal WHERE sequence > \(sequence)") }
    }

    /// Runs `body` with the writer connection on the writer queue (tests use it to
    /// simulate a full disk with a page limit).
    func withWriterForTesting(_ body: (Connection) throws -> Void) throws {
        try writerQueue.sync { try body(writer) }
    }

    /// Stops taking appends; those already queued are still written.
    public func close() {
        queue.withLock { $0.closed = true }
        writerQueue.sync {}
        checkpointQueue.sync {}
        sliceReader.withLock { $0 = nil }
    }
}

/// One SQLite connection. Not thread-safe: the journal uses it from its writer queue only.
final class Connection: @unchecked Sendable {
    // @unchecked: every use is serialized (the writer queue, or one reader call).
    private var database: OpaquePointer?
    private var insertStatement: OpaquePointer?

    init(path: String, readOnly: Bool = false) throws {
        let flags = readOnly ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)
        let result = sqlite3_open_v2(path, &database, flags | SQLITE_OPEN_NOMUTEX, nil)
        guard result == SQLITE_OK else {
            let error = StoreError(resultCode: result, database: database, operation: "open \(path)")
            sqlite3_close(database)
            throw error
        }
        sqlite3_extended_result_codes(database, 1)
        sqlite3_busy_timeout(database, 5000)
    }

    deinit {
        sqlite3_finalize(insertStatement)
        sqlite3_close(database)
    }

    func execute(_ sql: String) throws {
        let result = sqlite3_exec(database, sql, nil, nil, nil)
        guard result == SQLITE_OK else { throw StoreError(resultCode: result, database: database, operation: sql) }
    }

    /// Keeps `size` up to date with the pages in the write-ahead log after each commit. This
    /// replaces SQLite's automatic checkpoints on this connection: the caller runs them.
    func trackLogSize(_ size: WriteAheadLogSize) {
        sqlite3_wal_hook(
            database,
            { context, _, _, pages in
                Unmanaged<WriteAheadLogSize>.fromOpaque(context!).takeUnretainedValue().pages.store(Int(pages), ordering: .relaxed)
                return SQLITE_OK
            }, Unmanaged.passUnretained(size).toOpaque())
    }

    /// Copies what it can of the write-ahead log into the database file without waiting for
    /// the writer or for readers (a passive checkpoint). Another checkpoint running is no error.
    func checkpoint() throws {
        let result = sqlite3_wal_checkpoint_v2(database, nil, SQLITE_CHECKPOINT_PASSIVE, nil, nil)
        guard result == SQLITE_OK || result == SQLITE_BUSY else {
            throw StoreError(resultCode: result, database: database, operation: "checkpoint the journal")
        }
    }

    func singleInteger(_ sql: String) throws -> Int64? {
        var statement: OpaquePointer?
        let prepared = sqlite3_prepare_v2(database, sql, -1, &statement, nil)
        guard prepared == SQLITE_OK else { throw StoreError(resultCode: prepared, database: database, operation: sql) }
        defer { sqlite3_finalize(statement) }
        let result = sqlite3_step(statement)
        switch result {
        case SQLITE_ROW: return sqlite3_column_int64(statement, 0)
        case SQLITE_DONE: return nil
        default: throw StoreError(resultCode: result, database: database, operation: sql)
        }
    }

    func prepareInsert(_ sql: String) throws {
        let result = sqlite3_prepare_v2(database, sql, -1, &insertStatement, nil)
        guard result == SQLITE_OK else { throw StoreError(resultCode: result, database: database, operation: sql) }
    }

    func insert(_ record: JournalRecord) throws {
        let statement = insertStatement
        defer { sqlite3_reset(statement) }
        sqlite3_bind_int64(statement, 1, Int64(bitPattern: record.sequence))
        sqlite3_bind_int64(statement, 2, record.time.milliseconds)
        sqlite3_bind_text(statement, 3, record.tenant, -1, csqlite_transient())
        sqlite3_bind_int(statement, 4, Int32(record.kind))
        _ = record.payload.withUnsafeBytes { bytes in
            sqlite3_bind_blob(statement, 5, bytes.baseAddress, Int32(bytes.count), csqlite_transient())
        }
        let result = sqlite3_step(statement)
        guard result == SQLITE_DONE else {
            throw StoreError(resultCode: result, database: database, operation: "append to the journal")
        }
    }

    func forEach(_ sql: String, binding value: Int64, _ body: (JournalRecord) throws -> Void) throws {
        try forEachRow(sql, binding: value) { row in
            try body(
                JournalRecord(sequence: row.sequence, time: row.time, tenant: row.tenant, kind: row.kind, payload: Array(row.payload)))
        }
    }

    /// A journal row as SQLite holds it: `payload` is valid only during the call.
    struct Row {
        var sequence: UInt64
        var time: Timestamp
        var tenant: String
        var kind: UInt8
        var payload: UnsafeRawBufferPointer
    }

    /// Calls `body` for each row of a `SELECT sequence, time, tenant, kind, payload` query.
    func forEachRow(_ sql: String, binding value: Int64, _ body: (Row) throws -> Void) throws {
        var statement: OpaquePointer?
        let prepared = sqlite3_prepare_v2(database, sql, -1, &statement, nil)
        guard prepared == SQLITE_OK else { throw StoreError(resultCode: prepared, database: database, operation: sql) }
        defer { sqlite3_finalize(statement) }
        sqlite3_bind_int64(statement, 1, value)
        // Consecutive records mostly share a tenant: its id is made into a string once, not per row.
        var tenant = ""
        var tenantBytes: [UInt8] = []
        while true {
            let result = sqlite3_step(statement)
            if result == SQLITE_DONE { return }
            guard result == SQLITE_ROW else { throw StoreError(resultCode: result, database: database, operation: sql) }
            if let text = sqlite3_column_text(statement, 2) {
                let length = Int(sqlite3_column_bytes(statement, 2))
                let same = length == tenantBytes.count && tenantBytes.withUnsafeBufferPointer { kept in
                    (0..<length).allSatisfy { kept[$0] == text[$0] }
                }
                if !same {
                    tenantBytes = Array(UnsafeBufferPointer(start: text, count: length))
                    tenant = String(decoding: tenantBytes, as: UTF8.self)
                }
            } else if !tenant.isEmpty || !tenantBytes.isEmpty {
                (tenant, tenantBytes) = ("", [])
            }
            // The blob first, then its size (SQLite's documented order for a blob column).
            let blob = sqlite3_column_blob(statement, 4)
            let count = Int(sqlite3_column_bytes(statement, 4))
            try body(
                Row(
                    sequence: UInt64(bitPattern: sqlite3_column_int64(statement, 0)),
                    time: Timestamp(milliseconds: sqlite3_column_int64(statement, 1)), tenant: tenant,
                    kind: UInt8(truncatingIfNeeded: sqlite3_column_int(statement, 3)),
                    payload: UnsafeRawBufferPointer(start: blob, count: blob == nil ? 0 : count)))
        }
    }
}

/// Pages in a connection's write-ahead log after its last commit (see `Connection.trackLogSize`);
/// a class so SQLite's hook can reach it, kept alive by the journal for the connection's life.
final class WriteAheadLogSize: Sendable {
    let pages = Atomic<Int>(0)
}
