extension ContactState {
    /// 2 added experiment assignments and served decisions, 3 journey runs; 1 and 2 are still read.
    static let codecVersion: UInt8 = 3

    /// Appends this contact in the snapshot's binary form. Symbols are written as numbers:
    /// a snapshot stores its tenant's symbol table next to its contacts.
    public func encode(into writer: inout BinaryWriter) {
        writer.writeByte(ContactState.codecVersion)
        writer.writeVarint(id)
        writer.writeOptional(userId)
        writer.writeVarint(UInt64(anonymousIds.count))
        for anonymousId in anonymousIds { writer.write(anonymousId) }
        writer.write(traits)
        writer.writeOptional(accountId)
        writer.writeOptional(firstSeen)
        writer.writeOptional(lastSeen)
        writer.writeVarint(UInt64(counters.counters.count))
        for counter in counters.counters {
            writer.writeVarint(UInt64(counter.symbol))
            writer.writeVarint(UInt64(counter.total))
            writer.writeSigned(counter.last)
            writer.writeVarint(UInt64(counter.recent.count))
            for time in counter.recent { writer.writeSigned(time) }
        }
        writer.writeVarint(UInt64(scores.count))
        for score in scores {
            writer.writeVarint(UInt64(score.model))
            writer.writeSigned(score.referenceTime)
            writer.writeVarint(UInt64(score.contributions.count))
            for item in score.contributions {
                writer.writeVarint(UInt64(item.rule))
                writer.writeDouble(item.points)
                writer.writeByte(item.decays ? 1 : 0)
            }
            writer.writeVarint(UInt64(score.capUsage.count))
            for usage in score.capUsage {
                writer.writeVarint(UInt64(usage.rule))
                writer.writeSigned(usage.period)
                writer.writeSigned(Int64(usage.count))
            }
            writer.writeOptional(score.lastChanged)
            writer.writeOptional(score.stage)
            writer.writeOptional(score.grade)
        }
        writer.writeVarint(UInt64(scoreHistory.count))
        for change in scoreHistory {
            writer.writeVarint(UInt64(change.rule))
            writer.writeVarint(UInt64(change.event))
            writer.writeDouble(Double(change.points))
            writer.writeSigned(change.time)
        }
        writer.writeVarint(UInt64(segments.count))
        for membership in segments {
            writer.writeVarint(UInt64(membership.segment))
            writer.writeSigned(membership.since)
        }
        writer.writeVarint(UInt64(recent.count))
        for event in recent {
            writer.writeVarint(UInt64(event.symbol))
            writer.writeSigned(event.time)
        }
        writer.writeOptional(nextWake)
        writer.writeVarint(lastSequence)
        writer.writeVarint(UInt64(assignments.count))
        for assignment in assignments {
            writer.write(assignment.experiment)
            writer.writeSigned(Int64(assignment.variant))
            writer.writeSigned(assignment.exposedAt)
            writer.writeByte(assignment.convertedAt == nil ? 0 : 1)
            if let converted = assignment.convertedAt { writer.writeSigned(converted) }
        }
        writer.writeVarint(UInt64(decisions.count))
        for decision in decisions {
            writer.writeVarint(decision.id)
            writer.write(decision.placement)
            writer.write(decision.variant)
            writer.writeOptional(decision.experiment)
            writer.writeSigned(decision.time)
            writer.writeByte((decision.optimized ? 1 : 0) | (decision.viewed ? 2 : 0) | (decision.rewarded ? 4 : 0))
        }
        writer.writeVarint(UInt64(journeyRuns.count))
        for run in journeyRuns {
            writer.writeVarint(UInt64(run.journey))
            writer.writeVarint(UInt64(run.version))
            writer.writeVarint(UInt64(run.entry))
            writer.writeOptional(run.key)
            writer.writeSigned(Int64(run.node))
            writer.writeByte(run.phase.rawValue)
            writer.writeSigned(run.due)
            writer.writeSigned(run.enteredAt)
            writer.writeVarint(UInt64(run.steps))
        }
        writer.writeVarint(UInt64(journeyEntries.count))
        for record in journeyEntries {
            writer.writeVarint(UInt64(record.journey))
            writer.writeVarint(UInt64(record.count))
            writer.writeVarint(UInt64(record.active))
            writer.writeSigned(record.lastEnteredAt)
            writer.writeSigned(record.lastExitedAt)
        }
        writer.writeSigned(messageDay)
        writer.writeVarint(UInt64(messagesOnDay))
        writer.writeOptional(timeZone)
        writer.writeSigned(journeyWake ?? .max)
    }

    public static func decode(from reader: inout BinaryReader) throws(CodecError) -> ContactState {
        let version = try reader.readByte()
        guard (1...codecVersion).contains(version) else {
            throw CodecError(offset: reader.offset - 1, message: "contact format version \(version) is not supported")
        }
        var state = ContactState(id: try reader.readVarint())
        // Read into the state in place, returned from one place: with a return in each format
        // version's branch, every decoded state was copied once (a reference count on each of
        // its arrays and strings) and the original destroyed.
        try readFields(into: &state, version: version, from: &reader)
        return state
    }

