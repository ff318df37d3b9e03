/// An A/B/n test on one placement: which of its variants take part (the first is the
/// control), their weights, the share of traffic in the test, an optional holdout, and
/// the goal it is judged on. Assignment follows GrowthBook (`ExperimentHashing`).
public struct ExperimentDefinition: Sendable {
    public enum Status: String, Sendable, Hashable, CaseIterable {
        /// Defined, not assigning anyone yet.
        case draft
        case running
        /// No new assignments; results stay readable.
        case stopped
    }

    public var id: String
    public var name: String
    public var placement: String
    /// Variant ids of the placement; the first is the control.
    public var variants: [String]
    /// As GrowthBook uses them: equal unless one per variant summing to 1.
    public var weights: [Double]
    /// The share of visitors in the experiment (GrowthBook's coverage).
    public var coverage: Double
    /// The share of visitors held out of it entirely: they see the placement's default
    /// and are counted apart, so the whole programme can be compared with doing nothing.
    public var holdout: Double
    public var seed: String
    /// 2 (GrowthBook's current hash) unless an experiment imported from GrowthBook used 1.
    public var hashVersion: Int
    public var status: Status
    public var goal: DecisionGoal
    public var source: JSONValue

    public static func parse(_ json: JSONValue) throws(DefinitionError) -> ExperimentDefinition {
        let reader = try DefinitionReader(json, at: "", what: "an experiment")
        try reader.rejectUnknownKeys(allowed: [
            "id", "name", "description", "placement", "variants", "weights", "coverage", "holdout", "seed",
            "hash_version", "status", "goal",
        ])
        let id = try reader.identifier("id")
        let placement = try reader.requiredString("placement")
        guard let variantValues = try reader.array("variants"), variantValues.count >= 2 else {
            throw DefinitionError(pointer: "/variants", message: "is required: at least two variant ids (the first is the control)")
        }
        var variants: [String] = []
        for (index, value) in variantValues.enumerated() {
            guard case .string(let name) = value, !name.isEmpty else {
                throw DefinitionError(pointer: "/variants/\(index)", message: "must be a variant id of the placement")
            }
            guard !variants.contains(name) else {
                throw DefinitionError(pointer: "/variants/\(index)", message: "variant '\(name)' is listed twice")
            }
            variants.append(name)
        }
        var weights = Array(repeating: 1 / Double(variants.count), count: variants.count)
        if let weightValues = try reader.array("weights") {
            guard weightValues.count == variants.count else {
                throw DefinitionError(pointer: "/weights", message: "needs one weight per variant (\(variants.count))")
            }
            weights = []
            for (index, value) in weightValues.enumerated() {
                guard case .number(let weight) = value, weight.isFinite, weight >= 0 else {
                    throw DefinitionError(pointer: "/weights/\(index)", message: "must be a number of at least 0")
                }
                weights.append(weight)
            }
            let total = weights.reduce(0, +)
            guard total >= 0.99 && total <= 1.01 else {
                throw DefinitionError(pointer: "/weights", message: "must add up to 1 (they add up to \(total))")
            }
        }
        let coverage = try reader.number("coverage") ?? 1
        guard (0...1).contains(coverage) else {
            throw DefinitionError(pointer: "/coverage", message: "must be between 0 and 1 (the share of traffic in the test)")
        }
        let holdout = try reader.number("holdout") ?? 0
        guard holdout >= 0 && holdout < 1 else {
            throw DefinitionError(pointer: "/holdout", message: "must be at least 0 and below 1")
        }
        let hashVersion = try reader.number("hash_version") ?? 2
        guard hashVersion == 1 || hashVersion == 2 else {
            throw DefinitionError(pointer: "/hash_version", message: "must be 1 or 2 (GrowthBook's hashing versions)")
        }
        let statusName = try reader.string("status") ?? "running"
        guard let status = Status(rawValue: statusName) else {
            throw DefinitionError(pointer: "/status", message: "unknown status '\(statusName)' (expected draft, running or stopped)")
        }
        guard let goalValue = reader.object["goal"], !goalValue.isNull else {
            throw DefinitionError(pointer: "/goal", message: "is required: \"click\" or {\"event\": …, \"within\": …}")
        }
        return ExperimentDefinition(
            id: id, name: try reader.string("name") ?? id, placement: placement, variants: variants, weights: weights,
            coverage: coverage, holdout: holdout, seed: try reader.string("seed") ?? id, hashVersion: Int(hashVersion),
            status: status, goal: try DecisionGoal.parse(goalValue, at: "/goal"), source: json)
    }

    /// The variant (index into `variants`) for a visitor id; nil when outside the covered
    /// traffic. The same as a GrowthBook SDK computes for this seed, id and weights.
    public func assign(_ hashValue: String) -> Int? {
        let n = ExperimentHashing.bucket(seed: seed, value: hashValue, version: hashVersion)
        let ranges = ExperimentHashing.bucketRanges(variations: variants.count, coverage: coverage, weights: weights)
        return ExperimentHashing.chooseVariation(n, ranges: ranges)
    }

    /// Whether the visitor is in the holdout (an independent hash, so holdout and variant are unrelated).
    public func isHeldOut(_ hashValue: String) -> Bool {
        holdout > 0 && ExperimentHashing.bucket(seed: seed + ":holdout", value: hashValue, version: 2) < holdout
    }
}
