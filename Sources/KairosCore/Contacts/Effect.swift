/// Something observable that happened to a contact as a consequence of a command:
/// what journeys, webhooks and dashboards react to.
public struct Effect: Sendable, Hashable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable {
        case segmentEntered(segment: String)
        case segmentLeft(segment: String)
        case lifecycleChanged(model: String, from: String?, to: String?)
        case gradeChanged(model: String, from: String?, to: String?)
        /// This contact's profile was merged into `into` (anonymous → known).
        case merged(into: UInt64)
        /// First assignment to an experiment (variant -1: the holdout).
        case experimentExposed(experiment: String, variant: Int)
        case experimentConverted(experiment: String, variant: Int)
        /// A merge withdrew one of two assignments of the same person to an experiment.
        case experimentWithdrawn(experiment: String, variant: Int, converted: Bool)
        /// An optimizer-chosen decision was viewed (one trial) or earned its reward.
        case optimizerTrial(placement: String, variant: String)
        case optimizerReward(placement: String, variant: String)
    }

    public var contact: UInt64
    public var userId: String?
    public var time: Timestamp
    public var kind: Kind

    public init(contact: UInt64, userId: String?, time: Timestamp, kind: Kind) {
        self.contact = contact
        self.userId = userId
        self.time = time
        self.kind = kind
    }

    public var description: String {
        let who = userId.map { "\(contact)/\($0)" } ?? "\(contact)"
        switch kind {
        case .segmentEntered(let segment): return "\(time) contact \(who) entered segment \(segment)"
        case .segmentLeft(let segment): return "\(time) contact \(who) left segment \(segment)"
        case .lifecycleChanged(let model, let from, let to):
            return "\(time) contact \(who) \(model) stage \(from ?? "none") → \(to ?? "none")"
        case .gradeChanged(let model, let from, let to):
            return "\(time) contact \(who) \(model) grade \(from ?? "none") → \(to ?? "none")"
        case .merged(let into): return "\(time) contact \(who) merged into \(into)"
        case .experimentExposed(let experiment, let variant):
            return "\(time) contact \(who) exposed to experiment \(experiment) variant \(variant)"
        case .experimentConverted(let experiment, let variant):
            return "\(time) contact \(who) converted in experiment \(experiment) variant \(variant)"
        case .experimentWithdrawn(let experiment, let variant, _):
            return "\(time) contact \(who) withdrawn from experiment \(experiment) variant \(variant) (merged)"
        case .optimizerTrial(let placement, let variant):
            return "\(time) contact \(who) viewed \(placement)/\(variant)"
        case .optimizerReward(let placement, let variant):
            return "\(time) contact \(who) rewarded \(placement)/\(variant)"
        }
    }
}
