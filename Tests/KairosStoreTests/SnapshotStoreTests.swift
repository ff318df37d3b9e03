import Foundation
import KairosCore
import Testing
@testable import KairosStore

@Suite struct SnapshotStoreTests {
    @Test func writesVerifiesAndKeepsTheLastFew() throws {
        let directory = try TemporaryDirectory()
        let store = SnapshotStore(directory: directory.path + "/snapshots", keep: 2)
        for sequence in 1...4 {
            try store.write(Array(repeating: UInt8(sequence), count: 1000), sequence: UInt64(sequence * 10), at: Timestamp(milliseconds: Int64(sequence)))
        }
        let entries = try store.list()
        #expect(entries.map(\.sequence) == [40, 30])
        #expect(try store.read(entries[0]) == Array(repeating: 4, count: 1000))
        #expect(entries[0].size == 1000 + 25)
        #expect(try FileManager.default.contentsOfDirectory(atPath: store.directory).allSatisfy { !$0.hasSuffix(".tmp") })
    }

    @Test(arguments: ["flip", "truncate", "garbage"])
    func aDamagedNewestSnapshotFallsBackToTheOneBefore(damage: String) throws {
        let directory = try TemporaryDirectory()
        let store = SnapshotStore(directory: directory.path, keep: 3)
        try store.write(Array(repeating: 1, count: 500), sequence: 10, at: Timestamp(milliseconds: 1))
        let newest = try store.write(Array(repeating: 2, count: 500), sequence: 20, at: Timestamp(milliseconds: 2))
        var bytes = [UInt8](FileManager.default.contents(atPath: newest.path)!)
        switch damage {
        case "flip": bytes[200] ^= 0xFF
        case "truncate": bytes.removeLast(100)
        default: bytes = Array("not a snapshot at all".utf8)
        }
        #expect(FileManager.default.createFile(atPath: newest.path, contents: Data(bytes)))

        var skipped: [String] = []
        let (entry, payload) = try #require(try store.newestValid { entry, error in skipped.append("\(entry.sequence): \(error.code)") })
        #expect(entry.sequence == 10)
        #expect(payload == Array(repeating: 1, count: 500))
        #expect(skipped == ["20: corrupt"])
    }

    /// A payload of several pieces (read and hashed side by side) reads back whole, and a byte
    /// flipped in a middle piece is still caught.
    @Test func aLargePayloadIsReadAndCheckedPieceByPiece() throws {
        let directory = try TemporaryDirectory()
        let store = SnapshotStore(directory: directory.path, keep: 2)
        var random = SeededRandom(seed: 9)
        let payload = (0..<(9 << 20) + 123).map { _ in UInt8(truncatingIfNeeded: random.next()) }
        let entry = try store.write(payload, sequence: 7, at: Timestamp(milliseconds: 1))
        #expect(try store.read(entry) == payload)

        var bytes = [UInt8](FileManager.default.contents(atPath: entry.path)!)
        bytes[17 + (5 << 20)] ^= 0x01
        #expect(FileManager.default.createFile(atPath: entry.path, contents: Data(bytes)))
        let error = #expect(throws: StoreError.self) { _ = try store.read(entry) }
        #expect(error?.code == .corrupt)
        #expect(error.map { "\($0)" }?.contains("checksum mismatch") == true)
    }
}
