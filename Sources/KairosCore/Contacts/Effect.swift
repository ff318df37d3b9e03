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
        case journeyEntered(journey: String, key: String?)
        /// A run arrived at a step.
        case journeyStep(journey: String, node: String)
        /// A run stopped at a step to wait (a wait, a wait for an event, a held send).
        case journeyWaiting(journey: String, node: String)
        /// A run that was waiting at a step stopped waiting there.
        case journeyResumed(journey: String, node: String)
        /// A message for the outbox (delivery is the outbox consumer's job).
        case message(OutboxMessage)
        case messageSkipped(journey: String, node: String, reason: String)
        case journeyExited(journey: String, node: String?, reason: JourneyExitReason)
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
        case .journeyEntered(let journey, let key):
            return "\(time) contact \(who) entered journey \(journey)" + (key.map { " (key \($0))" } ?? "")
        case .journeyStep(let journey, let node): return "\(time) contact \(who) at \(journey)/\(node)"
        case .journeyWaiting(let journey, let node): return "\(time) contact \(who) waiting at \(journey)/\(node)"
        case .journeyResumed(let journey, let node): return "\(time) contact \(who) resumed at \(journey)/\(node)"
        case .message(let message):
            return "\(time) contact \(who) \(message.channel.rawValue) from \(message.journey)/\(message.node) [\(message.idempotencyKey)]"
        case .messageSkipped(let journey, let node, let reason):
            return "\(time) contact \(who) message skipped at \(journey)/\(node): \(reason)"
        case .journeyExited(let journey, let node, let reason):
            return "\(time) contact \(who) left journey \(journey) at \(node ?? "entry") (\(reason.rawValue))"
        }
    }
}

/// Why a run left its journey.
public enum JourneyExitReason: String, Sendable, Hashable, CaseIterable, Codable {
    /// It reached an exit step.
    case completed
    /// The journey's goal became true: a conversion.
    case goal
    /// The journey's exit criteria became true.
    case exitCriteria = "exit_criteria"
    /// The journey was archived.
    case archived
    /// Its contact was merged into another that already ran the same journey.
    case merged
}

/// A message a journey step emitted. `idempotencyKey` is the same however many times the
/// step is replayed, so a delivery worker sends it once.
public struct OutboxMessage: Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible {
    public var idempotencyKey: String
    public var journey: String
    public var node: String
    public var channel: MessageChannel
    /// Rendered fields (`subject`, `body`, `to`, `url`…).
    public var fields: [String: String]

    public init(idempotencyKey: String, journey: String, node: String, channel: MessageChannel, fields: [String: String]) {
        self.idempotencyKey = idempotencyKey
        self.journey = journey
        self.node = node
        self.channel = channel
        self.fields = fields
    }

    /// Fields in name order, so the text is the same for equal messages.
    public var description: String {
        let rendered = fields.keys.sorted().map { "\($0): \(String(reflecting: fields[$0]!))" }.joined(separator: ", ")
        return "\(channel.rawValue) \(journey)/\(node) [\(idempotencyKey)] {\(rendered)}"
    }

    public var debugDescription: String { description }
}
