import KairosCore
import Synchronization

/// Exact member sets of a tenant's segments, updated in the same actor turn as the
/// contact state that caused the change, so counts are exact at every moment.
///
/// Sharded by contact id, each shard under its own lock: the lanes of a batch record membership
/// changes side by side (one lock for all segments made them queue behind each other, a futex
/// wake-up each time). A contact's changes always go to the same shard, in order. A shard holds
/// contact `id` as the number `id / shardCount` (`key(of:)`), so its members stay dense bits.
final class SegmentMembers: Sendable {
    static let shardCount = 16
    private let shards = (0..<SegmentMembers.shardCount).map { _ in LockedShard([String: ContactIdSet]()) }

    static func shard(of contact: UInt64) -> Int { Int(contact % UInt64(shardCount)) }

    /// The number standing for `contact` in its shard's sets.
    static func key(of contact: UInt64) -> UInt64 { contact / UInt64(shardCount) }

    private static func contact(key: UInt64, shard: Int) -> UInt64 { key * UInt64(shardCount) + UInt64(shard) }

    func apply(_ effects: [Effect]) {
        guard let first = effects.first(where: Self.changesMembership) else { return }
        let shard = Self.shard(of: first.contact)
        // Mostly the effects of one contact: one shard, locked once.
        if effects.allSatisfy({ !Self.changesMembership($0) || Self.shard(of: $0.contact) == shard }) {
            shards[shard].withLock { sets in
                for effect in effects { Self.apply(effect, to: &sets) }
            }
        } else {
            for effect in effects where Self.changesMembership(effect) {
                shards[Self.shard(of: effect.contact)].withLock { Self.apply(effect, to: &$0) }
            }
        }
    }

    private static func changesMembership(_ effect: Effect) -> Bool {
        switch effect.kind {
        case .segmentEntered, .segmentLeft: return true
        default: return false
        }
    }

    private static func apply(_ effect: Effect, to sets: inout [String: ContactIdSet]) {
        switch effect.kind {
        // A journey's hidden trigger segment is not a segment anyone lists.
        case .segmentEntered(let segment) where !JourneyCatalog.isTriggerSegment(segment):
            sets[segment, default: ContactIdSet()].insert(key(of: effect.contact))
        case .segmentLeft(let segment): sets[segment]?.remove(key(of: effect.contact))
        default: break
        }
    }

    func count(_ segment: String) -> Int { shards.reduce(0) { total, shard in total + shard.withLock { $0[segment]?.count ?? 0 } } }

    func counts() -> [String: Int] {
        var counts: [String: Int] = [:]
        for shard in shards {
            shard.withLock { sets in
                for (segment, members) in sets { counts[segment, default: 0] += members.count }
            }
        }
        return counts
    }

    /// One segment's members as `add(_:)` takes them: a set per shard, from lists of contact ids.
    static func shardedSets(of lists: [[UInt64]]) -> [ContactIdSet] {
        var sets = [ContactIdSet](repeating: ContactIdSet(), count: shardCount)
        for list in lists {
            for contact in list { sets[shard(of: contact)].insert(key(of: contact)) }
        }
        return sets
    }

    /// Adds many members at once (restoring a snapshot): each segment's members by shard, as
    /// `shardedSets(of:)` makes them, outside the locks.
    func add(_ members: [String: [ContactIdSet]]) {
        for (index, shard) in shards.enumerated() {
            shard.withLock { sets in
                for (segment, byShard) in members where !JourneyCatalog.isTriggerSegment(segment) && !byShard[index].isEmpty {
                    if let existing = sets[segment], !existing.isEmpty {
                        sets[segment]!.formUnion(byShard[index])
                    } else {
                        sets[segment] = byShard[index]
                    }
                }
            }
        }
    }

    func remove(segment: String) {
        for shard in shards { shard.withLock { _ = $0.removeValue(forKey: segment) } }
    }

    /// Contact ids after `cursor`, ascending, at most `limit`.
    func page(_ segment: String, after cursor: UInt64?, limit: Int) -> (ids: [UInt64], total: Int) {
        var total = 0
        var candidates: [UInt64] = []
        for (index, shard) in shards.enumerated() {
            // The shard's first key whose contact lies after the cursor.
            let start = cursor.map { $0 < UInt64(index) ? 0 : ($0 - UInt64(index)) / UInt64(Self.shardCount) + 1 } ?? 0
            shard.withLock { sets in
                guard let members = sets[segment] else { return }
                total += members.count
                candidates += members.ascending(from: start, limit: limit).map { Self.contact(key: $0, shard: index) }
            }
        }
        candidates.sort()
        return (Array(candidates.prefix(limit)), total)
    }
}

/// The accounts (`group` calls) of one tenant: their traits and their contacts.
final class AccountDirectory: Sendable {
    struct Account: Sendable {
        var traits: [String: JSONValue] = [:]
        var contacts: Set<UInt64> = []
    }

    private let accounts = Mutex<[String: Account]>([:])

    func traits(of id: String) -> [String: JSONValue]? { accounts.withLock { $0[id]?.traits } }

    /// Records a `group` call; returns the other contacts of the account when its traits changed.
    func record(groupId: String, traits: [String: JSONValue], contact: UInt64) -> [UInt64] {
        // Changed where it lies: an account taken out and put back was a second reference to
        // its member set while it changed, so every `group` call copied all of its members.
        func change(_ account: inout Account) -> [UInt64] {
            var changed = false
            for (key, value) in traits {
                if value.isNull {
                    if account.traits.removeValue(forKey: key) != nil { changed = true }
                } else if account.traits[key] != value {
                    account.traits[key] = value
                    changed = true
                }
            }
            account.contacts.insert(contact)
            return changed ? account.contacts.filter { $0 != contact } : []
        }
        return accounts.withLock { change(&$0[groupId, default: Account()]) }
    }

    func export() -> [String: Account] { accounts.withLock { $0 } }

    func restore(_ saved: [String: Account]) { accounts.withLock { $0 = saved } }

    var count: Int { accounts.withLock { $0.count } }
}
