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
            var id = id
            self = id.withUTF8 { Key(utf8: $0) }
        }

        /// The key of the id whose UTF-8 bytes these are (as `init(_:)` of that string).
        init(utf8 bytes: UnsafeBufferPointer<UInt8>) {
            var first: UInt64 = 0xcbf2_9ce4_8422_2325
            var second: UInt64 = 0x84222325_cbf29ce4
            for byte in bytes {
                first = (first ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
                second = (second &+ UInt64(byte)) &* 0x9E37_79B9_7F4A_7C15
                second ^= second >> 29
            }
            self.first = first
            self.second = second ^ UInt64(bytes.count)
        }
    }

    private struct State {
        var seen = KeyTable()
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
            let horizon = expire(&state, now: now)
            return keys.map { key in
                guard let key else { return true }
                return claim(key, in: &state, now: now, horizon: horizon)
            }
        }
    }

    /// Claims the ids of `events[range]` again, as recovery does for journaled events (they
    /// were new when accepted). Reads the ids in place and returns nothing: two arrays per
    /// replayed command were a fifth of its allocations.
    func reclaim(messageIdsOf events: [Event], in range: Range<Int>, now: Timestamp) {
        events.withUnsafeBufferPointer { events in
            // Commands whose events carry no id (most replayed commands carry one event) take no lock.
            guard range.contains(where: { events[$0].messageId != nil }) else { return }
            reclaim(now: now) { claim in
                for index in range { if let id = events[index].messageId { claim(Key(id)) } }
            }
        }
    }

    /// `reclaim(messageIdsOf:in:now:)` for ids given as where their UTF-8 bytes lie in `bytes`
    /// (replay decodes journaled events without making their ids into strings).
    func reclaim(messageIdsIn bytes: [UInt8], at ranges: ArraySlice<Range<Int>>, now: Timestamp) {
        guard !ranges.isEmpty else { return }
        bytes.withUnsafeBufferPointer { bytes in
            reclaim(now: now) { claim in
                for range in ranges { claim(Key(utf8: UnsafeBufferPointer(rebasing: bytes[range]))) }
            }
        }
    }

    /// Under the lock, after expiring what is past the window: `keys` hands each key to claim.
    private func reclaim(now: Timestamp, _ keys: ((Key) -> Void) -> Void) {
        state.withLock { state in
            let horizon = expire(&state, now: now)
            keys { key in _ = claim(key, in: &state, now: now, horizon: horizon) }
        }
    }

    /// Forgets what is past the window or over capacity; returns the window's start.
    private func expire(_ state: inout State, now: Timestamp) -> Int64 {
        let horizon = now.milliseconds - window.milliseconds
        while let oldest = state.order.first, oldest.time <= horizon || state.order.count > capacity {
            state.order.removeFirst()
            state.dropped += 1
            state.seen.remove(oldest.id, ifClaimedAt: oldest.time)
        }
        return horizon
    }

    private func claim(_ key: Key, in state: inout State, now: Timestamp, horizon: Int64) -> Bool {
        guard state.seen.claim(key, at: now.milliseconds, after: horizon) else { return false }
        state.order.append((key, now.milliseconds))
        return true
    }

    /// Forgets ids claimed by a batch that was then not accepted (its journal write failed).
    func release(_ ids: [String]) {
        let keys = ids.map(Key.init)
        state.withLock { state in
            for key in keys { state.seen.remove(key) }
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
                    if state.seen.time(of: entry.id) == entry.time { entries.append((entry.id.first, entry.id.second, entry.time)) }
                }
                next = to
                return to >= end
            }
            if finished { return entries }
        }
    }

    func restore(_ entries: [(first: UInt64, second: UInt64, time: Int64)]) {
        state.withLock { state in
            // Sized once: grown by doubling, a full window's table and queue were rebuilt about
            // twenty times over, into as much fresh memory again as they end up holding.
            state.seen.reserve(state.seen.count + entries.count)
            state.order.reserveCapacity(state.order.count + entries.count)
            for entry in entries {
                let key = Key(first: entry.first, second: entry.second)
                state.seen.set(key, at: entry.time)
                state.order.append((key, entry.time))
            }
        }
    }
}