    private static func readFields(into state: inout ContactState, version: UInt8, from reader: inout BinaryReader) throws(CodecError) {
        state.userId = try reader.readOptionalString()
        state.anonymousIds = try (0..<reader.readCount()).map { _ throws(CodecError) in try reader.readString() }
        state.traits = try reader.readJSONObject()
        state.accountId = try reader.readOptionalString()
        state.firstSeen = try reader.readOptionalTimestamp()
        state.lastSeen = try reader.readOptionalTimestamp()
        // Lists get their exact size before they are read: one allocation each, no slack.
        let counterCount = try reader.readElementCount()
        var counters: [EventCounter] = []
        counters.reserveCapacity(counterCount)
        for _ in 0..<counterCount {
            var counter = EventCounter(symbol: try reader.readSymbol())
            counter.total = UInt32(truncatingIfNeeded: try reader.readVarint())
            counter.last = try reader.readSigned()
            counter.recent = try (0..<reader.readCount()).map { _ throws(CodecError) in try reader.readSigned() }
            counters.append(counter)
        }
        state.counters = CounterSet(sorted: counters)
        let scoreCount = try reader.readElementCount()
        state.scores.reserveCapacity(scoreCount)
        for _ in 0..<scoreCount {
            var score = ModelScore(model: try reader.readSymbol(), referenceTime: try reader.readSigned())
            let contributionCount = try reader.readElementCount()
            score.contributions.reserveCapacity(contributionCount)
            for _ in 0..<contributionCount {
                score.contributions.append(
                    RuleContribution(rule: try reader.readSymbol(), points: try reader.readDouble(), decays: try reader.readByte() == 1))
            }
            let capCount = try reader.readElementCount()
            score.capUsage.reserveCapacity(capCount)
            for _ in 0..<capCount {
                score.capUsage.append(
                    CapUsage(rule: try reader.readSymbol(), period: try reader.readSigned(), count: Int32(truncatingIfNeeded: try reader.readSigned())))
            }
            score.lastChanged = try reader.readOptionalTimestamp()
            score.stage = try reader.readOptionalString()
            score.grade = try reader.readOptionalString()
            state.scores.append(score)
        }
        let historyCount = try reader.readElementCount()
        state.scoreHistory.reserveCapacity(historyCount)
        for _ in 0..<historyCount {
            state.scoreHistory.append(
                ScoreChange(
                    rule: try reader.readSymbol(), event: try reader.readSymbol(), points: Float(try reader.readDouble()),
                    time: try reader.readSigned()))
        }
        let segmentCount = try reader.readElementCount()
        state.segments.reserveCapacity(segmentCount)
        for _ in 0..<segmentCount {
            state.segments.append(SegmentMembership(segment: try reader.readSymbol(), since: try reader.readSigned()))
        }
        let recentCount = try reader.readElementCount()
        state.recent.reserveCapacity(recentCount)
        for _ in 0..<recentCount {
            state.recent.append(RecentEvent(symbol: try reader.readSymbol(), time: try reader.readSigned()))
        }
        state.nextWake = try reader.readOptionalTimestamp()
        state.lastSequence = try reader.readVarint()
        guard version >= 2 else { return }
        for _ in 0..<(try reader.readCount()) {
            var assignment = ExperimentAssignment(
                experiment: try reader.readString(), variant: Int(try reader.readSigned()), exposedAt: try reader.readSigned())
            if try reader.readByte() == 1 { assignment.convertedAt = try reader.readSigned() }
            state.assignments.append(assignment)
        }
        for _ in 0..<(try reader.readCount()) {
            var decision = ServedDecision(
                id: try reader.readVarint(), placement: try reader.readString(), variant: try reader.readString(),
                experiment: try reader.readOptionalString(), optimized: false, time: try reader.readSigned())
            let flags = try reader.readByte()
            decision.optimized = flags & 1 != 0
            decision.viewed = flags & 2 != 0
            decision.rewarded = flags & 4 != 0
            state.decisions.append(decision)
        }
        guard version >= 3 else { return }
        for _ in 0..<(try reader.readCount()) {
            let journey = try reader.readSymbol()
            let version = try reader.readSymbol()
            let entry = try reader.readSymbol()
            let key = try reader.readOptionalString()
            let node = Int32(truncatingIfNeeded: try reader.readSigned())
            guard let phase = JourneyRun.Phase(rawValue: try reader.readByte()) else {
                throw CodecError(offset: reader.offset - 1, message: "unknown journey run phase")
            }
            state.journeyRuns.append(
                JourneyRun(
                    journey: journey, version: version, entry: entry, key: key, node: node, phase: phase, due: try reader.readSigned(),
                    enteredAt: try reader.readSigned(), steps: try reader.readSymbol()))
        }
        for _ in 0..<(try reader.readCount()) {
            state.journeyEntries.append(
                JourneyEntries(
                    journey: try reader.readSymbol(), count: try reader.readSymbol(), active: try reader.readSymbol(),
                    lastEnteredAt: try reader.readSigned(), lastExitedAt: try reader.readSigned()))
        }
        state.messageDay = try reader.readSigned()
        state.messagesOnDay = try reader.readSymbol()
        state.timeZone = try reader.readOptionalString()
        let wake = try reader.readSigned()
        state.journeyWake = wake == .max ? nil : wake
    }
}

extension BinaryWriter {
    public mutating func writeOptional(_ value: String?) {
        if let value {
            writeByte(1)
            write(value)
        } else {
            writeByte(0)
        }
    }

    public mutating func writeOptional(_ value: Timestamp?) {
        if let value {
            writeByte(1)
            write(value)
        } else {
            writeByte(0)
        }
    }
}

extension BinaryReader {
    public mutating func readOptionalString() throws(CodecError) -> String? {
        try readByte() == 1 ? try readString() : nil
    }

    public mutating func readOptionalTimestamp() throws(CodecError) -> Timestamp? {
        try readByte() == 1 ? try readTimestamp() : nil
    }

    public mutating func readSymbol() throws(CodecError) -> UInt32 {
        let value = try readVarint()
        guard value <= UInt64(UInt32.max) else { throw CodecError(offset: offset, message: "symbol \(value) is out of range") }
        return UInt32(value)
    }
}
