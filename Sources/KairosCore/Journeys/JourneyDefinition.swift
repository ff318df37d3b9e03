/// A journey: a graph of steps every enrolled contact walks through, live in its actor
/// (format and examples: `docs/journeys.md`).
public struct JourneyDefinition: Sendable, Hashable {
    public enum Trigger: Sendable, Hashable {
        /// An event performed; `key` names the property that keys the run (several keyed runs
        /// may be active at once; a wait-for-event can demand the same key).
        case event(type: EventType, name: String?, filter: Predicate?, key: String?)
        case segmentEntered(String)
        case segmentLeft(String)
        /// A condition becoming true (score or lifecycle thresholds and any other predicate).
        case condition(Predicate)
        case traitChanged(String)
        /// A date trait relative to now: enters `offset` after the date (negative: before).
        case dateTrait(trait: String, offset: Int64)
        /// Only through the enroll API or another journey's enroll step.
        case manual
    }

    public enum ReEntryPolicy: String, Sendable, Hashable, CaseIterable {
        /// Once per contact, ever.
        case never = "none"
        /// Again while a run is still active (keyed runs: one per key).
        case anyTime = "any_time"
        /// Again once the previous run has exited.
        case afterExit = "after_exit"
    }

    public enum CapAction: String, Sendable, Hashable, CaseIterable {
        /// The send is skipped (and recorded with its reason); the run moves on.
        case skip
        /// The send waits for the next day with room; the run moves on after it.
        case delay
    }

    public struct FrequencyCap: Sendable, Hashable {
        /// Messages from all journeys per calendar day in the contact's time zone.
        public var perDay: Int
        public var whenCapped: CapAction
    }

    /// A daily window, in minutes after local midnight; `start > end` wraps past midnight.
    public struct QuietHours: Sendable, Hashable {
        public var start: Int
        public var end: Int
    }

    public struct Message: Sendable, Hashable {
        public var channel: MessageChannel
        /// Rendered fields (`subject`, `body`, `to`, `url`…), each a template.
        public var fields: [String: String]
    }

    public struct SplitPath: Sendable, Hashable {
        public var percent: Double
        public var next: String
    }

    public enum Step: Sendable, Hashable {
        case send(template: String, next: String)
        case wait(TimeSpan, next: String)
        /// Until a local time of day (minutes after midnight), optionally on given weekdays (1 = Sunday … 7).
        case waitUntil(minuteOfDay: Int, weekdays: Set<Int>, next: String)
        case waitForEvent(
            type: EventType, name: String?, filter: Predicate?, matchKey: String?, timeout: TimeSpan, next: String,
            timeoutNext: String)
        case branch(Predicate, then: String, otherwise: String)
        case split([SplitPath])
        case update(set: [String: JSONValue], unset: [String], addTags: [String], removeTags: [String], next: String)
        case score(model: String, points: Double, next: String)
        case enroll(journey: String, next: String)
        case exit

        /// The node ids this step can go to.
        public var successors: [String] {
            switch self {
            case .send(_, let next), .wait(_, let next), .waitUntil(_, _, let next), .update(_, _, _, _, let next),
                .score(_, _, let next), .enroll(_, let next):
                return [next]
            case .waitForEvent(_, _, _, _, _, let next, let timeoutNext): return [next, timeoutNext]
            case .branch(_, let then, let otherwise): return [then, otherwise]
            case .split(let paths): return paths.map(\.next)
            case .exit: return []
            }
        }

        /// Whether the run stops here for time to pass.
        public var waits: Bool {
            switch self {
            case .wait, .waitUntil, .waitForEvent: return true
            default: return false
            }
        }

        public var typeName: String {
            switch self {
            case .send: return "send"
            case .wait: return "wait"
            case .waitUntil: return "wait_until"
            case .waitForEvent: return "wait_for_event"
            case .branch: return "branch"
            case .split: return "split"
            case .update: return "update"
            case .score: return "score"
            case .enroll: return "enroll"
            case .exit: return "exit"
            }
        }
    }

