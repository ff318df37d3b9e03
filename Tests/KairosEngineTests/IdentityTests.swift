import KairosCore
import Synchronization
import Testing
@testable import KairosEngine

@Suite struct IdentityTests {
    /// A contact's keys as one inline key, then an array, in the order added.
    @Test func identityKeysKeepOrderFromOneToMany() {
        var keys = ContactDirectory.IdentityKeys()
        #expect(keys.isEmpty && keys.array.isEmpty && !keys.contains(.user("a")))
        keys.append(.user("a"))
        #expect(keys.count == 1 && keys.array == [.user("a")] && keys.contains(.user("a")) && !keys.contains(.anonymous("a")))
        keys.append(.anonymous("b"))
        keys.append(.anonymous("c"))
        #expect(keys.count == 3 && keys.array == [.user("a"), .anonymous("b"), .anonymous("c")])
        #expect(keys.contains(.anonymous("c")))
        var visited: [ContactDirectory.IdentityKey] = []
        keys.forEachKey { visited.append($0) }
        #expect(visited == keys.array)
        // A copy is a value: changing one leaves the other.
        var copy = keys
        copy.append(.user("d"))
        #expect(keys.count == 3 && copy.count == 4)
        #expect(ContactDirectory.IdentityKeys([.user("x")]).array == [.user("x")])
        #expect(ContactDirectory.IdentityKeys([]).isEmpty)
    }

    /// Addresses follow merges and trait changes: a merged profile's address goes to the known
    /// profile unless that one has its own; a changed or cleared address no longer finds anyone;
    /// a snapshot restores the same answers.
    @Test func emailLookupsFollowMergesAndChanges() async throws {
        let engine = try await demoEngine()
        func owner(_ email: String) async throws -> String? {
            let view = try await engine.contact(tenant: "demo", .email(email), now: t0 + .minutes(5))
            return view.map { $0.userId ?? $0.anonymousIds.first ?? "?" }
        }
        _ = try await engine.ingest(
            tenant: "demo",
            events: [
                .identify(userId: nil, anonymousId: "anon-a", traits: ["email": "A@Example.com"], at: t0),
                .identify(userId: nil, anonymousId: "anon-b", traits: ["email": "b@example.com"], at: t0),
                .identify(userId: "dana", traits: ["plan": "trial"], at: t0),
                .identify(userId: "eli", traits: ["email": "eli@example.com"], at: t0),
                .identify(userId: "fay", traits: ["email": "fay@example.com"], at: t0),
            ], now: t0)
        #expect(try await owner("a@example.com") == "anon-a")
        // Dana has no address: anon-a's moves to her. Eli keeps his own: anon-b's finds no one.
        _ = try await engine.ingest(
            tenant: "demo",
            events: [
                .identify(userId: "dana", anonymousId: "anon-a", traits: [:], at: t0 + .minutes(1)),
                .identify(userId: "eli", anonymousId: "anon-b", traits: [:], at: t0 + .minutes(1)),
            ], now: t0 + .minutes(1))
        #expect(try await owner("A@EXAMPLE.COM") == "dana")
        #expect(try await owner("b@example.com") == nil)
        #expect(try await owner("eli@example.com") == "eli")
        // Fay changes her address, then a number replaces it (not an address: the index keeps
        // the last one), then clears it.
        _ = try await engine.ingest(
            tenant: "demo", events: [.identify(userId: "fay", traits: ["email": "fay@new.example"], at: t0 + .minutes(2))],
            now: t0 + .minutes(2))
        #expect(try await owner("fay@example.com") == nil)
        #expect(try await owner("fay@new.example") == "fay")
        _ = try await engine.ingest(
            tenant: "demo", events: [.identify(userId: "fay", traits: ["email": 7], at: t0 + .minutes(3))], now: t0 + .minutes(3))
        #expect(try await owner("fay@new.example") == "fay")
        _ = try await engine.ingest(
            tenant: "demo", events: [.identify(userId: "fay", traits: ["email": .null], at: t0 + .minutes(4))], now: t0 + .minutes(4))
        #expect(try await owner("fay@new.example") == nil)

        let restored = Engine()
        _ = try await restored.restore(snapshot: try await engine.snapshot().bytes)
        for email in ["a@example.com", "b@example.com", "eli@example.com", "fay@new.example"] {
            let live = try await engine.contact(tenant: "demo", .email(email), now: t0 + .minutes(5))?.id
            #expect(try await restored.contact(tenant: "demo", .email(email), now: t0 + .minutes(5))?.id == live, "\(email)")
        }
    }

