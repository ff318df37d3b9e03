import CSQLite

/// A storage failure, with SQLite's result code and message and where it happened.
public struct StoreError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let name: String
        public static let diskFull = Code(name: "disk_full")
        public static let corrupt = Code(name: "corrupt")
        public static let cannotOpen = Code(name: "cannot_open")
        public static let closed = Code(name: "closed")
        public static let sqlite = Code(name: "sqlite_error")
        public var description: String { name }
    }

    public var code: Code
    /// SQLite's extended result code, when SQLite reported it.
    public var resultCode: Int32?
    public var message: String
    public var operation: String

    public var description: String {
        "\(operation): \(message)" + (resultCode.map { " (SQLite code \($0))" } ?? "")
    }

    init(_ code: Code, _ message: String, operation: String, resultCode: Int32? = nil) {
        self.code = code
        self.message = message
        self.operation = operation
        self.resultCode = resultCode
    }

    /// Maps SQLite's result to a code callers can act on (a full disk is a 503, not a crash).
    init(resultCode: Int32, database: OpaquePointer?, operation: String) {
        let message = database.flatMap { sqlite3_errmsg($0) }.map { String(cString: $0) }
            ?? String(cString: sqlite3_errstr(resultCode))
        let code: Code
        switch resultCode & 0xFF {
        case SQLITE_FULL: code = .diskFull
        case SQLITE_CORRUPT, SQLITE_NOTADB: code = .corrupt
        case SQLITE_CANTOPEN: code = .cannotOpen
        default: code = .sqlite
        }
        self.init(code, message, operation: operation, resultCode: resultCode)
    }
}