    public struct Node: Sendable, Hashable {
        public var id: String
        public var step: Step
    }

    public var id: String
    public var name: String
    public var description: String?
    public var trigger: Trigger
    public var entry: Predicate?
    public var exit: Predicate?
    public var goal: Predicate?
    public var reEntry: ReEntryPolicy
    public var maxEntries: Int?
    public var minGap: TimeSpan?
    public var frequencyCap: FrequencyCap?
    public var quietHours: QuietHours?
    /// For contacts without a `timezone` trait or event context time zone.
    public var timeZone: String
    public var startsAt: Timestamp?
    public var endsAt: Timestamp?
    public var templates: [String: Message]
    public var start: String
    public var nodes: [Node]
    public var source: JSONValue

    /// Waits longer than this are refused as a likely mistake.
    public static let longestWait = TimeSpan.days(366)
}

/// Where a journey's message goes; delivery itself is the outbox's consumer's job.
public enum MessageChannel: String, Sendable, Hashable, CaseIterable {
    case email, sms, push, webhook

    /// The template fields a message of this channel must have.
    var requiredFields: [String] {
        switch self {
        case .email: return ["subject", "body"]
        case .sms, .push: return ["body"]
        case .webhook: return ["url"]
        }
    }

    var allowedFields: Set<String> {
        switch self {
        case .email: return ["subject", "body", "to", "from", "html"]
        case .sms: return ["body", "to"]
        case .push: return ["title", "body", "to"]
        case .webhook: return ["url", "body"]
        }
    }
}

/// A journey's lifecycle: only active journeys enroll and advance contacts.
public enum JourneyStatus: String, Sendable, Hashable, CaseIterable, Codable {
    case draft, active, paused, archived
}

// MARK: - Parsing

extension JourneyDefinition {
    static let nodeTypes: Set<String> = [
        "send", "wait", "wait_until", "wait_for_event", "branch", "split", "update", "score", "enroll", "exit",
    ]

