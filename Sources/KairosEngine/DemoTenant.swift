import KairosCore

/// The demo tenant's definitions: sensible default scoring models and segments that
/// a new installation starts with, and that the documentation uses as examples.
public enum DemoTenant {
    public static let id = "demo"

    public static let fitModel = """
        {
          "id": "fit", "name": "Fit",
          "description": "Who they are: firmographics and role. No decay.",
          "limit": 100,
          "rules": [
            {"id": "free-mail", "name": "Free-mail address", "points": -10,
             "trait": {"trait": "email", "op": "ends_with",
                       "value": ["@gmail.com", "@yahoo.com", "@hotmail.com", "@outlook.com", "@icloud.com", "@aol.com", "@gmx.com", "@proton.me"]}},
            {"id": "company-large", "name": "Company size > 500", "points": 25,
             "trait": {"trait": "company_size", "op": "gt", "value": 500}},
            {"id": "company-mid", "name": "Company size 50–500", "points": 15,
             "trait": {"all": [{"trait": "company_size", "op": "gte", "value": 50},
                               {"trait": "company_size", "op": "lte", "value": 500}]}},
            {"id": "decision-maker", "name": "Decision-maker title", "points": 20,
             "trait": {"trait": "title", "op": "contains", "value": ["VP", "Director", "Head", "Chief", "CEO", "CTO", "Founder"]}},
            {"id": "target-industry", "name": "Target industry", "points": 15,
             "trait": {"trait": "industry", "op": "in", "value": ["Software", "SaaS", "E-commerce", "Fintech"]}},
            {"id": "enterprise-account", "name": "Account with 1,000+ employees", "points": 15,
             "trait": {"account": "employees", "op": "gte", "value": 1000}}
          ],
          "grades": [{"grade": "A", "min": 50}, {"grade": "B", "min": 25}, {"grade": "C"}]
        }
        """

    public static let engagementModel = """
        {
          "id": "engagement", "name": "Engagement",
          "description": "What they do. Points halve every 30 days.",
          "halfLifeDays": 30,
          "limit": 200,
          "minimum": -100,
          "groups": [
            {"id": "web", "name": "Website", "limit": 80},
            {"id": "email", "name": "Email", "limit": 60},
            {"id": "sales", "name": "Sales intent"}
          ],
          "rules": [
            {"id": "page-view", "name": "Page view", "group": "web", "points": 1,
             "event": {"type": "page"}, "cap": {"times": 10, "per": "day"}},
            {"id": "pricing-page", "name": "Viewed pricing", "group": "web", "points": 20,
             "event": {"type": "page", "where": {"property": "path", "op": "starts_with", "value": "/pricing"}},
             "cap": {"times": 3, "per": "day"}},
            {"id": "email-click", "name": "Clicked an email", "group": "email", "points": 10,
             "event": "Email Link Clicked", "cap": {"times": 5, "per": "day"}},
            {"id": "unsubscribe", "name": "Unsubscribed", "group": "email", "points": -50, "event": "Unsubscribed"},
            {"id": "webinar", "name": "Attended a webinar", "group": "sales", "points": 30, "event": "Webinar Attended"},
            {"id": "signup", "name": "Signed up", "group": "sales", "points": 25, "event": "Signed Up",
             "cap": {"times": 1, "per": "ever"}},
            {"id": "demo-request", "name": "Requested a demo", "group": "sales", "points": 50, "event": "Demo Requested"}
          ],
          "grades": [{"grade": "1", "min": 100}, {"grade": "2", "min": 40}, {"grade": "3"}],
          "gradeMatrix": {"rows": "fit"},
          "lifecycle": [{"stage": "MQL", "min": 80}, {"stage": "SQL", "min": 150}]
        }
        """

