import KairosCore
import Synchronization

/// Finds a tenant's contact actors by id (`userId` or `anonymousId`), creating them on
/// first sight. Sharded so concurrent ingest does not queue on one lock; a separate
/// lock serializes only identity links (identify/alias), so each anonymous profile
/// is merged exactly once.
final class ContactDirectory: Sendable {
    enum IdentityKey: Hashable, Sendable {
        case user(String)
        case anonymous(String)
    }

    /// A contact's identity keys. Most contacts have one, kept inline: an array for it was an
    /// allocation per contact (64 MB for a million, all made again by a restore).
    struct IdentityKeys: Sendable {
        private enum Storage: Sendable {
            case none
            case one(IdentityKey)
            case many([IdentityKey])
        }

        private var storage = Storage.none

        init() {}

        init(_ keys: [IdentityKey]) {
            switch keys.count {
            case 0: storage = .none
            case 1: storage = .one(keys[0])
            default: storage = .many(keys)
            }
        }

        var count: Int {
            switch storage {
            case .none: 0
            case .one: 1
            case .many(let keys): keys.count
            }
        }

        var isEmpty: Bool { count == 0 }

        mutating func append(_ key: IdentityKey) {
            switch storage {
            case .none: storage = .one(key)
            case .one(let first): storage = .many([first, key])
            case .many(var keys):
                storage = .none  // the array's only holder is `keys` while it grows
                keys.append(key)
                storage = .many(keys)
            }
        }

        /// The keys as an array (made for a single key).
        var array: [IdentityKey] {
            switch storage {
            case .none: []
            case .one(let key): [key]
            case .many(let keys): keys
            }
        }

        func contains(_ key: IdentityKey) -> Bool { contains { $0 == key } }

        func contains(where matches: (IdentityKey) -> Bool) -> Bool {
            switch storage {
            case .none: false
            case .one(let key): matches(key)
            case .many(let keys): keys.contains(where: matches)
            }
        }

        /// Calls `body` with each key, without making an array for a single one.
        func forEachKey(_ body: (IdentityKey) throws -> Void) rethrows {
            switch storage {
            case .none: break
            case .one(let key): try body(key)
            case .many(let keys): for key in keys { try body(key) }
            }
        }
    }

    /// A key with its hash, for callers that hint the cache about a key before looking it up
    /// and should not hash it twice.
    struct HashedKey: Sendable {
        let key: IdentityKey
        let hash: Int

        init(_ key: IdentityKey) {
            self.key = key
            self.hash = IdentityTable.hash(key)
        }
    }

    private static let shardCount = 64
    private let shards: [LockedShard<IdentityTable>]
    private let byId: [LockedShard<ContactSlots>]
    private let nextId = Atomic<UInt64>(1)
    private let contactCount = Atomic<Int>(0)
    /// Held only while linking identities.
    private let linkLock = Mutex<Void>(())

    init() {
        shards = (0..<Self.shardCount).map { _ in LockedShard(IdentityTable()) }
        byId = (0..<Self.shardCount).map { _ in LockedShard(ContactSlots()) }
    }

    /// The key's shard, from the low bits of the hash its table uses too (one hash per lookup).
    private static func shard(_ hash: Int) -> Int { hash & (shardCount - 1) }

    private func idShard(_ id: UInt64) -> Int { Int(id % UInt64(Self.shardCount)) }

    /// A contact's place in its id shard's slots.
    private static func slot(_ id: UInt64) -> Int { Int(id / UInt64(shardCount)) }

    var count: Int { contactCount.load(ordering: .relaxed) }

    func lookup(_ key: IdentityKey) -> ContactActor? { lookup(HashedKey(key)) }

    func lookup(_ hashed: HashedKey) -> ContactActor? {
        shards[Self.shard(hashed.hash)].withLock { $0.find(hashed.key, hash: hashed.hash) }
    }

    /// Hints the cache to load where the key's entry lies, for a lookup a little later (see
    /// `IdentityLookahead`): a million contacts' keys are far from all in cache.
    func prefetch(_ hashed: HashedKey) {
        shards[Self.shard(hashed.hash)].withLock { $0.prefetch(hash: hashed.hash) }
    }

