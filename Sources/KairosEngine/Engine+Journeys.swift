import KairosCore

extension Engine {
    // MARK: Definitions and lifecycle

    /// Publishes a journey version (a new journey starts as a draft). Runs in flight stay on the
    /// version they entered with, or with `migrateEnrollments` move to the new one where their
    /// step's id still exists.
    @discardableResult
    public func defineJourney(tenant id: String, _ json: JSONValue, migrateEnrollments: Bool = false, now: Timestamp)
        async throws(EngineError) -> DefinitionReceipt
    {
        let tenant = try tenant(id)
        _ = try await tenant.actor.validateJourney(json)
        try await checkDefinitionQuota(tenant: id, .journey, json: json)
        return try await journaled(tenant, .defineJourney(json, migrate: migrateEnrollments), now: now) { () async throws(EngineError) in
            try await tenant.actor.defineJourney(json, migrate: migrateEnrollments, now: now)
        }
    }

    /// Checks a journey without applying it (a dry run).
    public func validateJourney(tenant id: String, _ json: JSONValue) async throws(EngineError) {
        _ = try await tenant(id).actor.validateJourney(json)
    }

    /// draft → active → paused ⇄ active; any → archived.
    @discardableResult
    public func setJourneyStatus(tenant id: String, journey journeyId: String, _ status: JourneyStatus, now: Timestamp)
        async throws(EngineError) -> DefinitionReceipt
    {
        let tenant = try tenant(id)
        guard let current = await tenant.actor.journeyStatusOf(journeyId) else {
            throw EngineError(.unknownDefinition, "no journey '\(journeyId)'")
        }
        guard current != status else {
            throw EngineError(.invalidArgument, "journey '\(journeyId)' is already \(status.rawValue)")
        }
        return try await journaled(tenant, .setJourneyStatus(id: journeyId, status), now: now) { () async throws(EngineError) in
            try await tenant.actor.setJourneyStatus(journeyId, status, now: now)
        }
    }

    public func journeyStatus(tenant id: String, journey journeyId: String) async throws(EngineError) -> JourneyStatus {
        guard let status = try await tenant(id).actor.journeyStatusOf(journeyId) else {
            throw EngineError(.unknownDefinition, "no journey '\(journeyId)'")
        }
        return status
    }

    // MARK: Enrollment

    /// Enrolls a known contact (manual or API enrollment) whatever the journey's trigger, subject
    /// to its status, dates, entry criteria and re-entry policy. Returns whether it entered.
    @discardableResult
    public func enroll(tenant id: String, journey journeyId: String, contact: ContactReference, key: String? = nil, now: Timestamp)
        async throws(EngineError) -> Bool
    {
        let tenant = try tenant(id)
        let runtime = tenant.runtime
        guard runtime.journeys.journey(journeyId) != nil else { throw EngineError(.unknownDefinition, "no journey '\(journeyId)'") }
        var enrollment = JournalCommand.Enrollment(journey: journeyId, key: key)
        switch contact {
        case .userId(let userId): enrollment.userId = userId
        case .anonymousId(let anonymousId): enrollment.anonymousId = anonymousId
        case .id, .email:
            guard let actor = actor(runtime, contact) else {
                throw EngineError(.invalidArgument, "no such contact in tenant '\(id)'")
            }
            let state = await actor.snapshot()
            enrollment.userId = state.userId
            enrollment.anonymousId = state.userId == nil ? state.anonymousIds.first : nil
        }
        guard locate(runtime, enrollment) != nil else {
            throw EngineError(.invalidArgument, "no such contact in tenant '\(id)': send an event for it first")
        }
        let entered = try await journaled(tenant, .enroll(enrollment), now: now) { () async throws(EngineError) in
            await applyEnrollment(runtime, enrollment, now: now)
        }
        return entered
    }

    private func locate(_ runtime: TenantRuntime, _ enrollment: JournalCommand.Enrollment) -> ContactActor? {
        if let userId = enrollment.userId { return runtime.directory.lookup(.user(userId)) }
        if let anonymousId = enrollment.anonymousId { return runtime.directory.lookup(.anonymous(anonymousId)) }
        return nil
    }

    func applyEnrollment(_ runtime: TenantRuntime, _ enrollment: JournalCommand.Enrollment, now: Timestamp) async -> Bool {
        guard let contact = locate(runtime, enrollment) else { return false }
        let (entered, effects) = await contact.enroll(journey: enrollment.journey, key: enrollment.key, now: now)
        runtime.outbox.apply(effects)
        runtime.effects.publish(tenant: runtime.id, effects)
        return entered
    }

    // MARK: Metrics and outbox

    /// A journey's counts (entered, waiting, completed, exits by reason, goal, messages, per
    /// step), exact at the moment of the call.
    public func journeyReport(tenant id: String, journey journeyId: String) async throws(EngineError) -> JourneyReport {
        let tenant = try tenant(id)
        guard await tenant.actor.journeyStatusOf(journeyId) != nil else {
            throw EngineError(.unknownDefinition, "no journey '\(journeyId)'")
        }
        return tenant.runtime.journeyMetrics.report(journeyId)
    }

    /// Messages journeys emitted, oldest first, after outbox position `after`.
    public func outbox(tenant id: String, after position: UInt64 = 0, limit: Int = 100) throws(EngineError) -> [OutboxEntry] {
        guard (1...10_000).contains(limit) else { throw EngineError(.invalidArgument, "limit must be 1–10000, got \(limit)") }
        return try tenant(id).runtime.outbox.read(after: position, limit: limit)
    }
}
