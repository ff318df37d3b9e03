/// A place on a site or in a message where Kairos chooses the content (`home-hero`,
/// `pricing-cta`), with its content variants and how to choose between them:
/// targeting rules first, then an experiment or an optimizer, then the default.
/// Format: `docs/decisions.md`.
public struct PlacementDefinition: Sendable {
    public struct Variant: Sendable {
        public var id: String
        public var template: ContentTemplate
        /// Free-form data returned with the decision (e.g. an image URL for the site's own rendering).
        public var data: JSONValue?
    }

    public struct Rule: Sendable {
        public var id: String
        public var condition: Predicate
        public var variant: String
    }

    public var id: String
    public var name: String
    public var variants: [Variant]
    public var rules: [Rule]
    public var optimizer: BanditSettings?
    /// The variant shown when no rule, experiment or optimizer decides; nil shows nothing.
    public var defaultVariant: String?
    public var source: JSONValue

    public func variantIndex(_ id: String) -> Int? { variants.firstIndex { $0.id == id } }

    public static func parse(_ json: JSONValue) throws(DefinitionError) -> PlacementDefinition {
        let reader = try DefinitionReader(json, at: "", what: "a placement")
        try reader.rejectUnknownKeys(allowed: ["id", "name", "description", "variants", "rules", "optimizer", "default"])
        let id = try reader.identifier("id")
        guard let variantValues = try reader.array("variants"), !variantValues.isEmpty else {
            throw DefinitionError(pointer: "/variants", message: "is required: at least one content variant")
        }
        var variants: [Variant] = []
        for (index, value) in variantValues.enumerated() {
            let pointer = "/variants/\(index)"
            let item = try DefinitionReader(value, at: pointer, what: "a variant")
            try item.rejectUnknownKeys(allowed: ["id", "name", "format", "template", "data"])
            let variantId = try item.identifier("id")
            guard !variants.contains(where: { $0.id == variantId }) else {
                throw DefinitionError(pointer: item.path("id"), message: "variant '\(variantId)' is defined twice")
            }
            let formatName = try item.string("format") ?? "html"
            guard let format = ContentFormat(rawValue: formatName) else {
                throw DefinitionError(
                    pointer: item.path("format"), message: "unknown format '\(formatName)' (expected html, text or json)")
            }
            guard let text = try item.string("template") else {
                throw DefinitionError(pointer: item.path("template"), message: "is required (a Mustache template; may be empty)")
            }
            let template = try ContentTemplate(text, format: format, pointer: item.path("template"))
            variants.append(Variant(id: variantId, template: template, data: item.object["data"].flatMap { $0.isNull ? nil : $0 }))
        }
        func requireVariant(_ name: String, at pointer: String) throws(DefinitionError) {
            guard variants.contains(where: { $0.id == name }) else {
                throw DefinitionError(
                    pointer: pointer,
                    message: "unknown variant '\(name)' (variants: \(variants.map(\.id).joined(separator: ", ")))")
            }
        }
        var rules: [Rule] = []
        for (index, value) in (try reader.array("rules") ?? []).enumerated() {
            let pointer = "/rules/\(index)"
            let item = try DefinitionReader(value, at: pointer, what: "a targeting rule")
            try item.rejectUnknownKeys(allowed: ["id", "when", "variant"])
            let ruleId = try item.string("id") ?? "rule-\(index + 1)"
            guard let condition = item.object["when"], !condition.isNull else {
                throw DefinitionError(pointer: item.path("when"), message: "is required (a condition, as in segments)")
            }
            let predicate = try Predicate.parse(condition, at: item.path("when"), placement: .decision)
            let variant = try item.requiredString("variant")
            try requireVariant(variant, at: item.path("variant"))
            rules.append(Rule(id: ruleId, condition: predicate, variant: variant))
        }
        let optimizer = try reader.object["optimizer"].flatMap { value throws(DefinitionError) in
            value.isNull ? nil : try BanditSettings.parse(value, at: "/optimizer")
        }
        let defaultVariant = try reader.string("default")
        if let defaultVariant { try requireVariant(defaultVariant, at: "/default") }
        return PlacementDefinition(
            id: id, name: try reader.string("name") ?? id, variants: variants, rules: rules, optimizer: optimizer,
            defaultVariant: defaultVariant, source: json)
    }
}

/// What counts as success for an experiment's goal or an optimizer's reward.
public enum DecisionGoal: Sendable, Hashable {
    /// A `Decision Clicked` event carrying the decision's id.
    case click
    /// A track event with this name within `within` of the exposure or impression.
    case event(name: String, within: TimeSpan)

    static func parse(_ value: JSONValue, at pointer: String) throws(DefinitionError) -> DecisionGoal {
        if case .string("click") = value { return .click }
        let reader = try DefinitionReader(value, at: pointer, what: "a goal (\"click\" or {\"event\": …, \"within\": …})")
        try reader.rejectUnknownKeys(allowed: ["event", "within"])
        let name = try reader.requiredString("event")
        return .event(name: name, within: try reader.span("within") ?? .days(7))
    }

    public var eventName: String? {
        if case .event(let name, _) = self { return name }
        return nil
    }
}

/// A placement's self-optimizing mode: Thompson sampling over its variants on a reward,
/// with a minimum share of uniformly random exploration.
public struct BanditSettings: Sendable, Hashable {
    public var reward: DecisionGoal
    public var minimumExploration: Double
    /// Variants the optimizer chooses among (all by default).
    public var variants: [String]?

    static func parse(_ value: JSONValue, at pointer: String) throws(DefinitionError) -> BanditSettings {
        let reader = try DefinitionReader(value, at: pointer, what: "an optimizer")
        try reader.rejectUnknownKeys(allowed: ["type", "reward", "min_exploration", "variants"])
        let type = try reader.string("type") ?? "thompson"
        guard type == "thompson" else {
            throw DefinitionError(pointer: reader.path("type"), message: "unknown optimizer '\(type)' (expected thompson)")
        }
        guard let reward = reader.object["reward"], !reward.isNull else {
            throw DefinitionError(pointer: reader.path("reward"), message: "is required: \"click\" or {\"event\": …, \"within\": …}")
        }
        let exploration = try reader.number("min_exploration") ?? 0.05
        guard (0...1).contains(exploration) else {
            throw DefinitionError(pointer: reader.path("min_exploration"), message: "must be between 0 and 1")
        }
        let variants = try reader.array("variants")?.enumerated().map { (index, item) throws(DefinitionError) -> String in
            guard case .string(let name) = item else {
                throw DefinitionError(pointer: reader.path("variants") + "/\(index)", message: "must be a variant id")
            }
            return name
        }
        return BanditSettings(
            reward: try DecisionGoal.parse(reward, at: reader.path("reward")), minimumExploration: exploration,
            variants: variants)
    }
}