    public static let segments = [
        """
        {"id": "trial-users", "name": "Trial users", "condition": {"trait": "plan", "op": "eq", "value": "trial"}}
        """,
        """
        {"id": "pricing-interest", "name": "Viewed pricing twice this week",
         "condition": {"event": "*", "type": "page", "where": {"property": "path", "op": "starts_with", "value": "/pricing"},
                       "count": {"op": "gte", "value": 2}, "within": {"days": 7}}}
        """,
        """
        {"id": "trial-pricing", "name": "Trial users who viewed pricing twice this week",
         "condition": {"all": [{"segment": "trial-users"}, {"segment": "pricing-interest"}]}}
        """,
        """
        {"id": "mqls", "name": "Marketing-qualified leads",
         "condition": {"lifecycle": "engagement", "op": "in", "value": ["MQL", "SQL"]}}
        """,
        """
        {"id": "hot-leads", "name": "Hot leads (good fit, engaged)",
         "condition": {"all": [{"grade": "fit", "op": "in", "value": ["A", "B"]}, {"score": "engagement", "op": "gte", "value": 60}]}}
        """,
        """
        {"id": "new-signups", "name": "Signed up in the last 7 days",
         "condition": {"event": "Signed Up", "within": {"days": 7}}}
        """,
        """
        {"id": "dormant", "name": "Not seen for 30 days", "condition": {"last_seen": {"older_than": {"days": 30}}}}
        """,
        """
        {"id": "enterprise-accounts", "name": "People at 1,000+ employee accounts",
         "condition": {"account": "employees", "op": "gte", "value": 1000}}
        """,
    ]

    /// The home page hero: sales for MQLs, a campaign headline for Google visitors, and an
    /// experiment on the headline for everyone else.
    public static let heroPlacement = """
        {"id": "home-hero", "name": "Home page hero",
         "variants": [
           {"id": "generic", "template": "<h1>Grow faster{{#first_name}}, {{.}}{{/first_name}}</h1>"},
           {"id": "social-proof", "template": "<h1>Join 2,000 teams growing faster{{#first_name}}, {{.}}{{/first_name}}</h1>"},
           {"id": "talk-to-sales", "template": "<h1>{{#first_name}}{{.}}, {{/first_name}}let's plan your rollout</h1><a href='/demo'>Book a call</a>"},
           {"id": "campaign", "template": "<h1>Welcome, {{context.utm.campaign}} reader</h1>"}
         ],
         "rules": [
           {"id": "mqls-to-sales", "when": {"segment": "mqls"}, "variant": "talk-to-sales"},
           {"id": "google-campaign", "when": {"context": "utm.source", "op": "eq", "value": "google"}, "variant": "campaign"}
         ],
         "default": "generic"}
        """

    /// The pricing page call to action, chosen by Thompson sampling on clicks.
    public static let pricingPlacement = """
        {"id": "pricing-cta", "name": "Pricing call to action",
         "variants": [
           {"id": "start-trial", "format": "text", "template": "Start your free trial"},
           {"id": "see-demo", "format": "text", "template": "See it in action"},
           {"id": "talk-to-us", "format": "text", "template": "Talk to us{{#company}} about {{.}}{{/company}}"}
         ],
         "optimizer": {"type": "thompson", "reward": "click", "min_exploration": 0.1},
         "default": "start-trial"}
        """

    public static let heroExperiment = """
        {"id": "hero-headline", "name": "Hero headline: social proof", "placement": "home-hero",
         "variants": ["generic", "social-proof"], "weights": [0.5, 0.5], "holdout": 0.05,
         "goal": {"event": "Signed Up", "within": {"days": 7}}}
        """