    /// Hints the cache to load the actor the key leads to, once its entry is in cache (after `prefetch`).
    func prefetchContact(_ hashed: HashedKey) {
        shards[Self.shard(hashed.hash)].withLock { $0.prefetchActor(of: hashed.key, hash: hashed.hash) }
    }

    func lookup(id: UInt64) -> ContactActor? {
        byId[idShard(id)].withLock { $0[Self.slot(id)] }
    }

    /// Returns the contact for `key`, creating it when unknown.
    func resolve(_ key: IdentityKey, make: (UInt64) -> ContactActor) -> ContactActor {
        resolve(HashedKey(key), make: make)
    }

    func resolve(_ hashed: HashedKey, make: (UInt64) -> ContactActor) -> ContactActor {
        let (key, hash) = (hashed.key, hashed.hash)
        let (actor, created) = shards[Self.shard(hash)].withLock { table -> (ContactActor, Bool) in
            if let existing = table.find(key, hash: hash) { return (existing, false) }
            let id = nextId.add(1, ordering: .relaxed).oldValue
            let actor = make(id)
            table.set(key, hash: hash, to: actor)
            actor.addKey(key)
            return (actor, true)
        }
        if created { register(actor) }
        return actor
    }

    private func register(_ actor: ContactActor) {
        byId[idShard(actor.id)].withLock { $0[Self.slot(actor.id)] = actor }
        contactCount.add(1, ordering: .relaxed)
    }

    func unregister(id: UInt64) {
        let removed = byId[idShard(id)].withLock { $0.remove(at: Self.slot(id)) }
        if removed != nil { contactCount.subtract(1, ordering: .relaxed) }
    }

    /// What `link` decided.
    struct Link {
        /// The contact the event should be applied to.
        var target: ContactActor
        /// A profile to merge into the target first, exactly once.
        var mergeSource: ContactActor?
    }

    /// Links `source` (an anonymousId, or an alias's previousId) to the known `userId`.
    /// An anonymous profile is merged into the known one. Two known users are merged only
    /// by an explicit alias, never by identify.
    func link(userId: String, source: IdentityKey, sourceIsAlias: Bool, make: (UInt64) -> ContactActor) -> Link {
        linkLock.withLock { _ in
            let target = resolve(.user(userId), make: make)
            var candidates: [IdentityKey] = [source]
            if sourceIsAlias, case .user(let previous) = source { candidates.append(.anonymous(previous)) }
            if sourceIsAlias, case .anonymous(let previous) = source { candidates.append(.user(previous)) }
            for key in candidates {
                guard let existing = lookup(key) else { continue }
                if existing === target { return Link(target: target, mergeSource: nil) }
                // The existing profile's keys now lead to the target; its state follows in the merge.
                // identify merges only anonymous profiles; alias also merges a previous user id.
                if existing.isLinkable || (sourceIsAlias && !existing.isMerged) {
                    existing.markMerged()
                    remap(from: existing, to: target)
                    return Link(target: target, mergeSource: existing)
                }
                if !sourceIsAlias { return Link(target: target, mergeSource: nil) }
            }
            if case .anonymous = source {
                // An event for the anonymous id may have created its profile since the lookup
                // above; only inserts race with us (links are serialized), so re-check here.
                let hash = IdentityTable.hash(source)
                let existing: ContactActor? = shards[Self.shard(hash)].withLock { table in
                    if let current = table.find(source, hash: hash) { return current }
                    table.set(source, hash: hash, to: target)
                    target.addKey(source)
                    return nil
                }
                if let existing, existing !== target, existing.isLinkable {
                    existing.markMerged()
                    remap(from: existing, to: target)
                    return Link(target: target, mergeSource: existing)
                }
            }
            return Link(target: target, mergeSource: nil)
        }
    }

    private func remap(from old: ContactActor, to new: ContactActor) {
        for key in old.takeKeys().array {
            let hash = IdentityTable.hash(key)
            shards[Self.shard(hash)].withLock { table in
                if table.find(key, hash: hash) === old { table.set(key, hash: hash, to: new) }
            }
            new.addKey(key)
        }
    }

