import HashTreeCollections
import Foundation
import Mustache

/// One contact's run through a journey, stored while it waits.
public struct JourneyRun: Sendable, Hashable {
    public enum Phase: UInt8, Sendable {
        /// A date-triggered entry that has not happened yet (`node` is -1).
        case scheduled = 0
        /// Waiting at a wait step (for time or for an event).
        case waiting = 1
        /// A send held by quiet hours or a delaying frequency cap.
        case held = 2
    }

    public var journey: UInt32
    public var version: UInt32
    /// Which of the contact's entries into the journey this run is (1, 2, …).
    public var entry: UInt32
    /// The triggering event's key value (keyed journeys).
    public var key: String?
    public var node: Int32
    public var phase: Phase
    /// When the wait lapses (`.max`: never on its own).
    public var due: Int64
    public var enteredAt: Int64
    /// Steps taken so far: part of each message's idempotency key.
    public var steps: UInt32
}

/// A contact's history with one journey, for re-entry rules.
public struct JourneyEntries: Sendable, Hashable {
    public var journey: UInt32
    public var count: UInt32
    public var active: UInt32
    public var lastEnteredAt: Int64
    /// `.min` before any exit.
    public var lastExitedAt: Int64
}

extension ContactState {
    /// Steps one run may take in one command before it must wait (validation already
    /// refuses cycles without a wait; this bounds enroll chains and very long graphs).
    static let stepLimit = 512
    /// How deep enroll steps may chain within one command.
    static let enrollDepthLimit = 4

    /// Moves journeys forward after a command: runs whose wait lapsed, runs waiting for this
    /// event, then journeys this command triggers, then exit criteria and goals. `effectsFrom`
    /// marks where this command's effects start (segment and lifecycle changes trigger journeys).
    mutating func runJourneys(
        _ c: EvaluationContext, event: UnsafePointer<Event>?, counterSymbol: UInt32, changedTraits: [String], effectsFrom start: Int,
        effects: inout [Effect]
    ) {
        let catalog = c.journeys
        guard !catalog.isEmpty || !journeyRuns.isEmpty else { return }
        resumeDueRuns(c, effects: &effects)
        if let event, !journeyRuns.isEmpty { resumeRunsWaiting(for: event, c, effects: &effects) }

        // Triggers: this command's event, changed traits and effects; then, a few rounds at
        // most, what journey steps themselves changed.
        var scanFrom = start
        var traits = changedTraits
        var triggeringEvent = event
        var allChangedTraits = changedTraits
        for _ in 0..<4 {
            let mark = effects.count
            c.traitsChangedBySteps.removeAll()
            startTriggered(c, event: triggeringEvent, counterSymbol: counterSymbol, traits: traits, scan: scanFrom..<mark, effects: &effects)
            triggeringEvent = nil
            traits = c.traitsChangedBySteps
            allChangedTraits += traits
            scanFrom = mark
            if effects.count == mark && traits.isEmpty { break }
        }
        if !catalog.dateTriggers.isEmpty {
            for trait in allChangedTraits { for journey in catalog.dateTriggers[trait] ?? [] { scheduleDateEntry(journey, c) } }
        }
        checkExits(c, effects: &effects)

        // A journey's hidden trigger segments are not for anyone else to see.
        if effects[start...].contains(where: \.isTriggerSegmentChange) {
            effects = Array(effects[..<start]) + effects[start...].filter { !$0.isTriggerSegmentChange }
        }
        updateJourneyWake(catalog)
    }

    /// The earliest due time of a run of an active journey (paused journeys do not wake anyone).
    mutating func updateJourneyWake(_ catalog: JourneyCatalog) {
        var next: Int64 = .max
        for run in journeyRuns where run.due < next && catalog.isActive(run.journey) { next = run.due }
        journeyWake = next == .max ? nil : next
    }

    // MARK: Triggers and entry

