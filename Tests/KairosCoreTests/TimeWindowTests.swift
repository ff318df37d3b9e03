import Testing
@testable import KairosCore

@Suite struct TimeWindowTests {
    @Test func countInWindowEntersAndLapsesWithoutEvents() throws {
        let fixture = try Fixture(segments: [
            #"{"id": "pro-interest", "condition": {"event": "Pricing Viewed", "where": {"property": "plan", "op": "eq", "value": "pro"}, "count": {"op": "gte", "value": 2}, "within": {"days": 7}}}"#
        ])
        var state = ContactState(id: 1, userId: "u")
        let pro: [String: JSONValue] = ["plan": "pro"]
        _ = fixture.apply(.track("Pricing Viewed", userId: "u", properties: pro, at: t0), to: &state)
        _ = fixture.apply(.track("Pricing Viewed", userId: "u", properties: ["plan": "team"], at: t0 + .days(1)), to: &state)
        #expect(!fixture.isMember(state, "pro-interest"))
        let entered = fixture.apply(.track("Pricing Viewed", userId: "u", properties: pro, at: t0 + .days(2)), to: &state)
        #expect(entered.compactMap(\.kind.segmentEntered) == ["pro-interest"])
        // The first view drops out of the window exactly 7 days after it happened.
        #expect(state.nextWake == t0 + .days(7))
        #expect(fixture.wake(&state, at: t0 + .days(7) - .milliseconds(1)).isEmpty)
        let left = fixture.wake(&state, at: t0 + .days(7))
        #expect(left.compactMap(\.kind.segmentLeft) == ["pro-interest"])
        #expect(left.first?.time == t0 + .days(7))
        // The remaining view lapses too; then nothing is left to wake for.
        #expect(state.nextWake == t0 + .days(9))
        _ = fixture.wake(&state, at: t0 + .days(9))
        #expect(state.nextWake == nil)
    }

    @Test func hasNotPerformedEntersWhenTheWindowLapses() throws {
        let fixture = try Fixture(segments: [
            #"{"id": "quiet", "condition": {"all": [{"trait": "plan", "op": "exists"}, {"event": "Logged In", "performed": false, "within": {"days": 30}}]}}"#
        ])
        var state = ContactState(id: 1, userId: "u")
        _ = fixture.apply(.identify(userId: "u", traits: ["plan": "pro"], at: t0), to: &state)
        #expect(fixture.isMember(state, "quiet"))
        let left = fixture.apply(.track("Logged In", userId: "u", at: t0 + .days(1)), to: &state)
        #expect(left.compactMap(\.kind.segmentLeft) == ["quiet"])
        #expect(state.nextWake == t0 + .days(31))
        let entered = fixture.wake(&state, at: t0 + .days(31))
        #expect(entered.compactMap(\.kind.segmentEntered) == ["quiet"])
    }

    @Test func lastSeenAndFirstSeen() throws {
        let fixture = try Fixture(segments: [
            #"{"id": "dormant", "condition": {"last_seen": {"older_than": {"days": 30}}}}"#,
            #"{"id": "recent", "condition": {"first_seen": {"within": {"days": 3}}}}"#,
            #"{"id": "veteran", "condition": {"first_seen": {"before": "2026-01-01T00:00:00Z"}}}"#,
        ])
        var state = ContactState(id: 1, userId: "u")
        let effects = fixture.apply(.page(nil, userId: "u", at: t0), to: &state)
        #expect(effects.compactMap(\.kind.segmentEntered) == ["recent"])
        #expect(state.nextWake == t0 + .days(3))
        #expect(fixture.wake(&state, at: t0 + .days(3)).compactMap(\.kind.segmentLeft) == ["recent"])
        #expect(fixture.wake(&state, at: t0 + .days(30)).compactMap(\.kind.segmentEntered) == ["dormant"])
        #expect(fixture.apply(.page(nil, userId: "u", at: t0 + .days(31)), to: &state).compactMap(\.kind.segmentLeft) == ["dormant"])
        #expect(!fixture.isMember(state, "veteran"))
    }

