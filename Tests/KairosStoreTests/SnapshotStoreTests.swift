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
        #expect(try store.read(entries[0]).array == Array(repeating: 4, count: 1000))
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
        #expect(payload.array == Array(repeating: 1, count: 500))
        #expect(skipped == ["20: corrupt"])
    }

    /// A payload of several megabytes (mapped from the file) reads back whole, and a byte
    /// flipped in its middle is caught.
    @Test func aLargePayloadIsReadAndChecked() throws {
        let directory = try TemporaryDirectory()
        let store = SnapshotStore(directory: directory.path, keep: 2)
        var random = SeededRandom(seed: 9)
        let payload = (0..<(9 << 20) + 123).map { _ in UInt8(truncatingIfNeeded: random.next()) }
        let entry = try store.write(payload, sequence: 7, at: Timestamp(milliseconds: 1))
        #expect(try store.read(entry).array == payload)

        var bytes = [UInt8](FileManager.default.contents(atPath: entry.path)!)
        bytes[17 + (5 << 20)] ^= 0x01
        #expect(FileManager.default.createFile(atPath: entry.path, contents: Data(bytes)))
        let error = #expect(throws: StoreError.self) { _ = try store.read(entry) }
        #expect(error?.code == .corrupt)
        #expect(error.map { "\($0)" }?.contains("checksum mismatch") == true)
    }

    /// A payload read from a file stays whole after the file is pruned (it is mapped, not
    /// copied), and an empty or header-only file is refused as damaged.
    @Test func aReadPayloadOutlivesItsFileAndEmptyFilesAreRefused() throws {
        let directory = try TemporaryDirectory()
        let store = SnapshotStore(directory: directory.path, keep: 1)
        let payload = (0..<70_000).map { UInt8($0 % 241) }
        let first = try store.write(payload, sequence: 1, at: Timestamp(milliseconds: 1))
        let read = try store.read(first)
        try store.write([9, 9, 9], sequence: 2, at: Timestamp(milliseconds: 2))
        #expect(!FileManager.default.fileExists(atPath: first.path))
        #expect(read.array == payload)
        var reader = BinaryReader(read, range: 100..<101)
        #expect(try reader.readByte() == payload[100])
        #expect(reader.isAtEnd)

        for contents in [[], Array("KAIROS".utf8), SnapshotStore.magic + [2] + [UInt8](repeating: 0, count: 8)] {
            #expect(FileManager.default.createFile(atPath: first.path, contents: Data(contents)))
            let error = #expect(throws: StoreError.self) { _ = try store.read(SnapshotStore.Entry(path: first.path, sequence: 1, createdAt: Timestamp(milliseconds: 1), size: contents.count)) }
            #expect(error?.code == .corrupt)
        }
    }

    /// Reference values from the xxHash library (XXH64, seed 0); the long input also fed in
    /// uneven pieces, as a snapshot read hands them over.
    @Test func xxh64MatchesTheReferenceImplementation() {
        func hash(_ bytes: [UInt8]) -> UInt64 { bytes.withUnsafeBytes { XXH64.hash($0) } }
        #expect(hash([]) == 0xEF46_DB37_51D8_E999)
        #expect(hash(Array("a".utf8)) == 0xD24E_C4F1_A98C_6E5B)
        #expect(hash(Array("abc".utf8)) == 0x44BC_2CF5_AD77_0999)
        let pattern = (0..<768).map { UInt8($0 % 256) }
        #expect(hash(pattern) == 0x8E03_C838_C596_036F)
        let long = (0..<1_000_003).map { UInt8($0 * 7 % 251) }
        #expect(hash(long) == 0x96AB_1F2D_9593_35AA)
        var hasher = XXH64()
        var offset = 0
        for size in [1, 31, 33, 64, 5, 100_000, 7] + Array(repeating: 300_000, count: 3) {
            let end = min(long.count, offset + size)
            long[offset..<end].withUnsafeBytes { hasher.update($0) }
            offset = end
        }
        #expect(offset == long.count)
        #expect(hasher.finalize() == 0x96AB_1F2D_9593_35AA)
    }

    /// Files of format version 1 (an FNV-1a checksum) are still read and verified.
    @Test func aSnapshotOfFormatOneStillReads() throws {
        let directory = try TemporaryDirectory()
        let store = SnapshotStore(directory: directory.path, keep: 2)
        let payload = (0..<5000).map { UInt8($0 % 199) }
        let entry = try store.write(payload, sequence: 3, at: Timestamp(milliseconds: 1))
        var bytes = [UInt8](FileManager.default.contents(atPath: entry.path)!)
        #expect(bytes[8] == 2)
        bytes[8] = 1
        let fnv = SnapshotStore.checksum(payload, format: 1)
        for index in 0..<8 { bytes[bytes.count - 8 + index] = UInt8(truncatingIfNeeded: fnv >> (8 * UInt64(index))) }
        #expect(FileManager.default.createFile(atPath: entry.path, contents: Data(bytes)))
        #expect(try store.read(entry).array == payload)

        bytes[8] = 3
        #expect(FileManager.default.createFile(atPath: entry.path, contents: Data(bytes)))
        let error = #expect(throws: StoreError.self) { _ = try store.read(entry) }
        #expect(error.map { "\($0)" }?.contains("snapshot format 3 is not supported") == true)
    }
}
