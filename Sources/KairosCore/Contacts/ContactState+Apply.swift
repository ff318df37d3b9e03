extension ContactState: PredicateSubject {
    public var now: Timestamp { context?.now ?? Timestamp(milliseconds: 0) }

    public func field(_ scope: FieldScope, path: String) -> JSONValue? {
        switch scope {
        case .trait: return traits.value(atPath: path)
        case .account: return context?.accountTraits?.value(atPath: path)
        case .property, .context: return nil
        }
    }

    /// A model's score now, from the per-evaluation cache when it is filled.
    func currentScore(_ number: Int) -> Double {
        guard let context else { return 0 }
        guard context.cachesScores else { return score(model: number, definitions: context.definitions, now: context.now) }
        if context.scores.isEmpty { context.scores.append(contentsOf: repeatElement(.nan, count: context.definitions.models.count)) }
        let cached = context.scores[number]
        if !cached.isNaN { return cached }
        let value = score(model: number, definitions: context.definitions, now: context.now)
        context.scores[number] = value
        return value
    }

    public func score(model: String) -> Double? {
        guard let context, let number = context.definitions.modelNumber(model) else { return nil }
        return currentScore(number)
    }

    public func grade(model: String) -> String? {
        guard let context, let number = context.definitions.modelNumber(model) else { return nil }
        let definitions = context.definitions
        guard let own = definitions.models[number].grade(for: currentScore(number)) else { return nil }
        guard let rowId = definitions.models[number].gradeMatrixRowModel, let row = definitions.modelNumber(rowId) else {
            return own
        }
        guard let rowGrade = definitions.models[row].grade(for: currentScore(row)) else { return nil }
        return rowGrade + own
    }

    public func lifecycleStage(model: String) -> String? {
        guard let context, let number = context.definitions.modelNumber(model) else { return nil }
        return context.definitions.models[number].stage(for: currentScore(number))
    }

    public func isMember(segmentSymbol: UInt32) -> Bool { isMember(of: segmentSymbol) }

    public func eventCount(_ condition: EventCondition) -> Int {
        counters.count(condition.counterSymbol, within: condition.window, now: now.milliseconds)
    }
}

/// An event's properties and context, for the `where` of event conditions and rules. Read
/// where the event lies: copies of its objects cost a reference count each, per rule.
struct EventSubject: PredicateSubject {
    let event: UnsafePointer<Event>
    var now: Timestamp { Timestamp(milliseconds: 0) }

    func field(_ scope: FieldScope, path: String) -> JSONValue? {
        switch scope {
        case .property: return JSONObject.value(atPath: path, of: Event.properties(of: event))
        case .context: return event.pointee.context.value(atPath: path)
        case .trait, .account: return nil
        }
    }
    func score(model: String) -> Double? { nil }
    func grade(model: String) -> String? { nil }
    func lifecycleStage(model: String) -> String? { nil }
    func isMember(segmentSymbol: UInt32) -> Bool { false }
    func eventCount(_ condition: EventCondition) -> Int { 0 }
    var firstSeen: Timestamp? { nil }
    var lastSeen: Timestamp? { nil }
}

extension Predicate {
    func matches(_ event: UnsafePointer<Event>) -> Bool {
        evaluate(EventSubject(event: event))
    }
}

// MARK: - Applying commands

extension ContactState {
    /// Applies one event: identity and traits, counters, scores, lifecycle, segments,
    /// and the next time this contact must wake up. `counterSymbol` is the tenant's
    /// symbol for `event.counterName`.
    public mutating func apply(
        _ event: Event, counterSymbol: UInt32, context: EvaluationContext, effects: inout [Effect]
    ) {
        withUnsafePointer(to: event) { apply(eventAt: $0, counterSymbol: counterSymbol, context: context, effects: &effects) }
    }

