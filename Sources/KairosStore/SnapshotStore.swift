import Dispatch
import Foundation
import KairosCore
import KairosEngine
#if canImport(Glibc)
import Glibc
#endif

/// Snapshot files in a folder: `snapshot-<sequence>-<millis>.kss`, written under a temporary
/// name, checksummed, synced and renamed, so a crash never leaves a half file that looks whole.
///
/// Layout (see `snapshots/README.md`): the 8 bytes `KAIROS\u{1}\n`, a format version byte,
/// the payload length (8 bytes, little-endian), the payload, and its 64-bit checksum (8 bytes,
/// little-endian): XXH64 from format version 2, FNV-1a in version 1 (still read).
public struct SnapshotStore: Sendable {
    public static let magic: [UInt8] = Array("KAIROS".utf8) + [1, 10]
    public static let formatVersion: UInt8 = 2
    /// The file format versions `read` accepts; each names its checksum.
    public static let readableFormats: ClosedRange<UInt8> = 1...2

    public struct Entry: Sendable, Hashable {
        public var path: String
        public var sequence: UInt64
        public var createdAt: Timestamp
        public var size: Int
    }

    public let directory: String
    /// How many snapshots to keep; older ones are deleted after a new one is written.
    public let keep: Int

    public init(directory: String, keep: Int = 3) {
        self.directory = directory
        self.keep = max(1, keep)
    }

