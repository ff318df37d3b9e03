import Foundation
import KairosCore
import KairosEngine

/// The benchmark tenant: 20 event names, 10 scoring rules, 50 segments of which 10
/// use time windows, and contacts with 10 traits.
public enum Workload {
    public static let tenant = "bench"
    public static let start = Timestamp(iso8601: "2026-03-02T00:00:00Z")!
    public static let eventNames = (0..<20).map { "Event \($0)" }
    public static let plans = ["free", "trial", "pro", "team", "enterprise"]
    public static let countries = ["FR", "DE", "US", "GB", "ES", "IT", "NL", "SE"]

    public static let models: [String] = [
        """
        {"id": "engagement", "halfLifeDays": 30, "limit": 500,
         "groups": [{"id": "web", "limit": 200}],
         "rules": [
           {"id": "r0", "group": "web", "points": 1, "event": {"type": "page"}, "cap": {"times": 20, "per": "day"}},
           {"id": "r1", "group": "web", "points": 15, "event": {"type": "page", "where": {"property": "path", "op": "starts_with", "value": "/pricing"}}, "cap": {"times": 3, "per": "day"}},
           {"id": "r2", "points": 10, "event": "Event 1", "cap": {"times": 5, "per": "day"}},
           {"id": "r3", "points": 25, "event": "Event 2"},
           {"id": "r4", "points": -20, "event": "Event 3"},
           {"id": "r5", "points": 5, "event": {"event": "Event 4", "where": {"property": "plan", "op": "eq", "value": "pro"}}},
           {"id": "r6", "points": 50, "event": "Event 5", "cap": {"times": 1, "per": "week"}}
         ],
         "grades": [{"grade": "A", "min": 100}, {"grade": "B", "min": 40}, {"grade": "C"}],
         "lifecycle": [{"stage": "MQL", "min": 80}, {"stage": "SQL", "min": 200}]}
        """,
        """
        {"id": "fit", "rules": [
           {"id": "f0", "points": 25, "trait": {"trait": "company_size", "op": "gt", "value": 500}},
           {"id": "f1", "points": -10, "trait": {"trait": "email", "op": "ends_with", "value": ["@gmail.com", "@yahoo.com"]}},
           {"id": "f2", "points": 20, "trait": {"trait": "title", "op": "contains", "value": ["VP", "Director", "CTO"]}}
         ],
         "grades": [{"grade": "A", "min": 40}, {"grade": "B", "min": 20}, {"grade": "C"}]}
        """,
    ]

