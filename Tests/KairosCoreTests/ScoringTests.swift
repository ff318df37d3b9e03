import Foundation
import Testing
@testable import KairosCore

@Suite struct ScoringTests {
    static let engagement = """
        {"id": "engagement", "halfLifeDays": 10, "limit": 150, "minimum": -20,
         "groups": [{"id": "web", "limit": 50}],
         "rules": [
           {"id": "pricing", "group": "web", "points": 20, "event": {"type": "page", "where": {"property": "path", "op": "starts_with", "value": "/pricing"}},
            "cap": {"times": 3, "per": "day"}},
           {"id": "demo", "points": 100, "event": "Demo Requested"},
           {"id": "unsubscribe", "points": -40, "event": "Unsubscribed"}
         ],
         "grades": [{"grade": "A", "min": 80}, {"grade": "B", "min": 40}, {"grade": "C"}],
         "lifecycle": [{"stage": "MQL", "min": 80}, {"stage": "SQL", "min": 140}]}
        """

    func pricing(_ time: Timestamp) -> Event {
        .page("Pricing", userId: "u", properties: ["path": "/pricing/teams"], at: time)
    }

    @Test func capsPerDayAndGroupLimit() throws {
        let fixture = try Fixture(models: [Self.engagement])
        var state = ContactState(id: 1, userId: "u")
        for _ in 0..<5 { _ = fixture.apply(pricing(t0), to: &state) }
        // Capped at 3 a day, then the group limit (50) cuts the third award to 10.
        let sameDay = t0
        #expect(fixture.score(state, "engagement", at: sameDay) == 50)
        #expect(state.scoreHistory.map(\.points) == [20, 20, 10])
        // A page that does not match the rule's filter earns nothing.
        _ = fixture.apply(.page("Home", userId: "u", properties: ["path": "/"], at: sameDay), to: &state)
        #expect(state.scoreHistory.count == 3)
        // The next day the cap resets; the group has decayed a little, so a little fits again.
        _ = fixture.apply(pricing(t0 + .days(1)), to: &state)
        let award = try #require(state.scoreHistory.last?.points)
        #expect(abs(Double(award) - 50 * (1 - pow(2, -0.1))) < 0.001)
    }

    @Test func negativePointsStopAtTheMinimum() throws {
        let fixture = try Fixture(models: [Self.engagement])
        var state = ContactState(id: 1, userId: "u")
        _ = fixture.apply(.track("Unsubscribed", userId: "u", at: t0), to: &state)
        #expect(fixture.score(state, "engagement", at: t0) == -20)
        _ = fixture.apply(.track("Unsubscribed", userId: "u", at: t0), to: &state)
        #expect(fixture.score(state, "engagement", at: t0) == -20)
        #expect(state.scoreHistory.map(\.points) == [-20])
    }

    @Test func modelLimitAndBreakdownAddUp() throws {
        let fixture = try Fixture(models: [Self.engagement])
        var state = ContactState(id: 1, userId: "u")
        _ = fixture.apply(.track("Demo Requested", userId: "u", at: t0), to: &state)
        _ = fixture.apply(.track("Demo Requested", userId: "u", at: t0), to: &state)
        #expect(fixture.score(state, "engagement", at: t0) == 150)
        #expect(state.scoreHistory.map(\.points) == [100, 50])
        let view = state.scores[0]
        #expect(view.contributions.map(\.points).reduce(0, +) == 150)
    }

    @Test func exponentialDecayWithHalfLife() throws {
        let fixture = try Fixture(models: [Self.engagement])
        var state = ContactState(id: 1, userId: "u")
        _ = fixture.apply(.track("Demo Requested", userId: "u", at: t0), to: &state)
        #expect(abs(fixture.score(state, "engagement", at: t0 + .days(10)) - 50) < 1e-9)
        #expect(abs(fixture.score(state, "engagement", at: t0 + .days(20)) - 25) < 1e-9)
        // New points add to the decayed amount.
        _ = fixture.apply(.track("Demo Requested", userId: "u", at: t0 + .days(10)), to: &state)
        #expect(abs(fixture.score(state, "engagement", at: t0 + .days(10)) - 150) < 1e-9)
        #expect(abs(fixture.score(state, "engagement", at: t0 + .days(20)) - 75) < 1e-9)
    }

    @Test func lateEventsArriveAlreadyDecayed() throws {
        let fixture = try Fixture(models: [Self.engagement])
        var state = ContactState(id: 1, userId: "u")
        // Imported 10 days after it happened: worth half.
        _ = fixture.apply(.track("Demo Requested", userId: "u", at: t0), to: &state, now: t0 + .days(10))
        #expect(abs(fixture.score(state, "engagement", at: t0 + .days(10)) - 50) < 1e-9)
    }

    @Test func lifecycleCrossesUpOnEventsAndDownWithDecay() throws {
        let fixture = try Fixture(models: [Self.engagement])
        var state = ContactState(id: 1, userId: "u")
        let effects = fixture.apply(.track("Demo Requested", userId: "u", at: t0), to: &state)
        #expect(effects.contains { $0.kind == .lifecycleChanged(model: "engagement", from: nil, to: "MQL") })
        #expect(effects.contains { $0.kind == .gradeChanged(model: "engagement", from: nil, to: "A") })
        // 100 points decay below 80 after 10·log2(100/80) ≈ 3.22 days: the contact asks to be woken then.
        let expected = t0.milliseconds + Int64((10 * 86_400_000.0 * log2(100.0 / 80.0)).rounded(.up)) + 1
        let wake = try #require(state.nextWake)
        #expect(abs(wake.milliseconds - expected) <= 1)
        #expect(fixture.wake(&state, at: wake - .seconds(60)).isEmpty)
        let later = fixture.wake(&state, at: wake)
        #expect(later.contains { $0.kind == .lifecycleChanged(model: "engagement", from: "MQL", to: nil) })
        #expect(later.contains { $0.kind == .gradeChanged(model: "engagement", from: "A", to: "B") })
    }