    private mutating func startTriggered(
        _ c: EvaluationContext, event: UnsafePointer<Event>?, counterSymbol: UInt32, traits: [String], scan: Range<Int>, effects: inout [Effect]
    ) {
        let catalog = c.journeys
        guard !catalog.isEmpty else { return }
        var candidates: [(journey: CompiledJourney, key: String?)] = []
        if let event {
            let named = catalog.eventTriggers[counterSymbol] ?? []
            let typed = catalog.typeTriggers[event.pointee.type.ordinal]
            for journey in named + typed {
                // Only journeys whose `where` matches, with the run's key from the event.
                guard case .event(_, _, let filter, let keyPath) = journey.definition.trigger else { continue }
                if let filter, !filter.matches(event) { continue }
                guard let keyPath else {
                    candidates.append((journey, nil))
                    continue
                }
                guard let value = JSONObject.value(atPath: keyPath, of: Event.properties(of: event)), let key = value.journeyKeyText else { continue }
                candidates.append((journey, key))
            }
        }
        for index in scan {
            switch effects[index].kind {
            case .segmentEntered(let segment):
                for journey in catalog.segmentEnteredTriggers[segment] ?? [] { candidates.append((journey, nil)) }
            case .segmentLeft(let segment):
                for journey in catalog.segmentLeftTriggers[segment] ?? [] { candidates.append((journey, nil)) }
            default: break
            }
        }
        if !catalog.traitTriggers.isEmpty {
            for trait in traits { for journey in catalog.traitTriggers[trait] ?? [] { candidates.append((journey, nil)) } }
        }
        guard !candidates.isEmpty else { return }
        // Journey id order makes simultaneous triggers deterministic.
        if candidates.count > 1 { candidates.sort { $0.journey.id < $1.journey.id } }
        for candidate in candidates {
            enter(candidate.journey, key: candidate.key, c, depth: 0, effects: &effects)
        }
    }

    /// Enrolls this contact in `journey` if it is active, in its dates, the entry criteria hold
    /// and the re-entry policy allows; then runs it until it waits. Returns whether it entered.
    @discardableResult
    mutating func enter(_ journey: CompiledJourney, key: String?, _ c: EvaluationContext, depth: Int, effects: inout [Effect]) -> Bool {
        let definition = journey.definition
        let now = c.now.milliseconds
        guard c.journeys.isActive(journey.symbol) else { return false }
        if let startsAt = definition.startsAt, now < startsAt.milliseconds { return false }
        if let endsAt = definition.endsAt, now >= endsAt.milliseconds { return false }
        if let entry = journey.entry, !entry.evaluate(self) { return false }
        let recordIndex = journeyEntries.firstIndex { $0.journey == journey.symbol }
        if let recordIndex {
            let record = journeyEntries[recordIndex]
            if record.count > 0 {
                switch definition.reEntry {
                case .never: return false
                case .afterExit: if record.active > 0 { return false }
                case .anyTime: break
                }
                if let gap = definition.minGap, now - record.lastEnteredAt < gap.milliseconds { return false }
            }
            if let maximum = definition.maxEntries, record.count >= maximum { return false }
        }
        if let key, journeyRuns.contains(where: { $0.journey == journey.symbol && $0.key == key && $0.phase != .scheduled }) {
            return false
        }
        var record = recordIndex.map { journeyEntries[$0] }
            ?? JourneyEntries(journey: journey.symbol, count: 0, active: 0, lastEnteredAt: .min, lastExitedAt: .min)
        record.count += 1
        record.active += 1
        record.lastEnteredAt = now
        if let recordIndex { journeyEntries[recordIndex] = record } else { journeyEntries.append(record) }
        effects.append(Effect(contact: id, userId: userId, time: c.now, kind: .journeyEntered(journey: journey.id, key: key)))
        let run = JourneyRun(
            journey: journey.symbol, version: UInt32(journey.version), entry: record.count, key: key, node: Int32(journey.startNode),
            phase: .waiting, due: .max, enteredAt: now, steps: 0)
        advance(run, journey, c, arriving: true, depth: depth, effects: &effects)
        return true
    }

    /// Enrolls through the API (manual enrollment), whatever the trigger.
    public mutating func enroll(
        journey id: String, key: String?, context c: EvaluationContext, effects: inout [Effect]
    ) -> Bool {
        self.context = c
        defer { self.context = nil }
        let start = effects.count
        guard let journey = c.journeys.journey(id) else { return false }
        let entered = enter(journey, key: key, c, depth: 0, effects: &effects)
        runJourneys(c, event: nil, counterSymbol: 0, changedTraits: [], effectsFrom: start, effects: &effects)
        return entered
    }

