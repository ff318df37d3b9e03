import KairosCore
import Testing
@testable import KairosEngine

@Suite struct DecisionEngineTests {
    func engine(seed: UInt64 = 11) async throws -> Engine {
        let engine = Engine(decisionSeed: seed)
        try await DemoTenant.install(into: engine, now: t0)
        return engine
    }

    /// An anonymous visitor whose hero assignment differs from the one their user id would get.
    func visitorsWithDifferentAssignments() throws -> (anonymous: String, user: String) {
        let experiment = try ExperimentDefinition.parse(json(DemoTenant.heroExperiment))
        for index in 0..<1000 {
            let anonymous = "anon-\(index)", user = "user-\(index)"
            guard !experiment.isHeldOut(anonymous), !experiment.isHeldOut(user),
                let a = experiment.assign(anonymous), let b = experiment.assign(user), a != b
            else { continue }
            return (anonymous, user)
        }
        throw EngineError(.invalidArgument, "no such pair")
    }

    @Test func anAssignmentSurvivesIdentificationAndCountsOnce() async throws {
        let engine = try await engine()
        let (anonymous, user) = try visitorsWithDifferentAssignments()
        let first = try await engine.decide(
            tenant: "demo", visitor: Visitor(anonymousId: anonymous), placements: ["home-hero", "pricing-cta"], now: t0 + .minutes(1))
        let hero = first.decisions[0]
        #expect(hero.reason == .experiment && hero.assignment?.experiment == "hero-headline")
        #expect(first.decisions[1].reason == .optimizer)

        // The visitor signs up and identifies; their user id alone would hash to the other variant.
        _ = try await engine.ingest(
            tenant: "demo",
            events: [
                .identify(userId: user, anonymousId: anonymous, traits: ["first_name": "Kim"], at: t0 + .minutes(2)),
                .track("Signed Up", userId: user, at: t0 + .minutes(3)),
            ],
            now: t0 + .minutes(3))
        let later = try await engine.decide(tenant: "demo", visitor: Visitor(userId: user), placements: ["home-hero"], now: t0 + .minutes(4))
        #expect(later.decisions[0].variant == hero.variant)
        #expect(later.decisions[0].content?.contains("Kim") == true)

        // A second device: a new anonymous profile that is exposed, then merged into the user.
        let other = try await engine.decide(tenant: "demo", visitor: Visitor(anonymousId: "phone-1"), placements: ["home-hero"], now: t0 + .minutes(5))
        #expect(other.decisions[0].assignment != nil)
        _ = try await engine.ingest(
            tenant: "demo", events: [.identify(userId: user, anonymousId: "phone-1", at: t0 + .minutes(6))], now: t0 + .minutes(6))
        let contact = try #require(try await engine.contact(tenant: "demo", .userId(user), now: t0 + .minutes(6)))
        #expect(contact.experiments.count == 1)
        #expect(contact.experiments[0].exposedAt == t0 + .minutes(1))
        #expect(contact.experiments[0].convertedAt == t0 + .minutes(3))

        // One person, one exposure, one conversion, whichever devices they used.
        let results = try await engine.experimentResults(tenant: "demo", experiment: "hero-headline")
        #expect(results.variants.map(\.units).reduce(0, +) == 1)
        #expect(results.variants.map(\.conversions).reduce(0, +) == 1)
    }

