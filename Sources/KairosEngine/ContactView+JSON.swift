import KairosCore

/// The JSON `Codable` gives (nil fields left out, times as ISO-8601), written directly: a contact
/// read is the admin API's hottest answer, and `JSONEncoder` was half its cost.
extension ContactView {
    public func jsonBytes() -> [UInt8] {
        var writer = JSONWriter(capacity: 8192)
        write(into: &writer)
        return writer.bytes
    }

    public func write(into writer: inout JSONWriter) {
        writer.object { json in
            json.field("id", integer: Int64(bitPattern: id))
            json.field("userId", userId)
            json.field("anonymousIds", array: anonymousIds) { $0.string($1) }
            json.field("traits", object: traits)
            json.field("accountId", accountId)
            json.field("accountTraits", object: accountTraits)
            json.field("firstSeen", firstSeen)
            json.field("lastSeen", lastSeen)
            json.field("scores", array: scores) { $1.write(into: &$0) }
            json.field("scoreHistory", array: scoreHistory) { $1.write(into: &$0) }
            json.field("segments", array: segments) { $1.write(into: &$0) }
            json.field("recentEvents", array: recentEvents) { $1.write(into: &$0) }
            json.field("eventCounts", array: eventCounts) { $1.write(into: &$0) }
            json.field("nextWake", nextWake)
            json.field("experiments", array: experiments) { $1.write(into: &$0) }
            json.field("decisions", array: decisions) { $1.write(into: &$0) }
            json.field("journeys", array: journeys) { $1.write(into: &$0) }
        }
    }
}

extension ContactView {
    /// The bytes of `ContactView(state: …).jsonBytes()`, written straight from the state: score
    /// history, memberships, recent events, experiments and decisions go out one entry at a
    /// time instead of through the view's arrays (under a heavy stream, building the view was a
    /// third of a contact read on the gateway's loop). ContactViewJSONTests checks the two agree
    /// byte for byte.
    static func jsonBytes(
        state: ContactState, definitions: TenantDefinitions, symbols: SymbolTable, account: [String: JSONValue]?, now: Timestamp,
        journeys: JourneyCatalog = .empty
    ) -> [UInt8] {
        let names = ContactNames(symbols: symbols)
        var writer = JSONWriter(capacity: 8192)
        writer.object { json in
            json.field("id", integer: Int64(bitPattern: state.id))
            json.field("userId", state.userId)
            json.field("anonymousIds", array: state.anonymousIds) { $0.string($1) }
            json.field("traits", traits: state.traits)
            json.field("accountId", state.accountId)
            json.field("accountTraits", object: account)
            json.field("firstSeen", state.firstSeen)
            json.field("lastSeen", state.lastSeen)
            json.field("scores", array: ContactView.scores(state, definitions, names, now)) { $1.write(into: &$0) }
            json.field("scoreHistory", array: state.scoreHistory) { writer, change in
                ContactView.writeHistoryEntry(change, state, definitions, names, into: &writer)
            }
            json.field("segments", array: state.segments) { writer, membership in
                ContactView.membership(membership, definitions)?.write(into: &writer)
            }
            json.field("recentEvents", array: state.recent.reversed()) { writer, recent in
                Activity(event: names.name(recent.symbol), time: Timestamp(milliseconds: recent.time)).write(into: &writer)
            }
            json.field("eventCounts", array: ContactView.eventCounts(state, names)) { $1.write(into: &$0) }
            json.field("nextWake", state.nextWake)
            json.field("experiments", array: state.assignments) { ContactView.assignment($1).write(into: &$0) }
            json.field("decisions", array: state.decisions.reversed()) { ContactView.decision($1).write(into: &$0) }
            json.field("journeys", array: ContactView.enrollments(state, names, journeys)) { $1.write(into: &$0) }
        }
        return writer.bytes
    }

    /// `historyEntry(…).write(into:)` without the entry: a scoring rule's model and rule are
    /// written from the bytes of its symbol's name ("rule:MODEL/RULE"), not as new strings.
    private static func writeHistoryEntry(
        _ change: ScoreChange, _ state: ContactState, _ definitions: TenantDefinitions, _ names: ContactNames,
        into writer: inout JSONWriter
    ) {
        let full = names.name(change.rule)
        if !full.hasPrefix("journey-rule:") {
            let written = names.withRuleParts(full) { model, rule -> Bool in
                guard !model.isEmpty else { return false }
                writer.object { json in
                    json.key("model")
                    json.string(utf8: model)
                    json.key("rule")
                    json.string(utf8: rule)
                    if change.event != 0 {
                        json.key("event")
                        json.string(names.name(change.event))
                    }
                    json.field("points", Double(change.points))
                    json.field("time", Timestamp(milliseconds: change.time))
                }
                return true
            }
            if written { return }
        }
        historyEntry(change, state, definitions, names).write(into: &writer)
    }
}

extension ContactView.Score {
    public func write(into writer: inout JSONWriter) {
        writer.object { json in
            json.field("model", model)
            json.field("score", score)
            json.field("grade", grade)
            json.field("stage", stage)
            json.field("lastChanged", lastChanged)
            json.field("rules", array: rules) { writer, rule in
                writer.object { json in
                    json.field("rule", rule.rule)
                    json.field("name", rule.name)
                    json.field("group", rule.group)
                    json.field("points", rule.points)
                }
            }
            json.field("groups", array: groups) { writer, group in
                writer.object { json in
                    json.field("group", group.group)
                    json.field("points", group.points)
                    json.field("limit", group.limit)
                }
            }
        }
    }
}

extension ContactView.ScoreHistoryEntry {
    public func write(into writer: inout JSONWriter) {
        writer.object { json in
            json.field("model", model)
            json.field("rule", rule)
            json.field("event", event)
            json.field("points", points)
            json.field("time", time)
        }
    }
}

extension ContactView.Membership {
    public func write(into writer: inout JSONWriter) {
        writer.object { json in
            json.field("segment", segment)
            json.field("name", name)
            json.field("since", since)
        }
    }
}

extension ContactView.Activity {
    public func write(into writer: inout JSONWriter) {
        writer.object { json in
            json.field("event", event)
            json.field("time", time)
        }
    }
}

extension ContactView.EventCount {
    public func write(into writer: inout JSONWriter) {
        writer.object { json in
            json.field("event", event)
            json.field("total", integer: Int64(total))
            json.field("last", last)
        }
    }
}

extension ContactView.Assignment {
    public func write(into writer: inout JSONWriter) {
        writer.object { json in
            json.field("experiment", experiment)
            json.field("variantIndex", integer: Int64(variantIndex))
            json.field("exposedAt", exposedAt)
            json.field("convertedAt", convertedAt)
        }
    }
}

extension ContactView.Decision {
    public func write(into writer: inout JSONWriter) {
        writer.object { json in
            json.field("decisionId", decisionId)
            json.field("placement", placement)
            json.field("variant", variant)
            json.field("experiment", experiment)
            json.field("optimized", optimized)
            json.field("time", time)
            json.field("viewed", viewed)
            json.field("rewarded", rewarded)
        }
    }
}

extension ContactView.JourneyEnrollment {
    public func write(into writer: inout JSONWriter) {
        writer.object { json in
            json.field("journey", journey)
            json.field("version", integer: Int64(version))
            json.field("step", step)
            json.field("state", state)
            json.field("key", key)
            json.field("entry", integer: Int64(entry))
            json.field("enteredAt", enteredAt)
            json.field("due", due)
        }
    }
}
