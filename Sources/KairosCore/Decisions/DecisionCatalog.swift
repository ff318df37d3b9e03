/// A tenant's placements and experiments, checked against its other definitions and
/// indexed for the decide path. Immutable and shared, like `TenantDefinitions`.
public final class DecisionCatalog: Sendable {
    public struct CompiledPlacement: Sendable {
        public let definition: PlacementDefinition
        /// Targeting rules with segment references resolved to symbols.
        public let rules: [Predicate]
        /// The running experiment on this placement, if any.
        public let experiment: ExperimentDefinition?
        /// Variant indexes the optimizer chooses among.
        public let optimizerVariants: [Int]
    }

    public let placements: [String: CompiledPlacement]
    public let experiments: [String: ExperimentDefinition]
    /// Track event names that are a goal or a reward somewhere (feedback is checked only for them).
    public let goalEvents: Set<String>

    public static let empty = DecisionCatalog(placements: [:], experiments: [:])

    init(placements: [String: CompiledPlacement], experiments: [String: ExperimentDefinition]) {
        self.placements = placements
        self.experiments = experiments
        var names: Set<String> = []
        for experiment in experiments.values { if let name = experiment.goal.eventName { names.insert(name) } }
        for placement in placements.values {
            if let name = placement.definition.optimizer?.reward.eventName { names.insert(name) }
        }
        goalEvents = names
    }

    public var isEmpty: Bool { placements.isEmpty && experiments.isEmpty }

    /// Which definition a compile error belongs to.
    public enum Owner: Sendable, Hashable {
        case placement(String)
        case experiment(String)
    }

    public struct CompileError: Error, Sendable, Hashable {
        public var owner: Owner
        public var error: DefinitionError
    }

    /// Checks references (segments, scoring models, placements, variants; one running
    /// experiment per placement) and resolves segment symbols.
    public static func compile(
        placements: [PlacementDefinition], experiments: [ExperimentDefinition], definitions: TenantDefinitions,
        intern: (String) -> UInt32
    ) throws(CompileError) -> DecisionCatalog {
        let placementsById = Dictionary(placements.map { ($0.id, $0) }, uniquingKeysWith: { _, last in last })
        var running: [String: ExperimentDefinition] = [:]
        for experiment in experiments.sorted(by: { $0.id < $1.id }) {
            func fail(_ pointer: String, _ message: String) -> CompileError {
                CompileError(owner: .experiment(experiment.id), error: DefinitionError(pointer: pointer, message: message))
            }
            guard let placement = placementsById[experiment.placement] else {
                throw fail("/placement", "unknown placement '\(experiment.placement)'")
            }
            for (index, variant) in experiment.variants.enumerated() where placement.variantIndex(variant) == nil {
                throw fail(
                    "/variants/\(index)",
                    "placement '\(placement.id)' has no variant '\(variant)' (it has: \(placement.variants.map(\.id).joined(separator: ", ")))")
            }
            if experiment.status == .running {
                if let other = running[experiment.placement] {
                    throw fail("/status", "placement '\(experiment.placement)' already runs experiment '\(other.id)'; stop it first")
                }
                running[experiment.placement] = experiment
            }
        }
        var compiled: [String: CompiledPlacement] = [:]
        for placement in placements {
            var rules: [Predicate] = []
            for (index, rule) in placement.rules.enumerated() {
                let deps = rule.condition.dependencies
                for segment in deps.segments.sorted() where definitions.segment(segment) == nil {
                    throw CompileError(
                        owner: .placement(placement.id),
                        error: DefinitionError(pointer: "/rules/\(index)/when", message: "unknown segment '\(segment)'"))
                }
                for model in deps.scoreModels.sorted() where definitions.modelNumber(model) == nil {
                    throw CompileError(
                        owner: .placement(placement.id),
                        error: DefinitionError(pointer: "/rules/\(index)/when", message: "unknown scoring model '\(model)'"))
                }
                rules.append(rule.condition.resolvingSymbols(intern))
            }
            var optimizerVariants: [Int] = []
            if let optimizer = placement.optimizer {
                for (index, name) in (optimizer.variants ?? placement.variants.map(\.id)).enumerated() {
                    guard let variant = placement.variantIndex(name) else {
                        throw CompileError(
                            owner: .placement(placement.id),
                            error: DefinitionError(pointer: "/optimizer/variants/\(index)", message: "unknown variant '\(name)'"))
                    }
                    optimizerVariants.append(variant)
                }
            }
            compiled[placement.id] = CompiledPlacement(
                definition: placement, rules: rules, experiment: running[placement.id], optimizerVariants: optimizerVariants)
        }
        return DecisionCatalog(
            placements: compiled, experiments: Dictionary(experiments.map { ($0.id, $0) }, uniquingKeysWith: { _, last in last }))
    }

    /// Which placements use a segment or a scoring model, for refusing deletions.
    public func placementUsing(segment: String? = nil, model: String? = nil) -> String? {
        for id in placements.keys.sorted() {
            for rule in placements[id]!.definition.rules {
                let deps = rule.condition.dependencies
                if let segment, deps.segments.contains(segment) { return id }
                if let model, deps.scoreModels.contains(model) { return id }
            }
        }
        return nil
    }
}
