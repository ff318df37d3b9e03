import Foundation
@testable import KairosCore
import Testing

@Suite struct DecisionTests {
    static let placement = """
        {"id": "home-hero",
         "variants": [
           {"id": "generic", "template": "<h1>Welcome{{#first_name}}, {{.}}{{/first_name}}!</h1>"},
           {"id": "sales", "template": "<h1>{{traits.first_name}}, talk to sales ({{scores.engagement}} pts, {{grades.engagement}})</h1>"},
           {"id": "google", "format": "text", "template": "From {{context.utm.source}} on {{context.device}}"},
           {"id": "offer", "format": "json", "template": "{\\"headline\\": \\"Hi {{traits.first_name}}\\", \\"seg\\": {{#segments.mqls}}true{{/segments.mqls}}{{^segments.mqls}}false{{/segments.mqls}}}", "data": {"image": "/img/offer.png"}}
         ],
         "rules": [
           {"id": "mql", "when": {"segment": "mqls"}, "variant": "sales"},
           {"id": "from-google", "when": {"context": "utm.source", "op": "eq", "value": "google"}, "variant": "google"},
           {"id": "also-mql", "when": {"score": "engagement", "op": "gte", "value": 50}, "variant": "offer"}
         ],
         "default": "generic"}
        """

    static let models = [
        """
        {"id": "engagement", "rules": [{"id": "demo", "event": "Demo Requested", "points": 60}],
         "grades": [{"grade": "A", "min": 50}, {"grade": "B", "min": 0}]}
        """
    ]
    static let segments = [#"{"id": "mqls", "condition": {"score": "engagement", "op": "gte", "value": 50}}"#]

    func catalog(_ fixture: Fixture, placements: [String] = [placement], experiments: [String] = []) throws -> DecisionCatalog {
        try DecisionCatalog.compile(
            placements: try placements.map { try PlacementDefinition.parse(json($0)) },
            experiments: try experiments.map { try ExperimentDefinition.parse(json($0)) }, definitions: fixture.definitions,
            intern: { fixture.symbols.intern($0) })
    }

    func decide(
        _ catalog: DecisionCatalog, _ fixture: Fixture, state: ContactState?, id: String = "visitor",
        request: RequestContext = RequestContext(), placements: [String] = ["home-hero"], seed: UInt64 = 1
    ) -> (decisions: [PlacementDecision], record: DecisionRecord) {
        var random = SeededRandom(seed: seed)
        return Decider(catalog: catalog, definitions: fixture.definitions, accountTraits: nil).decide(
            placements: placements, state: state, hashValue: id, request: request, now: t0 + .hours(1),
            armStatistics: { _ in [] }, random: &random)
    }

    @Test func rulesApplyInOrderThenTheDefault() throws {
        let fixture = try Fixture(models: Self.models, segments: Self.segments)
        let catalog = try catalog(fixture)
        var ana = ContactState(id: 1, userId: "ana")
        _ = fixture.apply(.identify(userId: "ana", traits: ["first_name": "Ana"], at: t0), to: &ana)

        // No rule matches: the default, with the trait rendered by a section.
        var result = decide(catalog, fixture, state: ana)
        #expect(result.decisions[0].variant == "generic" && result.decisions[0].reason == .default)
        #expect(result.decisions[0].content == "<h1>Welcome, Ana!</h1>")
        #expect(result.record.served.count == 1 && result.record.exposures.isEmpty)

        // The request context rule.
        let google = RequestContext(url: "https://site.test/?utm_source=google&utm_medium=cpc", userAgent: "Mozilla/5.0 (iPhone)")
        result = decide(catalog, fixture, state: ana, request: google)
        #expect(result.decisions[0].rule == "from-google" && result.decisions[0].content == "From google on mobile")
        #expect(result.decisions[0].format == .text)

        // An MQL matches the first rule even from Google; both later rules also match.
        _ = fixture.apply(.track("Demo Requested", userId: "ana", at: t0 + .minutes(5)), to: &ana)
        result = decide(catalog, fixture, state: ana, request: google)
        #expect(result.decisions[0].rule == "mql" && result.decisions[0].reason == .rule)
        #expect(result.decisions[0].content == "<h1>Ana, talk to sales (60 pts, A)</h1>")
    }

    @Test func templatesEscapeByFormatAndToleratesMissingData() throws {
        let fixture = try Fixture(models: Self.models, segments: Self.segments)
        let jsonPlacement = """
            {"id": "p", "variants": [
              {"id": "j", "format": "json", "template": "{\\"name\\": \\"{{traits.name}}\\", \\"missing\\": \\"{{traits.nope.deeper}}\\"}"},
              {"id": "h", "template": "<b>{{traits.name}}</b>{{#traits.tags}}[{{.}}]{{/traits.tags}}{{^traits.plan}}no plan{{/traits.plan}} {{traits.n}}"}],
             "rules": [{"when": {"trait": "html", "op": "is_true"}, "variant": "h"}], "default": "j"}
            """
        let catalog = try catalog(fixture, placements: [jsonPlacement])
        var odd = ContactState(id: 2, userId: "odd")
        _ = fixture.apply(.identify(userId: "odd", traits: ["name": "A \"quoted\"\n<b>name</b>", "tags": ["x", 2], "n": 3.0], at: t0), to: &odd)
        var result = decide(catalog, fixture, state: odd, placements: ["p"])
        let content = try #require(result.decisions[0].content)
        #expect(content == #"{"name": "A \"quoted\"\n<b>name</b>", "missing": ""}"#)
        #expect((try? JSONValue.parse(content)) != nil)

        _ = fixture.apply(.identify(userId: "odd", traits: ["html": true], at: t0 + .minutes(1)), to: &odd)
        result = decide(catalog, fixture, state: odd, placements: ["p"])
        #expect(result.decisions[0].content == "<b>A &quot;quoted&quot;\n&lt;b&gt;name&lt;/b&gt;</b>[x][2]no plan 3")

        // A visitor never seen: no traits at all, still an answer.
        result = decide(catalog, fixture, state: nil, placements: ["p", "nope"])
        #expect(result.decisions[0].content == #"{"name": "", "missing": ""}"#)
        #expect(result.decisions[1].reason == .unknownPlacement && result.decisions[1].variant == nil)
    }

    /// Simple templates render through a compiled form; it must say exactly what the library says.
    @Test func compiledTemplatesRenderExactlyAsTheLibrary() throws {
        let fixture = try Fixture(models: Self.models, segments: Self.segments)
        var state = ContactState(id: 3, userId: "kim", anonymousId: "a-1")
        _ = fixture.apply(
            .identify(
                userId: "kim",
                traits: ["first_name": "Kim <&> 'Lee'", "n": 2.5, "m": 7, "ok": true, "tags": ["a"], "address": ["city": "Lyon \"L\""], "nil": .null],
                at: t0), to: &state)
        _ = fixture.apply(.track("Demo Requested", userId: "kim", at: t0 + .minutes(1)), to: &state)
        state.context = EvaluationContext(now: t0 + .minutes(2), definitions: fixture.definitions)
        let subject = DecisionSubject(state: state, request: RequestContext(url: "https://x.test/?utm_source=mail&utm_campaign=spring+sale"))
        let scope = TemplateScope(subject: subject, placement: "p", variant: "v")
        let templates = [
            "Hi {{first_name}}!", "{{{first_name}}} {{& first_name}}", "{{ traits.first_name }}/{{traits.address.city}}/{{address.city}}",
            "{{n}} {{m}} {{ok}} {{nil}} {{missing}} {{missing.deep}}", "{{scores.engagement}} {{grades.engagement}} {{stages.engagement}}",
            "{{segments.mqls}}|{{segments.nope}}|{{scores.nope}}", "{{contact.user_id}} {{contact.anonymous_id}} {{placement}}-{{variant}}",
            "{{context.utm.source}} {{context.utm.campaign}} {{context.url}}", "{{tags}} {{traits.tags}}", "{{traits}}",
            "{{first_name.x}} {{scores.engagement.x}} {{placement.x}}",
        ]
        for format in ContentFormat.allCases {
            for text in templates {
                let template = try ContentTemplate(text, format: format)
                #expect(template.render(scope: scope) == template.render(scope: scope, forceLibrary: true), "\(format) \(text)")
            }
        }
        #expect(ContentTemplate.simplePieces("a {{#x}}b{{/x}}") == nil)
        #expect(ContentTemplate.simplePieces("{{a.b}} c") == [.value(path: ["a", "b"], escaped: true), .text(" c")])
    }

    @Test func badDefinitionsArePointedAt() throws {
        func error(_ text: String) -> DefinitionError? {
            do { _ = try PlacementDefinition.parse(json(text)); return nil } catch { return error }
        }
        let broken = error(#"{"id": "p", "variants": [{"id": "a", "template": "ok"}, {"id": "b", "template": "line one\nHi {{#name}} there"}]}"#)
        #expect(broken?.pointer == "/variants/1/template")
        #expect(broken?.message.contains("line 2") == true)
        let unclosed = error(#"{"id": "p", "variants": [{"id": "a", "template": "Hi {{name"}]}"#)
        #expect(unclosed?.message.contains("line 1, column") == true)
        #expect(error(#"{"id": "p", "variants": [{"id": "a", "template": ""}], "default": "zz"}"#)?.pointer == "/default")
        #expect(error(#"{"id": "p", "variants": [{"id": "a", "template": ""}], "rules": [{"when": {"event": {"track": "X"}}, "variant": "a"}]}"#)?
            .pointer == "/rules/0/when/event")
        #expect(error(#"{"id": "p", "variants": [{"id": "a", "template": "", "colour": 1}]}"#)?.pointer == "/variants/0/colour")

        let fixture = try Fixture(models: Self.models, segments: Self.segments)
        #expect(throws: DecisionCatalog.CompileError.self) {
            _ = try catalog(fixture, placements: [#"{"id": "p", "variants": [{"id": "a", "template": ""}], "rules": [{"when": {"segment": "ghost"}, "variant": "a"}]}"#])
        }
        let experiment = #"{"id": "e", "placement": "home-hero", "variants": ["generic", "nope"], "goal": "click"}"#
        do {
            _ = try catalog(fixture, experiments: [experiment])
            Issue.record("an experiment naming an unknown variant was accepted")
        } catch let error as DecisionCatalog.CompileError {
            #expect(error.error.pointer == "/variants/1")
        }
    }

    @Test func experimentAssignmentIsStickyAndMatchesTheWeights() throws {
        let fixture = try Fixture(models: Self.models, segments: Self.segments)
        let experiment = """
            {"id": "hero-test", "placement": "home-hero", "variants": ["generic", "offer", "google"],
             "weights": [0.5, 0.3, 0.2], "coverage": 0.9, "goal": {"event": "Signed Up", "within": {"days": 7}}}
            """
        let catalog = try catalog(fixture, experiments: [experiment])
        let definition = try ExperimentDefinition.parse(json(experiment))
        var counts = [0, 0, 0]
        var outside = 0
        let total = 100_000
        for index in 0..<total {
            if let variant = definition.assign("visitor-\(index)") { counts[variant] += 1 } else { outside += 1 }
        }
        // Expected shares 0.45, 0.27, 0.18 and 0.10 outside; 5 standard errors is about ±0.008.
        for (observed, expected) in zip(counts + [outside], [0.45, 0.27, 0.18, 0.10]) {
            #expect(abs(Double(observed) / Double(total) - expected) < 0.008)
        }

        // A decision for one id equals the hash; the record makes it sticky even if the weights change.
        let first = decide(catalog, fixture, state: nil, id: "visitor-7")
        let expected = definition.assign("visitor-7")
        #expect(first.decisions[0].assignment?.variantIndex == expected ?? -99 || (expected == nil && first.decisions[0].assignment == nil))
        var visitor = ContactState(id: 9, anonymousId: "visitor-7")
        var effects: [Effect] = []
        visitor.record(first.record, effects: &effects)
        if let expected {
            #expect(effects.map(\.kind) == [.experimentExposed(experiment: "hero-test", variant: expected)])
            let reweighted = try self.catalog(
                fixture, experiments: [experiment.replacingOccurrences(of: "[0.5, 0.3, 0.2]", with: "[0.1, 0.1, 0.8]")])
            let again = decide(reweighted, fixture, state: visitor, id: "someone-else")
            #expect(again.decisions[0].assignment?.variantIndex == expected)
            #expect(again.record.exposures.isEmpty)
        }
    }

    @Test func thompsonSamplingConvergesOnTheBestArm() {
        // A simulated site: three variants with click rates 2%, 5% and 3%.
        let rates = [0.02, 0.05, 0.03]
        var arms = Array(repeating: ArmStatistics(), count: 3)
        var world = SeededRandom(seed: 42)
        var random = SeededRandom(seed: 7)
        var lastThousand = [0, 0, 0]
        for round in 0..<20_000 {
            let arm = ThompsonSampling.choose(arms, minimumExploration: 0.05, random: &random)
            arms[arm].trials += 1
            if world.unit() < rates[arm] { arms[arm].rewards += 1 }
            if round >= 19_000 { lastThousand[arm] += 1 }
        }
        #expect(lastThousand[1] > 850, "best arm played \(lastThousand[1]) of the last 1,000 times")
        // Every arm keeps being explored.
        #expect(arms.allSatisfy { $0.trials > 200 })

        // The same seed gives the same choices.
        var a = SeededRandom(seed: 99)
        var b = SeededRandom(seed: 99)
        let choicesA = (0..<50).map { _ in ThompsonSampling.choose(arms, minimumExploration: 0.1, random: &a) }
        let choicesB = (0..<50).map { _ in ThompsonSampling.choose(arms, minimumExploration: 0.1, random: &b) }
        #expect(choicesA == choicesB)
    }
}

@Suite struct DeviceClassTests {
    @Test func userAgentsMapToMobileTabletOrDesktop() {
        let cases: [(String, String)] = [
            ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148", "mobile"),
            ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/124.0 Mobile Safari/537.36", "mobile"),
            ("Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15", "tablet"),
            ("Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 Chrome/124.0 Safari/537.36 TABLET", "tablet"),
            ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/124.0 Safari/537.36", "desktop"),
            ("", "desktop"),
            ("Ünïcode-Agent ANDROID", "mobile"),  // not ASCII: Unicode case rules
        ]
        for (agent, expected) in cases { #expect(RequestContext.deviceClass(agent) == expected, "\(agent)") }
    }
}

@Suite struct QueryStringTests {
    @Test func decodesQueriesAndPathSegments() {
        #expect(QueryString.pairs("a=1&b=x+y%2Bz&&c&=v").map { "\($0.name)=\($0.value)" } == ["a=1", "b=x y+z", "c=", "=v"])
        #expect(QueryString.decode("a+b%20c", plusIsSpace: false) == "a+b c")  // a path segment keeps its '+'
        #expect(QueryString.decode("K%C3%B6ln") == "Köln")
        #expect(QueryString.decode("%E2%82") == "%E2%82")  // not UTF-8 once decoded: kept as sent
        #expect(QueryString.decode("100%") == "100%")
    }

    @Test func campaignParametersComeFromThePageURL() {
        let context = RequestContext(url: "https://shop.test/p?x=1&utm_source=news+letter&utm_medium=e%2Dmail&utm_term=&utm_=odd")
        #expect(context.values["utm"] == .object(["source": "news letter", "medium": "e-mail"]))
        // Parameters given explicitly win over the URL's.
        let explicit = RequestContext(url: "https://shop.test/?utm_source=google", utm: ["source": "partner"])
        #expect(explicit.values["utm"] == .object(["source": "partner"]))
    }
}
