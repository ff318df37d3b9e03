import KairosCore
import Synchronization

/// Exact member sets of a tenant's segments, updated in the same actor turn as the
/// contact state that caused the change, so counts are exact at every moment.
final class SegmentMembers: Sendable {
    private let sets = Mutex<[String: Set<UInt64>]>([:])

    func apply(_ effects: [Effect]) {
        let touchesMembership = effects.contains { effect in
            switch effect.kind {
            case .segmentEntered, .segmentLeft: return true
            default: return false
            }
        }
        guard touchesMembership else { return }
        sets.withLock { sets in
            for effect in effects {
                switch effect.kind {
                // A journey's hidden trigger segment is not a segment anyone lists.
                case .segmentEntered(let segment) where !JourneyCatalog.isTriggerSegment(segment):
                    sets[segment, default: []].insert(effect.contact)
                case .segmentLeft(let segment): sets[segment]?.remove(effect.contact)
                default: break
                }
            }
        }
    }

    func count(_ segment: String) -> Int { sets.withLock { $0[segment]?.count ?? 0 } }

    func counts() -> [String: Int] { sets.withLock { $0.mapValues(\.count) } }

    /// Adds many members at once (restoring a snapshot): sets built beforehand, outside the lock.
    func add(_ members: [String: Set<UInt64>]) {
        sets.withLock { sets in
            for (segment, contacts) in members where !JourneyCatalog.isTriggerSegment(segment) {
                if let existing = sets[segment], !existing.isEmpty {
                    sets[segment]!.formUnion(contacts)
                } else {
                    sets[segment] = contacts
                }
            }
        }
    }

    func remove(segment: String) { sets.withLock { _ = $0.removeValue(forKey: segment) } }

    /// Contact ids after `cursor`, ascending, at most `limit`.
    func page(_ segment: String, after cursor: UInt64?, limit: Int) -> (ids: [UInt64], total: Int) {
        sets.withLock { sets in
            guard let members = sets[segment] else { return ([], 0) }
            let start = cursor ?? 0
            // A bounded selection instead of sorting the whole set: one pass, `limit` kept.
            var selected: [UInt64] = []
            selected.reserveCapacity(limit + 1)
            for id in members where id > start {
                if selected.count < limit {
                    selected.append(id)
                    if selected.count == limit { selected.sort() }
                } else if id < selected[limit - 1] {
                    var index = limit - 1
                    while index > 0 && selected[index - 1] > id { index -= 1 }
                    selected.insert(id, at: index)
                    selected.removeLast()
                }
            }
            if selected.count < limit { selected.sort() }
            return (selected, members.count)
        }
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
        accounts.withLock { accounts in
            var account = accounts[groupId] ?? Account()
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
            accounts[groupId] = account
            return changed ? account.contacts.filter { $0 != contact } : []
        }
    }

    func export() -> [String: Account] { accounts.withLock { $0 } }

    func restore(_ saved: [String: Account]) { accounts.withLock { $0 = saved } }

    var count: Int { accounts.withLock { $0.count } }
}