    /// `apply(_:…)` for an event read where it lies (a shared batch). Passing an element of an
    /// array makes a copy of it, a reference count for each of its strings and objects, and
    /// the hot path applies millions of events.
    public mutating func apply(
        eventAt event: UnsafePointer<Event>, counterSymbol: UInt32, context: EvaluationContext, effects: inout [Effect]
    ) {
        self.context = context
        defer { self.context = nil }
        let definitions = context.definitions
        let now = context.now
        let time = min(event.pointee.time, now)
        let effectsStart = effects.count
        // A new contact is evaluated against every segment once: conditions such as
        // "trait X is not Y" hold for it without any change that would index them.
        let isFirstEvent = firstSeen == nil

        if firstSeen.map({ time < $0 }) ?? true { firstSeen = time }
        if lastSeen.map({ time > $0 }) ?? true { lastSeen = time }
        recordRecent(RecentEvent(symbol: counterSymbol, time: time.milliseconds))

        // Identity and traits.
        var changedTraits: [String] = []
        if let eventUserId = event.pointee.userId, userId == nil, event.pointee.type != .alias { userId = eventUserId }
        if let anonymousId = event.pointee.anonymousId, !anonymousIds.contains(anonymousId) {
            anonymousIds.append(anonymousId)
        }
        if event.pointee.type == .identify {
            if traits.isEmpty { traits.reserveCapacity(event.pointee.traits.count) }
            for (key, value) in event.pointee.traits {
                if value.isNull {
                    if traits.removeValue(forKey: key) != nil { changedTraits.append(key) }
                } else if traits[key] != value {
                    traits[key] = value
                    changedTraits.append(key)
                }
            }
            // In key order, so what they trigger happens in the same order every time.
            if changedTraits.count > 1 { changedTraits.sort() }
        }
        var accountChanged = false
        if event.pointee.type == .group, let groupId = event.pointee.groupId {
            // A new account, or new traits for this contact's own account (the other members
            // are told by the engine; the sender learns it here).
            if accountId != groupId || !event.pointee.traits.isEmpty { accountChanged = true }
            accountId = groupId
        }

        // Counters: the plain one for this event's name, then filtered and wildcard ones.
        counters.record(counterSymbol, at: time.milliseconds, depth: definitions.depth(of: counterSymbol))
        let entry = definitions.indexedEvent(of: counterSymbol)
        let wildcard = definitions.indexedWildcards[event.pointee.type.ordinal]
        var changedModels = context.takeChangedModels()
        defer { context.returnChangedModels(&changedModels) }
        var windowedCounterChanged = false
        entry?._withUnsafeGuaranteedRef {
            applyIndexEntry(context, $0, event, counterSymbol, time, &changedModels, &windowedCounterChanged)
        }
        wildcard?._withUnsafeGuaranteedRef {
            applyIndexEntry(context, $0, event, counterSymbol, time, &changedModels, &windowedCounterChanged)
        }
        var traitModels: [Int] = []
        for key in changedTraits {
            for model in definitions.traitRuleModelsByTrait[key] ?? [] where !traitModels.contains(model) {
                traitModels.append(model)
            }
        }
        if accountChanged {
            for model in definitions.accountTraitRuleModels where !traitModels.contains(model) { traitModels.append(model) }
        }
        for model in traitModels where refreshTraitRules(context, model: model) {
            if !changedModels.contains(model) { changedModels.append(model) }
        }
        for model in changedModels { refreshStageAndGrade(context, model: model, effects: &effects) }

        // Segments that this event can affect.
        var candidates = context.takeCandidates()
        if isFirstEvent { candidates.append(contentsOf: definitions.segments.indices) }
        entry?._withUnsafeGuaranteedRef { $0.segments.withUnsafeBufferPointer { candidates.append(contentsOf: $0) } }
        wildcard?._withUnsafeGuaranteedRef { $0.segments.withUnsafeBufferPointer { candidates.append(contentsOf: $0) } }
        candidates.append(contentsOf: definitions.seenSegments)
        for key in changedTraits { candidates.append(contentsOf: definitions.segmentsByTrait[key] ?? []) }
        if accountChanged { candidates.append(contentsOf: definitions.accountSegments) }
        for model in changedModels { candidates.append(contentsOf: definitions.segmentsByModelNumber[model]) }
        evaluateSegments(context, sorting: &candidates, effects: &effects)
        context.returnCandidates(&candidates)
        // The next wake-up moves only when something it is computed from moved.
        var wakeMayMove = isFirstEvent || windowedCounterChanged || (definitions.depth(of: counterSymbol)) > 0
        if !wakeMayMove && definitions.seenIsTimeDependent { wakeMayMove = true }
        if !wakeMayMove { wakeMayMove = changedModels.contains { definitions.decayingModels.contains($0) } }
        if wakeMayMove { updateNextWake(context) }
        if !context.catalog.isEmpty { applyFeedback(event, time: time, catalog: context.catalog, effects: &effects) }
        if case .string(let zone)? = event.pointee.context["timezone"], zone != timeZone { timeZone = zone }
        if !context.journeys.isEmpty || !journeyRuns.isEmpty {
            runJourneys(
                context, event: event, counterSymbol: counterSymbol, changedTraits: changedTraits, effectsFrom: effectsStart,
                effects: &effects)
        }
    }

