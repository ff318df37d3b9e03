import Synchronization

/// A Mutex in a box, so the shards of a table can live in an array (a Mutex cannot be copied).
final class LockedShard<Value: Sendable>: Sendable {
    private let table: Mutex<Value>

    init(_ value: Value) { table = Mutex(value) }

    func withLock<Result>(_ body: (inout sending Value) throws -> sending Result) rethrows -> sending Result {
        try table.withLock(body)
    }
}
