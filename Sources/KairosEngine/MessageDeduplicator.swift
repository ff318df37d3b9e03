import DequeModule
import KairosCore
import Synchronization

/// Remembers a tenant's recent Segment `messageId`s, so a retried event is
/// acknowledged again but applied once. Bounded in time (the window) and in memory
/// (the capacity: the oldest ids are forgotten first).
final class MessageDeduplicator: Sendable {
    private struct State {
        var seen: [String: Int64] = [:]
        var order = Deque<(id: String, time: Int64)>()
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
        state.withLock { state in
            let horizon = now.milliseconds - window.milliseconds
            while let oldest = state.order.first, oldest.time <= horizon || state.order.count > capacity {
                state.order.removeFirst()
                if state.seen[oldest.id] == oldest.time { state.seen.removeValue(forKey: oldest.id) }
            }
            return ids.map { id in
                guard let id else { return true }
                if let seenAt = state.seen[id], seenAt > horizon { return false }
                state.seen[id] = now.milliseconds
                state.order.append((id, now.milliseconds))
                return true
            }
        }
    }

    var count: Int { state.withLock { $0.seen.count } }
}
