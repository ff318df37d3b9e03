import ArgumentParser
import Foundation
import KairosCore
import KairosEngine

extension Kairos {
    struct Validate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check definitions (scoring models, segments, placements, experiments, journeys; JSON files) without applying them.",
            discussion: """
                Each file holds one definition. Files are checked in order against the demo \
                tenant's definitions plus the files before them, so a segment may use a model or \
                segment defined in an earlier file. Problems are reported with a JSON pointer to \
                the offending part. Exits with status 1 when any file is invalid.

                Example: kairos validate --model fit.json --segment hot-leads.json --journey nurture.json
                """
        )

        @Option(name: .customLong("model"), help: "A scoring model definition file (repeatable).")
        var models: [String] = []

        @Option(name: .customLong("segment"), help: "A segment definition file (repeatable).")
        var segments: [String] = []

        @Option(name: .customLong("placement"), help: "A placement definition file (repeatable).")
        var placements: [String] = []

        @Option(name: .customLong("experiment"), help: "An experiment definition file (repeatable).")
        var experiments: [String] = []

        @Option(name: .customLong("template"), help: "A message template definition file (repeatable); journeys given may send it.")
        var templates: [String] = []

        @Option(name: .customLong("journey"), help: "A journey definition file (repeatable).")
        var journeys: [String] = []

        func validate() throws {
            guard !models.isEmpty || !segments.isEmpty || !placements.isEmpty || !experiments.isEmpty || !journeys.isEmpty || !templates.isEmpty else {
                throw ValidationError("name at least one --model, --segment, --placement, --experiment or --journey file")
            }
        }

        func run() async throws {
            let engine = Engine()
            let now = Timestamp(seconds: Date().timeIntervalSince1970)
            try await DemoTenant.install(into: engine, now: now)
            var failures = 0
            let files = models.map { (DefinitionKind.scoringModel, $0) } + segments.map { (DefinitionKind.segment, $0) }
                + placements.map { (DefinitionKind.placement, $0) } + experiments.map { (DefinitionKind.experiment, $0) }
                + templates.map { (DefinitionKind.template, $0) } + journeys.map { (DefinitionKind.journey, $0) }
            for (kind, path) in files {
                do {
                    guard FileManager.default.isReadableFile(atPath: path) else {
                        throw EngineError(.invalidArgument, "cannot read the file (missing, or no permission)")
                    }
                    let data = try Data(contentsOf: URL(fileURLWithPath: path))
                    let definition: JSONValue
                    do { definition = try JSONValue.parse(data) } catch {
                        throw EngineError(.invalidArgument, "not valid JSON: \(error.localizedDescription)")
                    }
                    switch kind {
                    case .scoringModel: try await engine.defineScoringModel(tenant: DemoTenant.id, definition, now: now)
                    case .segment: try await engine.defineSegment(tenant: DemoTenant.id, definition, now: now)
                    case .placement: try await engine.definePlacement(tenant: DemoTenant.id, definition, now: now)
                    case .experiment: try await engine.defineExperiment(tenant: DemoTenant.id, definition, now: now)
                    case .journey: try await engine.defineJourney(tenant: DemoTenant.id, definition, now: now)
                    case .template: try await engine.defineTemplate(tenant: DemoTenant.id, definition, now: now)
                    case .journeyStatus, .writeKey, .limits: break
                    }
                    print("ok       \(path)")
                } catch let error as EngineError {
                    failures += 1
                    print("invalid  \(path): \(error.message)")
                } catch {
                    failures += 1
                    print("invalid  \(path): \(error.localizedDescription)")
                }
            }
            if failures > 0 { throw ExitCode(1) }
        }
    }
}