    @Test func traitRulesGiveAndTakeBack() throws {
        let fit = """
            {"id": "fit", "rules": [
              {"id": "free-mail", "points": -10, "trait": {"trait": "email", "op": "ends_with", "value": ["@gmail.com"]}},
              {"id": "big", "points": 25, "trait": {"trait": "company_size", "op": "gt", "value": 500}}
            ], "grades": [{"grade": "A", "min": 20}, {"grade": "B"}]}
            """
        let fixture = try Fixture(models: [fit])
        var state = ContactState(id: 1, userId: "u")
        _ = fixture.apply(.identify(userId: "u", traits: ["email": "a@gmail.com", "company_size": 1000], at: t0), to: &state)
        #expect(fixture.score(state, "fit", at: t0) == 15)
        _ = fixture.apply(.identify(userId: "u", traits: ["email": "a@acme.com"], at: t0 + .minutes(1)), to: &state)
        #expect(fixture.score(state, "fit", at: t0) == 25)
        _ = fixture.apply(.identify(userId: "u", traits: ["company_size": 20], at: t0 + .minutes(2)), to: &state)
        #expect(fixture.score(state, "fit", at: t0) == 0)
        #expect(state.scoreHistory.map(\.points) == [-10, 25, 10, -25])
        // An unrelated trait does not re-award.
        _ = fixture.apply(.identify(userId: "u", traits: ["name": "Ana"], at: t0 + .minutes(3)), to: &state)
        #expect(state.scoreHistory.count == 4)
    }

    @Test func matrixGrades() throws {
        let fit = #"{"id": "fit", "rules": [{"id": "big", "points": 30, "trait": {"trait": "size", "op": "gt", "value": 500}}], "grades": [{"grade": "A", "min": 25}, {"grade": "B"}]}"#
        let engagement = #"{"id": "engagement", "rules": [{"id": "demo", "points": 50, "event": "Demo"}], "grades": [{"grade": "1", "min": 40}, {"grade": "2"}], "gradeMatrix": {"rows": "fit"}}"#
        let fixture = try Fixture(
            models: [fit, engagement],
            segments: [#"{"id": "a1", "condition": {"grade": "engagement", "op": "eq", "value": "A1"}}"#])
        var state = ContactState(id: 1, userId: "u")
        _ = fixture.apply(.track("Demo", userId: "u", at: t0), to: &state)
        #expect(state.grade(model: 1, definitions: fixture.definitions, now: t0) == "B1")
        #expect(!fixture.isMember(state, "a1"))
        let effects = fixture.apply(.identify(userId: "u", traits: ["size": 900], at: t0), to: &state)
        #expect(state.grade(model: 1, definitions: fixture.definitions, now: t0) == "A1")
        #expect(effects.compactMap(\.kind.segmentEntered) == ["a1"])
    }

    @Test func rejectsBadModelsWithPointers() {
        let cases: [(String, String, String)] = [
            (#"{"id": "m", "rules": []}"#, "/rules", "at least one rule"),
            (#"{"id": "m", "rules": [{"id": "r", "event": "E"}]}"#, "/rules/0/points", "is required"),
            (#"{"id": "m", "rules": [{"id": "r", "points": 5, "event": "E", "group": "web"}]}"#, "/rules/0/group", "unknown group 'web'"),
            (#"{"id": "m", "rules": [{"id": "r", "points": 5}]}"#, "/rules/0", "exactly one of 'event' or 'trait'"),
            (#"{"id": "m", "rules": [{"id": "r", "points": 5, "event": "E", "cap": {"times": 2, "per": "fortnight"}}]}"#, "/rules/0/cap/per", "not a period"),
            (#"{"id": "m", "rules": [{"id": "r", "points": 5, "trait": {"score": "m", "op": "gt", "value": 1}}]}"#, "/rules/0/trait/score", "not allowed here"),
            (#"{"id": "m", "halfLifeDays": 0, "rules": [{"id": "r", "points": 5, "event": "E"}]}"#, "/halfLifeDays", "more than 0"),
            (#"{"id": "m", "rules": [{"id": "r", "points": 5, "event": "E"}], "lifecycle": [{"stage": "SQL", "min": 150}, {"stage": "MQL", "min": 80}]}"#, "/lifecycle/1/min", "lowest minimum to the highest"),
            (#"{"id": "m", "rules": [{"id": "r", "points": 5, "event": "E"}, {"id": "r", "points": 1, "event": "F"}]}"#, "/rules/1/id", "defined twice"),
        ]
        for (text, pointer, message) in cases {
            do {
                _ = try ScoringModel.parse(json(text))
                Issue.record("accepted \(text)")
            } catch {
                #expect(error.pointer == pointer, "\(text): \(error)")
                #expect(error.message.contains(message), "\(text): \(error)")
            }
        }
    }
}
