import Dispatch
import Synchronization

/// A Mutex in a box, so the shards of a table can live in an array (a Mutex cannot be copied).
final class LockedShard<Value: Sendable>: Sendable {
    private let table: Mutex<Value>

    init(_ value: Value) { table = Mutex(value) }

    func withLock<Result>(_ body: (inout sending Value) throws -> sending Result) rethrows -> sending Result {
        try table.withLock(body)
    }
}

/// A table whose room can be made ahead of filling it (a shard's contents).
protocol ReservableTable {
    var count: Int { get }
    mutating func reserveCapacity(_ minimumCapacity: Int)
}

extension Dictionary: ReservableTable {}

extension Array {
    /// Makes room in each shard's table for its share of `count` more entries (with a little
    /// slack: shards are not all equal), so a restore does not rehash the tables as they grow.
    /// Shards on every core at once: making a million contacts' room touches tens of megabytes
    /// of fresh memory (0.76 s on one core after the machine sat idle).
    func reserveShares<Table: ReservableTable & Sendable>(of count: Int) where Element == LockedShard<Table> {
        guard !isEmpty else { return }
        let share = count / self.count + count / (self.count * 8)
        DispatchQueue.concurrentPerform(iterations: self.count) { index in
            self[index].withLock { $0.reserveCapacity($0.count + share) }
        }
    }
}

/// Hands each restored part the order in which to lock a table's shards: each part starts a few
/// shards after the one before, so parts restored side by side do not queue on the same locks.
final class StaggeredShardOrder: Sendable {
    private let next = Atomic<Int>(0)

    func nextOrder(shardCount: Int) -> [Int] {
        // 5 shares no factor with the power-of-two shard counts: every start is reached.
        let first = next.add(5, ordering: .relaxed).oldValue
        return (0..<shardCount).map { (first + $0) % shardCount }
    }
}
