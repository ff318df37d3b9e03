import Foundation
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// `kairos serve` as an operator runs it: first start creates the demo tenant and prints its
/// key; SIGTERM answers, snapshots and exits 0; a restart recovers the state and the key.
@Suite(.serialized) struct ServeTests {
    /// Used by one thread at a time (the test's, or the Dispatch thread it waits on).
    final class Server: @unchecked Sendable {
        let process = Process()
        let output = Pipe()
        let errors = Pipe()
        var stdout = ""
        var stderr = ""

        init(dataDir: String) throws {
            process.executableURL = URL(fileURLWithPath: try kairosExecutable())
            process.arguments = ["serve", "--data-dir", dataDir, "--port", "0", "--stream-port", "0", "--durability", "fast"]
            process.standardOutput = output
            process.standardError = errors
            process.standardInput = FileHandle.nullDevice
            try process.run()
        }

        /// Reads stderr until the listening line; returns the port.
        func waitForPort() async throws -> Int? { try await blocking { self.readPort() } }

        func key() async throws -> String? { try await printed(#"wk_[0-9a-f]{64}"#) }

        /// The demo tenant's secret key (first start).
        func secretKey() async throws -> String? { try await printed(#"sk_[0-9a-f]{64}"#) }

        /// The first match of a pattern on standard output, reading on until it appears.
        func printed(_ pattern: String) async throws -> String? { try await blocking { self.read(pattern) } }

        /// SIGTERM, then waits for the exit; returns the exit status.
        func stop() async throws -> Int32 { try await blocking { self.terminate() } }

        private func readPort() -> Int? {
            let deadline = Date().addingTimeInterval(60)
            while Date() < deadline {
                let chunk = errors.fileHandleForReading.availableData
                if chunk.isEmpty { return nil }
                stderr += String(decoding: chunk, as: UTF8.self)
                if let range = stderr.range(of: #"listening on http://127\.0\.0\.1:(\d+)"#, options: .regularExpression) {
                    return Int(stderr[range].split(separator: ":").last ?? "")
                }
            }
            return nil
        }

        private func read(_ pattern: String) -> String? {
            let deadline = Date().addingTimeInterval(10)
            while Date() < deadline {
                if let range = stdout.range(of: pattern, options: .regularExpression) { return String(stdout[range]) }
                let chunk = output.fileHandleForReading.availableData
                if chunk.isEmpty { return nil }
                stdout += String(decoding: chunk, as: UTF8.self)
            }
            return nil
        }

        private func terminate() -> Int32 {
            process.terminate()
            stderr += String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            stdout += String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            return process.terminationStatus
        }
    }

    /// Confined to one CPU (`taskset -c 0`), the loop does not ask for real-time priority: a
    /// real-time thread spinning on a lock a normal thread holds would keep it off that CPU.
    @Test func aServerOnOneCPUKeepsItsLoopAtNormalPriority() async throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/taskset")
        let dataDir = NSTemporaryDirectory() + "kairos-one-cpu-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dataDir) }
        process.arguments = ["-c", "0", try kairosExecutable(), "serve", "--data-dir", dataDir, "--port", "0", "--stream-port=-1"]
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let stderr = try await blocking { () -> String in
            var text = ""
            let deadline = Date().addingTimeInterval(60)
            while Date() < deadline, !text.contains("gateway loop at") {
                let chunk = errors.fileHandleForReading.availableData
                if chunk.isEmpty { break }
                text += String(decoding: chunk, as: UTF8.self)
            }
            process.terminate()
            process.waitUntilExit()
            return text
        }
        #expect(stderr.contains("gateway loop at normal priority, real-time scheduling not used: the process may run on one CPU only"), "\(stderr)")
    }

    /// A misspelt setting in the environment stops the start with a message naming it.
    @Test func aMisspeltEnvironmentSettingIsRefused() async throws {
        for (name, value, message) in [
            ("KAIROS_LOOP_PRIORITY", "rt", "KAIROS_LOOP_PRIORITY must be realtime or normal, not 'rt'"),
            ("KAIROS_DURABILITY", "safe", "KAIROS_DURABILITY must be strict or fast, not 'safe'"),
        ] {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: try kairosExecutable())
            process.arguments = ["serve", "--data-dir", NSTemporaryDirectory() + "kairos-unused-\(UUID().uuidString)", "--port", "0"]
            process.environment = ProcessInfo.processInfo.environment.merging([name: value]) { $1 }
            let errors = Pipe()
            process.standardError = errors
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            let stderr = try await blocking { () -> String in
                let data = errors.fileHandleForReading.readDataToEndOfFile()
                process.waitUntilExit()
                return String(decoding: data, as: UTF8.self)
            }
            #expect(process.terminationStatus != 0)
            #expect(stderr.contains(message), "\(stderr)")
        }
    }

    func post(_ port: Int, _ path: String, key: String, _ body: String) async throws -> (Int, String) {
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
        request.httpMethod = "POST"
        request.httpBody = Data(body.utf8)
        request.setValue("application/json", forHTTPHeaderField: "content-type")
        request.setValue("Basic " + Data((key + ":").utf8).base64EncodedString(), forHTTPHeaderField: "authorization")
        let (data, response) = try await URLSession.shared.data(for: request)
        return ((response as? HTTPURLResponse)?.statusCode ?? 0, String(decoding: data, as: UTF8.self))
    }

    func get(_ port: Int, _ path: String, bearer: String) async throws -> (Int, String) {
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
        request.setValue("Bearer " + bearer, forHTTPHeaderField: "authorization")
        let (data, response) = try await URLSession.shared.data(for: request)
        return ((response as? HTTPURLResponse)?.statusCode ?? 0, String(decoding: data, as: UTF8.self))
    }

    @Test func firstStartDemoKeyShutdownAndRestart() async throws {
        let dataDir = NSTemporaryDirectory() + "kairos-serve-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dataDir) }

        let first = try Server(dataDir: dataDir)
        let port = try #require(await first.waitForPort(), "\(first.stderr)")
        let key = try #require(await first.key(), "\(first.stdout)")
        #expect(first.stdout.contains("curl -u '\(key):'"))
        #expect(first.stdout.contains("/v1/decide"))
        var (status, body) = try await post(port, "/v1/identify", key: key, #"{"userId": "ana", "traits": {"plan": "trial"}, "messageId": "m1"}"#)
        #expect(status == 200, "\(body)")
        (status, body) = try await post(port, "/v1/track", key: key, #"{"userId": "ana", "event": "Signed Up", "messageId": "m2"}"#)
        #expect(status == 200, "\(body)")
        // The server's malloc is mimalloc's (linked into the executable), not the C library's,
        // and it asks for 2 MiB pages unless the environment says otherwise.
        let operatorKey = try String(contentsOfFile: dataDir + "/operator-key", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        (status, body) = try await get(port, "/v1/admin/status", bearer: operatorKey)
        #expect(status == 200 && body.contains(#""memoryAllocator":"mimalloc "#), "\(body)")
        if ProcessInfo.processInfo.environment["MIMALLOC_LARGE_OS_PAGES"] == nil {
            #expect(body.contains(#", 2 MiB pages""#), "\(body)")
        }
        // Every field docs/openapi.yaml describes for a served status, and no other.
        let statusFields = try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any]
        #expect(
            Set(statusFields?.keys ?? [:].keys) == [
                "version", "uptimeSeconds", "recoverySeconds", "durability", "memoryAllocator", "loopPriority", "tenants",
                "pendingTimers", "journalBytes", "snapshots",
            ], "\(body)")
        #expect(try await first.stop() == 0, "\(first.stderr)")
        #expect(first.stderr.contains("SIGTERM received"))
        // The loop asks for real-time priority by default; root on two CPUs or more gets it,
        // others are told why not.
        if geteuid() == 0 && ProcessInfo.processInfo.activeProcessorCount >= 2 {
            #expect(statusFields?["loopPriority"] as? String == "realtime", "\(body)")
            #expect(first.stderr.contains("gateway loop at real-time priority"), "\(first.stderr)")
        } else {
            #expect(statusFields?["loopPriority"] as? String == "normal", "\(body)")
            #expect(first.stderr.contains("gateway loop at normal priority, real-time scheduling "), "\(first.stderr)")
        }
        #expect(first.stderr.contains("wrote snapshot"))

        // The restart recovers the tenant, the contact and the key; no new key is printed.
        let second = try Server(dataDir: dataDir)
        let again = try #require(await second.waitForPort(), "\(second.stderr)")
        (status, body) = try await post(again, "/v1/track", key: key, #"{"userId": "ana", "event": "Signed Up", "messageId": "m2"}"#)
        #expect(status == 200, "\(body)")
        (status, body) = try await post(again, "/v1/decide", key: key, #"{"userId": "ana", "placements": ["home-hero"]}"#)
        #expect(status == 200 && body.contains("decisionId"), "\(body)")
        #expect(try await second.stop() == 0, "\(second.stderr)")
        #expect(!second.stdout.contains("wk_"))

        let contact = try await runKairos(["contact", "--data-dir", dataDir, "--user-id", "ana"])
        #expect(contact.status == 0, "\(contact.output)")
        // The resent m2 was a duplicate: one sign-up.
        let view = try JSONSerialization.jsonObject(with: Data(contact.output.utf8)) as? [String: Any]
        let counts = view?["eventCounts"] as? [[String: Any]] ?? []
        let signUps = counts.first { $0["event"] as? String == "track:Signed Up" }?["total"] as? Int
        #expect(signUps == 1, "\(contact.output)")
        #expect((view?["traits"] as? [String: Any])?["plan"] as? String == "trial")
    }
}
