import KairosCore

/// Who is asking for a decision.
public struct Visitor: Sendable, Hashable {
    public var userId: String?
    public var anonymousId: String?

    public init(userId: String? = nil, anonymousId: String? = nil) {
        self.userId = userId
        self.anonymousId = anonymousId
    }
}

public struct DecisionResponse: Sendable, Hashable {
    /// One per requested placement, in order.
    public var decisions: [PlacementDecision]
}

/// One variation of an experiment with its counts and, for treatments, its comparison with control.
public struct VariantResult: Sendable, Hashable, Codable {
    public var variant: String
    public var isControl: Bool
    public var weight: Double
    public var units: Int
    public var conversions: Int
    public var conversionRate: Double
    public var frequentist: ExperimentStatistics.Frequentist?
    public var bayesian: ExperimentStatistics.Bayesian?
}

public struct ExperimentResults: Sendable, Hashable, Codable {
    public var experiment: String
    public var placement: String
    public var status: String
    public var variants: [VariantResult]
    /// Visitors held out of the experiment (they saw the placement's default).
    public var holdout: ConversionCounts?
    /// Chi-square p-value of the observed split against the weights; flagged below 0.001.
    public var sampleRatioMismatchPValue: Double
    public var sampleRatioMismatch: Bool
}

extension Engine {
    // MARK: Definitions

    /// Defines or replaces a placement (content variants, targeting rules, optimizer, default).
    @discardableResult
    public func definePlacement(tenant id: String, _ json: JSONValue, now: Timestamp) async throws(EngineError) -> DefinitionReceipt {
        let tenant = try tenant(id)
        _ = try await tenant.actor.validatePlacement(json)
        try await checkDefinitionQuota(tenant: id, .placement, json: json)
        return try await journaled(tenant, .definePlacement(json), now: now) { () async throws(EngineError) in
            try await tenant.actor.definePlacement(json, now: now)
        }
    }

    /// Defines or replaces an experiment; `status` starts and stops it.
    @discardableResult
    public func defineExperiment(tenant id: String, _ json: JSONValue, now: Timestamp) async throws(EngineError) -> DefinitionReceipt {
        let tenant = try tenant(id)
        _ = try await tenant.actor.validateExperiment(json)
        try await checkDefinitionQuota(tenant: id, .experiment, json: json)
        return try await journaled(tenant, .defineExperiment(json), now: now) { () async throws(EngineError) in
            try await tenant.actor.defineExperiment(json, now: now)
        }
    }

    /// Starts (`running`) or stops (`stopped`) an experiment: a new version with the status changed.
    @discardableResult
    public func setExperimentStatus(tenant id: String, experiment experimentId: String, _ status: ExperimentDefinition.Status, now: Timestamp)
        async throws(EngineError) -> DefinitionReceipt
    {
        guard let current = try await tenant(id).actor.experiment(experimentId),
            case .object(var source) = current.source
        else { throw EngineError(.unknownDefinition, "no experiment '\(experimentId)'") }
        source["status"] = .string(status.rawValue)
        return try await defineExperiment(tenant: id, .object(source), now: now)
    }

    public func validatePlacement(tenant id: String, _ json: JSONValue) async throws(EngineError) {
        _ = try await tenant(id).actor.validatePlacement(json)
    }

    public func validateExperiment(tenant id: String, _ json: JSONValue) async throws(EngineError) {
        _ = try await tenant(id).actor.validateExperiment(json)
    }

    // MARK: Deciding