    /// Updates the filtered counters and awards the event rules of one index entry.
    private mutating func applyIndexEntry(
        _ c: EvaluationContext, _ indexEntry: TenantDefinitions.IndexedEvent, _ event: UnsafePointer<Event>, _ counterSymbol: UInt32, _ time: Timestamp,
        _ changedModels: inout [Int], _ windowedCounterChanged: inout Bool
    ) {
        let definitions = c.definitions
        // Read through buffers: iterating the shared arrays themselves counted references on them.
        indexEntry.filteredCounters.withUnsafeBufferPointer { filtered in
            for counter in filtered where counter.matcher?._withUnsafeGuaranteedRef({ $0.matches(event) }) ?? true {
                let depth = definitions.depth(of: counter.symbol)
                counters.record(counter.symbol, at: time.milliseconds, depth: depth)
                if depth > 0 { windowedCounterChanged = true }
            }
        }
        // Only event rules are indexed; each one's filter is read without reference counting.
        indexEntry.rules.withUnsafeBufferPointer { rules in
            for reference in rules {
                guard reference.filter?._withUnsafeGuaranteedRef({ $0.matches(event) }) ?? true else { continue }
                if award(c, reference, eventSymbol: counterSymbol, eventTime: time) {
                    if !changedModels.contains(reference.model) { changedModels.append(reference.model) }
                }
            }
        }
    }

    /// Re-evaluates what can change with time alone: decayed scores and time windows.
    public mutating func wake(context: EvaluationContext, effects: inout [Effect]) {
        self.context = context
        defer { self.context = nil }
        let effectsStart = effects.count
        defer {
            if !context.journeys.isEmpty || !journeyRuns.isEmpty {
                runJourneys(context, event: nil, counterSymbol: 0, changedTraits: [], effectsFrom: effectsStart, effects: &effects)
            }
        }
        let definitions = context.definitions
        for number in definitions.decayingModels where scoreIndex(of: definitions.modelSymbols[number]) != nil {
            refreshStageAndGrade(context, model: number, effects: &effects)
        }
        evaluateSegments(context, definitions.timeDependentSegments, effects: &effects)
        updateNextWake(context)
    }

    /// Re-evaluates everything against (new) definitions: trait rules, stages and the given
    /// segments (all when nil). Used when definitions change and after merges.
    public mutating func reevaluate(segments orders: [Int]?, context: EvaluationContext, effects: inout [Effect]) {
        self.context = context
        defer { self.context = nil }
        let definitions = context.definitions
        for number in definitions.models.indices {
            _ = refreshTraitRules(context, model: number)
            refreshStageAndGrade(context, model: number, effects: &effects)
        }
        evaluateSegments(context, orders ?? Array(definitions.segments.indices), effects: &effects)
        updateNextWake(context)
    }

    /// Leaves a segment without evaluating it (the segment was deleted).
    public mutating func dropMembership(symbol: UInt32) {
        let (found, index) = membershipIndex(symbol)
        if found { segments.remove(at: index) }
    }