    private mutating func scheduleDateEntry(_ journey: CompiledJourney, _ c: EvaluationContext) {
        guard case .dateTrait(let trait, let offset) = journey.definition.trigger else { return }
        journeyRuns.removeAll { $0.journey == journey.symbol && $0.phase == .scheduled }
        let date: Int64?
        switch traits[trait] {
        case .string(let text)?: date = Timestamp(iso8601: text)?.milliseconds
        case .number(let value)?: date = Int64(value * 1000)  // Unix seconds
        default: date = nil
        }
        guard let date, date + offset > c.now.milliseconds, c.journeys.isActive(journey.symbol) else { return }
        journeyRuns.append(
            JourneyRun(
                journey: journey.symbol, version: UInt32(journey.version), entry: 0, key: nil, node: -1, phase: .scheduled,
                due: date + offset, enteredAt: c.now.milliseconds, steps: 0))
    }

    // MARK: Resuming

    private mutating func takeRun(_ journey: UInt32, entry: UInt32, phase: JourneyRun.Phase) -> JourneyRun? {
        guard let index = journeyRuns.firstIndex(where: { $0.journey == journey && $0.entry == entry && $0.phase == phase }) else {
            return nil
        }
        return journeyRuns.remove(at: index)
    }

    /// Runs whose wait lapsed at or before now, earliest first: a timer due at the same
    /// instant as an event fires before the event is looked at.
    private mutating func resumeDueRuns(_ c: EvaluationContext, effects: inout [Effect]) {
        let now = c.now.milliseconds
        let catalog = c.journeys
        for _ in 0..<4 {
            let due = journeyRuns.filter { $0.due <= now && catalog.isActive($0.journey) }
                .sorted { ($0.due, $0.journey, $0.entry) < ($1.due, $1.journey, $1.entry) }
            guard !due.isEmpty else { return }
            for candidate in due {
                guard let run = takeRun(candidate.journey, entry: candidate.entry, phase: candidate.phase) else { continue }
                if run.phase == .scheduled {
                    if let journey = catalog.bySymbol[run.journey] {
                        enter(journey, key: nil, c, depth: 0, effects: &effects)
                    }
                    continue
                }
                guard let journey = catalog.version(run.journey, Int(run.version)) else { continue }
                let node = Int(run.node)
                effects.append(
                    Effect(contact: id, userId: userId, time: c.now,
                        kind: .journeyResumed(journey: journey.id, node: journey.definition.nodes[node].id)))
                var next = run
                switch journey.steps[node] {
                case .waitForEvent: next.node = Int32(journey.successors[node][1])  // timed out
                case .send:
                    advance(next, journey, c, arriving: false, depth: 0, effects: &effects)
                    continue
                default: next.node = Int32(journey.successors[node][0])
                }
                advance(next, journey, c, arriving: true, depth: 0, effects: &effects)
            }
        }
    }

    private mutating func resumeRunsWaiting(for event: UnsafePointer<Event>, _ c: EvaluationContext, effects: inout [Effect]) {
        let catalog = c.journeys
        var matched: [JourneyRun] = []
        for run in journeyRuns where run.phase == .waiting && catalog.isActive(run.journey) {
            guard let journey = catalog.version(run.journey, Int(run.version)),
                case .waitForEvent(let type, let name, let filter, let matchKey, _, _, _) = journey.steps[Int(run.node)],
                event.pointee.type == type, name == nil || event.pointee.name == name
            else { continue }
            if let filter, !filter.matches(event) { continue }
            if let matchKey {
                guard let value = JSONObject.value(atPath: matchKey, of: Event.properties(of: event)), value.journeyKeyText == run.key else { continue }
            }
            matched.append(run)
        }
        for candidate in matched {
            guard let run = takeRun(candidate.journey, entry: candidate.entry, phase: .waiting),
                let journey = catalog.version(run.journey, Int(run.version))
            else { continue }
            let node = Int(run.node)
            effects.append(
                Effect(contact: id, userId: userId, time: c.now,
                    kind: .journeyResumed(journey: journey.id, node: journey.definition.nodes[node].id)))
            var next = run
            next.node = Int32(journey.successors[node][0])
            advance(next, journey, c, arriving: true, depth: 0, effects: &effects)
        }
    }