    var nextContactId: UInt64 { nextId.load(ordering: .relaxed) }

    /// Makes room for `contacts` more contacts with `keys` identities between them before a
    /// restore fills the directory.
    func reserve(contacts: Int, keys: Int) {
        byId.reserveShares(of: contacts)
        shards.reserveShares(of: keys)
    }

    private let restoreOrder = StaggeredShardOrder()

    /// Puts back restored contacts, whose actors already hold their keys: each shard is locked
    /// once for the whole part (a snapshot restores a million contacts in a few parts).
    func restore(_ contacts: [(actor: ContactActor, keys: IdentityKeys)], nextId next: UInt64) {
        // The caller's `contacts` keeps every actor alive for the call, so the lists by shard hold them
        // unretained: a reference count each way on a million actors was a tenth of this work.
        var byShard = [[(IdentityKey, Int, Unmanaged<ContactActor>)]](repeating: [], count: Self.shardCount)
        var idsByShard = [[Unmanaged<ContactActor>]](repeating: [], count: Self.shardCount)
        for (actor, keys) in contacts {
            let unretained = Unmanaged.passUnretained(actor)
            keys.forEachKey { key in
                let hash = IdentityTable.hash(key)
                byShard[Self.shard(hash)].append((key, hash, unretained))
            }
            idsByShard[idShard(actor.id)].append(unretained)
        }
        for index in restoreOrder.nextOrder(shardCount: Self.shardCount) {
            if !byShard[index].isEmpty {
                shards[index].withLock { table in
                    for (key, hash, actor) in byShard[index] { table.set(key, hash: hash, to: actor.takeUnretainedValue()) }
                }
            }
            if !idsByShard[index].isEmpty {
                byId[index].withLock { table in
                    for actor in idsByShard[index] {
                        actor._withUnsafeGuaranteedRef { table[Self.slot($0.id)] = $0 }
                    }
                }
            }
        }
        contactCount.add(contacts.count, ordering: .relaxed)
        if nextId.load(ordering: .relaxed) < next { nextId.store(next, ordering: .relaxed) }
    }

    /// Every live contact by id, shard by shard: copies on write, taken in a moment.
    func contactTables() -> [ContactSlots] { byId.map { $0.withLock { $0 } } }

    /// Every live contact, for evaluating a new definition over all of them.
    func allContacts() -> [ContactActor] {
        var result: [ContactActor] = []
        result.reserveCapacity(count)
        for index in byId.indices { byId[index].withLock { result.append(contentsOf: $0.values) } }
        return result
    }
}

/// One id shard's contacts, by place (`id / shardCount`): a tenant gives its ids out in order,
/// so the places are dense, and an array of them takes 8 bytes a contact where a dictionary
/// by id took about 64 (and a hash per lookup). A merged profile leaves an empty place.
struct ContactSlots: ReservableTable, Sendable {
    private var slots: [ContactActor?] = []
    private(set) var count = 0

    subscript(slot: Int) -> ContactActor? {
        get { slot < slots.count ? slots[slot] : nil }
        set {
            if slot >= slots.count {
                guard newValue != nil else { return }
                slots.append(contentsOf: repeatElement(nil, count: slot + 1 - slots.count))
            }
            if slots[slot] == nil { count += newValue == nil ? 0 : 1 } else if newValue == nil { count -= 1 }
            slots[slot] = newValue
        }
    }

    /// Empties a place; returns the contact that was there.
    mutating func remove(at slot: Int) -> ContactActor? {
        let removed = self[slot]
        if removed != nil { self[slot] = nil }
        return removed
    }

    /// Room for places up to `minimumCapacity` (ids are dense, so places and contacts match).
    mutating func reserveCapacity(_ minimumCapacity: Int) { slots.reserveCapacity(minimumCapacity) }

    /// The contacts, by ascending id within the shard.
    var values: some Sequence<ContactActor> { slots.lazy.compactMap { $0 } }
}
