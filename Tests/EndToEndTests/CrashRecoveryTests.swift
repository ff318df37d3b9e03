import Foundation
import KairosCore
import Testing

/// The `kairos` executable built next to the tests.
func kairosExecutable() throws -> String {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let candidates = [".build/debug/kairos", ".build/release/kairos"].map { root.appendingPathComponent($0).path }
    guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
        throw CrashTestError("no built kairos executable at \(candidates.joined(separator: " or ")); run swift build first")
    }
    return found
}

struct CrashTestError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Starts `kairos` with piped standard input and output (standard error discarded).
func launchKairos(_ arguments: [String]) throws -> (process: Process, input: Pipe, output: Pipe) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: try kairosExecutable())
    process.arguments = arguments
    let input = Pipe()
    let output = Pipe()
    process.standardInput = input
    process.standardOutput = output
    process.standardError = FileHandle.nullDevice
    try process.run()
    return (process, input, output)
}

/// Runs `kairos` to completion (off the concurrency pool) and returns its standard output.
func runKairos(_ arguments: [String], input: Data? = nil) async throws -> (status: Int32, output: String) {
    try await blocking {
        let (process, stdin, output) = try launchKairos(arguments)
        if let input { try stdin.fileHandleForWriting.write(contentsOf: input) }
        try stdin.fileHandleForWriting.close()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}

/// "Clicked" totals of users u0…u(users-1), as a restarted kairos reads them from its data directory.
func clickTotals(dataDir: String, users: Int) async throws -> [Int] {
    var totals: [Int] = []
    for user in 0..<users {
        let (status, output) = try await runKairos(["contact", "--data-dir", dataDir, "--user-id", "u\(user)"])
        totals.append(status == 0 ? try clickTotal(output) : 0)
    }
    return totals
}

/// The total of "Clicked" events in the contact JSON that `kairos contact` prints.
func clickTotal(_ output: String) throws -> Int {
    guard case .object(let view) = try JSONValue.parse(output), case .array(let counts)? = view["eventCounts"] else { return 0 }
    for case .object(let count) in counts where count["event"] == "track:Clicked" {
        return Int(count["total"]?.numberValue ?? 0)
    }
    return 0
}

@Suite(.serialized) struct CrashRecoveryTests {
    let users = 10
    let eventsPerRound = 2000

    func lines(round: Int) -> [String] {
        (0..<eventsPerRound).map { index in
            #"{"type":"track","event":"Clicked","userId":"u\#(index % users)","messageId":"r\#(round)-\#(index)","properties":{"n":\#(index)}}"#
        }
    }

    func clicks(dataDir: String) async throws -> [Int] { try await clickTotals(dataDir: dataDir, users: users) }

    /// A child kairos importing a stream of events is killed with SIGKILL at a random moment,
    /// several times. After each restart every acknowledged event is there, and after the
    /// client resends everything, every event is there exactly once.
    @Test func killedWhileImportingLosesNothingAcknowledgedAndAppliesNothingTwice() async throws {
        signal(SIGPIPE, SIG_IGN)
        let dataDir = NSTemporaryDirectory() + "kairos-crash-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dataDir) }
        var random = SystemRandomNumberGenerator()
        var expectedTotal = 0

        for round in 0..<4 {
            let roundLines = lines(round: round)
            // Snapshots every few batches, so some kills land while one is being written.
            let child = try launchKairos([
                "import", "--data-dir", dataDir, "--durability", "fast", "--ack", "--batch-size", "50",
                "--snapshot-every", "3", "-",
            ])

            let killAfter = Int.random(in: 150...1800, using: &random)
            let handed = Handed(child)
            let acked = try await blocking {
                let (process, input, output) = handed.value
                // Feed the events from another thread; writes fail harmlessly once the child is dead.
                let writer = Thread {
                    for line in roundLines {
                        guard (try? input.fileHandleForWriting.write(contentsOf: Data((line + "\n").utf8))) != nil else { return }
                    }
                    try? input.fileHandleForWriting.close()
                }
                writer.start()

                var acked = 0
                var buffer = Data()
                while acked < killAfter {
                    let chunk = output.fileHandleForReading.availableData
                    if chunk.isEmpty { break }
                    buffer.append(chunk)
                    let text = String(decoding: buffer, as: UTF8.self)
                    for line in text.split(separator: "\n") where line.hasPrefix("ack ") {
                        acked = max(acked, Int(line.dropFirst(4)) ?? 0)
                    }
                }
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
                return acked
            }
            let process = child.process
            // Killed, or (when the kill came after it finished) exited cleanly: never crashed.
            #expect(process.terminationReason == .uncaughtSignal || process.terminationStatus == 0)

            // No damaged snapshot under a final name, whenever the kill landed.
            #expect(try await runKairos(["snapshot", "verify", "--data-dir", dataDir]).status == 0)

            // Everything acknowledged survived the kill; nothing beyond what was sent.
            let afterKill = try await clicks(dataDir: dataDir).reduce(0, +)
            #expect(afterKill >= expectedTotal + acked, "round \(round): \(afterKill - expectedTotal) of \(acked) acknowledged events survived")
            #expect(afterKill <= expectedTotal + eventsPerRound)

            // The client resends the whole round; dedupe applies each event once.
            let resend = try await runKairos(
                ["import", "--data-dir", dataDir, "--durability", "fast", "-"],
                input: Data((roundLines.joined(separator: "\n") + "\n").utf8))
            #expect(resend.status == 0)
            expectedTotal += eventsPerRound
            let perUser = try await clicks(dataDir: dataDir)
            #expect(perUser.reduce(0, +) == expectedTotal)
            #expect(perUser.allSatisfy { $0 == expectedTotal / users })
        }
    }
}
