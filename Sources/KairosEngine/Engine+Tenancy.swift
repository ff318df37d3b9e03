import KairosCore
import Synchronization

extension Engine {
    // MARK: Templates

    /// Defines (or versions) a shared message template; journeys that send it render the new text.
    @discardableResult
    public func defineTemplate(tenant id: String, _ json: JSONValue, now: Timestamp) async throws(EngineError) -> DefinitionReceipt {
        let tenant = try tenant(id)
        let template = try await tenant.actor.validateTemplate(json)
        try await checkDefinitionQuota(tenant, .template, id: template.id)
        return try await journaled(tenant, .defineTemplate(json), now: now) { () async throws(EngineError) in
            try await tenant.actor.defineTemplate(json, now: now)
        }
    }

    public func validateTemplate(tenant id: String, _ json: JSONValue) async throws(EngineError) {
        _ = try await tenant(id).actor.validateTemplate(json)
    }

    // MARK: Limits

    /// Sets a tenant's limits (replacing the previous ones); they apply from the next request.
    @discardableResult
    public func setLimits(tenant id: String, _ json: JSONValue, now: Timestamp) async throws(EngineError) -> TenantLimits {
        let tenant = try tenant(id)
        let limits: TenantLimits
        do { limits = try TenantLimits.parse(json) } catch { throw EngineError.invalid(error, in: "limits") }
        _ = try await journaled(tenant, .setLimits(limits.json), now: now) { () async throws(EngineError) in
            try await tenant.actor.setLimits(limits.json, now: now)
        }
        return limits
    }

    public func limits(tenant id: String) throws(EngineError) -> TenantLimits { try tenant(id).runtime.limits }

    /// Refuses a definition with a new id once the tenant holds `maxDefinitions`.
    func checkDefinitionQuota(_ tenant: Tenant, _ kind: DefinitionKind, id definitionId: String) async throws(EngineError) {
        guard let maximum = tenant.runtime.limits.maxDefinitions, await !tenant.actor.holds(kind, id: definitionId) else { return }
        let count = await tenant.actor.definitionCount
        guard count < maximum else {
            throw EngineError(
                .quotaExceeded, "tenant '\(tenant.runtime.id)' holds \(count) definitions, its limit; delete one or ask for a higher limit")
        }
    }

    /// Refuses definitions with a JSON id the tenant does not hold yet, past its limit.
    func checkDefinitionQuota(tenant id: String, _ kind: DefinitionKind, json: JSONValue) async throws(EngineError) {
        guard case .string(let definitionId)? = json.objectValue?["id"] else { return }
        try await checkDefinitionQuota(try tenant(id), kind, id: definitionId)
    }

    // MARK: Deleting a tenant

    /// Deletes a tenant with everything it holds: contacts, definitions, keys (which stop working
    /// at once), timers. Journaled, so recovery deletes it again; a new tenant may take the id.
    public func deleteTenant(id: String, now: Timestamp) async throws(EngineError) {
        let tenant = try tenant(id)
        try await journaled(tenant, .deleteTenant, now: now) { () async throws(EngineError) in
            applyDeleteTenant(tenant)
        }
    }

    func applyDeleteTenant(_ tenant: Tenant) {
        let runtime = tenant.runtime
        runtime.deleted.store(true, ordering: .relaxed)
        tenants.withLock { tenants in
            if tenants[runtime.id]?.runtime === runtime { tenants.removeValue(forKey: runtime.id) }
        }
        writeKeyIndex.withLock { index in index = index.filter { $0.value != runtime.id } }
        keyRevocations.add(1, ordering: .releasing)
    }
}

/// A tenant's activity over a span: events applied and contacts entering each lifecycle stage.
public struct ActivityTotals: Sendable, Hashable {
    public var events: Int
    public var stages: [String: Int]
}

extension Engine {
    /// Events and lifecycle-stage entries from `start` on (15-minute resolution, last 8 days).
    public func activity(tenant id: String, since start: Timestamp) throws(EngineError) -> ActivityTotals {
        let bucket = try tenant(id).runtime.activity.totals(since: start)
        return ActivityTotals(events: bucket.events, stages: bucket.stages)
    }
}
