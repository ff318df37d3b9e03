import HashTreeCollections
import KairosCore

/// A definition's kind, for listings and history.
public enum DefinitionKind: String, Sendable, Codable, CaseIterable {
    case scoringModel = "scoring_model"
    case segment
    case placement
    case experiment
    case journey
    /// A journey's status change (draft, active, paused, archived), kept apart from its versions.
    case journeyStatus = "journey_status"
    /// A write key (ingest and decide): its label and the SHA-256 of the key, never the key.
    case writeKey = "write_key"
    /// A message template that journeys' send steps name.
    case template
    /// The tenant's limits (one definition, id `limits`), set by the operator.
    case limits
}

/// One version of one definition.
public struct DefinitionVersion: Sendable, Codable, Hashable {
    public var kind: DefinitionKind
    public var id: String
    public var version: Int
    public var definedAt: Timestamp
    /// nil for the version that deleted it.
    public var source: JSONValue?
}

/// What a successful definition change returns.
public struct DefinitionReceipt: Sendable, Hashable {
    public var kind: DefinitionKind
    public var id: String
    public var version: Int
    /// The tenant's definitions version now in force.
    public var definitionsVersion: UInt64
    /// Contacts re-evaluated against the change.
    public var contactsEvaluated: Int
}

/// Progress of evaluating a changed definition over all existing contacts.
public struct BackfillProgress: Sendable, Hashable {
    public var kind: DefinitionKind
    public var id: String
    public var done: Int
    public var total: Int
    public var finished: Bool { done >= total }
}