    /// Writes a snapshot durably and prunes old ones.
    @discardableResult
    public func write(_ payload: [UInt8], sequence: UInt64, at time: Timestamp) throws -> Entry {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let name = "snapshot-\(String(format: "%020llu", sequence))-\(time.milliseconds).kss"
        let final = directory + "/" + name
        let temporary = final + ".tmp"
        // Header, payload and checksum written one after another: joined, they were a copy of
        // the whole payload.
        let header = SnapshotStore.magic + [SnapshotStore.formatVersion] + littleEndian(UInt64(payload.count))
        let trailer = littleEndian(SnapshotStore.checksum(payload, format: SnapshotStore.formatVersion))
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard descriptor >= 0 else { throw StoreError(.cannotOpen, String(cString: strerror(errno)), operation: "create \(temporary)") }
        for part in [header, payload, trailer] {
            var written = 0
            while written < part.count {
                let result = part[written...].withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
                if result < 0 {
                    if errno == EINTR { continue }
                    let error = StoreError(errno == ENOSPC ? .diskFull : .sqlite, String(cString: strerror(errno)), operation: "write \(temporary)")
                    close(descriptor)
                    unlink(temporary)
                    throw error
                }
                written += result
            }
        }
        guard fsync(descriptor) == 0 else {
            let error = StoreError(.sqlite, String(cString: strerror(errno)), operation: "sync \(temporary)")
            close(descriptor)
            unlink(temporary)
            throw error
        }
        close(descriptor)
        guard rename(temporary, final) == 0 else {
            throw StoreError(.sqlite, String(cString: strerror(errno)), operation: "rename \(temporary)")
        }
        let folder = open(directory, O_RDONLY)
        if folder >= 0 {
            fsync(folder)
            close(folder)
        }
        let entries = try list()
        for old in entries.dropFirst(keep) { try? FileManager.default.removeItem(atPath: old.path) }
        // Half-written files of a process that died mid-write.
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] where name.hasSuffix(".kss.tmp") {
            try? FileManager.default.removeItem(atPath: directory + "/" + name)
        }
        return Entry(path: final, sequence: sequence, createdAt: time, size: header.count + payload.count + trailer.count)
    }

    /// Writes `snapshot` durably, then drops the journal records no kept snapshot needs
    /// (every kept snapshot starts at or after the oldest one's sequence). The file writes and
    /// syncs run on a Dispatch thread: a sync can take seconds on a busy disk, and a blocked
    /// thread of the concurrency pool would hold up the engine's actors meanwhile.
    public func write(_ snapshot: EngineSnapshot, at time: Timestamp, truncating journal: SQLiteJournal) async throws -> Entry {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(
                    with: Result {
                        let entry = try write(snapshot.bytes, sequence: snapshot.startSequence, at: time)
                        if let oldest = try list().last { try journal.truncate(through: oldest.sequence) }
                        return entry
                    })
            }
        }
    }

    /// Snapshot files, newest first.
    public func list() throws -> [Entry] {
        guard FileManager.default.fileExists(atPath: directory) else { return [] }
        return try FileManager.default.contentsOfDirectory(atPath: directory).compactMap { name -> Entry? in
            guard name.hasPrefix("snapshot-"), name.hasSuffix(".kss") else { return nil }
            let parts = name.dropFirst("snapshot-".count).dropLast(".kss".count).split(separator: "-")
            guard parts.count == 2, let sequence = UInt64(parts[0]), let millis = Int64(parts[1]) else { return nil }
            let path = directory + "/" + name
            let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
            return Entry(path: path, sequence: sequence, createdAt: Timestamp(milliseconds: millis), size: size)
        }.sorted { ($0.sequence, $0.createdAt) > ($1.sequence, $1.createdAt) }
    }

    /// Reads and verifies one snapshot file; returns its payload where it lies in the file
    /// cache: the file is mapped into memory, not copied. A copy would be fresh memory (a third
    /// of a gigabyte for a million contacts), and on a virtual machine whose host takes freed
    /// memory back, touching fresh memory took longer than reading the file. Snapshot files are
    /// never changed once renamed into place (pruning deletes them, which leaves a mapping whole).
    public func read(_ entry: Entry) throws -> ReadOnlyBytes {
        let descriptor = open(entry.path, O_RDONLY)
        guard descriptor >= 0 else {
            throw StoreError(.cannotOpen, "cannot read the file: \(String(cString: strerror(errno)))", operation: "read \(entry.path)")
        }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else {
            throw StoreError(.cannotOpen, "cannot read the file: \(String(cString: strerror(errno)))", operation: "read \(entry.path)")
        }
        let size = Int(status.st_size)
        let header = SnapshotStore.magic.count + 1 + 8
        guard size >= header + 8 else {
            throw StoreError(.corrupt, size < header ? "not a Kairos snapshot (bad header)" : "truncated: \(size) bytes", operation: "read \(entry.path)")
        }
        guard let address = mmap(nil, size, PROT_READ, MAP_PRIVATE, descriptor, 0), address != MAP_FAILED else {
            throw StoreError(.cannotOpen, "cannot map the file: \(String(cString: strerror(errno)))", operation: "read \(entry.path)")
        }
        let file = ReadOnlyBytes(buffer: UnsafeBufferPointer(start: address.assumingMemoryBound(to: UInt8.self), count: size)) {
            munmap(UnsafeMutableRawPointer(mutating: $0.baseAddress), $0.count)
        }
        // Read front to back once to check it, then front to back by the decoders.
        madvise(address, size, MADV_SEQUENTIAL)
        let bytes = file.buffer
        guard Array(bytes[..<SnapshotStore.magic.count]) == SnapshotStore.magic else {
            throw StoreError(.corrupt, "not a Kairos snapshot (bad header)", operation: "read \(entry.path)")
        }
        let format = bytes[SnapshotStore.magic.count]
        guard SnapshotStore.readableFormats.contains(format) else {
            throw StoreError(.corrupt, "snapshot format \(format) is not supported", operation: "read \(entry.path)")
        }
        let length = readLittleEndian(bytes, at: SnapshotStore.magic.count + 1)
        guard length <= UInt64(size), size == header + Int(length) + 8 else {
            throw StoreError(.corrupt, "truncated: \(size) bytes, expected \(UInt64(header + 8) &+ length)", operation: "read \(entry.path)")
        }
        let payload = UnsafeBufferPointer(rebasing: bytes[header..<header + Int(length)])
        guard readLittleEndian(bytes, at: header + Int(length)) == SnapshotStore.checksum(payload, format: format) else {
            throw StoreError(.corrupt, "checksum mismatch", operation: "read \(entry.path)")
        }
        return ReadOnlyBytes(buffer: payload) { _ in withExtendedLifetime(file) {} }
    }

    /// The newest snapshot that verifies, skipping (and reporting) any that do not.
    public func newestValid(skipped: (Entry, StoreError) -> Void = { _, _ in }) throws -> (Entry, ReadOnlyBytes)? {
        for entry in try list() {
            do {
                return (entry, try read(entry))
            } catch let error as StoreError {
                skipped(entry, error)
            }
        }
        return nil
    }

    /// The checksum a file of format `format` stores: XXH64 from version 2, FNV-1a before.
    public static func checksum(_ bytes: [UInt8], format: UInt8 = formatVersion) -> UInt64 {
        bytes.withUnsafeBufferPointer { checksum($0, format: format) }
    }

    public static func checksum(_ bytes: UnsafeBufferPointer<UInt8>, format: UInt8 = formatVersion) -> UInt64 {
        guard format >= 2 else { return fnv1a(bytes, continuing: fnvStart) }
        var hash = XXH64()
        hash.update(UnsafeRawBufferPointer(bytes))
        return hash.finalize()
    }

    static let fnvStart: UInt64 = 0xcbf2_9ce4_8422_2325

    /// FNV-1a of `bytes` following the bytes that gave `hash`: a payload hashed in pieces.
    static func fnv1a(_ bytes: UnsafeBufferPointer<UInt8>, continuing hash: UInt64) -> UInt64 {
        var hash = hash
        for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }
        return hash
    }
}

private func littleEndian(_ value: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: value >> (8 * UInt64($0))) } }

private func readLittleEndian(_ bytes: UnsafeBufferPointer<UInt8>, at offset: Int) -> UInt64 {
    (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[offset + $1]) << (8 * UInt64($1)) }
}