/// The remembered ids and when each was claimed: open addressing with linear probing over
/// flat slots. The keys are hashes already, so a lookup is one multiply and, mostly, one
/// cache line; a `Dictionary` hashed each key again and probed twice per claim.
struct KeyTable {
    private struct Slot {
        var first: UInt64
        var second: UInt64
        /// `Int64.min` marks an empty slot (a claim time never is).
        var time: Int64
    }

    private static let empty = Slot(first: 0, second: 0, time: .min)
    private var slots = [Slot](repeating: KeyTable.empty, count: 16)
    private var shift = 64 - 4
    private(set) var count = 0

    private func home(_ key: MessageDeduplicator.Key) -> Int {
        Int(truncatingIfNeeded: ((key.first ^ key.second) &* 0x9E37_79B9_7F4A_7C15) >> UInt64(shift))
    }

    /// The slot holding `key`, or the empty slot where it would go.
    private func position(of key: MessageDeduplicator.Key) -> (index: Int, found: Bool) {
        let mask = slots.count - 1
        var index = home(key)
        while true {
            let slot = slots[index]
            if slot.time == .min { return (index, false) }
            if slot.first == key.first && slot.second == key.second { return (index, true) }
            index = (index + 1) & mask
        }
    }

    func time(of key: MessageDeduplicator.Key) -> Int64? {
        let (index, found) = position(of: key)
        return found ? slots[index].time : nil
    }

    /// Records `key` as claimed at `time` unless it was claimed after `horizon`; returns whether it was claimed now.
    mutating func claim(_ key: MessageDeduplicator.Key, at time: Int64, after horizon: Int64) -> Bool {
        var (index, found) = position(of: key)
        if found {
            guard slots[index].time <= horizon else { return false }
            slots[index].time = time
            return true
        }
        if (count + 1) * 2 > slots.count {
            grow()
            index = position(of: key).index
        }
        slots[index] = Slot(first: key.first, second: key.second, time: time)
        count += 1
        return true
    }

    mutating func set(_ key: MessageDeduplicator.Key, at time: Int64) {
        _ = claim(key, at: time, after: .max)
    }

    mutating func remove(_ key: MessageDeduplicator.Key, ifClaimedAt time: Int64? = nil) {
        let (index, found) = position(of: key)
        guard found, time == nil || slots[index].time == time else { return }
        // Backward-shift deletion: later slots of the probe chain move up, so no tombstones.
        let mask = slots.count - 1
        var hole = index
        var next = (index + 1) & mask
        while slots[next].time != .min {
            let wanted = home(MessageDeduplicator.Key(first: slots[next].first, second: slots[next].second))
            // The entry may fill the hole when its home is not cyclically within (hole, next].
            let distanceToHole = (hole - wanted) & mask
            let distanceToNext = (next - wanted) & mask
            if distanceToHole <= distanceToNext {
                slots[hole] = slots[next]
                hole = next
            }
            next = (next + 1) & mask
        }
        slots[hole] = KeyTable.empty
        count -= 1
    }

    /// Makes room for `count` ids in all (at most half the slots in use, as `claim` keeps it).
    mutating func reserve(_ count: Int) {
        var slotCount = slots.count
        while count * 2 > slotCount { slotCount *= 2 }
        if slotCount > slots.count { rehash(into: slotCount) }
    }

    private mutating func grow() { rehash(into: slots.count * 2) }

    private mutating func rehash(into slotCount: Int) {
        let old = slots
        slots = [Slot](repeating: KeyTable.empty, count: slotCount)
        shift = 64 - slotCount.trailingZeroBitCount
        for slot in old where slot.time != .min {
            let index = position(of: MessageDeduplicator.Key(first: slot.first, second: slot.second)).index
            slots[index] = slot
        }
    }
}
