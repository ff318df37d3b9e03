extension ContactState {
    /// Merges another profile of the same person into this one (an anonymous visitor who
    /// identified, or an alias). This profile's traits win where both have one; counters,
    /// scores, history and activity add up; segments are evaluated afresh, keeping the
    /// earliest entry time where both were members.
    public mutating func absorb(_ other: ContactState, context: EvaluationContext, effects: inout [Effect]) {
        self.context = context
        defer { self.context = nil }
        let definitions = context.definitions

        if userId == nil { userId = other.userId }
        for anonymousId in other.anonymousIds where !anonymousIds.contains(anonymousId) { anonymousIds.append(anonymousId) }
        for (key, value) in other.traits where traits[key] == nil { traits[key] = value }
        if accountId == nil { accountId = other.accountId }
        if let first = other.firstSeen, firstSeen.map({ first < $0 }) ?? true { firstSeen = first }
        if let last = other.lastSeen, lastSeen.map({ last > $0 }) ?? true { lastSeen = last }
        counters.merge(other.counters) { definitions.depth(of: $0) }

        for theirs in other.scores {
            guard let number = definitions.modelNumber(ofSymbol: theirs.model) else { continue }
            let halfLife = definitions.models[number].halfLife
            var incoming = theirs
            incoming.advance(to: context.now, halfLife: halfLife)
            let index = modelScoreIndex(context, number)
            // Trait-rule points are recomputed from the merged traits below.
            for contribution in incoming.contributions where contribution.decays || halfLife == nil {
                if contribution.decays || !isTraitRule(contribution.rule, model: number) {
                    scores[index].add(rule: contribution.rule, points: contribution.points, decays: contribution.decays)
                }
            }
            for usage in incoming.capUsage {
                if let existing = scores[index].capUsage.firstIndex(where: { $0.rule == usage.rule }) {
                    if scores[index].capUsage[existing].period == usage.period {
                        scores[index].capUsage[existing].count += usage.count
                    } else if scores[index].capUsage[existing].period < usage.period {
                        scores[index].capUsage[existing] = usage
                    }
                } else {
                    scores[index].capUsage.append(usage)
                }
            }
            if let changed = incoming.lastChanged, scores[index].lastChanged.map({ changed > $0 }) ?? true {
                scores[index].lastChanged = changed
            }
        }
        scoreHistory = Array((scoreHistory + other.scoreHistory).sorted { $0.time < $1.time }.suffix(ContactState.scoreHistoryLimit))
        recent = Array((recent + other.recent).sorted { $0.time < $1.time }.suffix(ContactState.recentEventLimit))
        lastSequence = max(lastSequence, other.lastSequence)
        absorbDecisions(other, now: context.now, effects: &effects)
        absorbJourneys(other, context, effects: &effects)

        for number in definitions.models.indices {
            enforceLimits(context, model: number)
            _ = refreshTraitRules(context, model: number)
            refreshStageAndGrade(context, model: number, effects: &effects)
        }
        evaluateSegments(context, Array(definitions.segments.indices), effects: &effects)
        for membership in other.segments {
            let (found, index) = membershipIndex(membership.segment)
            if found, membership.since < segments[index].since { segments[index].since = membership.since }
        }
        updateNextWake(context)
    }

    /// Two profiles' points added up can exceed a group's or the model's limit: scale the
    /// positive contributions down so every limit holds again (and raise to the minimum).
    mutating func enforceLimits(_ c: EvaluationContext, model number: Int) {
        let definitions = c.definitions
        let model = definitions.models[number]
        guard let index = scoreIndex(of: definitions.modelSymbols[number]) else { return }
        let now = c.now
        scores[index].advance(to: now, halfLife: model.halfLife)
        let symbols = definitions.ruleSymbols[number]
        func scalePositive(where belongs: (UInt32) -> Bool, limit: Double) {
            var positive = 0.0
            var total = 0.0
            for item in scores[index].contributions where belongs(item.rule) {
                total += item.points
                if item.points > 0 { positive += item.points }
            }
            guard total > limit, positive > 0 else { return }
            let factor = max(0, 1 - (total - limit) / positive)
            for item in scores[index].contributions.indices
            where belongs(scores[index].contributions[item].rule) && scores[index].contributions[item].points > 0 {
                scores[index].contributions[item].points *= factor
            }
        }
        for group in model.groups {
            guard let limit = group.limit else { continue }
            let members = Set(model.rules.indices.filter { model.rules[$0].group == group.id }.map { symbols[$0] })
            scalePositive(where: { members.contains($0) }, limit: limit)
        }
        if let limit = model.limit { scalePositive(where: { _ in true }, limit: limit) }
        if let minimum = model.minimum {
            let total = scoreTotal(index, at: now, halfLife: model.halfLife)
            if total < minimum {
                var negative = 0.0
                for item in scores[index].contributions where item.points < 0 { negative += item.points }
                let factor = max(0, 1 - (minimum - total) / -negative)
                for item in scores[index].contributions.indices where scores[index].contributions[item].points < 0 {
                    scores[index].contributions[item].points *= factor
                }
            }
        }
    }

    func isTraitRule(_ symbol: UInt32, model number: Int) -> Bool {
        guard let definitions = context?.definitions,
            let ruleNumber = definitions.ruleSymbols[number].firstIndex(of: symbol)
        else { return false }
        if case .trait = definitions.models[number].rules[ruleNumber].condition { return true }
        return false
    }

    /// Empties this profile because it was merged into `target`: leaves every segment
    /// (so member counts stay exact) and returns the state to merge.
    public mutating func surrender(into target: UInt64, definitions: TenantDefinitions, now: Timestamp, effects: inout [Effect])
        -> ContactState
    {
        let state = self
        for membership in segments {
            if let order = definitions.segmentOrderBySymbol[membership.segment],
                !JourneyCatalog.isTriggerSegment(definitions.segments[order].definition.id)
            {
                effects.append(
                    Effect(contact: id, userId: userId, time: now,
                        kind: .segmentLeft(segment: definitions.segments[order].definition.id)))
            }
        }
        effects.append(Effect(contact: id, userId: userId, time: now, kind: .merged(into: target)))
        self = ContactState(id: id)
        traitsVersion = state.traitsVersion &+ 1  // the traits changed (they are gone)
        return state
    }
}