    /// Updates the account's traits seen by this contact (a `group` call for its account).
    public mutating func accountTraitsChanged(context: EvaluationContext, effects: inout [Effect]) {
        self.context = context
        defer { self.context = nil }
        let effectsStart = effects.count
        defer {
            // Segments the account's change moved this contact in or out of can start journeys.
            if !context.journeys.isEmpty || !journeyRuns.isEmpty {
                runJourneys(context, event: nil, counterSymbol: 0, changedTraits: [], effectsFrom: effectsStart, effects: &effects)
            }
        }
        let definitions = context.definitions
        for model in definitions.accountTraitRuleModels where refreshTraitRules(context, model: model) {
            refreshStageAndGrade(context, model: model, effects: &effects)
        }
        evaluateSegments(context, definitions.accountSegments, effects: &effects)
        updateNextWake(context)
    }

    mutating func recordRecent(_ event: RecentEvent) {
        let limit = ContactState.recentEventLimit
        if recent.count == limit {
            // Full: an event older than all kept ones is dropped; otherwise the oldest makes room
            // first, so the buffer never grows past its limit (and its capacity stays exact).
            guard event.time >= recent[0].time else { return }
            recent.removeFirst()
        }
        var index = recent.count
        while index > 0 && recent[index - 1].time > event.time { index -= 1 }
        recent.insertCompactly(event, at: index, limit: limit)
    }

    mutating func recordHistory(_ change: ScoreChange) {
        let limit = ContactState.scoreHistoryLimit
        if scoreHistory.count == limit { scoreHistory.removeFirst() }
        scoreHistory.insertCompactly(change, at: scoreHistory.count, limit: limit)
    }
}

// MARK: - Scoring

extension ContactState {
    mutating func modelScoreIndex(_ c: EvaluationContext, _ number: Int) -> Int {
        let definitions = c.definitions
        return modelScoreIndex(symbol: definitions.modelSymbols[number], halfLife: definitions.models[number].halfLife, now: c.now)
    }

    /// The place of the model's score in `scores` (added if new), its decay brought up to `now`.
    mutating func modelScoreIndex(symbol: UInt32, halfLife: TimeSpan?, now: Timestamp) -> Int {
        if let index = scoreIndex(of: symbol) {
            scores[index].advance(to: now, halfLife: halfLife)
            return index
        }
        scores.append(ModelScore(model: symbol, referenceTime: now.milliseconds))
        return scores.count - 1
    }

    /// Applies limits to requested points: the rule's group limit, then the model's limit and minimum.
    func limited(_ c: EvaluationContext, _ requested: Double, rule: ScoringRule, model: ScoringModel, number: Int, scoreIndex index: Int) -> Double {
        let now = c.now
        var points = requested
        let total = scoreTotal(index, at: now, halfLife: model.halfLife)
        if points > 0 {
            if let groupId = rule.group, let groupLimit = model.group(groupId)?.limit {
                let symbols = c.definitions.ruleSymbols[number]
                var groupTotal = 0.0
                for (ruleNumber, candidate) in model.rules.enumerated() where candidate.group == groupId {
                    groupTotal += scorePoints(index, of: symbols[ruleNumber], at: now, halfLife: model.halfLife)
                }
                points = min(points, max(0, groupLimit - groupTotal))
            }
            if let limit = model.limit { points = min(points, max(0, limit - total)) }
        } else if let minimum = model.minimum {
            points = max(points, min(0, minimum - total))
        }
        return points
    }

    /// Awards an event rule's points; returns whether the score changed.
    mutating func award(
        _ c: EvaluationContext, _ reference: TenantDefinitions.RuleReference, eventSymbol: UInt32, eventTime: Timestamp
    ) -> Bool {
        reference.modelObject._withUnsafeGuaranteedRef { model in
            reference.ruleObject._withUnsafeGuaranteedRef { rule in
                award(
                    c, model: model, number: reference.model, modelSymbol: reference.modelSymbol, rule: rule,
                    ruleSymbol: reference.ruleSymbol, eventSymbol: eventSymbol, eventTime: eventTime)
            }
        }
    }

