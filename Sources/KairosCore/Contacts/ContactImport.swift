/// The formats contacts are imported from and exported to.
public enum ContactFileFormat: String, Sendable, CaseIterable {
    /// A header row of column names, then one contact per row (RFC 4180 quoting).
    case csv
    /// One JSON object per line: `{"userId": …, "anonymousId": …, "traits": {…}}`.
    case ndjson
}

/// One contact to import: who (a `userId`, an `anonymousId`, or only an `email` trait) and
/// the traits to set.
public struct ImportRow: Sendable, Hashable {
    /// The row's line in the file (1 is the first line; for CSV that is the header).
    public var line: Int
    public var userId: String?
    public var anonymousId: String?
    public var traits: [String: JSONValue]

    public init(line: Int, userId: String? = nil, anonymousId: String? = nil, traits: [String: JSONValue] = [:]) {
        self.line = line
        self.userId = userId
        self.anonymousId = anonymousId
        self.traits = traits
    }

    /// The `email` trait, when it is a non-empty string.
    public var email: String? {
        guard case .string(let text)? = traits["email"], !text.isEmpty else { return nil }
        return text
    }
}

/// Why one row was not imported.
public struct ImportRowError: Error, Sendable, Hashable, CustomStringConvertible {
    public var line: Int
    public var message: String

    public init(line: Int, message: String) {
        self.line = line
        self.message = message
    }

    public var description: String { "line \(line): \(message)" }
}

/// Why a whole file cannot be imported (no usable header, an unknown format).
public struct ImportFileError: Error, Sendable, Hashable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// Reads contacts out of a CSV or NDJSON file one row at a time, so a large file never turns
/// into a large array of rows: the caller takes rows in batches and applies them as it goes.
///
/// CSV: the first row names the columns. `userId` (or `user_id`) and `anonymousId` (or
/// `anonymous_id`) identify the contact; every other column is a trait; columns starting with
/// `_` are read-only fields of an export (`_id`, `_segments` …) and are skipped. Empty cells set
/// nothing. Cells that are exactly `true`/`false` become booleans and plain decimal numbers
/// (no leading zeros, at most 15 digits) become numbers; everything else stays text, so zip codes
/// and phone numbers keep their form.
public struct ContactImportReader: Sendable {
    public let format: ContactFileFormat
    private let bytes: [UInt8]
    private var offset = 0
    private var line = 1
    private var columns: [Column] = []
    private let parseJSON: @Sendable ([UInt8]) throws -> JSONValue

    private enum Column: Sendable {
        case userId, anonymousId, skipped
        case trait(String)
    }

    /// Bytes read so far (for progress).
    public var bytesRead: Int { offset }
    public var totalBytes: Int { bytes.count }

    /// - Parameter parseJSON: parses one NDJSON line (the gateway passes its simdjson parser).
    public init(
        _ bytes: [UInt8], format: ContactFileFormat, parseJSON: @escaping @Sendable ([UInt8]) throws -> JSONValue
    ) throws(ImportFileError) {
        self.bytes = bytes
        self.format = format
        self.parseJSON = parseJSON
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { offset = 3 }
        if format == .csv { try readHeader() }
    }

    private mutating func readHeader() throws(ImportFileError) {
        while offset < bytes.count {
            let startLine = line
            let fields: [String]
            do { fields = try readRecord() } catch { throw ImportFileError(message: "the header (line \(startLine)) \(error.message)") }
            if fields.count == 1 && fields[0].isEmpty { continue }
            var seen: Set<String> = []
            for raw in fields {
                let name = raw.trimmingWhitespace()
                guard !name.isEmpty else { throw ImportFileError(message: "the header (line \(startLine)) has an empty column name") }
                guard seen.insert(name).inserted else {
                    throw ImportFileError(message: "the header (line \(startLine)) names column '\(name)' twice")
                }
                switch name {
                case "userId", "user_id": columns.append(.userId)
                case "anonymousId", "anonymous_id": columns.append(.anonymousId)
                default: columns.append(name.hasPrefix("_") ? .skipped : .trait(name))
                }
            }
            let identifies = columns.contains { column in
                switch column {
                case .userId, .anonymousId: return true
                case .trait(let name): return name == "email"
                case .skipped: return false
                }
            }
            guard identifies else {
                throw ImportFileError(message: "the header needs a userId, anonymousId or email column to say who each row is")
            }
            return
        }
        throw ImportFileError(message: "the file is empty: a CSV import starts with a header row of column names")
    }

