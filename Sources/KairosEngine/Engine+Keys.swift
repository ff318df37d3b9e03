import KairosCore
import Synchronization

extension Engine {
    /// Creates a write key for a tenant and returns it; only its SHA-256 is kept (journaled and
    /// in snapshots), so this is the one time the key can be seen. Write keys may sit in a web
    /// page: they can only ingest and decide for their own tenant.
    public func createWriteKey(tenant id: String, now: Timestamp) async throws(EngineError) -> String {
        let tenant = try tenant(id)
        var generator = SystemRandomNumberGenerator()
        let secret = (0..<4).map { _ in
            let text = String(generator.next() as UInt64, radix: 16)
            return String(repeating: "0", count: 16 - text.count) + text
        }.joined()
        let key = "wk_" + secret
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

    /// The tenant a write key belongs to, or nil for an unknown key.
    public func tenant(forWriteKey key: String) -> String? {
        let hash = SHA256.hex(Array(key.utf8))
        return writeKeyIndex.withLock { $0[hash] }
    }

    /// Rebuilds the key index from restored tenants (after `restore(snapshot:)`).
    func indexWriteKeys() async {
        for id in tenantIds {
            guard let tenant = try? tenant(id) else { continue }
            let keys = await tenant.actor.writeKeys
            writeKeyIndex.withLock { index in for hash in keys.values { index[hash] = id } }
        }
    }
}