    private mutating func award(
        _ c: EvaluationContext, model: ScoringModel, number: Int, modelSymbol: UInt32, rule: ScoringRule, ruleSymbol: UInt32,
        eventSymbol: UInt32, eventTime: Timestamp
    ) -> Bool {
        let index = modelScoreIndex(symbol: modelSymbol, halfLife: model.halfLife, now: c.now)

        if let cap = rule.cap {
            let period = cap.period.ordinal(of: eventTime)
            if let usage = scores[index].capUsage.firstIndex(where: { $0.rule == ruleSymbol }) {
                if scores[index].capUsage[usage].period == period {
                    guard scores[index].capUsage[usage].count < cap.times else { return false }
                    scores[index].capUsage[usage].count += 1
                } else if scores[index].capUsage[usage].period < period {
                    scores[index].capUsage[usage] = CapUsage(rule: ruleSymbol, period: period, count: 1)
                } else {
                    return false  // an older period than one already counted: too late to count.
                }
            } else {
                scores[index].capUsage.append(CapUsage(rule: ruleSymbol, period: period, count: 1))
            }
        }

        // Points for an event that happened a while ago have already decayed by its age.
        let age = c.now.milliseconds - eventTime.milliseconds
        let requested = rule.points * ModelScore.decayFactor(elapsed: age, halfLife: model.halfLife)
        let points = limited(c, requested, rule: rule, model: model, number: number, scoreIndex: index)
        guard points != 0 else { return false }
        scores[index].add(rule: ruleSymbol, points: points, decays: model.halfLife != nil)
        scores[index].lastChanged = c.now
        recordHistory(ScoreChange(rule: ruleSymbol, event: eventSymbol, points: Float(points), time: eventTime.milliseconds))
        return true
    }

    /// Gives or takes back trait-rule points as the traits now match or not; returns whether the score changed.
    mutating func refreshTraitRules(_ c: EvaluationContext, model number: Int) -> Bool {
        let definitions = c.definitions
        let model = definitions.models[number]
        var changed = false
        for (ruleNumber, rule) in model.rules.enumerated() {
            guard case .trait(let predicate) = rule.condition else { continue }
            let ruleSymbol = definitions.ruleSymbols[number][ruleNumber]
            let holds = predicate.evaluate(self)
            let existing = scoreIndex(of: definitions.modelSymbols[number]).flatMap { index in
                scores[index].contributions.firstIndex { $0.rule == ruleSymbol && !$0.decays }
            }
            if holds && existing == nil {
                let index = modelScoreIndex(c, number)
                let points = limited(c, rule.points, rule: rule, model: model, number: number, scoreIndex: index)
                scores[index].contributions.append(RuleContribution(rule: ruleSymbol, points: points, decays: false))
                scores[index].lastChanged = c.now
                recordHistory(ScoreChange(rule: ruleSymbol, event: 0, points: Float(points), time: c.now.milliseconds))
                changed = true
            } else if !holds, let existing {
                let index = modelScoreIndex(c, number)
                let points = scores[index].contributions[existing].points
                scores[index].contributions.remove(at: existing)
                scores[index].lastChanged = c.now
                recordHistory(ScoreChange(rule: ruleSymbol, event: 0, points: Float(-points), time: c.now.milliseconds))
                changed = true
            }
        }
        return changed
    }

    /// Announces a lifecycle stage or grade change (in either direction).
    mutating func refreshStageAndGrade(_ c: EvaluationContext, model number: Int, effects: inout [Effect]) {
        let definitions = c.definitions
        let model = definitions.models[number]
        guard !model.lifecycle.isEmpty || !model.grades.isEmpty,
            let index = scoreIndex(of: definitions.modelSymbols[number])
        else { return }
        let now = c.now
        let total = scoreTotal(index, at: now, halfLife: model.halfLife)
        let stage = model.stage(for: total)
        if stage != scores[index].stage {
            effects.append(
                Effect(contact: id, userId: userId, time: now,
                    kind: .lifecycleChanged(model: model.id, from: scores[index].stage, to: stage)))
            scores[index].stage = stage
        }
        let grade = model.grade(for: total)
        if grade != scores[index].grade {
            effects.append(
                Effect(contact: id, userId: userId, time: now,
                    kind: .gradeChanged(model: model.id, from: scores[index].grade, to: grade)))
            scores[index].grade = grade
        }
    }
}