    /// Parses and checks a journey on its own (references to segments, models and other
    /// journeys are checked when it is compiled with the tenant's definitions).
    public static func parse(_ json: JSONValue) throws(DefinitionError) -> JourneyDefinition {
        let reader = try DefinitionReader(json, at: "", what: "a journey")
        try reader.rejectUnknownKeys(allowed: [
            "id", "name", "description", "trigger", "entry", "exit", "goal", "re_entry", "frequency_cap", "quiet_hours",
            "time_zone", "starts_at", "ends_at", "templates", "start", "nodes",
        ])
        let id = try reader.identifier("id")
        guard let triggerValue = reader.object["trigger"], !triggerValue.isNull else {
            throw DefinitionError(pointer: "/trigger", message: "is required (an event, segment, condition, trait or date trigger, or {\"manual\": true})")
        }
        let trigger = try parseTrigger(triggerValue, at: "/trigger")
        func condition(_ key: String) throws(DefinitionError) -> Predicate? {
            guard let value = reader.object[key], !value.isNull else { return nil }
            return try Predicate.parse(value, at: reader.path(key), placement: .journey)
        }

        var reEntry = ReEntryPolicy.never
        var maxEntries: Int?
        var minGap: TimeSpan?
        if let value = reader.object["re_entry"], !value.isNull {
            let entryReader = try DefinitionReader(value, at: "/re_entry", what: "a re-entry policy")
            try entryReader.rejectUnknownKeys(allowed: ["policy", "max_entries", "min_gap"])
            let policyText = try entryReader.requiredString("policy")
            guard let policy = ReEntryPolicy(rawValue: policyText) else {
                throw DefinitionError(
                    pointer: "/re_entry/policy",
                    message: "'\(policyText)' is not a policy (expected one of: none, any_time, after_exit)")
            }
            reEntry = policy
            if let value = try entryReader.number("max_entries") {
                guard value >= 1, value == value.rounded() else {
                    throw DefinitionError(pointer: "/re_entry/max_entries", message: "must be a whole number of at least 1")
                }
                maxEntries = Int(value)
            }
            minGap = try entryReader.span("min_gap")
        }

        var cap: FrequencyCap?
        if let value = reader.object["frequency_cap"], !value.isNull {
            let capReader = try DefinitionReader(value, at: "/frequency_cap", what: "a frequency cap")
            try capReader.rejectUnknownKeys(allowed: ["per_day", "when_capped"])
            guard let perDay = try capReader.number("per_day"), perDay >= 1, perDay == perDay.rounded(), perDay <= 1000 else {
                throw DefinitionError(pointer: "/frequency_cap/per_day", message: "is required: a whole number of messages per day, 1–1000")
            }
            let actionText = try capReader.string("when_capped") ?? "skip"
            guard let action = CapAction(rawValue: actionText) else {
                throw DefinitionError(pointer: "/frequency_cap/when_capped", message: "'\(actionText)' must be 'skip' or 'delay'")
            }
            cap = FrequencyCap(perDay: Int(perDay), whenCapped: action)
        }

        var quiet: QuietHours?
        if let value = reader.object["quiet_hours"], !value.isNull {
            let quietReader = try DefinitionReader(value, at: "/quiet_hours", what: "quiet hours")
            try quietReader.rejectUnknownKeys(allowed: ["start", "end"])
            let start = try parseTimeOfDay(try quietReader.requiredString("start"), at: "/quiet_hours/start")
            let end = try parseTimeOfDay(try quietReader.requiredString("end"), at: "/quiet_hours/end")
            guard start != end else { throw DefinitionError(pointer: "/quiet_hours/end", message: "must differ from start") }
            quiet = QuietHours(start: start, end: end)
        }

        let timeZone = try reader.string("time_zone") ?? "UTC"
        guard LocalCalendar.isKnown(timeZone) else {
            throw DefinitionError(pointer: "/time_zone", message: "'\(timeZone)' is not a known time zone (e.g. 'Europe/Paris', 'UTC')")
        }
        func date(_ key: String) throws(DefinitionError) -> Timestamp? {
            guard let text = try reader.string(key) else { return nil }
            guard let time = Timestamp(iso8601: text) else {
                throw DefinitionError(pointer: reader.path(key), message: "'\(text)' is not an ISO-8601 date or time")
            }
            return time
        }
        let startsAt = try date("starts_at")
        let endsAt = try date("ends_at")
        if let startsAt, let endsAt, endsAt <= startsAt {
            throw DefinitionError(pointer: "/ends_at", message: "must be after starts_at")
        }

        var templates: [String: Message] = [:]
        if let value = reader.object["templates"], !value.isNull {
            guard case .object(let object) = value else {
                throw DefinitionError(pointer: "/templates", message: "must be an object of templates by id, got \(value.typeName)")
            }
            for (key, template) in object.sorted(by: { $0.key < $1.key }) {
                templates[key] = try parseMessage(template, at: "/templates/" + key)
            }
        }

        guard let nodeValues = try reader.array("nodes"), !nodeValues.isEmpty else {
            throw DefinitionError(pointer: "/nodes", message: "is required: a non-empty array of steps")
        }
        var nodes: [Node] = []
        var seen: [String: Int] = [:]
        for (index, value) in nodeValues.enumerated() {
            let node = try parseNode(value, at: "/nodes/\(index)")
            if let earlier = seen[node.id] {
                throw DefinitionError(pointer: "/nodes/\(index)/id", message: "'\(node.id)' is already the id of /nodes/\(earlier)")
            }
            seen[node.id] = index
            nodes.append(node)
        }
        let start = try reader.string("start") ?? nodes[0].id
        guard seen[start] != nil else { throw DefinitionError(pointer: "/start", message: "no node has the id '\(start)'") }

        let journey = JourneyDefinition(
            id: id, name: try reader.string("name") ?? id, description: try reader.string("description"), trigger: trigger,
            entry: try condition("entry"), exit: try condition("exit"), goal: try condition("goal"), reEntry: reEntry,
            maxEntries: maxEntries, minGap: minGap, frequencyCap: cap, quietHours: quiet, timeZone: timeZone,
            startsAt: startsAt, endsAt: endsAt, templates: templates, start: start, nodes: nodes, source: json)
        try journey.checkGraph(positions: seen)
        return journey
    }