    /// Goals and exit criteria of every run in progress.
    private mutating func checkExits(_ c: EvaluationContext, effects: inout [Effect]) {
        let catalog = c.journeys
        guard journeyRuns.contains(where: { $0.phase != .scheduled }) else { return }
        for run in journeyRuns where run.phase != .scheduled && catalog.isActive(run.journey) {
            guard let journey = catalog.version(run.journey, Int(run.version)) else { continue }
            let reason: JourneyExitReason
            if let goal = journey.goal, goal.evaluate(self) {
                reason = .goal
            } else if let exit = journey.exit, exit.evaluate(self) {
                reason = .exitCriteria
            } else {
                continue
            }
            guard let taken = takeRun(run.journey, entry: run.entry, phase: run.phase) else { continue }
            leave(taken, journey, reason: reason, c, effects: &effects)
        }
    }

    /// Ends a run (already taken out of `journeyRuns`).
    private mutating func leave(_ run: JourneyRun, _ journey: CompiledJourney, reason: JourneyExitReason, _ c: EvaluationContext, effects: inout [Effect]) {
        let nodeId = run.node >= 0 ? journey.definition.nodes[Int(run.node)].id : nil
        if let nodeId, run.phase != .scheduled, run.due != .max || run.phase == .held {
            effects.append(Effect(contact: id, userId: userId, time: c.now, kind: .journeyResumed(journey: journey.id, node: nodeId)))
        }
        effects.append(Effect(contact: id, userId: userId, time: c.now, kind: .journeyExited(journey: journey.id, node: nodeId, reason: reason)))
        if let index = journeyEntries.firstIndex(where: { $0.journey == run.journey }) {
            journeyEntries[index].active = journeyEntries[index].active > 0 ? journeyEntries[index].active - 1 : 0
            journeyEntries[index].lastExitedAt = c.now.milliseconds
        }
    }

    // MARK: Steps

    /// Runs from `run.node` until the run waits (it goes back into `journeyRuns`) or leaves.
    /// `arriving` is false when a held send is retried (it was already counted as arrived).
    private mutating func advance(
        _ start: JourneyRun, _ journey: CompiledJourney, _ c: EvaluationContext, arriving: Bool, depth: Int, effects: inout [Effect]
    ) {
        var run = start
        var arrived = !arriving
        let now = c.now
        for _ in 0..<ContactState.stepLimit {
            if let goal = journey.goal, goal.evaluate(self) {
                run.due = .max
                run.phase = .waiting
                leave(run, journey, reason: .goal, c, effects: &effects)
                return
            }
            if let exit = journey.exit, exit.evaluate(self) {
                run.due = .max
                run.phase = .waiting
                leave(run, journey, reason: .exitCriteria, c, effects: &effects)
                return
            }
            let node = Int(run.node)
            let nodeId = journey.definition.nodes[node].id
            if !arrived {
                effects.append(Effect(contact: id, userId: userId, time: now, kind: .journeyStep(journey: journey.id, node: nodeId)))
                run.steps += 1
            }
            arrived = false
            func wait(until due: Int64, phase: JourneyRun.Phase = .waiting) {
                run.due = due
                run.phase = phase
                journeyRuns.append(run)
                effects.append(Effect(contact: id, userId: userId, time: now, kind: .journeyWaiting(journey: journey.id, node: nodeId)))
            }
            switch journey.steps[node] {
            case .send(let template, _):
                if let held = send(template, journey: journey, nodeId: nodeId, run: run, c, effects: &effects) {
                    wait(until: held, phase: .held)
                    return
                }
                run.node = Int32(journey.successors[node][0])
            case .wait(let span, _):
                wait(until: now.milliseconds + span.milliseconds)
                return
            case .waitUntil(let minute, let weekdays, _):
                wait(until: LocalCalendar.next(minute: minute, weekdays: weekdays, after: now.milliseconds, zone: zone(for: journey)))
                return
            case .waitForEvent(_, _, _, _, let timeout, _, _):
                wait(until: now.milliseconds + timeout.milliseconds)
                return
            case .branch(let condition, _, _):
                run.node = Int32(journey.successors[node][condition.evaluate(self) ? 0 : 1])
            case .split(let paths):
                // Deterministic per contact, run and step: the same contact always takes the same path.
                let bucket = ExperimentHashing.bucket(seed: "\(journey.id)/\(nodeId)/\(run.entry)", value: String(id)) * 100
                var cumulative = 0.0
                var chosen = paths.count - 1
                for (index, path) in paths.enumerated() {
                    cumulative += path.percent
                    if bucket < cumulative {
                        chosen = index
                        break
                    }
                }
                run.node = Int32(journey.successors[node][chosen])
            case .update(let set, let unset, let addTags, let removeTags, _):
                applyUpdate(set: set, unset: unset, addTags: addTags, removeTags: removeTags, c, effects: &effects)
                run.node = Int32(journey.successors[node][0])
            case .score(let model, let points, _):
                if let number = c.definitions.modelNumber(model), let symbol = journey.scoreRuleSymbols[node] {
                    addJourneyPoints(points, model: number, ruleSymbol: symbol, c, effects: &effects)
                }
                run.node = Int32(journey.successors[node][0])
            case .enroll(let other, _):
                if depth < ContactState.enrollDepthLimit, let target = c.journeys.journey(other) {
                    enter(target, key: run.key, c, depth: depth + 1, effects: &effects)
                }
                run.node = Int32(journey.successors[node][0])
            case .exit:
                run.due = .max
                run.phase = .waiting
                leave(run, journey, reason: .completed, c, effects: &effects)
                return
            }
        }
        // Out of steps without waiting: pause a minute rather than spin.
        let nodeId = journey.definition.nodes[Int(run.node)].id
        run.due = now.milliseconds + 60_000
        run.phase = .held
        journeyRuns.append(run)
        effects.append(Effect(contact: id, userId: userId, time: now, kind: .journeyWaiting(journey: journey.id, node: nodeId)))
    }

