import Foundation
import Testing

@Suite struct GracefulShutdownTests {
    /// SIGTERM during a journaled demo run: it stops at a batch boundary, writes a final
    /// snapshot that verifies, exits 0, and the next run continues from it.
    @Test func sigtermWritesAFinalSnapshotAndExitsCleanly() async throws {
        let dataDir = NSTemporaryDirectory() + "kairos-shutdown-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dataDir) }
        let arguments = ["demo", "--data-dir", dataDir, "--days", "60", "--contacts", "500", "--events-per-day", "4800"]
        let child = Handed(try launchKairos(arguments))
        // Wait for the first simulated day, then ask it to stop.
        let (beforeTerm, seen, status) = try await blocking {
            let (process, input, output) = child.value
            try input.fileHandleForWriting.close()
            var seen = ""
            let deadline = Date().addingTimeInterval(60)
            while !seen.contains("day 1/") && Date() < deadline {
                let chunk = output.fileHandleForReading.availableData
                if chunk.isEmpty { break }
                seen += String(decoding: chunk, as: UTF8.self)
            }
            let beforeTerm = seen
            process.terminate()  // SIGTERM
            seen += String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            return (beforeTerm, seen, process.terminationStatus)
        }
        #expect(beforeTerm.contains("day 1/"))
        #expect(status == 0, "\(seen)")
        #expect(seen.contains("SIGTERM received"))
        #expect(!seen.contains("day 60/60"))

        let verify = try await runKairos(["snapshot", "verify", "--data-dir", dataDir])
        #expect(verify.status == 0, "\(verify.output)")
        let list = try await runKairos(["snapshot", "list", "--data-dir", dataDir])
        #expect(list.output.contains(" ok "))

        // The next run starts from that snapshot and the journal after it.
        let again = try await runKairos(["demo", "--data-dir", dataDir, "--days", "1", "--contacts", "500", "--events-per-day", "2400"])
        #expect(again.status == 0, "\(again.output)")
        #expect(again.output.contains("day 1/1"))

        // A damaged snapshot is listed as BAD with the whole reason, and fails verification.
        let snapshots = dataDir + "/snapshots"
        let newest = try #require(try FileManager.default.contentsOfDirectory(atPath: snapshots).filter { $0.hasSuffix(".kss") }.max())
        #expect(truncate(snapshots + "/" + newest, 1000) == 0)
        let damaged = try await runKairos(["snapshot", "list", "--data-dir", dataDir])
        #expect(damaged.output.contains(" BAD ") && damaged.output.contains(newest + " (truncated: 1000 bytes, expected"), "\(damaged.output)")
        let failed = try await runKairos(["snapshot", "verify", "--data-dir", dataDir])
        #expect(failed.status == 1, "\(failed.output)")
    }
}