    /// Chooses content for each placement from the visitor's live profile. The answer does not
    /// wait for the journal: what the decision changed (sticky assignments, served decisions
    /// for feedback) is journaled behind it, in order with the tenant's other commands.
    public func decide(
        tenant id: String, visitor: Visitor, context: RequestContext = RequestContext(), placements: [String], now: Timestamp
    ) async throws(EngineError) -> DecisionResponse {
        guard visitor.userId?.isEmpty == false || visitor.anonymousId?.isEmpty == false else {
            throw EngineError(.invalidArgument, "a decision needs the visitor's userId or anonymousId")
        }
        guard !placements.isEmpty, placements.count <= 32 else {
            throw EngineError(.invalidArgument, "ask for 1–32 placements at a time, got \(placements.count)")
        }
        let tenant = try tenant(id)
        let runtime = tenant.runtime
        let seed = nextDecisionSeed()
        let contact = visitor.userId.flatMap { runtime.directory.lookup(.user($0)) }
            ?? visitor.anonymousId.flatMap { runtime.directory.lookup(.anonymous($0)) }
        let recordNow = journal == nil
        let result: (decisions: [PlacementDecision], record: DecisionRecord)
        if let contact {
            result = await contact.decide(
                placements, userId: visitor.userId, anonymousId: visitor.anonymousId, request: context, now: now, seed: seed,
                recordNow: recordNow)
            if recordNow { return DecisionResponse(decisions: result.decisions) }
        } else {
            result = runtime.decide(
                placements, state: nil, userId: visitor.userId, anonymousId: visitor.anonymousId, request: context, now: now,
                seed: seed)
        }
        guard !result.record.isEmpty else { return DecisionResponse(decisions: result.decisions) }
        let command = JournalCommand.VisitorDecisions(userId: visitor.userId, anonymousId: visitor.anonymousId, record: result.record)
        if let journal {
            let record = JournalRecord(time: now, tenant: id, kind: 9, payload: JournalCommand.decisions(command).encoded())
            let (ticket, append) = tenant.gate.submit { journal.enqueue([record]) }
            Task {
                var durable = true
                do { try await append.durable() } catch { durable = false }
                await tenant.gate.waitForTurn(ticket)
                // Not durable: the answer stands, but its feedback will not be attributed.
                if durable {
                    await self.applyDecisions(runtime, command, now: now)
                    tenant.applied.set(append.records[0].sequence)
                }
                tenant.gate.finishTurn()
            }
        } else {
            await applyDecisions(runtime, command, now: now)
        }
        return DecisionResponse(decisions: result.decisions)
    }

    /// Records a decision on the visitor's contact, creating it for a first-time visitor
    /// (by user id, else anonymous id; a decision never merges profiles).
    func applyDecisions(_ runtime: TenantRuntime, _ visitor: JournalCommand.VisitorDecisions, now: Timestamp) async {
        let make = runtime.makeContact
        let contact: ContactActor
        if let userId = visitor.userId, let known = runtime.directory.lookup(.user(userId)) {
            contact = known
        } else if let anonymousId = visitor.anonymousId, let known = runtime.directory.lookup(.anonymous(anonymousId)) {
            contact = known
        } else if let userId = visitor.userId {
            contact = runtime.directory.resolve(.user(userId), make: make)
        } else {
            contact = runtime.directory.resolve(.anonymous(visitor.anonymousId ?? ""), make: make)
        }
        let effects = await contact.record(visitor.record, now: now)
        if !effects.isEmpty { runtime.effects.publish(tenant: runtime.id, effects) }
    }

    // MARK: Results

    /// Exposures, conversions and statistics per variant against control, as GrowthBook computes them.
    public func experimentResults(tenant id: String, experiment experimentId: String) async throws(EngineError) -> ExperimentResults {
        let tenant = try tenant(id)
        guard let experiment = await tenant.actor.experiment(experimentId) else {
            throw EngineError(.unknownDefinition, "no experiment '\(experimentId)'")
        }
        let counts = tenant.runtime.tallies.experiment(experimentId)
        let empty = ConversionCounts(units: 0, conversions: 0)
        let control = counts[0] ?? empty
        var variants: [VariantResult] = []
        for (index, variant) in experiment.variants.enumerated() {
            let observed = counts[index] ?? empty
            variants.append(
                VariantResult(
                    variant: variant, isControl: index == 0, weight: experiment.weights[index], units: observed.units,
                    conversions: observed.conversions, conversionRate: observed.mean,
                    frequentist: index == 0 ? nil : ExperimentStatistics.frequentist(control: control, treatment: observed),
                    bayesian: index == 0 ? nil : ExperimentStatistics.bayesian(control: control, treatment: observed)))
        }
        let pValue = ExperimentStatistics.sampleRatioMismatchPValue(units: variants.map(\.units), weights: experiment.weights)
        return ExperimentResults(
            experiment: experimentId, placement: experiment.placement, status: experiment.status.rawValue, variants: variants,
            holdout: counts[-1], sampleRatioMismatchPValue: pValue,
            sampleRatioMismatch: pValue < ExperimentStatistics.sampleRatioMismatchThreshold)
    }

    /// What a placement's optimizer has learnt: trials and rewards per variant.
    public func optimizerStatistics(tenant id: String, placement: String) throws(EngineError) -> [String: ArmStatistics] {
        let runtime = try tenant(id).runtime
        guard let compiled = runtime.catalog.placements[placement] else {
            throw EngineError(.unknownDefinition, "no placement '\(placement)'")
        }
        let names = compiled.optimizerVariants.map { compiled.definition.variants[$0].id }
        return Dictionary(uniqueKeysWithValues: zip(names, runtime.tallies.arms(placement: placement, variants: names)))
    }
}
