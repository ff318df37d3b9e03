import Testing
@testable import KairosCore

/// `traitsVersion` lets the engine skip re-reading traits after commands that left them alone
/// (the email index): it must move on every change and only then.
@Suite struct TraitsVersionTests {
    @Test func movesWhenTraitsChangeAndOnlyThen() throws {
        let fixture = try Fixture()
        var state = ContactState(id: 1, userId: "u")
        var seen = state.traitsVersion
        func moved() -> Bool {
            defer { seen = state.traitsVersion }
            return state.traitsVersion != seen
        }

        _ = fixture.apply(.identify(userId: "u", traits: ["email": "a@example.com", "plan": "pro"], at: t0), to: &state)
        #expect(moved())
        _ = fixture.apply(.track("Signed Up", userId: "u", at: t0 + .seconds(1)), to: &state)
        #expect(!moved())
        _ = fixture.apply(.identify(userId: "u", traits: ["email": "a@example.com"], at: t0 + .seconds(2)), to: &state)
        #expect(!moved(), "the same value again is no change")
        _ = fixture.apply(.identify(userId: "u", traits: ["email": .null], at: t0 + .seconds(3)), to: &state)
        #expect(moved(), "a trait removed")
        #expect(state.traits["email"] == nil)

        // A merge brings the other profile's traits.
        var anonymous = ContactState(id: 2, anonymousId: "a")
        _ = fixture.apply(.identify(userId: nil, anonymousId: "a", traits: ["email": "b@example.com"], at: t0), to: &anonymous)
        var effects: [Effect] = []
        state.absorb(anonymous, context: EvaluationContext(now: t0 + .seconds(4), definitions: fixture.definitions), effects: &effects)
        #expect(moved())
        #expect(state.traits["email"] == "b@example.com")

        // A profile that hands itself over is left empty: its traits are gone.
        _ = state.surrender(into: 3, definitions: fixture.definitions, now: t0 + .seconds(5), effects: &effects)
        #expect(moved())
        #expect(state.traits.isEmpty)
    }
}