    @Test func feedbackTrainsTheOptimizerAndFillsTheResults() async throws {
        let engine = try await engine()
        // Simulated visitors: "talk-to-us" gets clicked far more often than the others.
        let clickRate = ["start-trial": 0.02, "see-demo": 0.04, "talk-to-us": 0.30]
        var world = SeededRandom(seed: 5)
        var now = t0
        var lastServed: [String: Int] = [:]
        for visitor in 0..<3000 {
            now = now + .seconds(1)
            let decision = try await engine.decide(
                tenant: "demo", visitor: Visitor(anonymousId: "v-\(visitor)"), placements: ["pricing-cta", "home-hero"], now: now)
            let cta = decision.decisions[0]
            let variant = try #require(cta.variant)
            if visitor >= 2500 { lastServed[variant, default: 0] += 1 }
            var events: [Event] = [.track(FeedbackEvent.viewed, anonymousId: "v-\(visitor)", properties: ["decision_id": .string(cta.decisionId)], at: now)]
            if world.unit() < clickRate[variant]! {
                events.append(.track(FeedbackEvent.clicked, anonymousId: "v-\(visitor)", properties: ["decision_id": .string(cta.decisionId)], at: now))
            }
            // Visitors in the social-proof arm sign up more often.
            let hero = decision.decisions[1]
            let signupRate = hero.variant == "social-proof" ? 0.2 : 0.1
            if hero.assignment != nil, world.unit() < signupRate {
                events.append(.track("Signed Up", anonymousId: "v-\(visitor)", at: now + .hours(2)))
            }
            _ = try await engine.ingest(tenant: "demo", events: events, now: now)
        }
        let arms = try engine.optimizerStatistics(tenant: "demo", placement: "pricing-cta")
        #expect(arms.values.map(\.trials).reduce(0, +) == 3000)
        #expect(arms["talk-to-us"]!.trials > arms["start-trial"]!.trials * 3)
        #expect((lastServed["talk-to-us"] ?? 0) > 350, "\(lastServed)")

        let results = try await engine.experimentResults(tenant: "demo", experiment: "hero-headline")
        let control = results.variants[0], treatment = results.variants[1]
        #expect(control.units + treatment.units + (results.holdout?.units ?? 0) == 3000)
        #expect(control.conversions > 0 && treatment.conversions > control.conversions)
        let frequentist = try #require(treatment.frequentist)
        let expected = ExperimentStatistics.frequentist(
            control: ConversionCounts(units: control.units, conversions: control.conversions),
            treatment: ConversionCounts(units: treatment.units, conversions: treatment.conversions))
        #expect(frequentist == expected)
        #expect(frequentist.pValue < 0.01)
        #expect((treatment.bayesian?.chanceToBeatControl ?? 0) > 0.95)
        #expect(!results.sampleRatioMismatch)
        #expect(results.holdout.map { $0.units > 50 && $0.units < 250 } == true)

        // Feedback for an unknown or foreign decision id changes nothing.
        let before = try engine.optimizerStatistics(tenant: "demo", placement: "pricing-cta")
        _ = try await engine.ingest(
            tenant: "demo",
            events: [.track(FeedbackEvent.clicked, anonymousId: "v-1", properties: ["decision_id": "00000000000000ff"], at: now)],
            now: now)
        #expect(try engine.optimizerStatistics(tenant: "demo", placement: "pricing-cta") == before)
    }

    @Test func stoppingAnExperimentEndsNewAssignments() async throws {
        let engine = try await engine()
        _ = try await engine.decide(tenant: "demo", visitor: Visitor(anonymousId: "early"), placements: ["home-hero"], now: t0)
        try await engine.setExperimentStatus(tenant: "demo", experiment: "hero-headline", .stopped, now: t0 + .minutes(1))
        let late = try await engine.decide(tenant: "demo", visitor: Visitor(anonymousId: "late"), placements: ["home-hero"], now: t0 + .minutes(2))
        #expect(late.decisions[0].assignment == nil && late.decisions[0].variant == "generic")
        let history = try await engine.definitionHistory(tenant: "demo", .experiment, id: "hero-headline")
        #expect(history.count == 2)
        // A placement used by an experiment cannot be deleted; the experiment can.
        await #expect(throws: EngineError.self) {
            try await engine.deleteDefinition(tenant: "demo", .placement, id: "home-hero", now: t0 + .minutes(3))
        }
        await #expect(throws: EngineError.self) {
            try await engine.deleteDefinition(tenant: "demo", .segment, id: "mqls", now: t0 + .minutes(3))
        }
        try await engine.deleteDefinition(tenant: "demo", .experiment, id: "hero-headline", now: t0 + .minutes(3))
        try await engine.deleteDefinition(tenant: "demo", .placement, id: "home-hero", now: t0 + .minutes(3))
        let gone = try await engine.decide(tenant: "demo", visitor: Visitor(anonymousId: "x"), placements: ["home-hero"], now: t0 + .minutes(4))
        #expect(gone.decisions[0].reason == .unknownPlacement)
    }
}
