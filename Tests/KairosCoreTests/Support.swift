import KairosCore

let t0 = Timestamp(iso8601: "2026-03-02T09:00:00Z")!

func json(_ text: String) -> JSONValue {
    do { return try JSONValue.parse(text) } catch { fatalError("test JSON does not parse: \(error)\n\(text)") }
}

/// Compiles definitions with a private symbol table, as a tenant would.
final class Fixture {
    var symbols = SymbolTable()
    var definitions: TenantDefinitions

    init(models: [String] = [], segments: [String] = []) throws {
        definitions = .empty
        try compile(models: models, segments: segments)
    }

    func compile(models: [String], segments: [String]) throws {
        let parsedModels = try models.map { try ScoringModel.parse(json($0)) }
        let parsedSegments = try segments.map { try SegmentDefinition.parse(json($0)) }
        definitions = try TenantDefinitions.compile(
            version: definitions.version + 1, models: parsedModels, segments: parsedSegments,
            intern: { self.symbols.intern($0) })
    }

    func apply(_ event: Event, to state: inout ContactState, now: Timestamp? = nil) -> [Effect] {
        var effects: [Effect] = []
        let symbol = symbols.intern(event.counterName)
        state.apply(
            event, counterSymbol: symbol, context: EvaluationContext(now: now ?? event.time, definitions: definitions),
            effects: &effects)
        return effects
    }

    func wake(_ state: inout ContactState, at now: Timestamp) -> [Effect] {
        var effects: [Effect] = []
        state.wake(context: EvaluationContext(now: now, definitions: definitions), effects: &effects)
        return effects
    }

    func score(_ state: ContactState, _ model: String, at now: Timestamp) -> Double {
        state.score(model: definitions.modelIndex[model]!, definitions: definitions, now: now)
    }

    func isMember(_ state: ContactState, _ segment: String) -> Bool {
        state.isMember(of: definitions.segment(segment)!.symbol)
    }
}

extension Effect.Kind {
    var segmentEntered: String? {
        if case .segmentEntered(let segment) = self { return segment }
        return nil
    }
    var segmentLeft: String? {
        if case .segmentLeft(let segment) = self { return segment }
        return nil
    }
}