    /// The contact's time zone: the `timezone` trait, else the one its events report, else the journey's.
    func zone(for journey: CompiledJourney) -> TimeZone {
        if case .string(let name)? = traits["timezone"], let zone = LocalCalendar.zone(name) { return zone }
        if let timeZone, let zone = LocalCalendar.zone(timeZone) { return zone }
        return journey.zone
    }

    /// Emits a message, or skips it (frequency cap), or returns when to retry (quiet hours, delaying cap).
    private mutating func send(
        _ templateId: String, journey: CompiledJourney, nodeId: String, run: JourneyRun, _ c: EvaluationContext,
        effects: inout [Effect]
    ) -> Int64? {
        let now = c.now.milliseconds
        let zone = zone(for: journey)
        if let quiet = journey.definition.quietHours, let until = LocalCalendar.quietUntil(quiet, at: now, zone: zone) {
            return until
        }
        let day = LocalCalendar.dayNumber(now, zone: zone)
        let sentToday = messageDay == day ? messagesOnDay : 0
        if let cap = journey.definition.frequencyCap, sentToday >= cap.perDay {
            switch cap.whenCapped {
            case .skip:
                effects.append(
                    Effect(contact: id, userId: userId, time: c.now,
                        kind: .messageSkipped(
                            journey: journey.id, node: nodeId,
                            reason: "frequency cap: \(sentToday) of \(cap.perDay) messages already sent today")))
                return nil
            case .delay:
                return LocalCalendar.instant(day: day + 1, minute: 0, zone: zone)
            }
        }
        guard let template = journey.messages[templateId] else { return nil }
        let scope = MessageScope(state: self, journey: journey.id, key: run.key, account: c.accountTraits)
        var fields: [String: String] = [:]
        for (name, content) in template.fields { fields[name] = content.render(scope) }
        let key = "\(journey.id):\(id):\(run.entry):\(run.steps):\(nodeId)"
        effects.append(
            Effect(contact: id, userId: userId, time: c.now,
                kind: .message(OutboxMessage(idempotencyKey: key, journey: journey.id, node: nodeId, channel: template.channel, fields: fields))))
        messageDay = day
        messagesOnDay = sentToday + 1
        return nil
    }