    /// The next row, or the reason it cannot be imported; nil at the end of the file.
    public mutating func next() -> Result<ImportRow, ImportRowError>? {
        switch format {
        case .csv: return nextCSV()
        case .ndjson: return nextJSONLine()
        }
    }

    // MARK: CSV

    private struct RecordError: Error { var message: String }

    private mutating func nextCSV() -> Result<ImportRow, ImportRowError>? {
        while offset < bytes.count {
            let rowLine = line
            let fields: [String]
            do { fields = try readRecord() } catch { return .failure(ImportRowError(line: rowLine, message: error.message)) }
            if fields.count == 1 && fields[0].isEmpty { continue }
            guard fields.count == columns.count else {
                return .failure(ImportRowError(line: rowLine, message: "has \(fields.count) fields; the header has \(columns.count)"))
            }
            var row = ImportRow(line: rowLine)
            for (column, field) in zip(columns, fields) where !field.isEmpty {
                switch column {
                case .userId: row.userId = field
                case .anonymousId: row.anonymousId = field
                case .trait(let name): row.traits[name] = ContactImportReader.typed(field)
                case .skipped: break
                }
            }
            return ContactImportReader.checked(row)
        }
        return nil
    }

    /// One CSV record: fields split on commas, quotes honoured, ending at a line break outside quotes.
    private mutating func readRecord() throws(RecordError) -> [String] {
        var fields: [String] = []
        var field: [UInt8] = []
        var quoted = false
        var wasQuoted = false
        while offset < bytes.count {
            let byte = bytes[offset]
            offset += 1
            if quoted {
                if byte == UInt8(ascii: "\"") {
                    if offset < bytes.count && bytes[offset] == UInt8(ascii: "\"") {
                        field.append(byte)
                        offset += 1
                    } else {
                        quoted = false
                    }
                } else {
                    if byte == UInt8(ascii: "\n") { line += 1 }
                    field.append(byte)
                }
                continue
            }
            switch byte {
            case UInt8(ascii: ","):
                do {
                    fields.append(try ContactImportReader.text(field, quoted: wasQuoted))
                } catch {
                    // The rest of the record belongs to the same bad row; its fields are still
                    // well formed, so a quoted line break in them does not end it.
                    skipRestOfRecord(honoringQuotes: true)
                    throw error
                }
                field.removeAll(keepingCapacity: true)
                wasQuoted = false
            case UInt8(ascii: "\""):
                guard field.isEmpty, !wasQuoted else {
                    skipRestOfRecord()
                    throw RecordError(message: "has a quote inside an unquoted field (quote the whole field and double inner quotes)")
                }
                quoted = true
                wasQuoted = true
            case UInt8(ascii: "\n"):
                line += 1
                fields.append(try ContactImportReader.text(field, quoted: wasQuoted))
                return fields
            case UInt8(ascii: "\r") where offset < bytes.count && bytes[offset] == UInt8(ascii: "\n"):
                continue
            default:
                if wasQuoted {
                    skipRestOfRecord()
                    throw RecordError(message: "has text after a closing quote")
                }
                field.append(byte)
            }
        }
        if quoted { throw RecordError(message: "has a quoted field that never ends") }
        fields.append(try ContactImportReader.text(field, quoted: wasQuoted))
        return fields
    }

    /// Skips to the end of the record. With `honoringQuotes`, a line break inside quotes does
    /// not end it (a doubled quote toggles twice); without, after a misplaced quote, the next
    /// line break does: a stray quote must not swallow the rows after it.
    private mutating func skipRestOfRecord(honoringQuotes: Bool = false) {
        var quoted = false
        while offset < bytes.count {
            let byte = bytes[offset]
            offset += 1
            if byte == UInt8(ascii: "\"") && honoringQuotes {
                quoted.toggle()
            } else if byte == UInt8(ascii: "\n") {
                line += 1
                if !quoted { return }
            }
        }
    }

    private static func text(_ bytes: [UInt8], quoted: Bool) throws(RecordError) -> String {
        // ASCII (most cells) is valid UTF-8 as it is; `String(validating:)` is generic and
        // looked up type metadata at run time for every cell.
        let text: String
        if bytes.allSatisfy({ $0 < 0x80 }) {
            text = String(decoding: bytes, as: UTF8.self)
        } else {
            guard let valid = String(validating: bytes, as: UTF8.self) else { throw RecordError(message: "is not valid UTF-8") }
            text = valid
        }
        guard !quoted else { return text }
        // Most cells start and end with visible ASCII: nothing to trim, no scalar walk.
        if let first = bytes.first, let last = bytes.last, isVisibleASCII(first), isVisibleASCII(last) { return text }
        return text.trimmingWhitespace()
    }