    @Test func exactCountsWithLessThanAndEqual() throws {
        let fixture = try Fixture(segments: [
            #"{"id": "exactly-two", "condition": {"event": "E", "count": {"op": "eq", "value": 2}, "within": {"hours": 1}}}"#,
            #"{"id": "under-three", "condition": {"event": "E", "count": {"op": "lt", "value": 3}, "within": {"hours": 1}}}"#,
            #"{"id": "ever-three", "condition": {"event": "E", "count": {"op": "gte", "value": 3}}}"#,
        ])
        var state = ContactState(id: 1, userId: "u")
        for minute in [0, 10, 20] {
            _ = fixture.apply(.track("E", userId: "u", at: t0 + .minutes(Int64(minute))), to: &state)
            let count = minute / 10 + 1
            #expect(fixture.isMember(state, "exactly-two") == (count == 2))
            #expect(fixture.isMember(state, "under-three") == (count < 3))
            #expect(fixture.isMember(state, "ever-three") == (count >= 3))
        }
        _ = fixture.wake(&state, at: t0 + .hours(1))
        #expect(fixture.isMember(state, "exactly-two"))
        #expect(fixture.isMember(state, "under-three"))
        #expect(fixture.isMember(state, "ever-three"))
    }

    @Test func counterKeepsOnlyTheDepthItNeeds() {
        var counter = EventCounter(symbol: 1)
        for second in 0..<10 { counter.record(at: Int64(second * 1000), depth: 3) }
        #expect(counter.total == 10)
        #expect(counter.recent == [7000, 8000, 9000])
        #expect(counter.count(within: .seconds(5), now: 9000) == 3)
        #expect(counter.nextLapse(within: .seconds(5), now: 9000) == 12_000)
        counter.record(at: 7500, depth: 3)  // out of order
        #expect(counter.recent == [7500, 8000, 9000])

        // Depth 1 keeps only the last time, without an array.
        var shallow = EventCounter(symbol: 2)
        shallow.record(at: 1000, depth: 1)
        shallow.record(at: 2000, depth: 1)
        #expect(shallow.recent.isEmpty)
        #expect(shallow.count(within: .seconds(5), now: 3000) == 1)
        #expect(shallow.nextLapse(within: .seconds(5), now: 3000) == 7000)
        // A deeper window later keeps the last known time.
        shallow.record(at: 2500, depth: 2)
        #expect(shallow.recent == [2000, 2500])
        #expect(shallow.count(within: .seconds(5), now: 3000) == 2)
    }

    /// The one-pass lapse over sorted leaves and counters is the earliest of each leaf's own
    /// lapse, whatever counters a contact has (some leaves without a counter, counters without
    /// a leaf, two windows on one counter).
    @Test func earliestLapseIsTheEarliestOfEachLeafs() {
        var random = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            var counters = CounterSet()
            for symbol in UInt32(1)...12 where Bool.random(using: &random) {
                for _ in 0..<Int.random(in: 1...4, using: &random) {
                    counters.record(symbol, at: Int64.random(in: 0...100_000, using: &random), depth: Int.random(in: 1...3, using: &random))
                }
            }
            var leaves: [TenantDefinitions.WindowLeaf] = []
            for symbol in UInt32(1)...14 where Bool.random(using: &random) {
                leaves.append(.init(symbol: symbol, window: .seconds(Int64.random(in: 1...60, using: &random))))
                if Bool.random(using: &random) { leaves.append(.init(symbol: symbol, window: .seconds(90))) }
            }
            let now = Int64.random(in: 50_000...120_000, using: &random)
            let expected = leaves.compactMap { counters.nextLapse($0.symbol, within: $0.window, now: now) }.min() ?? .max
            #expect(counters.earliestLapse(of: leaves, now: now) == expected)
        }
    }
}
