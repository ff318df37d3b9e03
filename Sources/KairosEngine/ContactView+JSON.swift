import KairosCore

/// The JSON `Codable` gives (nil fields left out, times as ISO-8601), written directly: a contact
/// read is the admin API's hottest answer, and `JSONEncoder` was half its cost.
extension ContactView {
    public func jsonBytes() -> [UInt8] {
        var writer = JSONWriter(capacity: 4096)
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
