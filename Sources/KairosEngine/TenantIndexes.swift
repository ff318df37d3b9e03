import KairosCore
import Synchronization

/// Contacts by their `email` trait (lowercased), kept as identify events set it, so admin reads
/// and imports find a contact by email without a scan.
final class EmailIndex: Sendable {
    /// Addresses live in shards by a hash of the address, each under its own lock: the lanes of
    /// a batch, an import or a restore fill the index side by side. Which address a contact has
    /// indexed is kept by the contact's actor (`ContactActor.indexedAddress`), not here: a
    /// second map from contact to address held every address twice.
    static let shardCount = 16

    private let addresses = (0..<EmailIndex.shardCount).map { _ in LockedShard([String: UInt64]()) }

    /// The lookup key of an address (lowercased) and its shard.
    struct Key {
        var text: String
        var shard: Int
    }

    static func key(_ email: String) -> String {
        // Most addresses are ASCII, and most of those lowercase already: no new string then.
        var hasUppercase = false
        for byte in email.utf8 {
            if byte >= 0x80 { return email.lowercased() }
            if byte &- 65 < 26 { hasUppercase = true }
        }
        guard hasUppercase else { return email }
        return String(decoding: email.utf8.map { $0 &- 65 < 26 ? $0 | 0x20 : $0 }, as: UTF8.self)
    }

    /// The key and its shard, by FNV-1a over the key's bytes.
    static func indexKey(_ email: String) -> Key {
        let text = key(email)
        var hash: UInt32 = 2_166_136_261
        for byte in text.utf8 { hash = (hash ^ UInt32(byte)) &* 16_777_619 }
        return Key(text: text, shard: Int(hash % UInt32(shardCount)))
    }

    /// Records a contact's new address (nil: none) in place of `previous`, the one it had indexed.
    func set(contact: UInt64, email: String?, previous: String?) {
        let key = email.map(EmailIndex.indexKey)
        if let previous {
            let old = EmailIndex.indexKey(previous)
            if old.text != key?.text { release(old, from: contact) }
        }
        if let key { addresses[key.shard].withLock { $0[key.text] = contact } }
    }

    /// Makes room for `count` more addresses before a restore fills the index.
    func reserve(_ count: Int) {
        addresses.reserveShares(of: count)
    }

    private let restoreOrder = StaggeredShardOrder()

    /// Adds a restored part's contacts (each once, none indexed yet), locking each shard once.
    func restore(_ entries: [(contact: UInt64, email: String)]) {
        guard !entries.isEmpty else { return }
        // Most addresses are their own key (lowercase ASCII): those stay nil in the list of other
        // keys (no reference count each way on a million strings); only their shard is kept.
        var lowercased = [String?](repeating: nil, count: entries.count)
        var byAddressShard = [[Int]](repeating: [], count: EmailIndex.shardCount)
        for position in entries.indices {
            let key = EmailIndex.indexKey(entries[position].email)
            if key.text != entries[position].email { lowercased[position] = key.text }
            byAddressShard[key.shard].append(position)
        }
        func key(_ position: Int) -> String { lowercased[position] ?? entries[position].email }
        for shard in restoreOrder.nextOrder(shardCount: EmailIndex.shardCount) where !byAddressShard[shard].isEmpty {
            addresses[shard].withLock { table in
                for position in byAddressShard[shard] { table[key(position)] = entries[position].contact }
            }
        }
    }

    /// Forgets an address a contact no longer has, unless another contact took it meanwhile.
    private func release(_ key: Key, from contact: UInt64) {
        addresses[key.shard].withLock { table in
            if table[key.text] == contact { table.removeValue(forKey: key.text) }
        }
    }

    /// A merged profile's address (`email`, the one it had indexed) moves to the contact it merged
    /// into, unless that one has its own.
    func merge(_ email: String, from source: UInt64, into target: UInt64, targetHasAddress: Bool) {
        let key = EmailIndex.indexKey(email)
        addresses[key.shard].withLock { table in
            if !targetHasAddress {
                table[key.text] = target
            } else if table[key.text] == source {
                table.removeValue(forKey: key.text)
            }
        }
    }

    func contact(email: String) -> UInt64? {
        let key = EmailIndex.indexKey(email)
        return addresses[key.shard].withLock { $0[key.text] }
    }

    /// Contacts whose email starts with `prefix` (lowercased), ascending by id after `cursor`.
    func search(prefix: String, after cursor: UInt64, limit: Int) -> [UInt64] {
        let key = EmailIndex.key(prefix)
        var matches: [UInt64] = []
        for shard in addresses {
            shard.withLock { table in
                for (address, contact) in table where contact > cursor && address.hasPrefix(key) { matches.append(contact) }
            }
        }
        return Array(matches.sorted().prefix(limit))
    }
}

/// A tenant's events and lifecycle-stage entries in 15-minute buckets over the last 8 days,
/// counted as commands apply (so replay counts them again exactly), for "today" figures in
/// any time zone whose offset is a multiple of 15 minutes.
final class DailyActivity: Sendable {
    static let bucketMilliseconds: Int64 = 15 * 60 * 1000
    static let keptBuckets: Int64 = 8 * 24 * 4

    struct Bucket: Sendable, Hashable {
        var events = 0
        /// Contacts entering each lifecycle stage (`MQL`, `SQL` …).
        var stages: [String: Int] = [:]
    }

    private let buckets = Mutex<[Int64: Bucket]>([:])

    func record(events: Int, effects: [Effect], at time: Timestamp) {
        var stages: [String: Int] = [:]
        for effect in effects {
            if case .lifecycleChanged(_, _, let to?) = effect.kind { stages[to, default: 0] += 1 }
        }
        guard events > 0 || !stages.isEmpty else { return }
        let index = time.milliseconds / DailyActivity.bucketMilliseconds
        buckets.withLock { buckets in
            let isNew = buckets[index] == nil
            buckets[index, default: Bucket()].events += events
            for (stage, count) in stages { buckets[index]!.stages[stage, default: 0] += count }
            if isNew, buckets.count > Int(DailyActivity.keptBuckets) {
                let oldest = index - DailyActivity.keptBuckets
                buckets = buckets.filter { $0.key > oldest }
            }
        }
    }

    /// Totals from `start` (inclusive, rounded down to its bucket) on.
    func totals(since start: Timestamp) -> Bucket {
        let first = start.milliseconds / DailyActivity.bucketMilliseconds
        return buckets.withLock { buckets in
            var total = Bucket()
            for (index, bucket) in buckets where index >= first {
                total.events += bucket.events
                for (stage, count) in bucket.stages { total.stages[stage, default: 0] += count }
            }
            return total
        }
    }

    func export() -> [Int64: Bucket] { buckets.withLock { $0 } }

    func restore(_ saved: [Int64: Bucket]) { buckets.withLock { $0 = saved } }
}
