import KairosCore

/// One shard of a directory's identity keys: key to contact actor, in an open-addressing table
/// (linear probing) whose slots the directory can hint the cache about before it looks a key
/// up (`prefetch`). A replayed journal resolves every event's identities in a million-contact
/// directory, and with a `Dictionary` each lookup waited for memory twice, for the bucket
/// and then for the actor.
///
/// Keys are only added or pointed at another actor, never removed (a merged profile's keys
/// lead to the profile it was merged into), so no deletion is needed.
struct IdentityTable: ReservableTable {
    typealias Key = ContactDirectory.IdentityKey

    private struct Slot {
        /// The key's hash with the lowest bit set; 0 marks an empty slot.
        var tag: Int
        var key: Key
        var actor: ContactActor?
    }

    private var slots: [Slot] = []
    private(set) var count = 0

    /// The hash a table uses for `key`: the directory's shard comes from its low bits, the
    /// slot from the others. Seeded per process, like every `Hasher`, so ids chosen to collide
    /// cannot be prepared in advance.
    static func hash(_ key: Key) -> Int { key.hashValue }

    private static func tag(_ hash: Int) -> Int { hash | 1 }

    /// The slot a hash starts probing at (bits above the shard's).
    private static func home(_ hash: Int, capacity: Int) -> Int { (hash >> 8) & (capacity - 1) }

    /// The actor `key` leads to.
    func find(_ key: Key, hash: Int) -> ContactActor? {
        guard let index = position(of: key, hash: hash) else { return nil }
        return slots[index].actor
    }

    /// Points `key` at `actor`, adding the key when it is new.
    mutating func set(_ key: Key, hash: Int, to actor: ContactActor) {
        if let index = position(of: key, hash: hash) {
            slots[index].actor = actor
            return
        }
        if (count + 1) * 4 > slots.count * 3 { grow(to: max(16, slots.count * 2)) }
        insertNew(key, tag: Self.tag(hash), actor: actor)
        count += 1
    }

    /// Makes room for `count` keys in all, so filling the table does not rehash it.
    mutating func reserveCapacity(_ wanted: Int) {
        var capacity = max(16, slots.count)
        while wanted * 4 > capacity * 3 { capacity *= 2 }
        if capacity > slots.count { grow(to: capacity) }
    }

    /// Hints the cache to load the slot `hash` starts probing at (a line or two), for a lookup soon.
    func prefetch(hash: Int) {
        slots.withUnsafeBufferPointer { buffer in
            guard let base = buffer.baseAddress, !buffer.isEmpty else { return }
            let slot = UnsafeRawPointer(base + Self.home(hash, capacity: buffer.count))
            CacheHint.prefetchForWrite(slot, bytes: MemoryLayout<Slot>.stride)
        }
    }

    /// Hints the cache to load the actor `key` leads to, without retaining it: a reference
    /// count is a write that would wait for the very memory being hinted.
    func prefetchActor(of key: Key, hash: Int) {
        guard let index = position(of: key, hash: hash) else { return }
        slots.withUnsafeBufferPointer { buffer in
            let raw = UnsafeRawPointer(buffer.baseAddress! + index)
            let actor = raw.load(fromByteOffset: Self.actorOffset, as: UnsafeRawPointer?.self)
            // Its first line, where the reference count the lookup changes lies.
            if let actor { CacheHint.prefetchForWrite(actor, bytes: 64) }
        }
    }

    private static let actorOffset = MemoryLayout<Slot>.offset(of: \.actor)!

    private func position(of key: Key, hash: Int) -> Int? {
        guard !slots.isEmpty else { return nil }
        let tag = Self.tag(hash)
        let mask = slots.count - 1
        var index = Self.home(hash, capacity: slots.count)
        while true {
            let found = slots[index].tag
            if found == 0 { return nil }
            if found == tag && slots[index].key == key { return index }
            index = (index + 1) & mask
        }
    }

    private mutating func insertNew(_ key: Key, tag: Int, actor: ContactActor?) {
        let mask = slots.count - 1
        var index = Self.home(tag, capacity: slots.count)
        while slots[index].tag != 0 { index = (index + 1) & mask }
        slots[index] = Slot(tag: tag, key: key, actor: actor)
    }

    private mutating func grow(to capacity: Int) {
        var old: [Slot] = Array(repeating: Slot(tag: 0, key: .user(""), actor: nil), count: capacity)
        swap(&old, &slots)
        for slot in old where slot.tag != 0 { insertNew(slot.key, tag: slot.tag, actor: slot.actor) }
    }
}