    public static var segments: [String] {
        var result: [String] = []
        for (index, plan) in plans.enumerated() {
            result.append(#"{"id": "plan-\#(index)", "condition": {"trait": "plan", "op": "eq", "value": "\#(plan)"}}"#)
        }
        for (index, country) in countries.enumerated() {
            result.append(#"{"id": "country-\#(index)", "condition": {"trait": "country", "op": "eq", "value": "\#(country)"}}"#)
        }
        for size in [10, 50, 200, 500, 1000, 5000, 10000] {
            result.append(#"{"id": "size-\#(size)", "condition": {"trait": "company_size", "op": "gte", "value": \#(size)}}"#)
        }
        // 10 segments with time windows.
        for index in 0..<10 {
            result.append(
                #"{"id": "window-\#(index)", "condition": {"event": "Event \#(index)", "count": {"op": "gte", "value": \#(index % 3 + 1)}, "within": {"days": \#(index % 4 * 7 + 1)}}}"#)
        }
        // 10 on scores, grades and stages.
        for threshold in [10, 30, 60, 100, 150] {
            result.append(#"{"id": "score-\#(threshold)", "condition": {"score": "engagement", "op": "gte", "value": \#(threshold)}}"#)
        }
        result.append(#"{"id": "grade-a", "condition": {"grade": "engagement", "op": "eq", "value": "A"}}"#)
        result.append(#"{"id": "fit-a", "condition": {"grade": "fit", "op": "eq", "value": "A"}}"#)
        result.append(#"{"id": "mql", "condition": {"lifecycle": "engagement", "op": "eq", "value": "MQL"}}"#)
        result.append(#"{"id": "sql", "condition": {"lifecycle": "engagement", "op": "eq", "value": "SQL"}}"#)
        result.append(#"{"id": "fit-b", "condition": {"grade": "fit", "op": "eq", "value": "B"}}"#)
        // 5 lifetime counts, 5 combinations.
        for index in 10..<15 {
            result.append(#"{"id": "ever-\#(index)", "condition": {"event": "Event \#(index)", "count": {"op": "gte", "value": 3}}}"#)
        }
        for index in 0..<5 {
            result.append(
                #"{"id": "combo-\#(index)", "condition": {"all": [{"segment": "plan-\#(index)"}, {"segment": "window-\#(index)"}, {"trait": "active", "op": "is_true"}]}}"#)
        }
        return result
    }

    /// Installs the benchmark tenant's definitions (into `engine`, or a new in-memory engine).
    public static func makeEngine(_ existing: Engine? = nil) async throws -> Engine {
        let engine = existing ?? Engine()
        try await engine.createTenant(id: tenant)
        for model in models { try await engine.defineScoringModel(tenant: tenant, try JSONValue.parse(model), now: start) }
        for segment in segments { try await engine.defineSegment(tenant: tenant, try JSONValue.parse(segment), now: start) }
        return engine
    }

    /// Creates `contacts` identified contacts (10 traits each) in the benchmark tenant.
    public static func populate(_ engine: Engine, contacts: Int) async throws {
        for start in stride(from: 0, to: contacts, by: 2000) {
            let events = (start..<min(start + 2000, contacts)).map { identify(contact: $0, at: Workload.start) }
            _ = try await engine.ingest(tenant: tenant, events: events, now: Workload.start)
        }
    }

    /// Ten traits for one contact.
    public static func identify(contact: Int, at time: Timestamp) -> Event {
        .identify(
            userId: "user-\(contact)",
            traits: [
                "email": .string("person\(contact)@\(contact % 3 == 0 ? "gmail.com" : "corp\(contact % 50).com")"),
                "plan": .string(plans[contact % plans.count]), "country": .string(countries[contact % countries.count]),
                "company_size": .number(Double([5, 40, 150, 700, 3000, 20000][contact % 6])),
                "title": .string(["Engineer", "VP Sales", "CTO", "Analyst"][contact % 4]), "active": .bool(contact % 2 == 0),
                "first_name": "Ana", "last_name": "Lopez", "city": "Lyon", "signup_source": "ads",
            ], at: time)
    }

    /// Three placements for the decide benchmark: targeting rules over segments, scores and
    /// the request with personalized templates; an experiment; an optimizer.
    public static let placements: [String] = [
        """
        {"id": "hero", "variants": [
           {"id": "generic", "template": "<h1>Welcome back, {{first_name}} from {{city}}</h1>"},
           {"id": "enterprise", "template": "<h1>{{first_name}}, {{company_size}} people deserve better tooling</h1><p>{{#segments.mql}}Talk to sales{{/segments.mql}}</p>"},
           {"id": "google", "template": "<h1>Hi {{first_name}}, welcome from {{context.utm.campaign}}</h1>"}],
         "rules": [
           {"id": "ent", "when": {"all": [{"segment": "size-1000"}, {"segment": "plan-4"}]}, "variant": "enterprise"},
           {"id": "hot", "when": {"score": "engagement", "op": "gte", "value": 400}, "variant": "enterprise"},
           {"id": "ads", "when": {"context": "utm.source", "op": "eq", "value": "google"}, "variant": "google"}],
         "default": "generic"}
        """,
        """
        {"id": "pricing-cta", "variants": [
           {"id": "a", "format": "text", "template": "Start your trial, {{first_name}}"},
           {"id": "b", "format": "text", "template": "See {{plan}} in action"}],
         "default": "a"}
        """,
        """
        {"id": "sidebar", "variants": [
           {"id": "docs", "format": "json", "template": "{\\"title\\": \\"Docs for {{title}}\\"}"},
           {"id": "webinar", "format": "json", "template": "{\\"title\\": \\"Webinar in {{country}}\\"}"},
           {"id": "case", "format": "json", "template": "{\\"title\\": \\"Case study\\"}"}],
         "optimizer": {"reward": "click", "min_exploration": 0.1}, "default": "docs"}
        """,
    ]

    public static let experiment = """
        {"id": "cta-test", "placement": "pricing-cta", "variants": ["a", "b"], "goal": "click"}
        """

    /// Adds the placements and the experiment, and gives the first `contacts` contacts ten
    /// more traits (twenty in all).
    public static func prepareDecisions(_ engine: Engine, contacts: Int) async throws {
        for placement in placements { try await engine.definePlacement(tenant: tenant, try JSONValue.parse(placement), now: start) }
        try await engine.defineExperiment(tenant: tenant, try JSONValue.parse(experiment), now: start)
        for first in stride(from: 0, to: contacts, by: 2000) {
            let events: [Event] = (first..<min(first + 2000, contacts)).map { contact in
                var traits: [String: JSONValue] = [:]
                for index in 0..<10 { traits["extra_\(index)"] = .string("value \(contact % (index + 2))") }
                return .identify(userId: "user-\(contact)", traits: traits, at: start)
            }
            _ = try await engine.ingest(tenant: tenant, events: events, now: start)
        }
    }

    /// A stream of events over `contacts` contacts with Zipf popularity.
    public struct Stream {
        let contacts: Int
        var random: SeededRandom
        let popularity: ZipfDistribution

        /// Whether each event carries a Segment `messageId` (36 characters, as SDKs send), for
        /// the deduplication's share of the cost.
        let messageIds: Bool

        public init(contacts: Int, seed: UInt64, messageIds: Bool = false) {
            self.contacts = contacts
            self.random = SeededRandom(seed: seed)
            self.popularity = ZipfDistribution(count: contacts)
            self.messageIds = messageIds
        }

        public mutating func batch(size: Int, at time: Timestamp) -> [Event] {
            guard messageIds else { return events(size: size, at: time) }
            var events = events(size: size, at: time)
            for index in events.indices { events[index].messageId = nextMessageId() }
            return events
        }

        /// A UUID-shaped id from the stream's generator: the same ids on every run.
        private mutating func nextMessageId() -> String {
            let high = random.next()
            let low = random.next()
            func hex(_ value: UInt64, _ digits: Int) -> String {
                let text = String(value, radix: 16)
                return String(repeating: "0", count: max(0, digits - text.count)) + text.suffix(digits)
            }
            return "\(hex(high >> 32, 8))-\(hex((high >> 16) & 0xffff, 4))-\(hex(high & 0xffff, 4))-\(hex(low >> 48, 4))-\(hex(low & 0xffff_ffff_ffff, 12))"
        }

        private mutating func events(size: Int, at time: Timestamp) -> [Event] {
            (0..<size).map { _ in
                let contact = popularity.sample(&random)
                let userId = "user-\(contact)"
                let roll = random.next() % 100
                switch roll {
                case 0..<45:
                    let pricing = roll < 8
                    return .page(
                        pricing ? "Pricing" : "Docs", userId: userId,
                        properties: ["path": pricing ? "/pricing" : "/docs/start", "title": "Page"], at: time)
                case 45..<98:
                    let name = Workload.eventNames[Int(random.next() % 20)]
                    return .track(name, userId: userId, properties: ["plan": random.next() % 2 == 0 ? "pro" : "free", "value": 12.5], at: time)
                default:
                    return Workload.identify(contact: contact, at: time)
                }
            }
        }
    }

    /// Resident memory of this process in bytes, after returning freed heap pages to the
    /// system (so memory that is free but still mapped is not counted as in use).
    public static func residentBytes() -> Int {
        _ = mallocTrim(0)
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}

/// glibc's malloc_trim (not exported by the Glibc module): hands free heap pages back.
@_silgen_name("malloc_trim") func mallocTrim(_ pad: Int) -> Int32

// MARK: - Journeys

extension Workload {
    /// A journey that waits `hours`, sends an email and ends; entered on `trigger`.
    public static func waitingJourney(id: String, trigger: String, hours: Int = 1) -> String {
        """
        {"id": "\(id)", "trigger": {"event": "\(trigger)"}, "re_entry": {"policy": "any_time"},
         "templates": {"m": {"channel": "email", "subject": "Hello {{traits.first_name}}", "body": "It has been a while"}},
         "nodes": [{"id": "wait", "type": "wait", "duration": {"hours": \(hours)}, "next": "send"},
                   {"id": "send", "type": "send", "template": "m", "next": "end"},
                   {"id": "end", "type": "exit"}]}
        """
    }

    /// Defines and activates `count` journeys, each triggered by one of `triggerNames` event
    /// names that the ingest stream never sends (`Trigger 0` …).
    public static func addJourneys(_ engine: Engine, count: Int, triggerNames: Int) async throws {
        for index in 0..<count {
            let json = try JSONValue.parse(waitingJourney(id: "journey-\(index)", trigger: "Trigger \(index % triggerNames)"))
            let receipt = try await engine.defineJourney(tenant: tenant, json, now: start)
            try await engine.setJourneyStatus(tenant: tenant, journey: receipt.id, .active, now: start)
        }
    }
}
