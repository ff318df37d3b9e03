import KairosCore
import Synchronization

/// Contacts by their `email` trait (lowercased), kept as identify events set it, so admin reads
/// and imports find a contact by email without a scan.
final class EmailIndex: Sendable {
    private struct Tables {
        var byEmail: [String: UInt64] = [:]
        var byContact: [UInt64: String] = [:]
    }

    private let tables = Mutex(Tables())

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

    /// Records what a batch set: each contact's new email (nil: the trait was cleared).
    func set(_ changes: [(contact: UInt64, email: String?)]) {
        guard !changes.isEmpty else { return }
        tables.withLock { tables in
            if changes.count > 1_000 {  // a restore's part: grow once
                tables.byEmail.reserveCapacity(tables.byEmail.count + changes.count)
                tables.byContact.reserveCapacity(tables.byContact.count + changes.count)
            }
            for change in changes {
                if let old = tables.byContact[change.contact], tables.byEmail[old] == change.contact {
                    tables.byEmail.removeValue(forKey: old)
                }
                if let email = change.email {
                    let key = EmailIndex.key(email)
                    tables.byEmail[key] = change.contact
                    tables.byContact[change.contact] = key
                } else {
                    tables.byContact.removeValue(forKey: change.contact)
                }
            }
        }
    }

    /// A merged profile's email moves to the contact it merged into, unless that one has its own.
    func merge(from source: UInt64, into target: UInt64) {
        tables.withLock { tables in
            guard let email = tables.byContact.removeValue(forKey: source) else { return }
            if tables.byContact[target] == nil {
                tables.byContact[target] = email
                tables.byEmail[email] = target
            } else if tables.byEmail[email] == source {
                tables.byEmail.removeValue(forKey: email)
            }
        }
    }

    func contact(email: String) -> UInt64? { tables.withLock { $0.byEmail[EmailIndex.key(email)] } }

    /// Contacts whose email starts with `prefix` (lowercased), ascending by id after `cursor`.
    func search(prefix: String, after cursor: UInt64, limit: Int) -> [UInt64] {
        let key = EmailIndex.key(prefix)
        let matches = tables.withLock { tables in tables.byEmail.compactMap { $0.key.hasPrefix(key) && $0.value > cursor ? $0.value : nil } }
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