    static func parseTrigger(_ value: JSONValue, at pointer: String) throws(DefinitionError) -> Trigger {
        let reader = try DefinitionReader(value, at: pointer, what: "a trigger")
        let kinds = ["event", "segment_entered", "segment_left", "score", "lifecycle", "condition", "trait_changed", "date_trait", "manual"]
        let present = kinds.filter { reader.has($0) }
        guard present.count == 1, let kind = present.first else {
            throw DefinitionError(pointer: pointer, message: "a trigger needs exactly one of: \(kinds.joined(separator: ", "))")
        }
        switch kind {
        case "event":
            try reader.rejectUnknownKeys(allowed: ["event", "type", "where", "key"])
            let (type, name, filter) = try parseEventMatch(reader, nameKey: "event")
            return .event(type: type, name: name, filter: filter, key: try reader.string("key"))
        case "segment_entered", "segment_left":
            try reader.rejectUnknownKeys(allowed: [kind])
            let segment = try reader.requiredString(kind)
            return kind == "segment_entered" ? .segmentEntered(segment) : .segmentLeft(segment)
        case "score", "lifecycle":
            // The same shape as the segment language's leaf: {"score": "model", "op": "gte", "value": 50}.
            return .condition(try Predicate.parse(value, at: pointer, placement: .journey))
        case "condition":
            try reader.rejectUnknownKeys(allowed: ["condition"])
            return .condition(try Predicate.parse(reader.object["condition"]!, at: reader.path("condition"), placement: .journey))
        case "trait_changed":
            try reader.rejectUnknownKeys(allowed: ["trait_changed"])
            return .traitChanged(try reader.requiredString("trait_changed"))
        case "date_trait":
            try reader.rejectUnknownKeys(allowed: ["date_trait", "before", "after"])
            let trait = try reader.requiredString("date_trait")
            guard !(reader.has("before") && reader.has("after")) else {
                throw DefinitionError(pointer: reader.path("after"), message: "give either before or after, not both")
            }
            let before = try reader.span("before")
            let after = try reader.span("after")
            let offset = -(before?.milliseconds ?? 0) + (after?.milliseconds ?? 0)
            return .dateTrait(trait: trait, offset: offset)
        default:
            try reader.rejectUnknownKeys(allowed: ["manual"])
            guard try reader.bool("manual") == true else {
                throw DefinitionError(pointer: reader.path("manual"), message: "must be true")
            }
            return .manual
        }
    }

    /// `"event": "Order Completed"` with an optional `type` (default track) and `where`.
    static func parseEventMatch(_ reader: DefinitionReader, nameKey: String) throws(DefinitionError) -> (EventType, String?, Predicate?) {
        let typeText = try reader.string("type") ?? "track"
        guard let type = EventType(rawValue: typeText), type != .alias else {
            throw DefinitionError(
                pointer: reader.path("type"), message: "'\(typeText)' must be one of: track, identify, page, screen, group")
        }
        var name = try reader.string(nameKey)
        if name == "*" { name = nil }
        if type == .track && name == nil && !reader.has(nameKey) {
            throw DefinitionError(pointer: reader.path(nameKey), message: "is required for track events (\"*\" matches any)")
        }
        var filter: Predicate?
        if let value = reader.object["where"], !value.isNull {
            filter = try Predicate.parse(value, at: reader.path("where"), placement: .eventFilter)
        }
        return (type, name, filter)
    }

