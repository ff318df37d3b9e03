import HeapModule
import KairosCore
import Synchronization

/// Timers for every contact of every tenant: one heap entry per contact's next
/// wake-up (window lapses, decays), not one per rule.
///
/// A contact that moves its wake-up earlier pushes a new entry; an entry that turns
/// out stale is recognised by the contact when it fires and costs one actor call.
final class Scheduler: Sendable {
    struct Entry: Comparable, Sendable {
        var due: Int64
        var sequence: UInt64
        var contact: ContactActor

        static func < (lhs: Entry, rhs: Entry) -> Bool {
            lhs.due != rhs.due ? lhs.due < rhs.due : lhs.sequence < rhs.sequence
        }
        static func == (lhs: Entry, rhs: Entry) -> Bool { lhs.due == rhs.due && lhs.sequence == rhs.sequence }
    }

    private struct State {
        var heap = Heap<Entry>()
        var sequence: UInt64 = 0
    }

    private let state = Mutex(State())

    func schedule(_ contact: ContactActor, at due: Int64) {
        state.withLock { state in
            state.sequence += 1
            state.heap.insert(Entry(due: due, sequence: state.sequence, contact: contact))
        }
    }

    /// The earliest due time, if any.
    var nextDue: Int64? { state.withLock { $0.heap.min?.due } }

    var pendingCount: Int { state.withLock { $0.heap.count } }

    /// Removes and returns the entries that share the earliest due time, if it is at or before `limit`.
    func popEarliest(notAfter limit: Int64, maximum: Int = 10_000) -> [Entry] {
        state.withLock { state in
            guard let first = state.heap.min, first.due <= limit else { return [] }
            var entries: [Entry] = []
            while entries.count < maximum, let next = state.heap.min, next.due == first.due {
                entries.append(state.heap.removeMin())
            }
            return entries
        }
    }
}