    @Test func identifyMergesTheAnonymousProfileOnce() async throws {
        let engine = try await demoEngine()
        _ = try await engine.ingest(
            tenant: "demo",
            events: [
                .page("Pricing", anonymousId: "anon-1", properties: ["path": "/pricing"], at: t0),
                .page("Pricing", anonymousId: "anon-1", properties: ["path": "/pricing"], at: t0 + .minutes(1)),
                .track("Email Link Clicked", userId: "carla", at: t0),
            ], now: t0 + .minutes(1))
        #expect(try await engine.stats(tenant: "demo").contacts == 2)
        #expect(try engine.segmentCount(tenant: "demo", segment: "pricing-interest") == 1)

        let report = try await engine.ingest(
            tenant: "demo",
            events: [.identify(userId: "carla", anonymousId: "anon-1", traits: ["plan": "trial"], at: t0 + .minutes(2))],
            now: t0 + .minutes(2))
        #expect(report.effects.contains { if case .merged = $0.kind { return true } else { return false } })
        #expect(try await engine.stats(tenant: "demo").contacts == 1)
        // The anonymous profile left its segments and the known one entered them: counts stay exact.
        #expect(try engine.segmentCount(tenant: "demo", segment: "pricing-interest") == 1)
        #expect(try engine.segmentCount(tenant: "demo", segment: "trial-pricing") == 1)

        let byUser = try #require(try await engine.contact(tenant: "demo", .userId("carla"), now: t0 + .minutes(2)))
        let byAnonymous = try #require(try await engine.contact(tenant: "demo", .anonymousId("anon-1"), now: t0 + .minutes(2)))
        #expect(byUser.id == byAnonymous.id)
        #expect(byUser.anonymousIds == ["anon-1"])
        #expect(byUser.eventCounts.first { $0.event == "page:Pricing" }?.total == 2)
        // 2 × (20 pricing + 1 page view) + 10 email click, minus a few minutes of decay.
        let engagement = try #require(byUser.score("engagement")?.score)
        #expect(abs(engagement - 52) < 0.01)
        #expect(byUser.segments.first { $0.segment == "pricing-interest" }?.since == t0 + .minutes(1))

        // Later events with only the anonymous id reach the known profile.
        _ = try await engine.ingest(
            tenant: "demo", events: [.track("Demo Requested", anonymousId: "anon-1", at: t0 + .minutes(3))], now: t0 + .minutes(3))
        let after = try #require(try await engine.contact(tenant: "demo", .userId("carla"), now: t0 + .minutes(3)))
        #expect(after.scoreHistory.contains { $0.rule == "demo-request" })

        // Identifying again changes nothing.
        let again = try await engine.ingest(
            tenant: "demo", events: [.identify(userId: "carla", anonymousId: "anon-1", at: t0 + .minutes(4))], now: t0 + .minutes(4))
        #expect(!again.effects.contains { if case .merged = $0.kind { return true } else { return false } })
    }

    @Test func aliasLinksAPreviousId() async throws {
        let engine = try await demoEngine()
        _ = try await engine.ingest(
            tenant: "demo", events: [.track("Signed Up", anonymousId: "device-9", at: t0)], now: t0)
        _ = try await engine.ingest(
            tenant: "demo", events: [.alias(userId: "dan", previousId: "device-9", at: t0 + .minutes(1))], now: t0 + .minutes(1))
        let dan = try #require(try await engine.contact(tenant: "demo", .userId("dan"), now: t0 + .minutes(1)))
        #expect(dan.anonymousIds == ["device-9"])
        #expect(dan.isMember(of: "new-signups"))
        #expect(try engine.segmentCount(tenant: "demo", segment: "new-signups") == 1)
    }

