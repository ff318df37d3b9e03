import Foundation
import KairosCore
import Testing
@testable import KairosEngine

@Suite struct ContactViewJSONTests {
    /// The hand-written JSON of a contact carries exactly what `Codable` carries.
    @Test func writtenJSONEqualsTheCodableForm() async throws {
        let engine = Engine(decisionSeed: 3)
        try await DemoTenant.install(into: engine, now: t0)
        _ = try await engine.decide(
            tenant: "demo", visitor: Visitor(anonymousId: "anon-7"), placements: ["home-hero", "pricing-cta"], now: t0 + .minutes(1))
        _ = try await engine.ingest(
            tenant: "demo",
            events: [
                .identify(
                    userId: "kim", anonymousId: "anon-7",
                    traits: ["email": "kim@example.com", "title": "VP \"Growth\"", "employees": 1200, "tags": ["a", nil]],
                    at: t0 + .minutes(2)),
                .track("Demo Requested", userId: "kim", at: t0 + .minutes(3)),
                // After the demo request: the onboarding journey waits for another one.
                .track("Signed Up", userId: "kim", at: t0 + .minutes(4)),
                .page("/pricing", userId: "kim", at: t0 + .minutes(5)),
                .group("acme", userId: "kim", traits: ["name": "Acme", "plan": "enterprise"], at: t0 + .minutes(5)),
            ],
            now: t0 + .minutes(5))
        let view = try #require(try await engine.contact(tenant: "demo", .userId("kim"), now: t0 + .hours(30)))
        // Every part is present, so every writer is exercised.
        #expect(!view.scores.isEmpty && !view.scoreHistory.isEmpty && !view.segments.isEmpty)
        #expect(!view.recentEvents.isEmpty && !view.eventCounts.isEmpty && !view.decisions.isEmpty && !view.experiments.isEmpty)
        #expect(view.scores.contains { !$0.rules.isEmpty })
        #expect(!view.journeys.isEmpty && view.accountTraits?.isEmpty == false)

        let written = view.jsonBytes()
        #expect(try JSONDecoder().decode(ContactView.self, from: Data(written)) == view)
        // The loop's read writes the same bytes straight from the state.
        guard case .found(let direct) = try engine.contactJSONIfIdle(tenant: "demo", .userId("kim"), now: t0 + .hours(30)) else {
            Issue.record("no immediate answer")
            return
        }
        #expect(String(decoding: direct, as: UTF8.self) == String(decoding: written, as: UTF8.self))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        #expect(try JSONValue.parse(Data(written)) == JSONValue.parse(encoder.encode(view)))
    }
}
