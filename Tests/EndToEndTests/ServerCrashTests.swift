import Foundation
import KairosCore
import Testing

/// A line-oriented TCP client for the event stream (blocking). `@unchecked Sendable`: one thread
/// only sends and one only reads; the socket calls are safe to make concurrently that way.
final class StreamClient: @unchecked Sendable {
    let socket: Int32
    private var buffer: [UInt8] = []

    init(port: Int) throws {
        socket = Foundation.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else { throw CrashTestError("cannot connect to the stream port \(port)") }
        var timeout = timeval(tv_sec: 60, tv_usec: 0)
        setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(socket) }

    func send(_ text: String) {
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { Foundation.send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if written <= 0 { return }
            offset += written
        }
    }

    /// The next line, or nil once the server is gone.
    func readLine() -> String? {
        while true {
            if let newline = buffer.firstIndex(of: 10) {
                let line = String(decoding: buffer[..<newline], as: UTF8.self)
                buffer.removeSubrange(...newline)
                return line
            }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let count = chunk.withUnsafeMutableBytes { recv(socket, $0.baseAddress, $0.count, 0) }
            guard count > 0 else { return nil }
            buffer += chunk[0..<count]
        }
    }
}

/// `kairos serve` under a sustained stream of events is killed with SIGKILL at random moments,
/// several rounds, with snapshots being written often. After each restart every acknowledged
/// event is there; after the client resends what was not acknowledged, every event is there
/// exactly once (exact counts per contact and per segment).
@Suite(.serialized) struct ServerCrashTests {
    let users = 20
    let perRound = 3000

    /// Used by one thread at a time (the test's, or the Dispatch thread it waits on).
    final class Server: @unchecked Sendable {
        let process = Process()
        let errors = Pipe()
        var port: Int?
        var streamPort: Int?
        var key: String?

        /// Starts the server and waits (off the concurrency pool) for its ports and key.
        static func start(dataDir: String, firstStart: Bool) async throws -> Server {
            try await blocking { try Server(dataDir: dataDir, firstStart: firstStart) }
        }

        private init(dataDir: String, firstStart: Bool) throws {
            process.executableURL = URL(fileURLWithPath: try kairosExecutable())
            process.arguments = [
                "serve", "--data-dir", dataDir, "--port", "0", "--stream-port", "0", "--durability", "fast",
                "--snapshot-seconds", "1", "--snapshot-every", "2000",
            ]
            let output = Pipe()
            process.standardOutput = output
            process.standardError = errors
            process.standardInput = FileHandle.nullDevice
            try process.run()
            var text = ""
            let deadline = Date().addingTimeInterval(60)
            while Date() < deadline, port == nil {
                let chunk = errors.fileHandleForReading.availableData
                if chunk.isEmpty { break }
                text += String(decoding: chunk, as: UTF8.self)
                if let range = text.range(of: #"event stream on 127\.0\.0\.1:(\d+)"#, options: .regularExpression) {
                    streamPort = Int(text[range].split(separator: ":").last ?? "")
                    port = streamPort
                }
            }
            // The first start prints the demo key on standard output (later starts print nothing there).
            var outputText = ""
            while firstStart, key == nil, Date() < deadline {
                let chunk = output.fileHandleForReading.availableData
                if chunk.isEmpty { break }
                outputText += String(decoding: chunk, as: UTF8.self)
                if let range = outputText.range(of: #"wk_[0-9a-f]{64}"#, options: .regularExpression) { key = String(outputText[range]) }
            }
        }

        func kill() async throws {
            try await blocking {
                Foundation.kill(self.process.processIdentifier, SIGKILL)
                self.process.waitUntilExit()
            }
        }

        func terminate() async throws -> Int32 {
            try await blocking {
                self.process.terminate()
                self.process.waitUntilExit()
                return self.process.terminationStatus
            }
        }
    }

    func frame(round: Int, index: Int) -> String {
        // A messageId per event: a resend after a crash is recognised whatever connection carries it.
        #"{"seq": \#(index + 1), "type": "track", "userId": "u\#(index % users)", "event": "Clicked", "messageId": "r\#(round)-\#(index)", "properties": {"n": \#(index)}}"#
    }

    func clicks(dataDir: String) async throws -> [Int] { try await clickTotals(dataDir: dataDir, users: users) }

    /// Sends `frames` from one thread while another reads acks, until the highest acked seq
    /// reaches `until` or the server goes away; returns the highest acked seq.
    func push(_ frames: [String], over client: StreamClient, until: Int) async throws -> Int {
        try await blocking {
            let writer = Thread { for line in frames { client.send(line + "\n") } }
            writer.start()
            var acked = 0
            while acked < until, let line = client.readLine() {
                if let range = line.range(of: #""seq":(\d+)"#, options: .regularExpression), line.contains("ack") {
                    acked = max(acked, Int(line[range].dropFirst(6)) ?? 0)
                }
            }
            return acked
        }
    }

    /// Connects to the stream port and says hello; returns the client and the server's answer.
    func connect(port: Int, writeKey: String) async throws -> (StreamClient, String?) {
        try await blocking {
            let client = try StreamClient(port: port)
            client.send(#"{"type": "hello", "writeKey": "\#(writeKey)"}"# + "\n")
            return (client, client.readLine())
        }
    }

    @Test func killedUnderStreamLoadLosesNothingAcknowledgedAndAppliesNothingTwice() async throws {
        signal(SIGPIPE, SIG_IGN)
        let dataDir = NSTemporaryDirectory() + "kairos-server-crash-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dataDir) }
        var random = SystemRandomNumberGenerator()
        var key: String?
        var expected = 0

        for round in 0..<3 {
            let server = try await Server.start(dataDir: dataDir, firstStart: round == 0)
            key = key ?? server.key
            let streamPort = try #require(server.streamPort, "the server did not start")
            let writeKey = try #require(key, "no write key printed on the first start")
            let frames = (0..<perRound).map { frame(round: round, index: $0) }
            let killAfter = Int.random(in: 200...(perRound - 200), using: &random)

            // Push the round; read acks until the kill point, then SIGKILL the server.
            let (client, welcome) = try await connect(port: streamPort, writeKey: writeKey)
            #expect(welcome?.contains("welcome") == true)
            let acked = try await push(frames, over: client, until: killAfter)
            try await server.kill()
            #expect(try await runKairos(["snapshot", "verify", "--data-dir", dataDir]).status == 0)

            // Everything acknowledged survived; nothing beyond what was sent.
            let afterKill = try await clicks(dataDir: dataDir).reduce(0, +)
            #expect(afterKill >= expected + acked, "round \(round): \(afterKill - expected) of \(acked) acknowledged events survived")
            #expect(afterKill <= expected + perRound)

            // Restart and resend the whole round (the client cannot know what beyond its last
            // ack was applied): dedupe keeps every event once.
            let again = try await Server.start(dataDir: dataDir, firstStart: false)
            let resendPort = try #require(again.streamPort)
            let (resender, _) = try await connect(port: resendPort, writeKey: writeKey)
            let last = try await push(frames, over: resender, until: perRound)
            #expect(last == perRound)
            #expect(try await again.terminate() == 0)

            expected += perRound
            let clicks = try await clicks(dataDir: dataDir)
            #expect(clicks.reduce(0, +) == expected)
            #expect(clicks.allSatisfy { $0 == expected / users }, "\(clicks)")
        }
    }
}
