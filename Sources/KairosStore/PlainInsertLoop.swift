import CSQLite
import Foundation
import KairosCore
import KairosEngine

/// The physical limit the journal is measured against: a bare prepared-INSERT loop of
/// blobs into SQLite (WAL), in transactions of a given size. Used by the benchmarks only.
@_spi(Benchmarks)
public enum PlainInsertLoop {
    /// Inserts `rows` blobs of `blobSize` bytes, `perTransaction` a commit; returns rows per second.
    public static func run(path: String, rows: Int, perTransaction: Int, blobSize: Int, synchronousFull: Bool) throws -> Double {
        let connection = try Connection(path: path)
        try connection.execute("PRAGMA journal_mode=WAL")
        try connection.execute("PRAGMA synchronous=\(synchronousFull ? "FULL" : "NORMAL")")
        try connection.execute("CREATE TABLE IF NOT EXISTS plain (id INTEGER PRIMARY KEY, time INTEGER, tenant TEXT, kind INTEGER, payload BLOB)")
        try connection.prepareInsert("INSERT INTO plain (id, time, tenant, kind, payload) VALUES (?, ?, ?, ?, ?)")
        let payload = [UInt8](repeating: 42, count: blobSize)
        let started = Date()
        var id: UInt64 = 0
        var remaining = rows
        while remaining > 0 {
            try connection.execute("BEGIN")
            for _ in 0..<min(perTransaction, remaining) {
                id += 1
                try connection.insert(.init(sequence: id, time: .init(milliseconds: 0), tenant: "bench", kind: 1, payload: payload))
            }
            try connection.execute("COMMIT")
            remaining -= perTransaction
        }
        return Double(rows) / Date().timeIntervalSince(started)
    }
}