    private mutating func applyUpdate(
        set: [String: JSONValue], unset: [String], addTags: [String], removeTags: [String], _ c: EvaluationContext,
        effects: inout [Effect]
    ) {
        var changed: [String] = []
        for key in set.keys.sorted() where traits[key] != set[key] {
            traits[key] = set[key]
            changed.append(key)
        }
        for key in unset where traits.removeValue(forKey: key) != nil { changed.append(key) }
        if !addTags.isEmpty || !removeTags.isEmpty {
            var tags: [JSONValue] = []
            if case .array(let existing)? = traits["tags"] { tags = existing }
            let before = tags
            for tag in addTags where !tags.contains(.string(tag)) { tags.append(.string(tag)) }
            tags.removeAll { value in removeTags.contains { value == .string($0) } }
            if tags != before {
                traits["tags"] = .array(tags)
                changed.append("tags")
            }
        }
        guard !changed.isEmpty else { return }
        c.traitsChangedBySteps += changed
        traitsChanged(changed, c, effects: &effects)
    }

    /// What an event's trait changes cause, for changes a journey step made.
    private mutating func traitsChanged(_ keys: [String], _ c: EvaluationContext, effects: inout [Effect]) {
        let definitions = c.definitions
        var models: [Int] = []
        for key in keys { for model in definitions.traitRuleModelsByTrait[key] ?? [] where !models.contains(model) { models.append(model) } }
        var candidates: [Int] = []
        for model in models where refreshTraitRules(c, model: model) {
            refreshStageAndGrade(c, model: model, effects: &effects)
            candidates += definitions.segmentsByScoreModel[definitions.models[model].id] ?? []
        }
        for key in keys { candidates += definitions.segmentsByTrait[key] ?? [] }
        evaluateSegments(c, candidates, effects: &effects)
        updateNextWake(c)
    }

    private mutating func addJourneyPoints(_ requested: Double, model number: Int, ruleSymbol: UInt32, _ c: EvaluationContext, effects: inout [Effect]) {
        let definitions = c.definitions
        let model = definitions.models[number]
        let index = modelScoreIndex(c, number)
        let total = scoreTotal(index, at: c.now, halfLife: model.halfLife)
        var points = requested
        if points > 0, let limit = model.limit { points = min(points, max(0, limit - total)) }
        if points < 0, let minimum = model.minimum { points = max(points, min(0, minimum - total)) }
        guard points != 0 else { return }
        scores[index].add(rule: ruleSymbol, points: points, decays: model.halfLife != nil)
        scores[index].lastChanged = c.now
        recordHistory(ScoreChange(rule: ruleSymbol, event: 0, points: Float(points), time: c.now.milliseconds))
        refreshStageAndGrade(c, model: number, effects: &effects)
        evaluateSegments(c, definitions.segmentsByScoreModel[model.id] ?? [], effects: &effects)
        updateNextWake(c)
    }

    // MARK: Journey lifecycle sweeps

    /// After a journey was resumed or published: lapsed waits run now.
    public mutating func wakeJourneys(context c: EvaluationContext, effects: inout [Effect]) {
        self.context = c
        defer { self.context = nil }
        runJourneys(c, event: nil, counterSymbol: 0, changedTraits: [], effectsFrom: effects.count, effects: &effects)
    }

    /// Ends every run of an archived journey.
    public mutating func endRuns(journey symbol: UInt32, reason: JourneyExitReason, versions: [Int: CompiledJourney], context c: EvaluationContext, effects: inout [Effect]) {
        self.context = c
        defer { self.context = nil }
        let runs = journeyRuns.filter { $0.journey == symbol }
        guard !runs.isEmpty else { return }
        journeyRuns.removeAll { $0.journey == symbol }
        for run in runs where run.phase != .scheduled {
            if let journey = versions[Int(run.version)] { leave(run, journey, reason: reason, c, effects: &effects) }
        }
        updateJourneyWake(c.journeys)
    }

