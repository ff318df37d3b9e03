import Foundation
import KairosCore
import KairosEngine
import Testing

@testable import KairosGateway

/// docs/openapi.yaml against the server: the same routes, and schemathesis finds no server
/// error and no response the description does not allow.
@Suite("OpenAPI description")
struct OpenAPITests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let specification = root.appendingPathComponent("docs/openapi.yaml").path
    static let schemathesis = root.appendingPathComponent(".build/python/bin/schemathesis").path

    /// Operations in the description: `  /path:` then `    method:` lines.
    static func documentedOperations() throws -> Set<String> {
        let text = try String(contentsOfFile: specification, encoding: .utf8)
        var operations: Set<String> = []
        var path: String?
        var inPaths = false
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line == "paths:" { inPaths = true; continue }
            guard inPaths else { continue }
            if !line.hasPrefix(" ") && !line.isEmpty { break }
            if line.hasPrefix("  /"), line.hasSuffix(":"), !line.hasPrefix("   ") {
                path = String(line.dropFirst(2).dropLast())
            } else if let path, line.hasPrefix("    "), !line.hasPrefix("     "), line.hasSuffix(":") {
                let method = line.trimmingCharacters(in: .whitespaces).dropLast()
                if ["get", "post", "put", "patch", "delete"].contains(method) { operations.insert("\(method.uppercased()) \(path)") }
            }
        }
        return operations
    }

    @Test("every route is described and every described operation is a route")
    func routesMatchTheDescription() async throws {
        let documented = try OpenAPITests.documentedOperations()
        let served = Set(AdminAPI.routes.map { "\($0.method) \($0.path)" } + Gateway.publicRoutes.map { "\($0.method) \($0.path)" })
        #expect(served.count > 60)
        #expect(documented.subtracting(served).sorted() == [], "described but not served")
        #expect(served.subtracting(documented).sorted() == [], "served but not described")

        // And the live server routes each one (no "no route" answer).
        let server = try await TestServer.start { $0.operatorKey = AdminAPITests.operatorKey }
        defer { Task { await server.stop() } }
        for operation in served.sorted() {
            let parts = operation.split(separator: " ")
            let path = parts[1].replacingOccurrences(of: "{tenant}", with: "demo").replacingOccurrences(of: "{", with: "x").replacingOccurrences(of: "}", with: "")
            let key = path.hasPrefix("/v1/admin/tenants") || path.hasSuffix("/status") || path.hasSuffix("/snapshots") ? AdminAPITests.operatorKey : "none"
            let response = try #require(try await exchange(server.port, request(String(parts[0]), path, headers: ["authorization": "Bearer " + key])))
            #expect(!response.text.contains("no route") && !response.text.contains("no admin route"), "\(operation): \(response.text)")
        }
    }

    func runSchemathesis(port: Int, header: String, filters: [String]) async throws -> (status: Int32, output: String) {
        try await offPool {
            try runProcess(
                OpenAPITests.schemathesis,
                [
                    "run", OpenAPITests.specification, "--url", "http://127.0.0.1:\(port)", "-H", header,
                    "-c", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
                    "-n", "8", "--phases", "examples,coverage,fuzzing", "--seed", "7", "--no-color", "--request-timeout", "20",
                ] + filters)
        }
    }

    @Test("schemathesis finds no server error and no response outside the description")
    func schemathesisAgreesWithTheServer() async throws {
        #expect(FileManager.default.isExecutableFile(atPath: OpenAPITests.schemathesis), "run `make deps` to set up .build/python")
        let server = try await TestServer.start { $0.operatorKey = AdminAPITests.operatorKey }
        defer { Task { await server.stop() } }
        let secret = try await server.engine.createKey(tenant: DemoTenant.id, scope: .secret, now: t0)
        // Keys last: the fuzzer may revoke or rotate the very key it is using.
        let runs: [(String, [String])] = [
            (server.basic, ["--include-tag", "ingest", "--include-tag", "decide", "--include-tag", "health"]),
            ("Bearer " + AdminAPITests.operatorKey, ["--include-tag", "operator"]),
            ("Bearer " + secret, ["--include-tag", "tenant", "--include-tag", "contacts", "--include-tag", "definitions"]),
            ("Bearer " + secret, ["--include-tag", "keys"]),
        ]
        for (header, filters) in runs {
            let run = try await runSchemathesis(port: server.port, header: "Authorization: " + header, filters: filters)
            #expect(run.status == 0, "schemathesis \(filters.joined(separator: " ")):\n\(run.output.suffix(4000))")
            #expect(run.output.contains("passed"))
        }
    }
}
