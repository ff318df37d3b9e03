import KairosCore
import Synchronization

/// What a key may do. The scope is part of the key itself (`wk_…` or `sk_…`), so a key
/// cannot be presented as another scope: the prefix is inside what is hashed.
public enum KeyScope: String, Sendable, Hashable, Codable, CaseIterable {
    /// Ingest and decide for one tenant; may sit in a web page.
    case write
    /// The admin API of one tenant; kept on servers.
    case secret

    var prefix: String { self == .write ? "wk_" : "sk_" }

    /// The scope a presented key claims, from its prefix.
    public init?(key: String) {
        if key.hasPrefix("wk_") { self = .write } else if key.hasPrefix("sk_") { self = .secret } else { return nil }
    }
}

/// A tenant's key as listed: never the key, only its label (its first 11 characters).
public struct KeyInfo: Sendable, Hashable, Codable {
    public var label: String
    public var scope: KeyScope
    public var createdAt: Timestamp
    /// When a key being rotated out stops working.
    public var expiresAt: Timestamp?
}

extension Engine {
    /// Creates a write key for a tenant and returns it; only its SHA-256 is kept (journaled and
    /// in snapshots), so this is the one time the key can be seen. Write keys may sit in a web
    /// page: they can only ingest and decide for their own tenant.
    public func createWriteKey(tenant id: String, now: Timestamp) async throws(EngineError) -> String {
        try await createKey(tenant: id, scope: .write, now: now)
    }

    /// Creates a key of a scope for a tenant and returns it (the one time it can be seen).
    public func createKey(tenant id: String, scope: KeyScope, now: Timestamp) async throws(EngineError) -> String {
        let tenant = try tenant(id)
        var generator = SystemRandomNumberGenerator()
        let secret = (0..<4).map { _ in
            let text = String(generator.next() as UInt64, radix: 16)
            return String(repeating: "0", count: 16 - text.count) + text
        }.joined()
        let key = scope.prefix + secret
        let label = String(key.prefix(11))
        let hash = SHA256.hex(Array(key.utf8))
        try await journaled(tenant, .addWriteKey(label: label, sha256: hash), now: now) { () async throws(EngineError) in
            await applyWriteKey(tenant, label: label, hash: hash, now: now)
        }
        return key
    }

    func applyWriteKey(_ tenant: Tenant, label: String, hash: String, now: Timestamp) async {
        _ = await tenant.actor.addWriteKey(label: label, hash: hash, now: now)
        writeKeyIndex.withLock { $0[hash] = tenant.runtime.id }
    }

    /// Revokes a key by its label: requests with it are refused from now on.
    public func revokeKey(tenant id: String, label: String, now: Timestamp) async throws(EngineError) {
        let tenant = try tenant(id)
        guard await tenant.actor.writeKeys[label] != nil else {
            throw EngineError(.unknownDefinition, "tenant '\(id)' has no key '\(label)'")
        }
        try await journaled(tenant, .deleteDefinition(.writeKey, id: label), now: now) { () async throws(EngineError) in
            try await applyRevokeKey(tenant, label: label, now: now)
        }
    }

    func applyRevokeKey(_ tenant: Tenant, label: String, now: Timestamp) async throws(EngineError) {
        let hash = await tenant.actor.writeKeys[label]
        _ = try await tenant.actor.delete(.writeKey, id: label, now: now)
        if let hash {
            writeKeyIndex.withLock { _ = $0.removeValue(forKey: hash) }
            keyExpiryIndex.withLock { _ = $0.removeValue(forKey: hash) }
        }
        keyRevocations.add(1, ordering: .releasing)
    }

    /// Rotates a key: a new key of the same scope now, and the old one keeps working for
    /// `overlap` (0: stops at once), so clients can move over without an outage.
    public func rotateKey(tenant id: String, label: String, overlap: TimeSpan, now: Timestamp) async throws(EngineError)
        -> (key: String, oldKeyExpiresAt: Timestamp)
    {
        let tenant = try tenant(id)
        guard await tenant.actor.writeKeys[label] != nil, let scope = KeyScope(key: label) else {
            throw EngineError(.unknownDefinition, "tenant '\(id)' has no key '\(label)'")
        }
        guard overlap.milliseconds >= 0, overlap.milliseconds <= 90 * 86_400_000 else {
            throw EngineError(.invalidArgument, "the overlap must be 0 to 90 days")
        }
        let key = try await createKey(tenant: id, scope: scope, now: now)
        let expiry = now.milliseconds + overlap.milliseconds
        try await journaled(tenant, .expireKey(label: label, at: expiry), now: now) { () async throws(EngineError) in
            try await applyExpireKey(tenant, label: label, at: expiry, now: now)
        }
        return (key, Timestamp(milliseconds: expiry))
    }

    func applyExpireKey(_ tenant: Tenant, label: String, at expiry: Int64, now: Timestamp) async throws(EngineError) {
        _ = try await tenant.actor.expireKey(label: label, at: expiry, now: now)
        if let hash = await tenant.actor.writeKeys[label] { keyExpiryIndex.withLock { $0[hash] = expiry } }
        keyRevocations.add(1, ordering: .releasing)
    }

    /// A tenant's keys, by label (the keys themselves are not kept).
    public func keys(tenant id: String) async throws(EngineError) -> [KeyInfo] {
        var keys: [KeyInfo] = []
        let tenant = try tenant(id)
        let expiries = await tenant.actor.keyExpiries
        for version in try await definitions(tenant: id, .writeKey) {
            guard version.source != nil, let scope = KeyScope(key: version.id) else { continue }
            let created = try await definitionHistory(tenant: id, .writeKey, id: version.id).first?.definedAt ?? version.definedAt
            keys.append(
                KeyInfo(label: version.id, scope: scope, createdAt: created, expiresAt: expiries[version.id].map(Timestamp.init(milliseconds:))))
        }
        return keys
    }

    /// The tenant a write key belongs to, or nil for an unknown key (or a key of another scope).
    public func tenant(forWriteKey key: String) -> String? { tenant(forKey: key, scope: .write) }

    /// The tenant of a key of the given scope, or nil when the key is unknown, revoked or of another scope.
    public func tenant(forKey key: String, scope: KeyScope, at now: Timestamp? = nil) -> String? {
        guard let entry = keyEntry(forKey: key, scope: scope) else { return nil }
        if let expiry = entry.expiresAt, (now ?? SystemClock().now()) >= expiry { return nil }
        return entry.tenant
    }

    /// A key's tenant and, for a key being rotated out, when it stops working (for caches).
    public func keyEntry(forKey key: String, scope: KeyScope) -> (tenant: String, expiresAt: Timestamp?)? {
        guard KeyScope(key: key) == scope else { return nil }
        let hash = SHA256.hex(Array(key.utf8))
        guard let tenant = writeKeyIndex.withLock({ $0[hash] }) else { return nil }
        return (tenant, keyExpiryIndex.withLock { $0[hash] }.map(Timestamp.init(milliseconds:)))
    }

    /// Rebuilds the key index from restored tenants (after `restore(snapshot:)`).
    func indexWriteKeys() async {
        for id in tenantIds {
            guard let tenant = try? tenant(id) else { continue }
            let keys = await tenant.actor.writeKeys
            let expiries = await tenant.actor.keyExpiries
            writeKeyIndex.withLock { index in for hash in keys.values { index[hash] = id } }
            keyExpiryIndex.withLock { index in
                for (label, expiry) in expiries { if let hash = keys[label] { index[hash] = expiry } }
            }
        }
    }
}
