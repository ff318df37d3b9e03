import KairosCore
import Synchronization
import Testing
@testable import KairosEngine

@Suite struct ScaleTests {
    /// Many tasks feed many contacts of one tenant at once; every score and count is exact.
    @Test func manyContactsFromManyTasks() async throws {
        let engine = try await demoEngine()
        let contacts = 2000
        let tasks = 8
        try await withThrowingTaskGroup(of: Void.self) { group in
            for task in 0..<tasks {
                group.addTask {
                    var batch: [Event] = []
                    for contact in stride(from: task, to: contacts, by: tasks) {
                        let userId = "c\(contact)"
                        batch.append(.track("Email Link Clicked", userId: userId, at: t0))
                        batch.append(.page("Pricing", userId: userId, properties: ["path": "/pricing"], at: t0))
                        if contact % 2 == 0 {
                            batch.append(.page("Pricing", userId: userId, properties: ["path": "/pricing"], at: t0))
                            batch.append(.identify(userId: userId, traits: ["plan": "trial"], at: t0))
                        }
                        if batch.count >= 100 {
                            _ = try await engine.ingest(tenant: "demo", events: batch, now: t0)
                            batch.removeAll()
                        }
                    }
                    if !batch.isEmpty { _ = try await engine.ingest(tenant: "demo", events: batch, now: t0) }
                }
            }
            try await group.waitForAll()
        }
        let stats = try await engine.stats(tenant: "demo")
        #expect(stats.contacts == contacts)
        #expect(stats.segmentSizes["trial-users"] == contacts / 2)
        #expect(stats.segmentSizes["pricing-interest"] == contacts / 2)
        #expect(stats.segmentSizes["trial-pricing"] == contacts / 2)
        for contact in [0, 1, 998, 1999] {
            let view = try #require(try await engine.contact(tenant: "demo", .userId("c\(contact)"), now: t0))
            let expected: Double = contact % 2 == 0 ? 10 + 2 * 21 : 10 + 21
            #expect(view.score("engagement")?.score == expected)
        }
    }

    /// A new segment is evaluated over every existing contact, with progress reported.
    @Test func newSegmentIsBackfilledWithProgress() async throws {
        let engine = try await demoEngine()
        let events = (0..<10_000).map { index in
            Event.identify(userId: "p\(index)", traits: ["country": index % 4 == 0 ? "FR" : "DE"], at: t0)
        }
        for start in stride(from: 0, to: events.count, by: 500) {
            _ = try await engine.ingest(tenant: "demo", events: Array(events[start..<start + 500]), now: t0)
        }
        let reports = Mutex<[BackfillProgress]>([])
        let receipt = try await engine.defineSegment(
            tenant: "demo", json(#"{"id": "french", "condition": {"trait": "country", "op": "eq", "value": "FR"}}"#),
            now: t0 + .minutes(1), progress: { progress in reports.withLock { $0.append(progress) } })
        #expect(receipt.contactsEvaluated == 10_000)
        #expect(try engine.segmentCount(tenant: "demo", segment: "french") == 2500)
        let seen = reports.withLock { $0 }
        #expect(seen.first?.done == 0)
        #expect(seen.last?.done == 10_000)
        #expect(seen.count >= 2)
        #expect(seen.map(\.done) == seen.map(\.done).sorted())
        // Editing the condition re-evaluates it.
        try await engine.defineSegment(
            tenant: "demo", json(#"{"id": "french", "condition": {"trait": "country", "op": "in", "value": ["FR", "DE"]}}"#),
            now: t0 + .minutes(2))
        #expect(try engine.segmentCount(tenant: "demo", segment: "french") == 10_000)
    }
}
