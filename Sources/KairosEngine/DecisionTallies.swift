import KairosCore
import Synchronization

/// A tenant's running totals for experiments (exposures and conversions per variant) and
/// optimizers (trials and rewards per variant), kept from contacts' effects so results and
/// bandit draws never scan contacts.
final class DecisionTallies: Sendable {
    struct Totals: Sendable, Hashable {
        /// Experiment id → variant index (−1: holdout) → counts.
        var experiments: [String: [Int: ConversionCounts]] = [:]
        /// Placement id → variant id → statistics.
        var arms: [String: [String: ArmStatistics]] = [:]
    }

    private let totals = Mutex(Totals())

    func apply(_ effects: [Effect]) {
        guard effects.contains(where: { $0.kind.changesDecisionTallies }) else { return }
        totals.withLock { totals in
            for effect in effects {
                switch effect.kind {
                case .experimentExposed(let experiment, let variant):
                    totals.experiments[experiment, default: [:]][variant, default: ConversionCounts(units: 0, conversions: 0)].units += 1
                case .experimentConverted(let experiment, let variant):
                    totals.experiments[experiment, default: [:]][variant, default: ConversionCounts(units: 0, conversions: 0)]
                        .conversions += 1
                case .experimentWithdrawn(let experiment, let variant, let converted):
                    totals.experiments[experiment, default: [:]][variant, default: ConversionCounts(units: 0, conversions: 0)].units -= 1
                    if converted { totals.experiments[experiment]![variant]!.conversions -= 1 }
                case .optimizerTrial(let placement, let variant):
                    totals.arms[placement, default: [:]][variant, default: ArmStatistics()].trials += 1
                case .optimizerReward(let placement, let variant):
                    totals.arms[placement, default: [:]][variant, default: ArmStatistics()].rewards += 1
                default: break
                }
            }
        }
    }

    /// Counts per variant index (−1: holdout).
    func experiment(_ id: String) -> [Int: ConversionCounts] { totals.withLock { $0.experiments[id] ?? [:] } }

    /// Statistics for the given variants of a placement, in their order.
    func arms(placement: String, variants: [String]) -> [ArmStatistics] {
        totals.withLock { totals in
            let arms = totals.arms[placement]
            return variants.map { arms?[$0] ?? ArmStatistics() }
        }
    }

    func export() -> Totals { totals.withLock { $0 } }
    func restore(_ value: Totals) { totals.withLock { $0 = value } }
}

extension Effect.Kind {
    var changesDecisionTallies: Bool {
        switch self {
        case .experimentExposed, .experimentConverted, .experimentWithdrawn, .optimizerTrial, .optimizerReward: return true
        default: return false
        }
    }
}
