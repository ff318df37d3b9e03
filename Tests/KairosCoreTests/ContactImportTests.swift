import Foundation
import KairosCore
import Testing

@Suite struct ContactImportTests {
    func rows(_ bytes: [UInt8]) throws -> [Result<ImportRow, ImportRowError>] {
        var reader = try ContactImportReader(bytes, format: .csv) { try JSONValue.parse(String(decoding: $0, as: UTF8.self)) }
        var rows: [Result<ImportRow, ImportRowError>] = []
        while let row = reader.next() { rows.append(row) }
        return rows
    }

    /// Cells are text as sent: ASCII and multi-byte UTF-8 read the same way, trimmed unless
    /// quoted; a cell that is not UTF-8 fails its row only.
    @Test func cellsAreUTF8() throws {
        let csv = Array("userId,city,note\nu1,Köln, plain \nu2,\"  Zürich \",ok\n".utf8) + Array("u3,".utf8) + [0xFF, 0xFE] + Array(",x\nu4,Paris,\n".utf8)
        let read = try rows(csv)
        #expect(read.count == 4)
        let first = try read[0].get()
        #expect(first.userId == "u1" && first.traits["city"] == "Köln" && first.traits["note"] == "plain")
        #expect(try read[1].get().traits["city"] == "  Zürich ")
        guard case .failure(let error) = read[2] else { Issue.record("a cell that is not UTF-8 was accepted"); return }
        #expect(error.line == 4 && error.description.contains("UTF-8"))
        #expect(try read[3].get().traits["city"] == "Paris")
    }

    /// A row that fails on a cell is skipped to its real end: a quoted line break in a later
    /// field belongs to the same row, and the rows after it are read with the right lines.
    @Test func aBadCellSkipsItsWholeRecord() throws {
        let csv = Array("userId,city,note\nu1,".utf8) + [0xFF] + Array(",\"first line\nsecond \"\"line\"\"\"\nu2,Oslo,ok\nu3,\"a\"b,x\nu4,Rome,fine\n".utf8)
        let read = try rows(csv)
        #expect(read.count == 4)
        guard case .failure(let bad) = read[0] else { Issue.record("a cell that is not UTF-8 was accepted"); return }
        #expect(bad.line == 2 && bad.description.contains("UTF-8"))
        let oslo = try read[1].get()
        #expect(oslo.userId == "u2" && oslo.traits["city"] == "Oslo" && oslo.line == 4)
        // A misplaced quote ends its row at the next line break, not at the next quote.
        guard case .failure(let quote) = read[2] else { Issue.record("a misplaced quote was accepted"); return }
        #expect(quote.line == 5)
        #expect(try read[3].get().userId == "u4")
    }
}