    @Test func aliasMergesAPreviousUserId() async throws {
        let engine = try await demoEngine()
        _ = try await engine.ingest(
            tenant: "demo",
            events: [
                .track("Demo Requested", userId: "old-id", at: t0),
                .track("Email Link Clicked", userId: "new-id", at: t0),
            ], now: t0)
        _ = try await engine.ingest(
            tenant: "demo", events: [.alias(userId: "new-id", previousId: "old-id", at: t0 + .minutes(1))], now: t0 + .minutes(1))
        #expect(try await engine.stats(tenant: "demo").contacts == 1)
        let merged = try #require(try await engine.contact(tenant: "demo", .userId("old-id"), now: t0 + .minutes(1)))
        #expect(merged.userId == "new-id")
        #expect(Set(merged.scoreHistory.map(\.rule)) == ["demo-request", "email-click"])
    }

    @Test func twoKnownUsersAreNeverMergedByIdentify() async throws {
        let engine = try await demoEngine()
        _ = try await engine.ingest(
            tenant: "demo",
            events: [
                .identify(userId: "eve", anonymousId: "shared-laptop", at: t0),
                .identify(userId: "finn", anonymousId: "shared-laptop", at: t0 + .minutes(1)),
            ], now: t0 + .minutes(1))
        #expect(try await engine.stats(tenant: "demo").contacts == 2)
    }

    /// Events for the anonymous id and the user id race with the identify that links
    /// them: the merge happens once and every event counts exactly once.
    @Test(arguments: 0..<5)
    func mergeUnderConcurrency(round: Int) async throws {
        let engine = try await demoEngine()
        let visitors = 40
        let eventsPerSide = 25
        try await withThrowingTaskGroup(of: Void.self) { group in
            for visitor in 0..<visitors {
                let anonymousId = "anon-\(round)-\(visitor)"
                let userId = "user-\(round)-\(visitor)"
                group.addTask {
                    for index in 0..<eventsPerSide {
                        _ = try await engine.ingest(
                            tenant: "demo", events: [.track("Clicked", anonymousId: anonymousId, at: t0 + .seconds(Int64(index)))],
                            now: t0 + .seconds(Int64(index)))
                    }
                }
                group.addTask {
                    for index in 0..<eventsPerSide {
                        _ = try await engine.ingest(
                            tenant: "demo", events: [.track("Clicked", userId: userId, at: t0 + .seconds(Int64(index)))],
                            now: t0 + .seconds(Int64(index)))
                    }
                }
                group.addTask {
                    await Task.yield()
                    _ = try await engine.ingest(
                        tenant: "demo", events: [.identify(userId: userId, anonymousId: anonymousId, at: t0 + .seconds(5))],
                        now: t0 + .seconds(5))
                }
            }
            try await group.waitForAll()
        }
        #expect(try await engine.stats(tenant: "demo").contacts == visitors)
        for visitor in 0..<visitors {
            let contact = try #require(
                try await engine.contact(tenant: "demo", .userId("user-\(round)-\(visitor)"), now: t0 + .minutes(1)))
            #expect(contact.eventCounts.first { $0.event == "track:Clicked" }?.total == eventsPerSide * 2)
            let viaAnonymous = try await engine.contact(tenant: "demo", .anonymousId("anon-\(round)-\(visitor)"), now: t0)
            #expect(viaAnonymous?.id == contact.id)
        }
    }
}

@Suite struct MergeLimitTests {
    @Test func mergedScoresRespectGroupAndModelLimits() async throws {
        let engine = try await demoEngine()
        // Both profiles max out the email group (limit 60) on their own.
        var events: [Event] = []
        for day in 0..<12 {
            events.append(.track("Email Link Clicked", anonymousId: "anon-x", at: t0 + .seconds(Int64(day))))
            events.append(.track("Email Link Clicked", userId: "gil", at: t0 + .seconds(Int64(day))))
        }
        _ = try await engine.ingest(tenant: "demo", events: events, now: t0 + .minutes(1))
        _ = try await engine.ingest(
            tenant: "demo", events: [.identify(userId: "gil", anonymousId: "anon-x", at: t0 + .minutes(1))], now: t0 + .minutes(1))
        let gil = try #require(try await engine.contact(tenant: "demo", .userId("gil"), now: t0 + .minutes(1)))
        let email = try #require(gil.score("engagement")?.groups.first { $0.group == "email" })
        #expect(email.points <= 60.0001)
        #expect(abs(email.points - 60) < 0.01)
        let total = try #require(gil.score("engagement"))
        #expect(abs(total.rules.map(\.points).reduce(0, +) - total.score) < 1e-6)
    }
}