    static func parseMessage(_ value: JSONValue, at pointer: String) throws(DefinitionError) -> Message {
        let reader = try DefinitionReader(value, at: pointer, what: "a message template")
        let channelText = try reader.requiredString("channel")
        guard let channel = MessageChannel(rawValue: channelText) else {
            throw DefinitionError(
                pointer: reader.path("channel"),
                message: "'\(channelText)' is not a channel (expected one of: \(MessageChannel.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        try reader.rejectUnknownKeys(allowed: channel.allowedFields.union(["channel"]))
        var fields: [String: String] = [:]
        for key in channel.allowedFields.sorted() {
            guard let text = try reader.string(key) else { continue }
            // Compiling here reports template errors at the field that holds them.
            _ = try ContentTemplate(text, format: channel == .webhook && key == "body" ? .json : .text, pointer: reader.path(key))
            fields[key] = text
        }
        for key in channel.requiredFields where fields[key] == nil {
            throw DefinitionError(pointer: reader.path(key), message: "is required for \(channel.rawValue) messages")
        }
        return Message(channel: channel, fields: fields)
    }

    static func parseNode(_ value: JSONValue, at pointer: String) throws(DefinitionError) -> Node {
        let reader = try DefinitionReader(value, at: pointer, what: "a step")
        let id = try reader.identifier("id")
        let type = try reader.requiredString("type")
        guard nodeTypes.contains(type) else {
            throw DefinitionError(
                pointer: reader.path("type"), message: "'\(type)' is not a step type (expected one of: \(nodeTypes.sorted().joined(separator: ", ")))")
        }
        func next(_ key: String = "next") throws(DefinitionError) -> String {
            guard let value = try reader.string(key), !value.isEmpty else {
                throw DefinitionError(
                    pointer: reader.path(key), message: "is required: the id of the step that follows (a dead end otherwise; end with an 'exit' step)")
            }
            return value
        }
        func wait(_ key: String) throws(DefinitionError) -> TimeSpan {
            guard let value = reader.object[key], !value.isNull else {
                throw DefinitionError(pointer: reader.path(key), message: "is required (e.g. {\"days\": 3})")
            }
            let span = try reader.span(key)!
            guard span.milliseconds <= JourneyDefinition.longestWait.milliseconds else {
                throw DefinitionError(pointer: reader.path(key), message: "is longer than 366 days, which is likely a mistake")
            }
            return span
        }
        let step: Step
        switch type {
        case "send":
            try reader.rejectUnknownKeys(allowed: ["id", "type", "template", "next"])
            step = .send(template: try reader.requiredString("template"), next: try next())
        case "wait":
            try reader.rejectUnknownKeys(allowed: ["id", "type", "duration", "next"])
            step = .wait(try wait("duration"), next: try next())
        case "wait_until":
            try reader.rejectUnknownKeys(allowed: ["id", "type", "time", "days", "next"])
            let minute = try parseTimeOfDay(try reader.requiredString("time"), at: reader.path("time"))
            var weekdays: Set<Int> = []
            for (index, day) in (try reader.array("days") ?? []).enumerated() {
                let names = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
                guard case .string(let text) = day, let number = names.firstIndex(of: String(text.lowercased().prefix(3))),
                    text.count >= 3
                else {
                    throw DefinitionError(pointer: reader.path("days") + "/\(index)", message: "must be a weekday such as \"mon\" or \"monday\"")
                }
                weekdays.insert(number + 1)
            }
            step = .waitUntil(minuteOfDay: minute, weekdays: weekdays, next: try next())
        case "wait_for_event":
            try reader.rejectUnknownKeys(allowed: ["id", "type", "event", "event_type", "where", "match_key", "timeout", "next", "timeout_next"])
            var eventReaderObject = reader.object
            eventReaderObject["type"] = reader.object["event_type"]
            let eventReader = try DefinitionReader(.object(eventReaderObject), at: pointer, what: "a step")
            let (eventType, name, filter) = try parseEventMatch(eventReader, nameKey: "event")
            step = .waitForEvent(
                type: eventType, name: name, filter: filter, matchKey: try reader.string("match_key"), timeout: try wait("timeout"),
                next: try next(), timeoutNext: try next("timeout_next"))
        case "branch":
            try reader.rejectUnknownKeys(allowed: ["id", "type", "condition", "then", "else"])
            guard let value = reader.object["condition"], !value.isNull else {
                throw DefinitionError(pointer: reader.path("condition"), message: "is required")
            }
            step = .branch(
                try Predicate.parse(value, at: reader.path("condition"), placement: .journey), then: try next("then"),
                otherwise: try next("else"))
        case "split":
            try reader.rejectUnknownKeys(allowed: ["id", "type", "paths"])
            guard let values = try reader.array("paths"), values.count >= 2 else {
                throw DefinitionError(pointer: reader.path("paths"), message: "needs at least two paths ({\"percent\": 50, \"next\": …})")
            }
            var paths: [SplitPath] = []
            for (index, value) in values.enumerated() {
                let pathReader = try DefinitionReader(value, at: reader.path("paths") + "/\(index)", what: "a split path")
                try pathReader.rejectUnknownKeys(allowed: ["percent", "next"])
                guard let percent = try pathReader.number("percent"), percent > 0, percent <= 100 else {
                    throw DefinitionError(pointer: pathReader.path("percent"), message: "is required: a share above 0 and at most 100")
                }
                guard let target = try pathReader.string("next"), !target.isEmpty else {
                    throw DefinitionError(pointer: pathReader.path("next"), message: "is required")
                }
                paths.append(SplitPath(percent: percent, next: target))
            }
            let total = paths.reduce(0) { $0 + $1.percent }
            guard abs(total - 100) < 1e-9 else {
                throw DefinitionError(pointer: reader.path("paths"), message: "percentages add up to \(total), not 100")
            }
            step = .split(paths)
        case "update":
            try reader.rejectUnknownKeys(allowed: ["id", "type", "set", "unset", "add_tags", "remove_tags", "lifecycle_stage", "next"])
            var set: [String: JSONValue] = [:]
            if let value = reader.object["set"], !value.isNull {
                guard case .object(let object) = value, !object.isEmpty else {
                    throw DefinitionError(pointer: reader.path("set"), message: "must be a non-empty object of trait values")
                }
                set = object
            }
            if let stage = try reader.string("lifecycle_stage") { set["lifecycle_stage"] = .string(stage) }
            func strings(_ key: String) throws(DefinitionError) -> [String] {
                var result: [String] = []
                for (index, item) in (try reader.array(key) ?? []).enumerated() {
                    guard case .string(let text) = item, !text.isEmpty else {
                        throw DefinitionError(pointer: reader.path(key) + "/\(index)", message: "must be a non-empty string")
                    }
                    result.append(text)
                }
                return result
            }
            let unset = try strings("unset")
            let addTags = try strings("add_tags")
            let removeTags = try strings("remove_tags")
            guard !set.isEmpty || !unset.isEmpty || !addTags.isEmpty || !removeTags.isEmpty else {
                throw DefinitionError(pointer: pointer, message: "an update needs set, unset, add_tags, remove_tags or lifecycle_stage")
            }
            step = .update(set: set, unset: unset, addTags: addTags, removeTags: removeTags, next: try next())
        case "score":
            try reader.rejectUnknownKeys(allowed: ["id", "type", "model", "points", "next"])
            guard let points = try reader.number("points"), points != 0 else {
                throw DefinitionError(pointer: reader.path("points"), message: "is required: points to add (negative to subtract), not 0")
            }
            step = .score(model: try reader.requiredString("model"), points: points, next: try next())
        case "enroll":
            try reader.rejectUnknownKeys(allowed: ["id", "type", "journey", "next"])
            step = .enroll(journey: try reader.requiredString("journey"), next: try next())
        default:
            try reader.rejectUnknownKeys(allowed: ["id", "type"])
            step = .exit
        }
        return Node(id: id, step: step)
    }

    /// `"09:30"` as minutes after midnight.
    static func parseTimeOfDay(_ text: String, at pointer: String) throws(DefinitionError) -> Int {
        let parts = text.split(separator: ":")
        guard parts.count == 2, parts[0].count <= 2, parts[1].count == 2, let hour = Int(parts[0]), let minute = Int(parts[1]),
            (0..<24).contains(hour), (0..<60).contains(minute)
        else {
            throw DefinitionError(pointer: pointer, message: "'\(text)' is not a time of day such as \"09:00\" or \"21:30\"")
        }
        return hour * 60 + minute
    }

    /// Every node id referenced exists, every node is reachable from the start, and no cycle
    /// can run without waiting.
    func checkGraph(positions: [String: Int]) throws(DefinitionError) {
        for (index, node) in nodes.enumerated() {
            for target in node.step.successors where positions[target] == nil {
                let key: String
                switch node.step {
                case .branch(_, let then, _): key = target == then ? "then" : "else"
                case .waitForEvent(_, _, _, _, _, let next, _): key = target == next ? "next" : "timeout_next"
                case .split(let paths): key = "paths/\(paths.firstIndex { $0.next == target }!)/next"
                default: key = "next"
                }
                throw DefinitionError(pointer: "/nodes/\(index)/\(key)", message: "no node has the id '\(target)' (a dead end)")
            }
        }
        var reachable: Set<String> = [start]
        var stack = [start]
        while let id = stack.popLast() {
            for target in nodes[positions[id]!].step.successors where reachable.insert(target).inserted { stack.append(target) }
        }
        for (index, node) in nodes.enumerated() where !reachable.contains(node.id) {
            throw DefinitionError(pointer: "/nodes/\(index)", message: "step '\(node.id)' cannot be reached from the start '\(start)'")
        }
        // A cycle through steps that never wait would spin forever within one event.
        var state: [String: Int] = [:]  // 1: on the current path, 2: done
        func visit(_ id: String, path: [String]) throws(DefinitionError) {
            let node = nodes[positions[id]!]
            if node.step.waits { return }
            if state[id] == 2 { return }
            if state[id] == 1 {
                let cycle = path[(path.firstIndex(of: id) ?? 0)...] + [id]
                throw DefinitionError(
                    pointer: "/nodes/\(positions[id]!)",
                    message: "the steps \(cycle.joined(separator: " → ")) form a cycle without a wait")
            }
            state[id] = 1
            for target in node.step.successors { try visit(target, path: path + [id]) }
            state[id] = 2
        }
        for node in nodes { try visit(node.id, path: []) }
    }
}

extension JourneyDefinition {
    /// Templates its send steps name that it does not define itself: the tenant's shared ones.
    public var sharedTemplateIds: Set<String> {
        Set(nodes.compactMap { node in
            if case .send(let template, _) = node.step, templates[template] == nil { return template }
            return nil
        })
    }
}

/// A message template of its own (kind `template`), which any journey's send step can name.
/// Journeys compile it in; changing it changes what their next sends render.
public struct TemplateDefinition: Sendable, Hashable {
    public var id: String
    public var name: String
    public var message: JourneyDefinition.Message
    public var source: JSONValue

    /// `{"id", "name"?, "channel", …the channel's fields}`: `subject`/`body`/`to` for email and so on.
    public static func parse(_ json: JSONValue) throws(DefinitionError) -> TemplateDefinition {
        let reader = try DefinitionReader(json, at: "", what: "a template")
        let id = try reader.identifier("id")
        let name = try reader.string("name") ?? id
        var rest = reader.object
        rest["id"] = nil
        rest["name"] = nil
        let message = try JourneyDefinition.parseMessage(.object(rest), at: "")
        return TemplateDefinition(id: id, name: name, message: message, source: json)
    }
}
