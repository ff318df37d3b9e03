import Testing
@testable import KairosCore

@Suite struct PredicateTests {
    func check(_ condition: String, traits: [String: JSONValue]) throws -> Bool {
        let fixture = try Fixture(segments: [#"{"id": "s", "condition": "# + condition + "}"])
        var state = ContactState(id: 1, userId: "u")
        _ = fixture.apply(Event.identify(userId: "u", traits: traits, at: t0), to: &state)
        return fixture.isMember(state, "s")
    }

    @Test func everyComparisonOperator() throws {
        let traits: [String: JSONValue] = [
            "plan": "pro", "seats": 12, "seatsText": "12", "email": "Ana@Example.com", "tags": ["vip", "beta"],
            "active": true, "renewal": "2026-06-01T00:00:00Z", "address": ["city": "Lyon"],
        ]
        let cases: [(String, Bool)] = [
            (#"{"trait": "plan", "op": "eq", "value": "pro"}"#, true),
            (#"{"trait": "plan", "op": "eq", "value": "free"}"#, false),
            (#"{"trait": "plan", "op": "neq", "value": "free"}"#, true),
            (#"{"trait": "missing", "op": "neq", "value": "free"}"#, true),
            (#"{"trait": "plan", "op": "in", "value": ["team", "pro"]}"#, true),
            (#"{"trait": "plan", "op": "in", "value": ["team"]}"#, false),
            (#"{"trait": "email", "op": "contains", "value": "example"}"#, true),
            (#"{"trait": "tags", "op": "contains", "value": "vip"}"#, true),
            (#"{"trait": "tags", "op": "contains", "value": "gold"}"#, false),
            (#"{"trait": "email", "op": "starts_with", "value": "ana@"}"#, true),
            (#"{"trait": "email", "op": "ends_with", "value": ["@gmail.com", "@example.com"]}"#, true),
            (#"{"trait": "seats", "op": "gt", "value": 10}"#, true),
            (#"{"trait": "seats", "op": "gt", "value": 12}"#, false),
            (#"{"trait": "seats", "op": "gte", "value": 12}"#, true),
            (#"{"trait": "seatsText", "op": "lt", "value": 13}"#, true),
            (#"{"trait": "seats", "op": "lte", "value": 11}"#, false),
            (#"{"trait": "seats", "op": "eq", "value": 12}"#, true),
            (#"{"trait": "seatsText", "op": "eq", "value": 12}"#, true),
            (#"{"trait": "renewal", "op": "lt", "value": "2026-07-01T00:00:00Z"}"#, true),
            (#"{"trait": "renewal", "op": "gt", "value": "2026-07-01T00:00:00Z"}"#, false),
            (#"{"trait": "plan", "op": "exists"}"#, true),
            (#"{"trait": "missing", "op": "exists"}"#, false),
            (#"{"trait": "missing", "op": "exists", "value": false}"#, true),
            (#"{"trait": "active", "op": "is_true"}"#, true),
            (#"{"trait": "plan", "op": "is_true"}"#, false),
            (#"{"trait": "address.city", "op": "eq", "value": "Lyon"}"#, true),
            (#"{"all": [{"trait": "plan", "op": "eq", "value": "pro"}, {"trait": "seats", "op": "gt", "value": 100}]}"#, false),
            (#"{"any": [{"trait": "plan", "op": "eq", "value": "x"}, {"trait": "seats", "op": "gt", "value": 10}]}"#, true),
            (#"{"not": {"trait": "plan", "op": "eq", "value": "pro"}}"#, false),
        ]
        for (condition, expected) in cases {
            #expect(try check(condition, traits: traits) == expected, "\(condition)")
        }
    }

    /// Text operators ignore case: ASCII byte by byte, other text by Unicode rules.
    @Test func textOperatorsIgnoreCase() {
        let contains = ComparisonOperator.contains, starts = ComparisonOperator.startsWith, ends = ComparisonOperator.endsWith
        let cases: [(ComparisonOperator, String, String, Bool)] = [
            (contains, "VP Marketing", "vp", true), (contains, "VP Marketing", "MARKETING", true), (contains, "VP Marketing", "sales", false),
            (contains, "ab", "abc", false), (contains, "abc", "ABC", true), (contains, "a@b.com", "@B.", true), (contains, "x", "", true),
            (starts, "Ana@Example.com", "ANA@", true), (starts, "Ana@Example.com", "na@", false), (starts, "a", "ab", false),
            (ends, "Ana@Example.com", "@EXAMPLE.COM", true), (ends, "Ana@Example.com", "@example.co", false),
            (contains, "Directeur Général", "GÉNÉRAL", true), (starts, "Émile", "émi", true), (ends, "Straße", "STRASSE", false),
            (contains, "[ab]", "[AB]", true), (contains, "@Z", "`z", false),
        ]
        for (operation, text, pattern, expected) in cases {
            #expect(operation.compare(.string(text), with: .string(pattern)) == expected, "\(text) \(operation) \(pattern)")
        }
    }

    @Test func rejectsBadDefinitionsWithPointers() {
        let cases: [(String, String, String)] = [
            (#"{"id": "s", "condition": {"trait": "plan", "op": "equals", "value": 1}}"#, "/condition/op", "unknown operator 'equals'"),
            (#"{"id": "s", "condition": {"all": [{"trait": "a", "op": "eq", "value": 1}, {"tratis": "b"}]}}"#, "/condition/all/1", "exactly one of"),
            (#"{"id": "s", "condition": {"trait": "a", "op": "in", "value": 3}}"#, "/condition/value", "non-empty array"),
            (#"{"id": "s", "condition": {"trait": "a", "op": "gt", "value": "big"}}"#, "/condition/value", "number or an ISO-8601 date"),
            (#"{"id": "s", "condition": {"event": "E", "within": {"days": -1}}}"#, "/condition/within/days", "must not be negative"),
            (#"{"id": "s", "condition": {"event": "E", "count": {"op": "gte", "value": 2.5}}}"#, "/condition/count/value", "whole number"),
            (#"{"id": "s", "condition": {"event": "E", "where": {"trait": "x", "op": "exists"}}}"#, "/condition/where/trait", "not allowed here"),
            (#"{"id": "s", "condition": {"property": "x", "op": "exists"}}"#, "/condition/property", "not allowed here"),
            (#"{"id": "s", "condition": {"trait": "a", "op": "eq", "value": 1}, "colour": "red"}"#, "/colour", "unknown field 'colour'"),
            (#"{"id": "bad id!", "condition": {"trait": "a", "op": "exists"}}"#, "/id", "letters, digits"),
            (#"{"id": "s"}"#, "/condition", "is required"),
            (#"{"id": "s", "condition": {"event": "E", "count": {"op": "gte", "value": 5000}, "within": {"days": 1}}}"#, "/condition/count", "can go up to"),
        ]
        for (text, pointer, message) in cases {
            do {
                _ = try SegmentDefinition.parse(json(text))
                Issue.record("accepted \(text)")
            } catch {
                #expect(error.pointer == pointer, "\(text): \(error)")
                #expect(error.message.contains(message), "\(text): \(error)")
            }
        }
    }

    @Test func crossReferencesAreChecked() throws {
        func compileError(_ segments: [String], models: [String] = []) -> TenantDefinitions.CompileError? {
            do {
                _ = try Fixture(models: models, segments: segments)
                return nil
            } catch let error as TenantDefinitions.CompileError {
                return error
            } catch {
                return nil
            }
        }
        let unknownSegment = compileError([#"{"id": "a", "condition": {"all": [{"trait": "x", "op": "exists"}, {"segment": "ghost"}]}}"#])
        #expect(unknownSegment?.owner == .segment("a"))
        #expect(unknownSegment?.error.pointer == "/condition/all/1/segment")
        #expect(unknownSegment?.error.message == "unknown segment 'ghost'")

        let cycle = compileError([
            #"{"id": "a", "condition": {"segment": "b"}}"#, #"{"id": "b", "condition": {"segment": "c"}}"#,
            #"{"id": "c", "condition": {"segment": "a"}}"#,
        ])
        #expect(cycle?.error.message.contains("cycle: a → b → c → a") == true)

        let unknownModel = compileError([#"{"id": "a", "condition": {"score": "nope", "op": "gt", "value": 1}}"#])
        #expect(unknownModel?.error.message == "unknown scoring model 'nope'")
        #expect(unknownModel?.error.pointer == "/condition/score")
    }

    @Test func segmentsUsingSegmentsFollowTheirDependencies() throws {
        let fixture = try Fixture(segments: [
            #"{"id": "both", "condition": {"all": [{"segment": "pro"}, {"segment": "big"}]}}"#,
            #"{"id": "pro", "condition": {"trait": "plan", "op": "eq", "value": "pro"}}"#,
            #"{"id": "big", "condition": {"trait": "seats", "op": "gte", "value": 10}}"#,
        ])
        var state = ContactState(id: 1, userId: "u")
        var effects = fixture.apply(Event.identify(userId: "u", traits: ["plan": "pro"], at: t0), to: &state)
        #expect(effects.compactMap(\.kind.segmentEntered) == ["pro"])
        effects = fixture.apply(Event.identify(userId: "u", traits: ["seats": 20], at: t0 + .minutes(1)), to: &state)
        #expect(Set(effects.compactMap(\.kind.segmentEntered)) == ["big", "both"])
        effects = fixture.apply(Event.identify(userId: "u", traits: ["plan": .null], at: t0 + .minutes(2)), to: &state)
        #expect(Set(effects.compactMap(\.kind.segmentLeft)) == ["pro", "both"])
        #expect(state.traits["plan"] == nil)
    }
}

/// The compiled event filter answers as the predicate it was made from, for every kind of node.
@Suite struct EventFilterTests {
    @Test func answersAsThePredicateDoesForEveryKindOfNode() {
        let leaves: [Predicate] = [
            .field(.property, path: "plan", op: .eq, value: "pro"),
            .field(.property, path: "value", op: .gt, value: 10),
            .field(.property, path: "address.city", op: .eq, value: "Lyon"),
            .field(.context, path: "locale", op: .startsWith, value: "fr"),
            .field(.property, path: "missing", op: .exists, value: false),
            .field(.trait, path: "plan", op: .neq, value: "pro"),
            .field(.account, path: "plan", op: .eq, value: "pro"),
            .score(model: "fit", op: .gt, value: 1),
            .grade(model: "fit", op: .neq, value: "A"),
            .grade(model: "fit", op: .eq, value: "A"),
            .lifecycle(model: "fit", op: .exists, value: false),
            .segment(id: "s", symbol: 3),
            .event(EventCondition(type: .track, name: "x", filter: nil, countOperator: .lt, count: 1, window: nil)),
            .event(EventCondition(type: .track, name: "x", filter: nil, countOperator: .gte, count: 1, window: nil)),
            .firstSeen(.within(.hours(1))),
            .lastSeen(.before(Timestamp(milliseconds: 5))),
        ]
        var predicates = leaves
        for (index, leaf) in leaves.enumerated() {
            let other = leaves[(index * 7 + 3) % leaves.count]
            predicates += [.not(leaf), .all([leaf, other]), .any([leaf, other]), .all([]), .any([]), .not(.any([leaf, .not(other)]))]
        }
        let events: [Event] = [
            .track("x", userId: "u", properties: ["plan": "pro", "value": 12, "address": ["city": "Lyon"]], at: t0),
            .track("x", userId: "u", properties: ["plan": "free", "value": 3, "missing": "here"], at: t0),
            Event(type: .page, userId: "u", context: ["locale": "fr-FR"], time: t0),
            Event(type: .identify, userId: "u", time: t0),
        ]
        var differences: [String] = []
        var matched = 0
        for predicate in predicates {
            let filter = EventFilter(predicate)
            for (number, event) in events.enumerated() {
                let (expected, compiled) = withUnsafePointer(to: event) { (predicate.matches($0), filter.matches($0)) }
                if expected != compiled { differences.append("\(predicate.canonicalText) on event \(number)") }
                if compiled { matched += 1 }
            }
        }
        #expect(differences.isEmpty)
        // Both answers occur, so the comparison says something.
        #expect(matched > 0 && matched < predicates.count * events.count)
    }
}