    /// B2B lead nurture: a new MQL gets a welcome, a tag and two days; one with a company and a
    /// good fit is handed to sales (a webhook to the CRM and the SQL stage); the goal is a demo request.
    public static let leadNurtureJourney = """
        {"id": "mql-nurture", "name": "MQL nurture and hand-off to sales",
         "trigger": {"segment_entered": "mqls"},
         "goal": {"trait": "demo_requested", "op": "is_true"},
         "exit": {"segment": "dormant"},
         "re_entry": {"policy": "after_exit", "max_entries": 3, "min_gap": {"days": 30}},
         "frequency_cap": {"per_day": 2, "when_capped": "delay"},
         "quiet_hours": {"start": "21:00", "end": "08:00"},
         "time_zone": "Europe/Paris",
         "templates": {
           "welcome": {"channel": "email", "subject": "{{#traits.first_name}}{{.}}, {{/traits.first_name}}a guide for teams like yours",
                       "body": "Hi {{traits.first_name}}, here is how teams in {{traits.industry}} get started."},
           "crm": {"channel": "webhook", "url": "https://crm.example.com/hooks/kairos-mql",
                   "body": "{\\"user_id\\": \\"{{contact.user_id}}\\", \\"email\\": \\"{{traits.email}}\\", \\"company\\": \\"{{traits.company}}\\"}"}
         },
         "nodes": [
           {"id": "welcome", "type": "send", "template": "welcome", "next": "tag"},
           {"id": "tag", "type": "update", "add_tags": ["mql-nurture"], "next": "wait-2d"},
           {"id": "wait-2d", "type": "wait", "duration": {"days": 2}, "next": "good-fit"},
           {"id": "good-fit", "type": "branch", "condition": {"grade": "fit", "op": "in", "value": ["A", "B"]},
            "then": "to-sales", "else": "done"},
           {"id": "to-sales", "type": "send", "template": "crm", "next": "sql"},
           {"id": "sql", "type": "update", "lifecycle_stage": "SQL", "next": "done"},
           {"id": "done", "type": "exit"}
         ]}
        """

    /// Trial onboarding: after sign-up, wait up to three days for a demo request; without one,
    /// a nudge by email, then one more chance over four days.
    public static let onboardingJourney = """
        {"id": "trial-onboarding", "name": "Trial onboarding",
         "trigger": {"event": "Signed Up"},
         "templates": {
           "nudge": {"channel": "email", "subject": "Need a hand getting started?",
                     "body": "Book a 20-minute walkthrough: https://example.com/demo"}
         },
         "nodes": [
           {"id": "wait-demo", "type": "wait_for_event", "event": "Demo Requested", "timeout": {"days": 3},
            "next": "activated", "timeout_next": "nudge"},
           {"id": "nudge", "type": "send", "template": "nudge", "next": "second-chance"},
           {"id": "second-chance", "type": "wait_for_event", "event": "Demo Requested", "timeout": {"days": 4},
            "next": "activated", "timeout_next": "not-yet"},
           {"id": "activated", "type": "update", "set": {"demo_requested": true}, "next": "end"},
           {"id": "not-yet", "type": "exit"},
           {"id": "end", "type": "exit"}
         ]}
        """

    /// Creates the demo tenant with its default models, segments, placements, experiment and journeys (active).
    public static func install(into engine: Engine, tenant: String = id, now: Timestamp) async throws(EngineError) {
        try await engine.createTenant(id: tenant, name: "Demo", now: now)
        for text in [fitModel, engagementModel] {
            try await engine.defineScoringModel(tenant: tenant, parse(text), now: now)
        }
        for text in segments {
            try await engine.defineSegment(tenant: tenant, parse(text), now: now)
        }
        try await engine.definePlacement(tenant: tenant, parse(heroPlacement), now: now)
        try await engine.definePlacement(tenant: tenant, parse(pricingPlacement), now: now)
        try await engine.defineExperiment(tenant: tenant, parse(heroExperiment), now: now)
        for text in [onboardingJourney, leadNurtureJourney] {
            let receipt = try await engine.defineJourney(tenant: tenant, parse(text), now: now)
            try await engine.setJourneyStatus(tenant: tenant, journey: receipt.id, .active, now: now)
        }
    }

    static func parse(_ text: String) throws(EngineError) -> JSONValue {
        do { return try JSONValue.parse(text) } catch {
            throw EngineError(.invalidArgument, "demo definition is not valid JSON: \(error)")
        }
    }
}
