/// A contact's sticky place in an experiment.
public struct ExperimentAssignment: Sendable, Hashable {
    public var experiment: String
    /// Index into the experiment's variants (0 is control); -1 for the holdout.
    public var variant: Int
    public var exposedAt: Int64
    public var convertedAt: Int64?

    public init(experiment: String, variant: Int, exposedAt: Int64, convertedAt: Int64? = nil) {
        self.experiment = experiment
        self.variant = variant
        self.exposedAt = exposedAt
        self.convertedAt = convertedAt
    }
}

/// A decision served to a contact, kept for a while so feedback can be attributed to it.
public struct ServedDecision: Sendable, Hashable {
    public var id: UInt64
    public var placement: String
    public var variant: String
    /// The experiment that chose the variant, if one did.
    public var experiment: String?
    /// Chosen by the placement's optimizer (its feedback trains the optimizer).
    public var optimized: Bool
    public var time: Int64
    public var viewed = false
    public var rewarded = false

    public init(id: UInt64, placement: String, variant: String, experiment: String?, optimized: Bool, time: Int64) {
        self.id = id
        self.placement = placement
        self.variant = variant
        self.experiment = experiment
        self.optimized = optimized
        self.time = time
    }
}

/// Reserved track event names for decision feedback (`docs/decisions.md`).
public enum FeedbackEvent {
    /// The content of a decision was shown (`properties.decision_id`).
    public static let viewed = "Decision Viewed"
    /// The visitor clicked it (`properties.decision_id`).
    public static let clicked = "Decision Clicked"
}

extension ContactState {
    public static let servedDecisionLimit = 16

    /// Applies what a decision changed: new sticky assignments (exposures) and the served
    /// decisions later feedback refers to.
    public mutating func record(_ record: DecisionRecord, effects: inout [Effect]) {
        for exposure in record.exposures where !assignments.contains(where: { $0.experiment == exposure.experiment }) {
            assignments.append(exposure)
            effects.append(effect(.experimentExposed(experiment: exposure.experiment, variant: exposure.variant), at: exposure.exposedAt))
        }
        guard !record.served.isEmpty else { return }
        decisions.append(contentsOf: record.served)
        if decisions.count > ContactState.servedDecisionLimit {
            decisions.removeFirst(decisions.count - ContactState.servedDecisionLimit)
        }
    }

    /// Attributes a track event to decisions and experiments: views and clicks by
    /// `decision_id`, goal and reward events by name within their windows.
    mutating func applyFeedback(_ event: UnsafePointer<Event>, time: Timestamp, catalog: DecisionCatalog, effects: inout [Effect]) {
        guard event.pointee.type == .track, let name = event.pointee.name, !assignments.isEmpty || !decisions.isEmpty else { return }
        let at = time.milliseconds
        if name == FeedbackEvent.viewed || name == FeedbackEvent.clicked {
            guard case .string(let text)? = event.pointee.properties["decision_id"], let id = DecisionIdentifier.parse(text),
                let index = decisions.lastIndex(where: { $0.id == id })
            else { return }
            if name == FeedbackEvent.viewed {
                guard !decisions[index].viewed else { return }
                decisions[index].viewed = true
                if decisions[index].optimized {
                    effects.append(effect(.optimizerTrial(placement: decisions[index].placement, variant: decisions[index].variant), at: at))
                }
                return
            }
            let served = decisions[index]
            if served.optimized, !served.rewarded, catalog.placements[served.placement]?.definition.optimizer?.reward == .click {
                decisions[index].rewarded = true
                effects.append(effect(.optimizerReward(placement: served.placement, variant: served.variant), at: at))
            }
            if let experimentId = served.experiment, catalog.experiments[experimentId]?.goal == .click {
                convert(experimentId, at: at, effects: &effects)
            }
            return
        }
        guard catalog.goalEvents.contains(name) else { return }
        for assignment in assignments where assignment.convertedAt == nil {
            guard case .event(name, let within)? = catalog.experiments[assignment.experiment]?.goal,
                at >= assignment.exposedAt, at - assignment.exposedAt <= within.milliseconds
            else { continue }
            convert(assignment.experiment, at: at, effects: &effects)
        }
        // An optimizer's conversion reward goes to its most recent viewed impression in the window.
        var rewardedPlacements: Set<String> = []
        for index in decisions.indices.reversed() {
            let served = decisions[index]
            guard served.optimized, served.viewed, !rewardedPlacements.contains(served.placement),
                case .event(name, let within)? = catalog.placements[served.placement]?.definition.optimizer?.reward,
                at >= served.time, at - served.time <= within.milliseconds
            else { continue }
            rewardedPlacements.insert(served.placement)
            guard !served.rewarded else { continue }
            decisions[index].rewarded = true
            effects.append(effect(.optimizerReward(placement: served.placement, variant: served.variant), at: at))
        }
    }

    private mutating func convert(_ experiment: String, at time: Int64, effects: inout [Effect]) {
        guard let index = assignments.firstIndex(where: { $0.experiment == experiment }),
            assignments[index].convertedAt == nil, assignments[index].variant >= 0
        else { return }
        assignments[index].convertedAt = time
        effects.append(effect(.experimentConverted(experiment: experiment, variant: assignments[index].variant), at: time))
    }

    /// Merges another profile's assignments and decisions: per experiment the earlier
    /// exposure wins (the visitor keeps the variant they saw first); the other is withdrawn
    /// from the experiment's counts.
    mutating func absorbDecisions(_ other: ContactState, now: Timestamp, effects: inout [Effect]) {
        for theirs in other.assignments {
            if let index = assignments.firstIndex(where: { $0.experiment == theirs.experiment }) {
                let mine = assignments[index]
                let (kept, dropped) = theirs.exposedAt < mine.exposedAt ? (theirs, mine) : (mine, theirs)
                var merged = kept
                if merged.convertedAt == nil, let converted = dropped.convertedAt, merged.variant >= 0 {
                    // A conversion after the kept exposure still counts for the kept variant.
                    if converted >= merged.exposedAt {
                        merged.convertedAt = converted
                        effects.append(effect(.experimentConverted(experiment: kept.experiment, variant: kept.variant), at: now.milliseconds))
                    }
                }
                assignments[index] = merged
                effects.append(
                    effect(
                        .experimentWithdrawn(experiment: dropped.experiment, variant: dropped.variant, converted: dropped.convertedAt != nil),
                        at: now.milliseconds))
            } else {
                assignments.append(theirs)
            }
        }
        decisions = Array((decisions + other.decisions).sorted { $0.time < $1.time }.suffix(ContactState.servedDecisionLimit))
    }

    private func effect(_ kind: Effect.Kind, at time: Int64) -> Effect {
        Effect(contact: id, userId: userId, time: Timestamp(milliseconds: time), kind: kind)
    }
}