// MARK: - Segments and time

extension ContactState {
    /// Evaluates the given segments (by order) and, in turn, the segments that use any that changed.
    mutating func evaluateSegments(_ c: EvaluationContext, _ candidates: [Int], effects: inout [Effect]) {
        guard !candidates.isEmpty else { return }
        var pending = candidates
        evaluateSegments(c, sorting: &pending, effects: &effects)
    }

    /// Evaluates the segments in `pending` (orders, repeats allowed) in evaluation order,
    /// sorting it in place; dependents of a segment that changed join it.
    mutating func evaluateSegments(_ c: EvaluationContext, sorting pending: inout [Int], effects: inout [Effect]) {
        guard !pending.isEmpty else { return }
        let definitions = c.definitions
        // Scores do not change while segments are evaluated: each model's is computed once, when
        // a condition first asks for it.
        c.cachesScores = true
        defer {
            c.cachesScores = false
            c.scores.removeAll(keepingCapacity: true)
        }
        pending.sort()
        var position = 0
        var last = -1
        let unmanaged = definitions.segmentsUnmanaged
        while position < pending.count {
            let order = pending[position]
            position += 1
            if order == last { continue }
            last = order
            // Borrowed, not retained: every event's evaluation on every core would otherwise
            // count references on the same shared objects, and those counts bounce between caches.
            let (member, symbol) = unmanaged[order]._withUnsafeGuaranteedRef {
                ($0.definition.condition.evaluate(self), $0.symbol)
            }
            let (found, index) = membershipIndex(symbol)
            guard member != found else { continue }
            let segment = definitions.segments[order]
            let now = c.now
            if member {
                segments.insertCompactly(
                    SegmentMembership(segment: segment.symbol, since: now.milliseconds), at: index, limit: .max)
                effects.append(Effect(contact: id, userId: userId, time: now, kind: .segmentEntered(segment: segment.definition.id)))
            } else {
                segments.remove(at: index)
                effects.append(Effect(contact: id, userId: userId, time: now, kind: .segmentLeft(segment: segment.definition.id)))
            }
            if !segment.dependents.isEmpty {
                // Dependents come later in evaluation order, so they can join the pending tail.
                var tail = Array(pending[position...]) + segment.dependents
                tail.sort()
                pending = Array(pending[..<position]) + tail
            }
        }
    }

    /// The next moment at which something may change with no new event.
    mutating func updateNextWake(_ c: EvaluationContext) {
        let definitions = c.definitions
        let now = c.now
        // Windows and relative times of every time-dependent segment, flattened and deduplicated.
        var next = counters.earliestLapse(of: definitions.windowLeaves, now: now.milliseconds)
        for leaf in definitions.seenLeaves {
            guard let seen = leaf.first ? firstSeen : lastSeen else { continue }
            let boundary = seen.milliseconds + leaf.span.milliseconds
            if boundary > now.milliseconds && boundary < next { next = boundary }
        }
        for number in definitions.decayingModels {
            guard let boundaries = definitions.decayBoundaries[number], let halfLife = definitions.models[number].halfLife,
                let index = scoreIndex(of: definitions.modelSymbols[number])
            else { continue }
            // A decaying score moves monotonically toward its steady part, so the first
            // boundary it meets is the nearest one in that direction.
            let total = scoreTotal(index, at: now, halfLife: halfLife)
            var decaying = 0.0
            for item in scores[index].contributions where item.decays { decaying += item.points }
            var position = decaying > 0 ? boundaries.count - 1 : 0
            while position >= 0 && position < boundaries.count {
                let boundary = boundaries[position]
                position += decaying > 0 ? -1 : 1
                guard decaying > 0 ? boundary <= total : boundary > total else { continue }
                guard let time = scores[index].crossing(of: boundary, after: now, halfLife: halfLife) else { continue }
                if time < next { next = time }
                break
            }
        }
        nextWake = next == .max ? nil : Timestamp(milliseconds: next)
    }
}
