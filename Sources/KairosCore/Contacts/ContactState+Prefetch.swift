import CMemoryHints

// A million contacts do not fit in cache, and each array of a contact's state is an allocation
// of its own: an event's evaluation waited for them one after another, a trip to memory each.
// These hints start the loads early and all at once. Mutating only so the state is used where
// it lies: a copy would count a reference on every array, loading each one before its hint.

extension ContactState {
    /// Hints the first line of each array an event's evaluation reads and writes, from the
    /// addresses the state holds, reading nothing else: safe for a caller that does not own the
    /// state, to whom the addresses may be stale (a stale hint only wastes itself).
    public mutating func prefetchArrays() {
        Self.hint(recent)
        Self.hint(counters.counters)
        Self.hint(scores)
        Self.hint(scoreHistory)
        Self.hint(segments)
        Self.hint(traits.entries)
        Self.hint(anonymousIds)
    }

    /// For the owner about to apply an event: the arrays' ends too (where recent events and
    /// score history are written) and the arrays inside scores and counters.
    public mutating func prefetchStorage() {
        Self.hintLast(recent)
        Self.hintLast(scoreHistory)
        Self.hintLast(segments)
        Self.hintInner(counters.counters, at: Self.counterRecentOffset)
        Self.hintInner(scores, at: Self.contributionsOffset)
        Self.hintInner(scores, at: Self.capUsageOffset)
    }

    private static let counterRecentOffset = MemoryLayout<EventCounter>.offset(of: \.recent)!
    private static let contributionsOffset = MemoryLayout<ModelScore>.offset(of: \.contributions)!
    private static let capUsageOffset = MemoryLayout<ModelScore>.offset(of: \.capUsage)!

    /// Hints the array found at `offset` inside each element, reading its address as raw
    /// bytes: a copy of the element (or of the array) would count a reference on it, a write
    /// that waits for the very memory being hinted.
    @inline(__always) private static func hintInner<Element>(_ array: [Element], at offset: Int) {
        array.withUnsafeBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return }
            let raw = UnsafeRawPointer(base)
            for index in 0..<buffer.count {
                let inner = raw.load(fromByteOffset: index * MemoryLayout<Element>.stride + offset, as: UnsafeRawPointer.self)
                kairos_prefetch_for_write(inner)
            }
        }
    }

    /// The array's header and first elements, without reading them.
    @inline(__always) private static func hint<Element>(_ array: [Element]) {
        // An array is one reference to its storage object: header (32 bytes), then elements.
        kairos_prefetch_for_write(unsafeBitCast(array, to: UnsafeRawPointer.self))
    }

    /// The array's last element (reading its count brings in the first line).
    @inline(__always) private static func hintLast<Element>(_ array: [Element]) {
        array.withUnsafeBufferPointer { buffer in
            guard let base = buffer.baseAddress, buffer.count > 1 else { return }
            kairos_prefetch_for_write(base + (buffer.count - 1))
        }
    }
}

/// Cache hints for the other modules (the C interop stays here).
public enum CacheHint {
    /// Starts loading `bytes` bytes from `address` for a write soon, line by line.
    public static func prefetchForWrite(_ address: UnsafeRawPointer, bytes: Int) {
        var offset = 0
        while offset < bytes {
            kairos_prefetch_for_write(address + offset)
            offset += 64
        }
    }
}
