import Foundation
import KairosCore
import Testing
@testable import KairosEngine

/// Journeys run end to end through the engine: events and timers in, runs, metrics and outbox out.
@Suite struct JourneyTests {
    static let engagement = #"""
        {"id": "engagement", "rules": [{"id": "pricing", "event": "Viewed Pricing", "points": 10}],
         "lifecycle": [{"stage": "MQL", "min": 30}]}
        """#
    static let trialUsers = #"{"id": "trial", "condition": {"trait": "plan", "op": "eq", "value": "trial"}}"#

    func engine(_ journeys: [String], segments: [String] = [trialUsers], models: [String] = [engagement], activate: Bool = true)
        async throws -> Engine
    {
        let engine = Engine(decisionSeed: 3)
        try await engine.createTenant(id: "t", now: t0)
        for model in models { try await engine.defineScoringModel(tenant: "t", json(model), now: t0) }
        for segment in segments { try await engine.defineSegment(tenant: "t", json(segment), now: t0) }
        for journey in journeys {
            let receipt = try await engine.defineJourney(tenant: "t", json(journey), now: t0)
            if activate { try await engine.setJourneyStatus(tenant: "t", journey: receipt.id, .active, now: t0) }
        }
        return engine
    }

    func send(_ engine: Engine, _ events: Event..., now: Timestamp? = nil) async throws {
        _ = try await engine.ingest(tenant: "t", events: events, now: now ?? events.map(\.time).max()!)
    }

    func runs(_ engine: Engine, _ user: String, at now: Timestamp) async throws -> [ContactView.JourneyEnrollment] {
        try #require(try await engine.contact(tenant: "t", .userId(user), now: now)).journeys
    }

    // MARK: Abandoned cart: keyed wait for event, A/B split, outbox

    static let cart = #"""
        {"id": "cart", "trigger": {"event": "Cart Abandoned", "key": "cart_id"},
         "re_entry": {"policy": "any_time"},
         "templates": {
           "reminder": {"channel": "email", "subject": "You left something, {{traits.first_name}}", "body": "Cart {{journey.key}}"},
           "sms": {"channel": "sms", "body": "Cart {{journey.key}} is waiting"}},
         "nodes": [
           {"id": "wait-order", "type": "wait_for_event", "event": "Order Completed", "match_key": "cart_id",
            "timeout": {"hours": 4}, "next": "bought", "timeout_next": "split"},
           {"id": "split", "type": "split", "paths": [{"percent": 50, "next": "email"}, {"percent": 50, "next": "text"}]},
           {"id": "email", "type": "send", "template": "reminder", "next": "done"},
           {"id": "text", "type": "send", "template": "sms", "next": "done"},
           {"id": "bought", "type": "exit"},
           {"id": "done", "type": "exit"}]}
        """#

    @Test func abandonedCartWaitsForTheOrderOfTheSameCart() async throws {
        let engine = try await engine([Self.cart])
        try await send(
            engine, .identify(userId: "u1", traits: ["first_name": "Ada"], at: t0),
            .track("Cart Abandoned", userId: "u1", properties: ["cart_id": "A"], at: t0 + .minutes(1)),
            .track("Cart Abandoned", userId: "u1", properties: ["cart_id": "B"], at: t0 + .minutes(2)))
        #expect(try await runs(engine, "u1", at: t0 + .minutes(2)).map(\.key) == ["A", "B"])

        // The same cart abandoned again while its run is active does not start another run.
        try await send(engine, .track("Cart Abandoned", userId: "u1", properties: ["cart_id": "A"], at: t0 + .minutes(3)))
        // An order of another cart resumes nothing; the order of cart A ends only A's run.
        try await send(engine, .track("Order Completed", userId: "u1", properties: ["cart_id": "Z"], at: t0 + .minutes(4)))
        #expect(try await runs(engine, "u1", at: t0 + .minutes(4)).count == 2)
        try await send(engine, .track("Order Completed", userId: "u1", properties: ["cart_id": "A"], at: t0 + .minutes(5)))
        #expect(try await runs(engine, "u1", at: t0 + .minutes(5)).map(\.key) == ["B"])

        // B times out four hours after it started and gets one reminder.
        await engine.advanceTime(to: t0 + .minutes(2) + .hours(4) - .seconds(1))
        #expect(try engine.outbox(tenant: "t").isEmpty)
        await engine.advanceTime(to: t0 + .minutes(2) + .hours(4))
        let outbox = try engine.outbox(tenant: "t")
        #expect(outbox.count == 1)
        let message = try #require(outbox.first?.message)
        #expect(message.fields["body"]?.contains("Cart B") == true)
        if message.channel == .email { #expect(message.fields["subject"] == "You left something, Ada") }
        #expect(try await runs(engine, "u1", at: t0 + .hours(5)).isEmpty)

        let report = try await engine.journeyReport(tenant: "t", journey: "cart")
        #expect(report.entered == 2)
        #expect(report.exited == ["completed": 2])
        #expect(report.active == 0 && report.waiting == 0)
        #expect(report.nodes["bought"]?.arrived == 1 && report.nodes["split"]?.arrived == 1)
        #expect(report.messages == 1)
    }

    @Test func splitIsDeterministicAndFollowsItsPercentages() async throws {
        let engine = try await engine([Self.cart])
        let users = (0..<2000).map { "s\($0)" }
        _ = try await engine.ingest(
            tenant: "t", events: users.map { .track("Cart Abandoned", userId: $0, properties: ["cart_id": "c"], at: t0) }, now: t0)
        await engine.advanceTime(to: t0 + .hours(5))
        let report = try await engine.journeyReport(tenant: "t", journey: "cart")
        let email = report.nodes["email"]?.arrived ?? 0
        let text = report.nodes["text"]?.arrived ?? 0
        #expect(email + text == 2000)
        #expect(abs(email - 1000) < 120, "50/50 split gave \(email)/\(text)")

        // The same contacts on a second engine take exactly the same paths.
        let again = try await self.engine([Self.cart])
        _ = try await again.ingest(
            tenant: "t", events: users.map { .track("Cart Abandoned", userId: $0, properties: ["cart_id": "c"], at: t0) }, now: t0)
        await again.advanceTime(to: t0 + .hours(5))
        #expect(try engine.outbox(tenant: "t", limit: 5000).map(\.message) == again.outbox(tenant: "t", limit: 5000).map(\.message))
    }

    @Test func aTimerAndAnEventAtTheSameInstantAreOrderedTimerFirst() async throws {
        let engine = try await engine([Self.cart])
        try await send(engine, .track("Cart Abandoned", userId: "u1", properties: ["cart_id": "A"], at: t0))
        // The order arrives exactly when the wait lapses, before the timer loop ran: the timeout wins.
        try await send(engine, .track("Order Completed", userId: "u1", properties: ["cart_id": "A"], at: t0 + .hours(4)))
        let report = try await engine.journeyReport(tenant: "t", journey: "cart")
        #expect(report.nodes["bought"] == nil)
        #expect(report.nodes["split"]?.arrived == 1)
    }

    // MARK: B2B nurture: segment trigger, branch, update, score, enroll, goal

    static let nurture = #"""
        {"id": "nurture", "trigger": {"segment_entered": "trial"},
         "goal": {"lifecycle": "engagement", "op": "eq", "value": "MQL"},
         "templates": {"welcome": {"channel": "email", "subject": "Welcome", "body": "Hi {{traits.first_name}}"}},
         "nodes": [
           {"id": "welcome", "type": "send", "template": "welcome", "next": "tag"},
           {"id": "tag", "type": "update", "add_tags": ["nurtured"], "set": {"nurture_started": true}, "next": "bonus"},
           {"id": "bonus", "type": "score", "model": "engagement", "points": 5, "next": "wait"},
           {"id": "wait", "type": "wait", "duration": {"days": 2}, "next": "check"},
           {"id": "check", "type": "branch", "condition": {"trait": "company", "op": "exists", "value": true},
            "then": "handoff", "else": "done"},
           {"id": "handoff", "type": "enroll", "journey": "sales", "next": "done"},
           {"id": "done", "type": "exit"}]}
        """#
    static let sales = #"""
        {"id": "sales", "trigger": {"manual": true},
         "templates": {"alert": {"channel": "webhook", "url": "https://crm.example/leads", "body": "{\"user\": \"{{contact.user_id}}\"}"}},
         "nodes": [{"id": "notify", "type": "send", "template": "alert", "next": "route"},
                   {"id": "route", "type": "update", "lifecycle_stage": "SQL", "next": "end"},
                   {"id": "end", "type": "exit"}]}
        """#

    @Test func nurtureRunsEveryStepKind() async throws {
        let engine = try await engine([Self.sales, Self.nurture])
        try await send(engine, .identify(userId: "lead", traits: ["plan": "trial", "first_name": "Bo", "company": "Acme"], at: t0))
        var contact = try #require(try await engine.contact(tenant: "t", .userId("lead"), now: t0))
        #expect(contact.traits["tags"] == .array([.string("nurtured")]))
        #expect(contact.traits["nurture_started"] == .bool(true))
        #expect(contact.score("engagement")?.score == 5)
        #expect(contact.score("engagement")?.rules.map(\.rule) == ["journey:nurture/bonus"])
        #expect(contact.journeys.map(\.step) == ["wait"])

        await engine.advanceTime(to: t0 + .days(2))
        contact = try #require(try await engine.contact(tenant: "t", .userId("lead"), now: t0 + .days(2)))
        #expect(contact.traits["lifecycle_stage"] == .string("SQL"))
        #expect(contact.journeys.isEmpty)
        let channels = try engine.outbox(tenant: "t").map(\.message.channel)
        #expect(channels == [.email, .webhook])
        #expect(try engine.outbox(tenant: "t")[1].message.fields["body"] == #"{"user": "lead"}"#)
        #expect(try await engine.journeyReport(tenant: "t", journey: "sales").exited == ["completed": 1])
    }

    @Test func reachingTheGoalExitsFromAnyStepAsAConversion() async throws {
        let engine = try await engine([Self.sales, Self.nurture])
        try await send(engine, .identify(userId: "lead", traits: ["plan": "trial"], at: t0))
        // Three pricing views: 5 + 30 points = MQL while waiting.
        for minute in 1...3 { try await send(engine, .track("Viewed Pricing", userId: "lead", at: t0 + .minutes(Int64(minute)))) }
        let report = try await engine.journeyReport(tenant: "t", journey: "nurture")
        #expect(report.goalReached == 1)
        #expect(report.conversionRate == 1)
        #expect(report.waiting == 0 && report.nodes["wait"]?.waiting == 0)
        #expect(try await runs(engine, "lead", at: t0 + .minutes(3)).isEmpty)
    }

    /// Reads by email follow the trait whatever sets it: an identify, a journey's update step
    /// run by an event, or one run by a timer.
    @Test func updateStepsThatSetTheEmailMoveTheEmailIndex() async throws {
        let journey = #"""
            {"id": "normalize", "trigger": {"event": "Signed Up"},
             "nodes": [
               {"id": "work", "type": "update", "set": {"email": "Work@Acme.example"}, "next": "wait"},
               {"id": "wait", "type": "wait", "duration": {"days": 1}, "next": "clear"},
               {"id": "clear", "type": "update", "unset": ["email"], "next": "end"},
               {"id": "end", "type": "exit"}]}
            """#
        let engine = try await engine([journey])
        // The identify and the event in one batch: the step runs after the identify's email.
        try await send(
            engine, .identify(userId: "u", traits: ["email": "home@example.com"], at: t0), .track("Signed Up", userId: "u", at: t0))
        func userId(_ email: String, _ at: Timestamp) async throws -> String? {
            try await engine.contact(tenant: "t", .email(email), now: at)?.userId
        }
        #expect(try await userId("work@acme.example", t0) == "u")
        #expect(try await userId("home@example.com", t0) == nil)
        await engine.advanceTime(to: t0 + .days(1))
        #expect(try await userId("work@acme.example", t0 + .days(1)) == nil)
        #expect(try await engine.contact(tenant: "t", .userId("u"), now: t0 + .days(1))?.traits["email"] == nil)
        // An identify sets it again.
        try await send(engine, .identify(userId: "u", traits: ["email": "new@example.com"], at: t0 + .days(2)))
        #expect(try await userId("NEW@example.com", t0 + .days(2)) == "u")
    }

    // MARK: Onboarding: exit criteria, wait-for-event exits

    static let onboarding = #"""
        {"id": "onboarding", "trigger": {"event": "Signed Up"}, "exit": {"not": {"segment": "trial"}},
         "templates": {"nudge": {"channel": "push", "title": "Try it", "body": "Create your first project"}},
         "nodes": [
           {"id": "wait-project", "type": "wait_for_event", "event": "Project Created", "timeout": {"days": 3},
            "next": "activated", "timeout_next": "nudge"},
           {"id": "nudge", "type": "send", "template": "nudge", "next": "end"},
           {"id": "activated", "type": "exit"},
           {"id": "end", "type": "exit"}]}
        """#

    @Test func waitForEventTakesEitherExit() async throws {
        let engine = try await engine([Self.onboarding])
        try await send(
            engine, .identify(userId: "a", traits: ["plan": "trial"], at: t0), .identify(userId: "b", traits: ["plan": "trial"], at: t0),
            .track("Signed Up", userId: "a", at: t0), .track("Signed Up", userId: "b", at: t0))
        try await send(engine, .track("Project Created", userId: "a", at: t0 + .days(1)))
        await engine.advanceTime(to: t0 + .days(3))
        let report = try await engine.journeyReport(tenant: "t", journey: "onboarding")
        #expect(report.nodes["activated"]?.arrived == 1)
        #expect(report.nodes["nudge"]?.messages == 1)
        #expect(try engine.outbox(tenant: "t").map(\.userId) == ["b"])
    }

    @Test func exitCriteriaEndARunMidWait() async throws {
        let engine = try await engine([Self.onboarding])
        try await send(engine, .identify(userId: "a", traits: ["plan": "trial"], at: t0), .track("Signed Up", userId: "a", at: t0))
        #expect(try await engine.journeyReport(tenant: "t", journey: "onboarding").waiting == 1)
        try await send(engine, .identify(userId: "a", traits: ["plan": "paid"], at: t0 + .hours(1)))
        let report = try await engine.journeyReport(tenant: "t", journey: "onboarding")
        #expect(report.exited == ["exit_criteria": 1])
        #expect(report.waiting == 0 && report.active == 0)
        await engine.advanceTime(to: t0 + .days(4))
        #expect(try engine.outbox(tenant: "t").isEmpty)
    }

    // MARK: Re-entry

    func journey(_ id: String, reEntry: String) -> String {
        """
        {"id": "\(id)", "trigger": {"event": "Ping"}, "re_entry": \(reEntry),
         "nodes": [{"id": "w", "type": "wait", "duration": {"hours": 1}, "next": "x"}, {"id": "x", "type": "exit"}]}
        """
    }

    @Test func reEntryPoliciesAreHonoured() async throws {
        let engine = try await engine([
            journey("never", reEntry: #"{"policy": "none"}"#),
            journey("after", reEntry: #"{"policy": "after_exit"}"#),
            journey("any", reEntry: #"{"policy": "any_time", "max_entries": 3}"#),
            journey("gap", reEntry: #"{"policy": "any_time", "min_gap": {"hours": 2}}"#),
        ])
        // Five pings 30 minutes apart, then two more after every run has ended.
        for index in 0..<5 { try await send(engine, .track("Ping", userId: "u", at: t0 + .minutes(Int64(30 * index)))) }
        await engine.advanceTime(to: t0 + .hours(5))
        for index in 0..<2 { try await send(engine, .track("Ping", userId: "u", at: t0 + .hours(6) + .minutes(Int64(10 * index)))) }
        func entered(_ id: String) async throws -> Int { try await engine.journeyReport(tenant: "t", journey: id).entered }
        #expect(try await entered("never") == 1)
        // after_exit: entries at 0:00 (exit 1:00), 1:00 (exit 2:00), 2:00; then 6:00.
        #expect(try await entered("after") == 4)
        #expect(try await entered("any") == 3)
        // min_gap 2 h: 0:00, 2:00, 6:00.
        #expect(try await entered("gap") == 3)
    }

    // MARK: Frequency caps and quiet hours

    static let capped = #"""
        {"id": "capped", "trigger": {"event": "Ping"}, "re_entry": {"policy": "any_time"},
         "frequency_cap": {"per_day": 2, "when_capped": "CAP"},
         "templates": {"m": {"channel": "sms", "body": "hello"}},
         "nodes": [{"id": "send", "type": "send", "template": "m", "next": "x"}, {"id": "x", "type": "exit"}]}
        """#

    @Test func frequencyCapSkipsOrDelaysInTheContactsDay() async throws {
        for action in ["skip", "delay"] {
            let engine = try await engine([Self.capped.replacingOccurrences(of: "CAP", with: action)])
            // 20:00 UTC is 15:00 in New York: the contact's day ends at 05:00 UTC.
            let evening = Timestamp(iso8601: "2026-03-02T20:00:00Z")!
            try await send(engine, .identify(userId: "u", traits: ["timezone": "America/New_York"], at: evening))
            for index in 0..<3 { try await send(engine, .track("Ping", userId: "u", at: evening + .minutes(Int64(index)))) }
            let report = try await engine.journeyReport(tenant: "t", journey: "capped")
            #expect(report.messages == 2)
            if action == "skip" {
                #expect(report.messagesSkipped == 1)
                #expect(report.exited == ["completed": 3])
            } else {
                #expect(report.waiting == 1)
                let held = try #require(try await runs(engine, "u", at: evening).first)
                #expect(held.state == "held")
                #expect(held.due == Timestamp(iso8601: "2026-03-03T05:00:00Z"))
                await engine.advanceTime(to: Timestamp(iso8601: "2026-03-03T05:00:00Z")!)
                #expect(try await engine.journeyReport(tenant: "t", journey: "capped").messages == 3)
            }
        }
    }

    @Test func quietHoursHoldSendsToTheEndOfTheWindowInTheContactsZone() async throws {
        let journey = #"""
            {"id": "quiet", "trigger": {"event": "Ping"}, "quiet_hours": {"start": "21:00", "end": "08:00"},
             "templates": {"m": {"channel": "sms", "body": "hello"}},
             "nodes": [{"id": "send", "type": "send", "template": "m", "next": "x"}, {"id": "x", "type": "exit"}]}
            """#
        let engine = try await engine([journey])
        // 23:30 in Paris (22:30 UTC in winter): held until 08:00 Paris = 07:00 UTC.
        let late = Timestamp(iso8601: "2026-03-02T22:30:00Z")!
        try await send(engine, .identify(userId: "u", traits: ["timezone": "Europe/Paris"], at: late), .track("Ping", userId: "u", at: late))
        #expect(try engine.outbox(tenant: "t").isEmpty)
        #expect(try await runs(engine, "u", at: late).first?.due == Timestamp(iso8601: "2026-03-03T07:00:00Z"))
        await engine.advanceTime(to: Timestamp(iso8601: "2026-03-03T07:00:00Z")!)
        #expect(try engine.outbox(tenant: "t").map(\.time) == [Timestamp(iso8601: "2026-03-03T07:00:00Z")!])
    }

    @Test func waitUntilATimeOfDayCrossesDaylightSavingTime() async throws {
        let journey = #"""
            {"id": "morning", "trigger": {"event": "Ping"},
             "nodes": [{"id": "w", "type": "wait_until", "time": "09:00", "days": ["mon"], "next": "x"}, {"id": "x", "type": "exit"}]}
            """#
        let engine = try await engine([journey])
        // Saturday 7 March 2026, noon in New York (EST); clocks go forward on Sunday 8 March.
        let saturday = Timestamp(iso8601: "2026-03-07T17:00:00Z")!
        try await send(engine, .identify(userId: "u", traits: ["timezone": "America/New_York"], at: saturday), .track("Ping", userId: "u", at: saturday))
        // Monday 09:00 EDT is 13:00 UTC (it would be 14:00 UTC before the change).
        #expect(try await runs(engine, "u", at: saturday).first?.due == Timestamp(iso8601: "2026-03-09T13:00:00Z"))
    }

    // MARK: Triggers

    @Test func conditionTraitAndDateTriggers() async throws {
        let scoreJourney = #"""
            {"id": "hot", "trigger": {"score": "engagement", "op": "gte", "value": 20},
             "nodes": [{"id": "x", "type": "exit"}]}
            """#
        let traitJourney = #"""
            {"id": "plan-change", "trigger": {"trait_changed": "plan"}, "re_entry": {"policy": "any_time"},
             "nodes": [{"id": "x", "type": "exit"}]}
            """#
        let dateJourney = #"""
            {"id": "trial-ending", "trigger": {"date_trait": "trial_ends_at", "before": {"days": 3}},
             "templates": {"m": {"channel": "email", "subject": "Trial ends soon", "body": "3 days left"}},
             "nodes": [{"id": "m", "type": "send", "template": "m", "next": "x"}, {"id": "x", "type": "exit"}]}
            """#
        let engine = try await engine([scoreJourney, traitJourney, dateJourney])
        try await send(engine, .identify(userId: "u", traits: ["plan": "trial", "trial_ends_at": "2026-03-12T09:00:00Z"], at: t0))
        // Crossing the threshold enters once; staying above does not enter again.
        for minute in 1...4 { try await send(engine, .track("Viewed Pricing", userId: "u", at: t0 + .minutes(Int64(minute)))) }
        #expect(try await engine.journeyReport(tenant: "t", journey: "hot").entered == 1)
        try await send(engine, .identify(userId: "u", traits: ["plan": "pro"], at: t0 + .minutes(5)))
        try await send(engine, .identify(userId: "u", traits: ["plan": "pro"], at: t0 + .minutes(6)))
        #expect(try await engine.journeyReport(tenant: "t", journey: "plan-change").entered == 2)
        // The hidden trigger segment stays hidden.
        #expect(try await engine.stats(tenant: "t").segmentSizes.keys.sorted() == ["trial"])

        #expect(try await runs(engine, "u", at: t0 + .minutes(6)).map(\.state) == ["scheduled"])
        await engine.advanceTime(to: Timestamp(iso8601: "2026-03-09T08:59:00Z")!)
        #expect(try engine.outbox(tenant: "t").isEmpty)
        await engine.advanceTime(to: Timestamp(iso8601: "2026-03-09T09:00:00Z")!)
        #expect(try engine.outbox(tenant: "t").map(\.message.fields["subject"]) == ["Trial ends soon"])
    }

    @Test func manualEnrollmentFollowsTheJourneysRules() async throws {
        let engine = try await engine([Self.sales])
        try await send(engine, .identify(userId: "u", at: t0))
        #expect(try await engine.enroll(tenant: "t", journey: "sales", contact: .userId("u"), now: t0 + .minutes(1)))
        #expect(try await !engine.enroll(tenant: "t", journey: "sales", contact: .userId("u"), now: t0 + .minutes(2)))
        await #expect(throws: EngineError.self) {
            try await engine.enroll(tenant: "t", journey: "sales", contact: .userId("nobody"), now: t0)
        }
        await #expect(throws: EngineError.self) {
            try await engine.enroll(tenant: "t", journey: "missing", contact: .userId("u"), now: t0)
        }
    }

    @Test func aMergedProfileBringsItsRunsAndCountsAsOnePerson() async throws {
        let engine = try await engine([Self.onboarding])
        // The same person signs up on two devices before identifying.
        try await send(
            engine, .identify(userId: "known", traits: ["plan": "trial"], at: t0), .track("Signed Up", userId: "known", at: t0),
            .identify(userId: nil, anonymousId: "phone", traits: ["plan": "trial"], at: t0),
            .track("Signed Up", anonymousId: "phone", at: t0))
        #expect(try await engine.journeyReport(tenant: "t", journey: "onboarding").active == 2)
        try await send(engine, .identify(userId: "known", anonymousId: "phone", at: t0 + .minutes(1)))
        let report = try await engine.journeyReport(tenant: "t", journey: "onboarding")
        #expect(report.exited == ["merged": 1])
        #expect(report.active == 1 && report.waiting == 1)
        #expect(try await runs(engine, "known", at: t0 + .minutes(1)).count == 1)
        await engine.advanceTime(to: t0 + .days(4))
        #expect(try engine.outbox(tenant: "t").map(\.userId) == ["known"])
    }

    @Test func entriesOnlyInsideTheJourneysDates() async throws {
        let journey = #"""
            {"id": "spring", "trigger": {"event": "Ping"}, "re_entry": {"policy": "any_time"},
             "starts_at": "2026-03-03T00:00:00Z", "ends_at": "2026-03-04T00:00:00Z",
             "nodes": [{"id": "w", "type": "wait", "duration": {"days": 3}, "next": "x"}, {"id": "x", "type": "exit"}]}
            """#
        let engine = try await engine([journey])
        for (user, time) in [("early", "2026-03-02T23:59:00Z"), ("inside", "2026-03-03T12:00:00Z"), ("late", "2026-03-04T00:00:00Z")] {
            try await send(engine, .track("Ping", userId: user, at: Timestamp(iso8601: time)!))
        }
        #expect(try await engine.journeyReport(tenant: "t", journey: "spring").entered == 1)
        // A run that entered in time finishes after the end date.
        await engine.advanceTime(to: Timestamp(iso8601: "2026-03-06T12:00:00Z")!)
        #expect(try await engine.journeyReport(tenant: "t", journey: "spring").exited == ["completed": 1])
    }

    @Test func anAccountChangeCanStartJourneysForEveryContactOfTheAccount() async throws {
        let enterprise = #"{"id": "enterprise", "condition": {"account": "employees", "op": "gte", "value": 1000}}"#
        let journey = #"{"id": "abm", "trigger": {"segment_entered": "enterprise"}, "nodes": [{"id": "x", "type": "exit"}]}"#
        let engine = try await engine([journey], segments: [Self.trialUsers, enterprise])
        try await send(engine, .group("acme", userId: "a", at: t0), .group("acme", userId: "b", at: t0))
        #expect(try await engine.journeyReport(tenant: "t", journey: "abm").entered == 0)
        // One member reports the account's new size: both members enter.
        try await send(engine, .group("acme", userId: "a", traits: ["employees": 5000], at: t0 + .minutes(1)))
        #expect(try await engine.journeyReport(tenant: "t", journey: "abm").entered == 2)
    }

    // MARK: Lifecycle and versions

    static let twoWaits = #"""
        {"id": "drip", "trigger": {"event": "Ping"},
         "templates": {"a": {"channel": "sms", "body": "first"}, "b": {"channel": "sms", "body": "VERSION"}},
         "nodes": [{"id": "w1", "type": "wait", "duration": {"days": 1}, "next": "s1"},
                   {"id": "s1", "type": "send", "template": "b", "next": "x"},
                   {"id": "x", "type": "exit"}]}
        """#

    @Test func publishingKeepsRunsOnTheirVersionUnlessMigrated() async throws {
        for migrate in [false, true] {
            let engine = try await engine([Self.twoWaits.replacingOccurrences(of: "VERSION", with: "v1")])
            try await send(engine, .track("Ping", userId: "u", at: t0))
            let receipt = try await engine.defineJourney(
                tenant: "t", json(Self.twoWaits.replacingOccurrences(of: "VERSION", with: "v2")), migrateEnrollments: migrate,
                now: t0 + .hours(1))
            #expect(receipt.version == 2)
            #expect(try await engine.journeyStatus(tenant: "t", journey: "drip") == .active)
            #expect(try await runs(engine, "u", at: t0 + .hours(1)).first?.version == (migrate ? 2 : 1))
            // A contact entering now gets version 2.
            try await send(engine, .track("Ping", userId: "v", at: t0 + .hours(2)))
            await engine.advanceTime(to: t0 + .days(2))
            let bodies = try engine.outbox(tenant: "t").map { "\($0.userId!):\($0.message.fields["body"]!)" }
            #expect(bodies == [migrate ? "u:v2" : "u:v1", "v:v2"])
        }
    }

    @Test func pausingStopsProgressAndResumingContinues() async throws {
        let engine = try await engine([Self.twoWaits])
        try await send(engine, .track("Ping", userId: "u", at: t0))
        try await engine.setJourneyStatus(tenant: "t", journey: "drip", .paused, now: t0 + .hours(1))
        await engine.advanceTime(to: t0 + .days(3))
        #expect(try engine.outbox(tenant: "t").isEmpty)
        // Paused journeys enroll nobody.
        try await send(engine, .track("Ping", userId: "v", at: t0 + .days(3)))
        #expect(try await engine.journeyReport(tenant: "t", journey: "drip").entered == 1)
        #expect(try await runs(engine, "u", at: t0 + .days(3)).first?.step == "w1")
        try await engine.setJourneyStatus(tenant: "t", journey: "drip", .active, now: t0 + .days(3) + .hours(1))
        #expect(try engine.outbox(tenant: "t").map(\.userId) == ["u"])
        #expect(try engine.outbox(tenant: "t").first?.time == t0 + .days(3) + .hours(1))

        try await send(engine, .track("Ping", userId: "w", at: t0 + .days(4)))
        try await engine.setJourneyStatus(tenant: "t", journey: "drip", .archived, now: t0 + .days(4) + .hours(1))
        let report = try await engine.journeyReport(tenant: "t", journey: "drip")
        #expect(report.exited == ["completed": 1, "archived": 1])
        #expect(report.active == 0 && report.waiting == 0)
        await #expect(throws: EngineError.self) {
            try await engine.setJourneyStatus(tenant: "t", journey: "drip", .active, now: t0 + .days(5))
        }
    }

    @Test func badDefinitionsAreRefusedWithPointers() async throws {
        let engine = try await engine([])
        func error(_ text: String) async -> String? {
            do {
                try await engine.validateJourney(tenant: "t", json(text))
                return nil
            } catch {
                return error.message
            }
        }
        let exit = #"{"id": "x", "type": "exit"}"#
        func with(_ nodes: String, extra: String = "") -> String {
            #"{"id": "j", "trigger": {"event": "Ping"}, \#(extra) "nodes": [\#(nodes)]}"#
        }
        #expect(await error(with(#"{"id": "a", "type": "wait", "duration": {"days": 1}, "next": "b"}, "# + exit))?
            .contains("/nodes/0/next: no node has the id 'b'") == true)
        #expect(await error(with(#"{"id": "a", "type": "wait", "duration": {"days": 1}}, "# + exit))?
            .contains("/nodes/0/next: is required") == true)
        #expect(await error(with(exit + #", {"id": "lost", "type": "exit"}"#))?.contains("/nodes/1: step 'lost' cannot be reached") == true)
        #expect(await error(with(#"""
            {"id": "a", "type": "branch", "condition": {"trait": "x", "op": "exists", "value": true}, "then": "b", "else": "x"},
            {"id": "b", "type": "update", "set": {"y": 1}, "next": "a"}, \#(exit)
            """#))?.contains("form a cycle without a wait") == true)
        #expect(await error(with(#"{"id": "a", "type": "wait", "duration": {"days": -1}, "next": "x"}, "# + exit))?
            .contains("/nodes/0/duration/days: must not be negative") == true)
        #expect(await error(with(#"{"id": "a", "type": "wait", "duration": {"days": 400}, "next": "x"}, "# + exit))?
            .contains("longer than 366 days") == true)
        #expect(await error(with(#"{"id": "a", "type": "send", "template": "nope", "next": "x"}, "# + exit))?
            .contains("/nodes/0/template: no template 'nope'") == true)
        #expect(await error(with(#"{"id": "a", "type": "branch", "condition": {"segment": "ghosts"}, "then": "x", "else": "x"}, "# + exit))?
            .contains("unknown segment 'ghosts'") == true)
        #expect(await error(with(exit, extra: #""trigger_typo": 1,"#))?.contains("unknown field 'trigger_typo'") == true)
        #expect(await error(with(#"{"id": "a", "type": "split", "paths": [{"percent": 50, "next": "x"}, {"percent": 40, "next": "x"}]}, "# + exit))?
            .contains("add up to 90.0, not 100") == true)
        #expect(await error(with(#"{"id": "a", "type": "score", "model": "nope", "points": 3, "next": "x"}, "# + exit))?
            .contains("unknown scoring model 'nope'") == true)
        #expect(await error(with(exit, extra: #""time_zone": "Mars/Olympus","#))?.contains("not a known time zone") == true)
        // A segment a journey uses cannot be deleted.
        try await engine.defineJourney(tenant: "t", json(#"{"id": "uses", "trigger": {"segment_entered": "trial"}, "nodes": [\#(exit)]}"#), now: t0)
        await #expect(throws: EngineError.self) { try await engine.deleteDefinition(tenant: "t", .segment, id: "trial", now: t0) }
    }

    // MARK: Scale

    @Test func oneHundredThousandEnrolmentsHaveExactMetrics() async throws {
        let engine = try await engine([Self.onboarding])
        let count = 100_000
        for start in stride(from: 0, to: count, by: 10_000) {
            var events: [Event] = []
            for index in start..<(start + 10_000) {
                events.append(.identify(userId: "u\(index)", traits: ["plan": "trial"], at: t0))
                events.append(.track("Signed Up", userId: "u\(index)", at: t0))
                // Every third contact activates; every fifth of the rest leaves the trial.
                if index % 3 == 0 { events.append(.track("Project Created", userId: "u\(index)", at: t0 + .hours(1))) }
                else if index % 5 == 0 { events.append(.identify(userId: "u\(index)", traits: ["plan": "paid"], at: t0 + .hours(1))) }
            }
            _ = try await engine.ingest(tenant: "t", events: events, now: t0 + .hours(1))
        }
        let activated = (0..<count).count { $0 % 3 == 0 }
        let left = (0..<count).count { $0 % 3 != 0 && $0 % 5 == 0 }
        var report = try await engine.journeyReport(tenant: "t", journey: "onboarding")
        #expect(report.entered == count)
        #expect(report.waiting == count - activated - left)
        #expect(report.exited == ["completed": activated, "exit_criteria": left])
        // The waits started when the batches were applied, an hour after the events.
        await engine.advanceTime(to: t0 + .days(3) + .hours(1))
        report = try await engine.journeyReport(tenant: "t", journey: "onboarding")
        #expect(report.waiting == 0 && report.active == 0)
        #expect(report.messages == count - activated - left)
        #expect(report.exited["completed"] == count - left)
        #expect(try engine.outbox(tenant: "t", limit: 10_000).count == 10_000)
    }
}

/// The examples in docs/journeys.md are accepted as they are written.
@Suite struct JourneyDocumentationTests {
    @Test func theDocumentedExamplesAreValid() async throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("docs/journeys.md").path
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let examples = text.components(separatedBy: "## Examples")[1].components(separatedBy: "```json\n").dropFirst()
            .map { $0.components(separatedBy: "```")[0] }
        #expect(examples.count == 3)
        let engine = Engine()
        try await DemoTenant.install(into: engine, now: t0)
        for example in examples {
            let definition = try JSONValue.parse(Data(example.utf8))
            try await engine.defineJourney(tenant: DemoTenant.id, definition, now: t0)
        }
        // The first two are the demo tenant's own journeys.
        #expect(try JSONValue.parse(Data(examples[0].utf8)) == JSONValue.parse(Data(DemoTenant.leadNurtureJourney.utf8)))
        #expect(try JSONValue.parse(Data(examples[1].utf8)) == JSONValue.parse(Data(DemoTenant.onboardingJourney.utf8)))
    }
}
