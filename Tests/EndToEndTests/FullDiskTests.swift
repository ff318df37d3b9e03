import Foundation
import KairosCore
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// `kairos serve` runs out of disk: ingest is refused with a clear 503 and nothing of it is
/// applied, reads keep answering, and once space is back the client's retries are applied
/// exactly once, also across a restart. The disk is a small tmpfs filled up by another file;
/// where mounting is not allowed, a file size limit on the server process (RLIMIT_FSIZE)
/// makes the journal's writes fail the same way.
@Suite(.serialized) struct FullDiskTests {
    /// Where the data directory lives and how it runs out of space.
    final class SmallDisk {
        let directory: String
        let isTmpfs: Bool
        private var limitedProcess: Int32?

        init() throws {
            directory = NSTemporaryDirectory() + "kairos-full-disk-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            isTmpfs = (try? FullDiskTests.run("/usr/bin/mount", ["-t", "tmpfs", "-o", "size=8m", "tmpfs", directory]).status) == 0
        }

        var dataDir: String { directory + "/data" }

        /// Leaves about 256 KB for the server.
        func fill(server: Int32) throws {
            if isTmpfs {
                var stats = statvfs()
                guard statvfs(directory, &stats) == 0 else { throw CrashTestError("statvfs failed on \(directory)") }
                let free = Int(stats.f_bavail) * Int(stats.f_frsize)
                let filler = [UInt8](repeating: 0x78, count: max(0, free - 256 * 1024))
                guard FileManager.default.createFile(atPath: directory + "/filler", contents: Data(filler)) else {
                    throw CrashTestError("could not write the filler file")
                }
            } else {
                limitedProcess = server
                let (status, output) = try FullDiskTests.run("/usr/bin/prlimit", ["--pid", String(server), "--fsize=1500000:unlimited"])
                guard status == 0 else { throw CrashTestError("prlimit failed: \(output)") }
            }
        }

        func free() throws {
            if isTmpfs {
                try FileManager.default.removeItem(atPath: directory + "/filler")
            } else if let server = limitedProcess {
                let (status, output) = try FullDiskTests.run("/usr/bin/prlimit", ["--pid", String(server), "--fsize=unlimited:unlimited"])
                guard status == 0 else { throw CrashTestError("prlimit failed: \(output)") }
            }
        }

        deinit {
            if isTmpfs { _ = try? FullDiskTests.run("/usr/bin/umount", [directory]) }
            try? FileManager.default.removeItem(atPath: directory)
        }
    }

    static func run(_ executable: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, output)
    }

    func send(_ port: Int, _ method: String, _ path: String, authorization: String, body: String? = nil) async throws -> (Int, String) {
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
        request.httpMethod = method
        if let body {
            request.httpBody = Data(body.utf8)
            request.setValue("application/json", forHTTPHeaderField: "content-type")
        }
        request.setValue(authorization, forHTTPHeaderField: "authorization")
        let (data, response) = try await URLSession.shared.data(for: request)
        return ((response as? HTTPURLResponse)?.statusCode ?? 0, String(decoding: data, as: UTF8.self))
    }

    func track(_ port: Int, key: String, messageId: String) async throws -> (Int, String) {
        let padding = String(repeating: "x", count: 3000)
        return try await send(
            port, "POST", "/v1/track", authorization: "Basic " + Data((key + ":").utf8).base64EncodedString(),
            body: #"{"userId": "ana", "event": "Big", "messageId": "\#(messageId)", "properties": {"padding": "\#(padding)"}}"#)
    }

    /// Ana's count of "Big" events, read over the admin API.
    func bigEvents(_ port: Int, secret: String) async throws -> Int? {
        let (status, body) = try await send(port, "GET", "/v1/admin/contacts/events?userId=ana", authorization: "Bearer " + secret)
        guard status == 200, case .object(let object) = try JSONValue.parse(body), case .array(let counts)? = object["eventCounts"] else {
            return nil
        }
        for case .object(let count) in counts where count["event"] == "track:Big" { return count["total"]?.numberValue.map { Int($0) } }
        return 0
    }

    @Test func aFullDiskRefusesIngestKeepsReadsAndRecoversWhenSpaceReturns() async throws {
        let disk = try await blocking { Handed(try SmallDisk()) }.value
        let server = try ServeTests.Server(dataDir: disk.dataDir)
        let port = try #require(await server.waitForPort(), "\(server.stderr)")
        let key = try #require(await server.key(), "\(server.stdout)")
        let secret = try #require(await server.secretKey(), "\(server.stdout)")
        let pid = server.process.processIdentifier
        let handedDisk = Handed(disk)
        try await blocking { try handedDisk.value.fill(server: pid) }

        // Ingest until the disk refuses (bounded).
        var accepted = 0
        var refusal: (status: Int, body: String)?
        for index in 0..<3000 {
            let (status, body) = try await track(port, key: key, messageId: "m-\(index)")
            if status != 200 {
                refusal = (status, body)
                break
            }
            accepted += 1
        }
        let refused = try #require(refusal, "the disk never filled (tmpfs: \(disk.isTmpfs))")
        #expect(refused.status == 503, "\(refused.body)")
        #expect(refused.body.contains("\"unavailable\"") && refused.body.contains("could not be made durable"), "\(refused.body)")
        #expect(accepted > 0)

        // Reads keep answering, and the refused event was not applied.
        #expect(try await bigEvents(port, secret: secret) == accepted)
        let (health, _) = try await send(port, "GET", "/healthz", authorization: "")
        #expect(health == 200)

        // Space comes back: the retry is applied once, a second retry is a duplicate.
        try await blocking { try handedDisk.value.free() }
        #expect(try await track(port, key: key, messageId: "m-\(accepted)").0 == 200)
        #expect(try await track(port, key: key, messageId: "m-\(accepted)").0 == 200)
        #expect(try await track(port, key: key, messageId: "m-\(accepted + 1)").0 == 200)
        #expect(try await bigEvents(port, secret: secret) == accepted + 2)
        #expect(try await server.stop() == 0, "\(server.stderr)")

        // A restart rebuilds exactly that.
        let again = try ServeTests.Server(dataDir: disk.dataDir)
        let restartedPort = try #require(await again.waitForPort(), "\(again.stderr)")
        #expect(try await bigEvents(restartedPort, secret: secret) == accepted + 2)
        #expect(try await again.stop() == 0, "\(again.stderr)")
    }
}
