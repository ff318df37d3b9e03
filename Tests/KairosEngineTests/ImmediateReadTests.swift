import Foundation
import KairosCore
import Synchronization
import Testing
@testable import KairosEngine

/// `contactIfIdle`: the gateway's loop reads contacts without waiting for their actors.
@Suite struct ImmediateReadTests {
    @Test func answersWhatTheActorAnswers() async throws {
        let engine = try await demoEngine()
        _ = try await engine.ingest(
            tenant: "demo",
            events: [
                .identify(userId: "ana", anonymousId: "anon-7", traits: ["email": "Ana@Example.com", "plan": "trial"], at: t0),
                .page("Pricing", userId: "ana", properties: ["path": "/pricing"], at: t0 + .minutes(1)),
                .track("Demo Requested", userId: "ana", at: t0 + .minutes(2)),
            ], now: t0 + .minutes(2))
        let now = t0 + .hours(1)
        for reference: Engine.ContactReference in [.userId("ana"), .anonymousId("anon-7"), .email("ana@example.com")] {
            let waited = try #require(try await engine.contact(tenant: "demo", reference, now: now))
            guard case .found(let immediate) = try engine.contactIfIdle(tenant: "demo", reference, now: now) else {
                Issue.record("an idle contact was not read at once by \(reference)")
                continue
            }
            #expect(immediate == waited)
            #expect(immediate.jsonBytes() == waited.jsonBytes())
            guard case .found(let json) = try engine.contactJSONIfIdle(tenant: "demo", reference, now: now) else {
                Issue.record("an idle contact's JSON was not written at once by \(reference)")
                continue
            }
            #expect(json == waited.jsonBytes())
        }
        guard case .unknown = try engine.contactJSONIfIdle(tenant: "demo", .userId("nobody"), now: now) else {
            Issue.record("an unknown contact's JSON was written")
            return
        }
        guard case .unknown = try engine.contactIfIdle(tenant: "demo", .userId("nobody"), now: now) else {
            Issue.record("an unknown contact was found")
            return
        }
        #expect(throws: EngineError.self) { try engine.contactIfIdle(tenant: "no-such-tenant", .userId("ana"), now: now) }
    }

    /// Every identify sets `a` and `b` to the same number in one change; a reader on another
    /// thread copying the state in the middle of that change would see them differ.
    @Test func neverSeesAHalfAppliedChange() async throws {
        let engine = try await demoEngine()
        _ = try await engine.ingest(
            tenant: "demo", events: [.identify(userId: "bo", traits: ["a": 0, "b": 0], at: t0)], now: t0)
        final class Shared: Sendable {
            let stop = Atomic<Bool>(false)
            let seen = Mutex((found: 0, busy: 0, torn: [String]()))
        }
        let shared = Shared()
        let reader = Thread {
            while !shared.stop.load(ordering: .relaxed) {
                switch try? engine.contactIfIdle(tenant: "demo", .userId("bo"), now: t0) {
                case .found(let view)?:
                    let a = view.traits["a"], b = view.traits["b"]
                    shared.seen.withLock {
                        $0.found += 1
                        if a != b { $0.torn.append("a = \(String(describing: a)), b = \(String(describing: b))") }
                    }
                case .busy?: shared.seen.withLock { $0.busy += 1 }
                case .unknown?, nil: shared.seen.withLock { $0.torn.append("contact not found") }
                }
            }
        }
        reader.start()
        for round in Int64(1)...2_000 {
            let value = JSONValue.number(Double(round))
            _ = try await engine.ingest(
                tenant: "demo",
                events: [.identify(userId: "bo", traits: ["a": value, "b": value, "filler-\(round % 50)": value], at: t0 + .seconds(round))],
                now: t0 + .seconds(round))
        }
        shared.stop.store(true, ordering: .relaxed)
        while !reader.isFinished { try await Task.sleep(for: .milliseconds(1)) }
        let result = shared.seen.withLock { $0 }
        #expect(result.torn.isEmpty, "\(result.torn.prefix(5))")
        #expect(result.found > 0)
        guard case .found(let last) = try engine.contactIfIdle(tenant: "demo", .userId("bo"), now: t0) else {
            Issue.record("the contact was busy after ingest finished")
            return
        }
        #expect(last.traits["a"] == .number(2_000))
    }
}