/// A tenant's definitions: scoring models, segments, placements and experiments, versioned. Serializes
/// definition changes; compiles and publishes them for contact actors to read.
actor TenantActor {
    let runtime: TenantRuntime
    private var models: [String: ScoringModel] = [:]
    private var segments: [String: SegmentDefinition] = [:]
    private var placements: [String: PlacementDefinition] = [:]
    private var experiments: [String: ExperimentDefinition] = [:]
    /// Every version of every journey (runs may still be on an older one).
    private var journeyVersions: [String: [Int: JourneyDefinition]] = [:]
    private var journeyStatus: [String: JourneyStatus] = [:]
    /// Write keys: label → SHA-256 (hex) of the key.
    private(set) var writeKeys: [String: String] = [:]
    /// Keys being rotated out: label → when they stop working (milliseconds).
    private(set) var keyExpiries: [String: Int64] = [:]
    private var templates: [String: TemplateDefinition] = [:]
    /// Hidden trigger segments by journey id (condition triggers of current versions).
    private var triggerSegmentCache: [String: SegmentDefinition] = [:]
    private var history: [DefinitionVersion] = []
    /// The latest version number by `kind:id`, so recording a change does not scan the history.
    private var latestVersions: [String: Int] = [:]
    private var definitionsVersion: UInt64 = 0
    private(set) var backfills: [String: BackfillProgress] = [:]

    init(runtime: TenantRuntime) { self.runtime = runtime }

    // MARK: Queries

    func list(_ kind: DefinitionKind) -> [DefinitionVersion] {
        let ids: [String]
        switch kind {
        case .scoringModel: ids = Array(models.keys)
        case .segment: ids = Array(segments.keys)
        case .placement: ids = Array(placements.keys)
        case .experiment: ids = Array(experiments.keys)
        case .journey: ids = Array(journeyVersions.keys)
        case .journeyStatus: ids = Array(journeyStatus.keys)
        case .writeKey: ids = Array(writeKeys.keys)
        case .template: ids = Array(templates.keys)
        case .limits: ids = latestVersions["limits:limits"] == nil ? [] : ["limits"]
        }
        return ids.sorted().compactMap { id in history.last { $0.kind == kind && $0.id == id } }
    }

    func history(_ kind: DefinitionKind, id: String) -> [DefinitionVersion] {
        history.filter { $0.kind == kind && $0.id == id }
    }

    var backfillProgress: [BackfillProgress] { backfills.values.sorted { $0.id < $1.id } }

    // MARK: Snapshots

    /// Definition changes so far (the latest `definitionsVersion`).
    var definitionChanges: UInt64 { definitionsVersion }

    func exportDefinitions() -> (history: [DefinitionVersion], version: UInt64) { (history, definitionsVersion) }

    /// Restores definitions from a snapshot: the latest version of each is in force again.
    func restoreDefinitions(history: [DefinitionVersion], version: UInt64) throws(EngineError) {
        self.history = history
        models = [:]
        segments = [:]
        placements = [:]
        experiments = [:]
        journeyVersions = [:]
        journeyStatus = [:]
        writeKeys = [:]
        keyExpiries = [:]
        templates = [:]
        runtime.publish(JourneyCatalog.empty)
        var latest: [String: DefinitionVersion] = [:]
        latestVersions = [:]
        for entry in history {
            latest["\(entry.kind.rawValue):\(entry.id)"] = entry
            latestVersions["\(entry.kind.rawValue):\(entry.id)"] = entry.version
            // Every journey version stays: runs may still be on an older one.
            if entry.kind == .journey, let source = entry.source {
                do { journeyVersions[entry.id, default: [:]][entry.version] = try JourneyDefinition.parse(source) } catch {
                    throw EngineError.invalid(error, in: "journey '\(entry.id)' version \(entry.version) in the snapshot")
                }
            }
        }
        for entry in latest.values {
            guard let source = entry.source else { continue }
            do {
                switch entry.kind {
                case .scoringModel: models[entry.id] = try ScoringModel.parse(source)
                case .segment: segments[entry.id] = try SegmentDefinition.parse(source)
                case .placement: placements[entry.id] = try PlacementDefinition.parse(source)
                case .experiment: experiments[entry.id] = try ExperimentDefinition.parse(source)
                case .journey: break
                case .writeKey:
                    if case .object(let object) = source, case .string(let hash)? = object["sha256"] { writeKeys[entry.id] = hash }
                    if case .object(let object) = source, case .number(let expiry)? = object["expiresAt"] { keyExpiries[entry.id] = Int64(expiry) }
                case .template: templates[entry.id] = try TemplateDefinition.parse(source)
                case .limits: runtime.publish(try TenantLimits.parse(source))
                case .journeyStatus:
                    if case .object(let object) = source, case .string(let raw)? = object["status"], let status = JourneyStatus(rawValue: raw) {
                        journeyStatus[entry.id] = status
                    }
                }
            } catch {
                throw EngineError.invalid(error, in: "\(entry.kind.rawValue) '\(entry.id)' in the snapshot")
            }
        }
        triggerSegmentCache = [:]
        for (id, versions) in journeyVersions {
            if let current = versions.max(by: { $0.key < $1.key })?.value { triggerSegmentCache[id] = TenantActor.triggerSegment(current) }
        }
        definitionsVersion = version &- 1
        _ = try compile(models: models, segments: segments, publish: true)
        _ = try compileCatalog(placements: placements, experiments: experiments, publish: true)
    }

    // MARK: Changes

    /// Parses and checks a scoring model against the others without applying it.
    func validateModel(_ json: JSONValue) throws(EngineError) -> ScoringModel {
        let model: ScoringModel
        do { model = try ScoringModel.parse(json) } catch { throw EngineError.invalid(error, in: "scoring model") }
        var candidate = models
        candidate[model.id] = model
        _ = try compile(models: candidate, segments: segments, publish: false)
        return model
    }

    func validateSegment(_ json: JSONValue) throws(EngineError) -> SegmentDefinition {
        let segment: SegmentDefinition
        do { segment = try SegmentDefinition.parse(json) } catch { throw EngineError.invalid(error, in: "segment") }
        var candidate = segments
        candidate[segment.id] = segment
        _ = try compile(models: models, segments: candidate, publish: false)
        return segment
    }

    func defineModel(_ json: JSONValue, now: Timestamp, progress: (@Sendable (BackfillProgress) -> Void)?) async throws(EngineError)
        -> DefinitionReceipt
    {
        let model = try validateModel(json)
        let previous = models[model.id]
        models[model.id] = model
        let definitions = try compile(models: models, segments: segments, publish: true)
        let version = record(.scoringModel, id: model.id, source: json, now: now)
        // Trait rules and stages apply to every contact at once; segments that use the model follow.
        let affected = definitions.segmentsByScoreModel[model.id] ?? []
        let evaluated = previous == model ? 0
            : await backfill(.scoringModel, id: model.id, segments: affected, now: now, progress: progress)
        return DefinitionReceipt(
            kind: .scoringModel, id: model.id, version: version, definitionsVersion: definitions.version,
            contactsEvaluated: evaluated)
    }

    func defineSegment(_ json: JSONValue, now: Timestamp, progress: (@Sendable (BackfillProgress) -> Void)?) async throws(EngineError)
        -> DefinitionReceipt
    {
        let segment = try validateSegment(json)
        let unchanged = segments[segment.id]?.condition == segment.condition
        segments[segment.id] = segment
        let definitions = try compile(models: models, segments: segments, publish: true)
        let version = record(.segment, id: segment.id, source: json, now: now)
        var evaluated = 0
        if !unchanged, let compiled = definitions.segment(segment.id) {
            evaluated = await backfill(.segment, id: segment.id, segments: [compiled.order] + compiled.dependents, now: now, progress: progress)
        }
        return DefinitionReceipt(
            kind: .segment, id: segment.id, version: version, definitionsVersion: definitions.version,
            contactsEvaluated: evaluated)
    }

    func delete(_ kind: DefinitionKind, id: String, now: Timestamp) async throws(EngineError) -> DefinitionReceipt {
        switch kind {
        case .scoringModel:
            guard models[id] != nil else { throw EngineError(.unknownDefinition, "no scoring model '\(id)'") }
            if let user = segments.values.sorted(by: { $0.id < $1.id }).first(where: { $0.condition.dependencies.scoreModels.contains(id) }) {
                throw EngineError(.definitionInUse, "scoring model '\(id)' is used by segment '\(user.id)'")
            }
            if let user = models.values.sorted(by: { $0.id < $1.id }).first(where: { $0.gradeMatrixRowModel == id }) {
                throw EngineError(.definitionInUse, "scoring model '\(id)' is the grade matrix row of model '\(user.id)'")
            }
            if let user = runtime.catalog.placementUsing(model: id) {
                throw EngineError(.definitionInUse, "scoring model '\(id)' is used by placement '\(user)'")
            }
            if let user = journeyUsing(model: id) {
                throw EngineError(.definitionInUse, "scoring model '\(id)' is used by journey '\(user)'")
            }
            models.removeValue(forKey: id)
        case .segment:
            guard segments[id] != nil else { throw EngineError(.unknownDefinition, "no segment '\(id)'") }
            if let user = segments.values.sorted(by: { $0.id < $1.id }).first(where: { $0.condition.dependencies.segments.contains(id) }) {
                throw EngineError(.definitionInUse, "segment '\(id)' is used by segment '\(user.id)'")
            }
            if let user = runtime.catalog.placementUsing(segment: id) {
                throw EngineError(.definitionInUse, "segment '\(id)' is used by placement '\(user)'")
            }
            if let user = journeyUsing(segment: id) {
                throw EngineError(.definitionInUse, "segment '\(id)' is used by journey '\(user)'")
            }
            segments.removeValue(forKey: id)
        case .placement, .experiment:
            return try deleteDecisionDefinition(kind, id: id, now: now)
        case .journey, .journeyStatus:
            throw EngineError(.invalidArgument, "journeys are not deleted: archive '\(id)' instead (its history and metrics stay)")
        case .writeKey:
            guard writeKeys.removeValue(forKey: id) != nil else { throw EngineError(.unknownDefinition, "no key '\(id)'") }
            keyExpiries.removeValue(forKey: id)
            return receipt(kind, id: id, source: nil, now: now)
        case .template:
            guard templates[id] != nil else { throw EngineError(.unknownDefinition, "no template '\(id)'") }
            if let user = currentJourneys().first(where: { $0.sharedTemplateIds.contains(id) }) {
                throw EngineError(.definitionInUse, "template '\(id)' is used by journey '\(user.id)'")
            }
            templates.removeValue(forKey: id)
            return receipt(kind, id: id, source: nil, now: now)
        case .limits:
            guard latestVersions["limits:limits"] != nil else { throw EngineError(.unknownDefinition, "no limits are set") }
            runtime.publish(TenantLimits.unlimited)
            return receipt(kind, id: "limits", source: nil, now: now)
        }
        let definitions = try compile(models: models, segments: segments, publish: true)
        let version = record(kind, id: id, source: nil, now: now)
        if kind == .segment {
            let symbol = runtime.intern(SymbolTable.segmentKey(id))
            for contact in runtime.directory.allContacts() { await contact.dropMembership(symbol: symbol) }
            runtime.members.remove(segment: id)
        }
        return DefinitionReceipt(
            kind: kind, id: id, version: version, definitionsVersion: definitions.version, contactsEvaluated: 0)
    }

    // MARK: Placements and experiments

    func validatePlacement(_ json: JSONValue) throws(EngineError) -> PlacementDefinition {
        let placement: PlacementDefinition
        do { placement = try PlacementDefinition.parse(json) } catch { throw EngineError.invalid(error, in: "placement") }
        var candidate = placements
        candidate[placement.id] = placement
        _ = try compileCatalog(placements: candidate, experiments: experiments, publish: false)
        return placement
    }

    func validateExperiment(_ json: JSONValue) throws(EngineError) -> ExperimentDefinition {
        let experiment: ExperimentDefinition
        do { experiment = try ExperimentDefinition.parse(json) } catch { throw EngineError.invalid(error, in: "experiment") }
        var candidate = experiments
        candidate[experiment.id] = experiment
        _ = try compileCatalog(placements: placements, experiments: candidate, publish: false)
        return experiment
    }

    func definePlacement(_ json: JSONValue, now: Timestamp) throws(EngineError) -> DefinitionReceipt {
        let placement = try validatePlacement(json)
        placements[placement.id] = placement
        _ = try compileCatalog(placements: placements, experiments: experiments, publish: true)
        return receipt(.placement, id: placement.id, source: json, now: now)
    }

    func defineExperiment(_ json: JSONValue, now: Timestamp) throws(EngineError) -> DefinitionReceipt {
        let experiment = try validateExperiment(json)
        experiments[experiment.id] = experiment
        _ = try compileCatalog(placements: placements, experiments: experiments, publish: true)
        return receipt(.experiment, id: experiment.id, source: json, now: now)
    }

    func experiment(_ id: String) -> ExperimentDefinition? { experiments[id] }

    private func deleteDecisionDefinition(_ kind: DefinitionKind, id: String, now: Timestamp) throws(EngineError) -> DefinitionReceipt {
        if kind == .placement {
            guard placements[id] != nil else { throw EngineError(.unknownDefinition, "no placement '\(id)'") }
            if let user = experiments.values.sorted(by: { $0.id < $1.id }).first(where: { $0.placement == id }) {
                throw EngineError(.definitionInUse, "placement '\(id)' is used by experiment '\(user.id)'")
            }
            placements.removeValue(forKey: id)
        } else {
            guard experiments[id] != nil else { throw EngineError(.unknownDefinition, "no experiment '\(id)'") }
            experiments.removeValue(forKey: id)
        }
        _ = try compileCatalog(placements: placements, experiments: experiments, publish: true)
        return receipt(kind, id: id, source: nil, now: now)
    }

    private func receipt(_ kind: DefinitionKind, id: String, source: JSONValue?, now: Timestamp) -> DefinitionReceipt {
        definitionsVersion += 1
        let version = record(kind, id: id, source: source, now: now)
        return DefinitionReceipt(kind: kind, id: id, version: version, definitionsVersion: definitionsVersion, contactsEvaluated: 0)
    }

    private func compileCatalog(
        placements: [String: PlacementDefinition], experiments: [String: ExperimentDefinition], publish: Bool
    ) throws(EngineError) -> DecisionCatalog {
        let runtime = self.runtime
        var scratch = runtime.symbolNames()
        do {
            let catalog = try DecisionCatalog.compile(
                placements: placements.values.sorted { $0.id < $1.id },
                experiments: experiments.values.sorted { $0.id < $1.id }, definitions: runtime.definitions,
                intern: { publish ? runtime.intern($0) : scratch.intern($0) })
            if publish { runtime.publish(catalog) }
            return catalog
        } catch {
            let owner: String
            switch error.owner {
            case .placement(let id): owner = "placement '\(id)'"
            case .experiment(let id): owner = "experiment '\(id)'"
            }
            throw EngineError(.invalidDefinition, "\(owner) is invalid at \(error.error)", definitionError: error.error)
        }
    }

    // MARK: Journeys

    /// The hidden segment that turns a condition trigger (score, lifecycle, any predicate) into
    /// "entered" events, for a journey's current version.
    private static func triggerSegment(_ journey: JourneyDefinition) -> SegmentDefinition? {
        guard case .condition(let predicate) = journey.trigger else { return nil }
        let segmentId = JourneyCatalog.triggerSegmentId(journey.id)
        return SegmentDefinition(id: segmentId, name: segmentId, description: nil, condition: predicate, source: .null)
    }

    /// The hidden trigger segments, with `candidate`'s in place of its journey's current one.
    private func triggerSegments(with candidate: JourneyDefinition?) -> [SegmentDefinition] {
        var all = triggerSegmentCache
        if let candidate { all[candidate.id] = TenantActor.triggerSegment(candidate) }
        return Array(all.values)
    }

    /// Recompiles and publishes the whole journey catalog, checking every journey against
    /// `definitions` (segments or models changed, or a restore).
    private func compileJourneys(definitions: TenantDefinitions, changedTemplate: String? = nil) throws(EngineError) {
        let runtime = self.runtime
        do {
            let catalog = try JourneyCatalog.compile(
                versions: journeyVersions, current: journeyVersions.mapValues { $0.keys.max() ?? 1 }, status: journeyStatus,
                definitions: definitions, templates: sharedTemplates, reuse: runtime.journeys, recompilingUsers: changedTemplate,
                intern: { runtime.intern($0) })
            runtime.publish(catalog)
        } catch {
            throw EngineError(.invalidDefinition, "journey '\(error.journey)' is invalid at \(error.error)", definitionError: error.error)
        }
    }

    private func currentJourneys() -> [JourneyDefinition] {
        journeyVersions.keys.sorted().compactMap { id in
            guard journeyStatus[id] != .archived else { return nil }
            return journeyVersions[id]?.max(by: { $0.key < $1.key })?.value
        }
    }

    private func journeyUsing(segment: String) -> String? {
        currentJourneys().first { journey in
            switch journey.trigger {
            case .segmentEntered(let id), .segmentLeft(let id): if id == segment { return true }
            case .condition(let predicate): if predicate.dependencies.segments.contains(segment) { return true }
            default: break
            }
            let predicates = [journey.entry, journey.exit, journey.goal].compactMap { $0 }
                + journey.nodes.compactMap { if case .branch(let condition, _, _) = $0.step { return condition } else { return nil } }
            return predicates.contains { $0.dependencies.segments.contains(segment) }
        }?.id
    }

    private func journeyUsing(model: String) -> String? {
        currentJourneys().first { journey in
            if case .condition(let predicate) = journey.trigger, predicate.dependencies.scoreModels.contains(model) { return true }
            let predicates = [journey.entry, journey.exit, journey.goal].compactMap { $0 }
                + journey.nodes.compactMap { if case .branch(let condition, _, _) = $0.step { return condition } else { return nil } }
            if predicates.contains(where: { $0.dependencies.scoreModels.contains(model) }) { return true }
            return journey.nodes.contains { if case .score(let id, _, _) = $0.step { return id == model } else { return false } }
        }?.id
    }

    /// Parses and checks a journey against the tenant's definitions without applying it.
    func validateJourney(_ json: JSONValue) throws(EngineError) -> JourneyDefinition {
        let journey: JourneyDefinition
        do { journey = try JourneyDefinition.parse(json) } catch { throw EngineError.invalid(error, in: "journey") }
        if journeyStatus[journey.id] == .archived {
            throw EngineError(.invalidArgument, "journey '\(journey.id)' is archived; give the new journey another id")
        }
        // A condition trigger becomes a hidden segment: check it compiles with the others.
        let definitions = TenantActor.triggerSegment(journey) == nil
            ? runtime.definitions : try compile(models: models, segments: segments, trigger: journey, publish: false)
        do {
            try JourneyCatalog.check(
                journey, definitions: definitions, templates: sharedTemplates, journeys: { self.journeyVersions[$0] != nil })
        } catch {
            throw EngineError(.invalidDefinition, "journey '\(error.journey)' is invalid at \(error.error)", definitionError: error.error)
        }
        return journey
    }

    /// Publishes a new version of a journey (a new journey starts as a draft). Runs in flight
    /// stay on the version they entered, unless `migrate` moves them where their step's id
    /// still exists in the new version.
    func defineJourney(_ json: JSONValue, migrate: Bool, now: Timestamp) async throws(EngineError) -> DefinitionReceipt {
        let journey = try validateJourney(json)
        let previous = journeyVersions[journey.id]?.max(by: { $0.key < $1.key })?.value
        let version = (journeyVersions[journey.id]?.keys.max() ?? 0) + 1
        journeyVersions[journey.id, default: [:]][version] = journey
        if journeyStatus[journey.id] == nil { journeyStatus[journey.id] = .draft }
        var definitions = runtime.definitions
        let hidden = TenantActor.triggerSegment(journey)
        if hidden != nil || triggerSegmentCache[journey.id] != nil {
            triggerSegmentCache[journey.id] = hidden
            definitions = try compile(models: models, segments: segments, publish: true, recheckJourneys: false)
        }
        do {
            // Only this journey changes: the catalog is derived, not recompiled.
            let compiled = try CompiledJourney(
                definition: journey, version: version, sharedTemplates: sharedTemplates, intern: { runtime.intern($0) })
            runtime.publish(runtime.journeys.updating(compiled, status: journeyStatus[journey.id] ?? .draft))
        } catch {
            throw EngineError.invalid(error, in: "journey")
        }
        let recorded = record(.journey, id: journey.id, source: json, now: now)
        var evaluated = 0
        // A changed condition trigger: contacts' membership of its hidden segment starts from
        // the current state, so only later crossings enter the journey.
        if case .condition(let condition) = journey.trigger, previous.map({ $0.trigger != journey.trigger }) ?? true,
            let compiled = definitions.segment(JourneyCatalog.triggerSegmentId(journey.id))
        {
            _ = condition
            evaluated = await backfill(.journey, id: journey.id, segments: [compiled.order], now: now, progress: nil)
        }
        if migrate, previous != nil, let target = runtime.journeys.journey(journey.id),
            let versions = runtime.journeys.versions[target.symbol]
        {
            for contact in runtime.directory.allContacts() { _ = await contact.migrateRuns(to: target, from: versions) }
        }
        return DefinitionReceipt(
            kind: .journey, id: journey.id, version: recorded, definitionsVersion: definitions.version, contactsEvaluated: evaluated)
    }

    /// draft → active → paused ⇄ active; any → archived (final). Resuming moves on runs whose
    /// wait lapsed while paused; archiving ends every run.
    func setJourneyStatus(_ id: String, _ status: JourneyStatus, now: Timestamp) async throws(EngineError) -> DefinitionReceipt {
        guard journeyVersions[id] != nil, let current = journeyStatus[id] else {
            throw EngineError(.unknownDefinition, "no journey '\(id)'")
        }
        let allowed: Bool
        switch (current, status) {
        case (.draft, .active), (.active, .paused), (.paused, .active), (.draft, .archived), (.active, .archived), (.paused, .archived):
            allowed = true
        default: allowed = false
        }
        guard allowed else {
            throw EngineError(.invalidArgument, "journey '\(id)' is \(current.rawValue) and cannot become \(status.rawValue)")
        }
        journeyStatus[id] = status
        runtime.publish(runtime.journeys.updating(status: status, of: runtime.intern(JourneyCatalog.journeyKey(id))))
        definitionsVersion += 1
        let recorded = record(.journeyStatus, id: id, source: .object(["status": .string(status.rawValue)]), now: now)
        let catalog = runtime.journeys
        // Only resuming and archiving touch runs in flight (activating a draft has none).
        if let symbol = catalog.journey(id)?.symbol, status == .archived || current == .paused {
            let contacts = runtime.directory.allContacts()
            if status == .active && current == .paused {
                for contact in contacts {
                    let effects = await contact.wakeJourneys(now: now)
                    runtime.outbox.apply(effects)
                    runtime.effects.publish(tenant: runtime.id, effects)
                }
            } else if status == .archived {
                let versions = catalog.versions[symbol] ?? [:]
                for contact in contacts {
                    runtime.effects.publish(tenant: runtime.id, await contact.endRuns(journey: symbol, versions: versions, now: now))
                }
            }
        }
        return DefinitionReceipt(
            kind: .journeyStatus, id: id, version: recorded, definitionsVersion: definitionsVersion, contactsEvaluated: 0)
    }

    func journeyStatusOf(_ id: String) -> JourneyStatus? { journeyStatus[id] }

    // MARK: Templates

    var sharedTemplates: [String: JourneyDefinition.Message] { templates.mapValues(\.message) }

    func validateTemplate(_ json: JSONValue) throws(EngineError) -> TemplateDefinition {
        do { return try TemplateDefinition.parse(json) } catch { throw EngineError.invalid(error, in: "template") }
    }

    /// A new version of a shared template: journeys that send it render the new text from now on.
    func defineTemplate(_ json: JSONValue, now: Timestamp) throws(EngineError) -> DefinitionReceipt {
        let template = try validateTemplate(json)
        templates[template.id] = template
        try compileJourneys(definitions: runtime.definitions, changedTemplate: template.id)
        return receipt(.template, id: template.id, source: json, now: now)
    }

    // MARK: Limits

    func setLimits(_ json: JSONValue, now: Timestamp) throws(EngineError) -> DefinitionReceipt {
        let limits: TenantLimits
        do { limits = try TenantLimits.parse(json) } catch { throw EngineError.invalid(error, in: "limits") }
        runtime.publish(limits)
        return receipt(.limits, id: "limits", source: limits.json, now: now)
    }

    /// Definitions the tenant holds now (what `maxDefinitions` counts).
    var definitionCount: Int {
        models.count + segments.count + placements.count + experiments.count + templates.count
            + journeyStatus.values.count { $0 != .archived }
    }

    func holds(_ kind: DefinitionKind, id: String) -> Bool {
        switch kind {
        case .scoringModel: return models[id] != nil
        case .segment: return segments[id] != nil
        case .placement: return placements[id] != nil
        case .experiment: return experiments[id] != nil
        case .journey: return journeyVersions[id] != nil
        case .template: return templates[id] != nil
        case .journeyStatus, .writeKey, .limits: return true
        }
    }

    // MARK: Write keys

    /// A key stops working at `expiry` (a rotation's overlap ends).
    func expireKey(label: String, at expiry: Int64, now: Timestamp) throws(EngineError) -> DefinitionReceipt {
        guard let hash = writeKeys[label] else { throw EngineError(.unknownDefinition, "no key '\(label)'") }
        keyExpiries[label] = expiry
        return receipt(.writeKey, id: label, source: .object(["sha256": .string(hash), "expiresAt": .number(Double(expiry))]), now: now)
    }

    func addWriteKey(label: String, hash: String, now: Timestamp) -> DefinitionReceipt {
        writeKeys[label] = hash
        definitionsVersion += 1
        let version = record(.writeKey, id: label, source: .object(["sha256": .string(hash)]), now: now)
        return DefinitionReceipt(kind: .writeKey, id: label, version: version, definitionsVersion: definitionsVersion, contactsEvaluated: 0)
    }

    // MARK: Helpers

    private func compile(
        models: [String: ScoringModel], segments: [String: SegmentDefinition], trigger candidate: JourneyDefinition? = nil,
        publish: Bool, recheckJourneys: Bool = true
    ) throws(EngineError) -> TenantDefinitions {
        let runtime = self.runtime
        // A dry run interns into a scratch copy: symbol numbers depend only on applied
        // commands, so a replayed engine numbers them exactly as the live one did.
        var scratch = publish ? SymbolTable() : runtime.symbolNames()
        let definitions: TenantDefinitions
        do {
            definitions = try TenantDefinitions.compile(
                version: definitionsVersion + 1,
                models: models.values.sorted { $0.id < $1.id },
                segments: (Array(segments.values) + triggerSegments(with: candidate)).sorted { $0.id < $1.id },
                intern: { publish ? runtime.intern($0) : scratch.intern($0) })
        } catch {
            let owner: String
            switch error.owner {
            case .model(let id): owner = "scoring model '\(id)'"
            case .segment(let id) where JourneyCatalog.isTriggerSegment(id):
                owner = "journey '\(id.dropFirst("journey:".count))' (its trigger)"
            case .segment(let id): owner = "segment '\(id)'"
            }
            throw EngineError(.invalidDefinition, "\(owner) is invalid at \(error.error)", definitionError: error.error)
        }
        if publish {
            definitionsVersion += 1
            runtime.publish(definitions)
            // Journeys read segments and models: check them against what is now in force.
            if recheckJourneys { try compileJourneys(definitions: definitions) }
        }
        return definitions
    }

    private func record(_ kind: DefinitionKind, id: String, source: JSONValue?, now: Timestamp) -> Int {
        let key = "\(kind.rawValue):\(id)"
        let version = (latestVersions[key] ?? 0) + 1
        latestVersions[key] = version
        history.append(DefinitionVersion(kind: kind, id: id, version: version, definedAt: now, source: source))
        return version
    }

    /// Evaluates `segments` (and trait rules and stages) over every existing contact, two at a time per core.
    private func backfill(
        _ kind: DefinitionKind, id: String, segments orders: [Int], now: Timestamp,
        progress: (@Sendable (BackfillProgress) -> Void)?
    ) async -> Int {
        let contacts = runtime.directory.allContacts()
        let key = "\(kind.rawValue):\(id)"
        var status = BackfillProgress(kind: kind, id: id, done: 0, total: contacts.count)
        backfills[key] = status
        progress?(status)
        let chunkSize = 4096
        var start = 0
        let lanes = 4
        while start < contacts.count {
            let end = min(start + chunkSize * lanes, contacts.count)
            let slice = contacts[start..<end]
            await withTaskGroup(of: Void.self) { group in
                var laneStart = slice.startIndex
                while laneStart < slice.endIndex {
                    let laneEnd = min(laneStart + chunkSize, slice.endIndex)
                    let lane = slice[laneStart..<laneEnd]
                    group.addTask { [runtime] in
                        var effects: [Effect] = []
                        for contact in lane { effects += await contact.reevaluate(segments: orders, now: now) }
                        runtime.effects.publish(tenant: runtime.id, effects)
                    }
                    laneStart = laneEnd
                }
            }
            start = end
            status.done = start
            backfills[key] = status
            progress?(status)
        }
        backfills.removeValue(forKey: key)
        return contacts.count
    }
}
