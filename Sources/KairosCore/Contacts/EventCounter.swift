/// How often a contact did one kind of event, with the most recent times kept
/// only as deep as some time-window condition needs (so counts inside a window
/// are exact and the moment one lapses is known).
public struct EventCounter: Sendable, Hashable {
    /// Deepest window a condition may ask about (counts up to this minus one).
    public static let maximumDepth = 1000

    public var symbol: UInt32
    public var total: UInt32
    public var last: Int64
    /// Most recent occurrence times in milliseconds, ascending, at most `depth` long.
    public var recent: [Int64]

    public init(symbol: UInt32) {
        self.symbol = symbol
        self.total = 0
        self.last = .min
        self.recent = []
    }

    public mutating func record(at time: Int64, depth: Int) {
        let previousLast = last
        total &+= 1
        if time > last { last = time }
        // Moving from depth 1 (only `last` kept) to a deeper window: keep what is known.
        if depth > 1 && recent.isEmpty && previousLast != .min { recent = [previousLast] }
        // Depth 1 needs only `last`: no array, no allocation.
        guard depth > 1 else {
            if !recent.isEmpty { recent = [] }
            return
        }
        // Events mostly arrive in order; keep the array sorted when one does not. When full,
        // the oldest time makes room first so the array never outgrows its depth.
        if recent.count >= depth {
            guard time >= recent[0] else { return }
            recent.removeFirst(recent.count - depth + 1)
        }
        var index = recent.count
        while index > 0 && recent[index - 1] > time { index -= 1 }
        recent.insertCompactly(time, at: index, limit: depth)
    }

    /// Occurrences in the window `(now - span, now]`, exact up to the kept depth.
    public func count(within span: TimeSpan, now: Int64) -> Int {
        let start = now - span.milliseconds
        if recent.isEmpty {
            // Depth 0 or 1 data: only the last time is known.
            return last > start && last <= now ? 1 : 0
        }
        var count = 0
        for time in recent.reversed() {
            if time <= start { break }
            if time <= now { count += 1 }
        }
        return count
    }

    /// When the oldest occurrence inside the window drops out of it.
    public func nextLapse(within span: TimeSpan, now: Int64) -> Int64? {
        let start = now - span.milliseconds
        if recent.isEmpty { return last > start ? last + span.milliseconds : nil }
        for time in recent where time > start { return time + span.milliseconds }
        return nil
    }

    mutating func merge(_ other: EventCounter, depth: Int) {
        total &+= other.total
        last = max(last, other.last)
        if depth > 1 {
            let mine = recent.isEmpty && last != .min ? [last] : recent
            let theirs = other.recent.isEmpty && other.last != .min ? [other.last] : other.recent
            recent = Array((mine + theirs).sorted().suffix(depth))
        } else {
            recent = []
        }
    }
}

/// A contact's counters, as a sorted array: 20 counters take about 500 bytes,
/// a dictionary would take twice that.
public struct CounterSet: Sendable, Hashable {
    public private(set) var counters: [EventCounter] = []

    public init() {}

    func index(of symbol: UInt32) -> (found: Bool, index: Int) {
        var low = 0
        var high = counters.count
        while low < high {
            let mid = (low + high) / 2
            let value = counters[mid].symbol
            if value == symbol { return (true, mid) }
            if value < symbol { low = mid + 1 } else { high = mid }
        }
        return (false, low)
    }

    public subscript(symbol: UInt32) -> EventCounter? {
        let (found, index) = index(of: symbol)
        return found ? counters[index] : nil
    }

    /// Occurrences of `symbol` in the window (all of them when `span` is nil), read in place.
    public func count(_ symbol: UInt32, within span: TimeSpan?, now: Int64) -> Int {
        let (found, index) = index(of: symbol)
        guard found else { return 0 }
        guard let span else { return Int(counters[index].total) }
        return counters[index].count(within: span, now: now)
    }

    /// When the oldest in-window occurrence of `symbol` lapses, read in place.
    public func nextLapse(_ symbol: UInt32, within span: TimeSpan, now: Int64) -> Int64? {
        let (found, index) = index(of: symbol)
        return found ? counters[index].nextLapse(within: span, now: now) : nil
    }

    /// The earliest moment an occurrence inside one of `leaves` (sorted by symbol) lapses, or
    /// `.max`: one pass over the leaves and the counters together, both sorted, where a search
    /// of the counters for each leaf cost a few percent of every event's evaluation.
    public func earliestLapse(of leaves: [TenantDefinitions.WindowLeaf], now: Int64) -> Int64 {
        var next = Int64.max
        counters.withUnsafeBufferPointer { items in
            var position = 0
            for leaf in leaves {
                while position < items.count && items[position].symbol < leaf.symbol { position += 1 }
                guard position < items.count else { break }
                guard items[position].symbol == leaf.symbol,
                    let time = items[position].nextLapse(within: leaf.window, now: now), time < next
                else { continue }
                next = time
            }
        }
        return next
    }

    public mutating func record(_ symbol: UInt32, at time: Int64, depth: Int) {
        let (found, index) = index(of: symbol)
        if !found { counters.insertCompactly(EventCounter(symbol: symbol), at: index, limit: .max) }
        counters[index].record(at: time, depth: depth)
    }

    /// Counters already sorted by symbol (as a snapshot stores them): taken as they are when
    /// strictly ascending, otherwise inserted one by one.
    init(sorted counters: [EventCounter]) {
        self.init()
        if zip(counters, counters.dropFirst()).allSatisfy({ $0.symbol < $1.symbol }) {
            self.counters = counters
        } else {
            for counter in counters { self.insertSorted(counter) }
        }
    }

    mutating func insertSorted(_ counter: EventCounter) {
        let (found, index) = index(of: counter.symbol)
        if found { counters[index] = counter } else { counters.insertCompactly(counter, at: index, limit: .max) }
    }

    mutating func merge(_ other: CounterSet, depth: (UInt32) -> Int) {
        for counter in other.counters {
            let (found, index) = index(of: counter.symbol)
            if found {
                counters[index].merge(counter, depth: depth(counter.symbol))
            } else {
                counters.insert(counter, at: index)
            }
        }
    }
}

extension Array {
    /// Inserts, growing capacity by small steps (up to `limit`) instead of doubling:
    /// per-contact arrays are many and small, and doubling wastes up to half of each.
    @inline(__always) mutating func insertCompactly(_ element: Element, at index: Int, limit: Int) {
        if count == capacity { reserveCapacity(Swift.min(count + Swift.max(2, count / 4), Swift.max(limit, count + 1))) }
        insert(element, at: index)
    }
}
