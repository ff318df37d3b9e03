import DequeModule
import KairosCore
import Synchronization

/// Remembers a tenant's recent Segment `messageId`s, so a retried event is
/// acknowledged again but applied once. Bounded in time (the window) and in memory
/// (the capacity: the oldest ids are forgotten first).
final class MessageDeduplicator: Sendable {
    /// Ids are kept as two independent 64-bit hashes: 16 bytes each whatever their length,
    /// with a chance of two different ids colliding far below one in 10^20 per window.
    struct Key: Hashable {
        var first: UInt64
        var second: UInt64

        init(first: UInt64, second: UInt64) {
            self.first = first
            self.second = second
        }

        init(_ id: String) {
            var first: UInt64 = 0xcbf2_9ce4_8422_2325
            var second: UInt64 = 0x84222325_cbf29ce4
            for byte in id.utf8 {
                first = (first ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
                second = (second &+ UInt64(byte)) &* 0x9E37_79B9_7F4A_7C15
                second ^= second >> 29
            }
            self.first = first
            self.second = second ^ UInt64(id.utf8.count)
        }
    }

    private struct State {
        var seen: [Key: Int64] = [:]
        var order = Deque<(id: Key, time: Int64)>()
        /// Entries ever removed from the front of `order`, so a position survives removals.
        var dropped: UInt64 = 0
    }

    let window: TimeSpan
    let capacity: Int
    private let state = Mutex(State())

    init(window: TimeSpan = .hours(24), capacity: Int = 2_000_000) {
        self.window = window
        self.capacity = capacity
    }

    /// Claims each id; returns, per position, whether that event is new. Ids repeated
    /// inside the batch count as duplicates after their first occurrence.
    func claim(_ ids: [String?], now: Timestamp) -> [Bool] {
        let keys = ids.map { $0.map(Key.init) }
        return state.withLock { state in
            let horizon = now.milliseconds - window.milliseconds
            while let oldest = state.order.first, oldest.time <= horizon || state.order.count > capacity {
                state.order.removeFirst()
                state.dropped += 1
                if state.seen[oldest.id] == oldest.time { state.seen.removeValue(forKey: oldest.id) }
            }
            return keys.map { key in
                guard let key else { return true }
                if let seenAt = state.seen[key], seenAt > horizon { return false }
                state.seen[key] = now.milliseconds
                state.order.append((key, now.milliseconds))
                return true
            }
        }
    }

    /// Forgets ids claimed by a batch that was then not accepted (its journal write failed).
    func release(_ ids: [String]) {
        let keys = ids.map(Key.init)
        state.withLock { state in
            for key in keys { state.seen.removeValue(forKey: key) }
        }
    }

    var count: Int { state.withLock { $0.seen.count } }

    /// The remembered ids, oldest first, for a snapshot. Read in slices, so claims (ingest)
    /// never wait long for the lock however many ids there are.
    func export() -> [(first: UInt64, second: UInt64, time: Int64)] {
        var entries: [(first: UInt64, second: UInt64, time: Int64)] = []
        var next: UInt64?
        var end: UInt64 = 0
        while true {
            let finished = state.withLock { state -> Bool in
                if next == nil {
                    next = state.dropped
                    end = state.dropped + UInt64(state.order.count)
                    entries.reserveCapacity(state.order.count)
                }
                let from = max(next!, state.dropped)
                guard from < end else { return true }  // the rest has expired meanwhile
                let to = min(end, from + 65_536)
                for index in Int(from - state.dropped)..<Int(to - state.dropped) {
                    let entry = state.order[index]
                    if state.seen[entry.id] == entry.time { entries.append((entry.id.first, entry.id.second, entry.time)) }
                }
                next = to
                return to >= end
            }
            if finished { return entries }
        }
    }

    func restore(_ entries: [(first: UInt64, second: UInt64, time: Int64)]) {
        state.withLock { state in
            for entry in entries {
                let key = Key(first: entry.first, second: entry.second)
                state.seen[key] = entry.time
                state.order.append((key, entry.time))
            }
        }
    }
}