    /// Moves runs of older versions to `target` where their step's id still exists there.
    public mutating func migrateRuns(to target: CompiledJourney, from versions: [Int: CompiledJourney]) -> Int {
        var moved = 0
        for index in journeyRuns.indices where journeyRuns[index].journey == target.symbol && Int(journeyRuns[index].version) < target.version {
            let run = journeyRuns[index]
            if run.phase == .scheduled {
                journeyRuns[index].version = UInt32(target.version)
                continue
            }
            guard let old = versions[Int(run.version)], let nodeId = Optional(old.definition.nodes[Int(run.node)].id),
                let position = target.nodeIndex[nodeId], target.steps[position].typeName == old.steps[Int(run.node)].typeName
            else { continue }
            journeyRuns[index].version = UInt32(target.version)
            journeyRuns[index].node = Int32(position)
            moved += 1
        }
        return moved
    }

    // MARK: Merges

    /// Takes over the other profile's runs and entry history; a run of a journey (and key)
    /// this profile already runs leaves as merged.
    mutating func absorbJourneys(_ other: ContactState, _ c: EvaluationContext, effects: inout [Effect]) {
        guard !other.journeyRuns.isEmpty || !other.journeyEntries.isEmpty else { return }
        var offsets: [UInt32: UInt32] = [:]
        for theirs in other.journeyEntries {
            if let index = journeyEntries.firstIndex(where: { $0.journey == theirs.journey }) {
                offsets[theirs.journey] = journeyEntries[index].count
                journeyEntries[index].count += theirs.count
                journeyEntries[index].active += theirs.active
                journeyEntries[index].lastEnteredAt = max(journeyEntries[index].lastEnteredAt, theirs.lastEnteredAt)
                journeyEntries[index].lastExitedAt = max(journeyEntries[index].lastExitedAt, theirs.lastExitedAt)
            } else {
                journeyEntries.append(theirs)
            }
        }
        for var run in other.journeyRuns {
            if run.phase == .scheduled {
                if !journeyRuns.contains(where: { $0.journey == run.journey && $0.phase == .scheduled }) { journeyRuns.append(run) }
                continue
            }
            run.entry += offsets[run.journey] ?? 0
            let duplicate = journeyRuns.contains { $0.journey == run.journey && $0.key == run.key && $0.phase != .scheduled }
            if duplicate, let journey = c.journeys.version(run.journey, Int(run.version)) {
                leave(run, journey, reason: .merged, c, effects: &effects)
            } else {
                journeyRuns.append(run)
            }
        }
        if other.messageDay == messageDay {
            messagesOnDay += other.messagesOnDay
        } else if other.messageDay > messageDay {
            messageDay = other.messageDay
            messagesOnDay = other.messagesOnDay
        }
        if timeZone == nil { timeZone = other.timeZone }
        updateJourneyWake(c.journeys)
    }
}

extension Effect {
    var isTriggerSegmentChange: Bool {
        switch kind {
        case .segmentEntered(let segment), .segmentLeft(let segment): return JourneyCatalog.isTriggerSegment(segment)
        default: return false
        }
    }
}

extension JSONValue {
    /// A property value as a run key: strings as they are, numbers in their shortest form.
    var journeyKeyText: String? {
        switch self {
        case .string(let text): return text
        case .number(let value): return value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(value)
        case .bool(let value): return value ? "true" : "false"
        default: return nil
        }
    }
}

/// What a message template can read: `traits`, `account`, `contact` and `journey` (`id`, `key`).
final class MessageScope: MustacheParent {
    let state: ContactState
    let journey: String
    let key: String?
    let account: [String: JSONValue]?

    init(state: ContactState, journey: String, key: String?, account: [String: JSONValue]?) {
        self.state = state
        self.journey = journey
        self.key = key
        self.account = account
    }

    func child(named name: String) -> Any? {
        switch name {
        case "traits": return TemplateTraits(traits: state.traits)
        case "account": return TemplateObject(object: account ?? [:])
        case "contact":
            var fields: [String: JSONValue] = ["id": .string(String(state.id))]
            if let userId = state.userId { fields["user_id"] = .string(userId) }
            if let anonymous = state.anonymousIds.first { fields["anonymous_id"] = .string(anonymous) }
            return TemplateObject(object: fields)
        case "journey":
            var fields: [String: JSONValue] = ["id": .string(journey)]
            if let key { fields["key"] = .string(key) }
            return TemplateObject(object: fields)
        default: return nil
        }
    }
}