    private static func isVisibleASCII(_ byte: UInt8) -> Bool { byte > 32 && byte < 127
    }

    /// A CSV cell as a trait value: booleans and plain numbers typed, the rest text.
    public static func typed(_ text: String) -> JSONValue {
        if text == "true" { return .bool(true) }
        if text == "false" { return .bool(false) }
        if isPlainNumber(text), let number = Double(text) { return .number(number) }
        return .string(text)
    }

    private static func isPlainNumber(_ text: String) -> Bool {
        var utf8 = Array(text.utf8)[...]
        if utf8.first == UInt8(ascii: "-") { utf8 = utf8.dropFirst() }
        let integer = utf8.prefix { $0 >= 0x30 && $0 <= 0x39 }
        guard !integer.isEmpty, integer.count <= 15, integer.count == 1 || integer.first != 0x30 else { return false }
        var rest = utf8.dropFirst(integer.count)
        if rest.isEmpty { return true }
        guard rest.first == UInt8(ascii: ".") else { return false }
        rest = rest.dropFirst()
        return !rest.isEmpty && rest.count + integer.count <= 15 && rest.allSatisfy { $0 >= 0x30 && $0 <= 0x39 }
    }

    // MARK: NDJSON

    private mutating func nextJSONLine() -> Result<ImportRow, ImportRowError>? {
        while offset < bytes.count {
            let rowLine = line
            let start = offset
            while offset < bytes.count && bytes[offset] != UInt8(ascii: "\n") { offset += 1 }
            var end = offset
            if offset < bytes.count { offset += 1 }
            line += 1
            if end > start && bytes[end - 1] == UInt8(ascii: "\r") { end -= 1 }
            let slice = Array(bytes[start..<end])
            if slice.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { continue }
            let value: JSONValue
            do { value = try parseJSON(slice) } catch { return .failure(ImportRowError(line: rowLine, message: "is not valid JSON: \(error)")) }
            return ContactImportReader.row(from: value, line: rowLine)
        }
        return nil
    }

    /// An NDJSON line as a row: `userId`, `anonymousId` and `traits`, nothing else.
    public static func row(from value: JSONValue, line: Int) -> Result<ImportRow, ImportRowError> {
        guard case .object(let object) = value else {
            return .failure(ImportRowError(line: line, message: "must be a JSON object, got \(value.typeName)"))
        }
        if let unknown = object.keys.sorted().first(where: { !["userId", "anonymousId", "traits"].contains($0) }) {
            return .failure(ImportRowError(line: line, message: "has unknown field \"\(unknown)\" (allowed: anonymousId, traits, userId)"))
        }
        var row = ImportRow(line: line)
        for key in ["userId", "anonymousId"] {
            switch object[key] {
            case nil, .null?: break
            case .string(let text)?:
                if key == "userId" { row.userId = text.isEmpty ? nil : text } else { row.anonymousId = text.isEmpty ? nil : text }
            case .number(let number)?:
                let text = JSONValue.number(number).compactText
                if key == "userId" { row.userId = text } else { row.anonymousId = text }
            case let other?:
                return .failure(ImportRowError(line: line, message: "\"\(key)\" must be a string, got \(other.typeName)"))
            }
        }
        switch object["traits"] {
        case nil, .null?: break
        case .object(let traits)?: row.traits = traits
        case let other?: return .failure(ImportRowError(line: line, message: "\"traits\" must be an object, got \(other.typeName)"))
        }
        return checked(row)
    }

    private static func checked(_ row: ImportRow) -> Result<ImportRow, ImportRowError> {
        guard row.userId != nil || row.anonymousId != nil || row.email != nil else {
            return .failure(ImportRowError(line: row.line, message: "has no userId, anonymousId or email to say who it is"))
        }
        for id in [row.userId, row.anonymousId].compactMap({ $0 }) where id.utf8.count > EventDecoder.maximumIdentifierLength {
            return .failure(ImportRowError(line: row.line, message: "has an id longer than \(EventDecoder.maximumIdentifierLength) bytes"))
        }
        if let email = row.traits["email"], email.stringValue == nil, !email.isNull {
            return .failure(ImportRowError(line: row.line, message: "\"email\" must be text, got \(email.typeName)"))
        }
        return .success(row)
    }
}

extension String {
    func trimmingWhitespace() -> String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { !$0.properties.isWhitespace }) else { return "" }
        let last = scalars.lastIndex(where: { !$0.properties.isWhitespace })!
        return String(scalars[first...last])
    }
}
