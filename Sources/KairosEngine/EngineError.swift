import KairosCore

/// An engine call that cannot be carried out, with a stable code for APIs to map.
public struct EngineError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let name: String
        public static let unknownTenant = Code(name: "unknown_tenant")
        public static let tenantExists = Code(name: "tenant_exists")
        public static let invalidDefinition = Code(name: "invalid_definition")
        public static let unknownDefinition = Code(name: "unknown_definition")
        public static let definitionInUse = Code(name: "definition_in_use")
        public static let invalidArgument = Code(name: "invalid_argument")
        /// The change could not be made durable (journal write failed, e.g. disk full):
        /// nothing was applied; retrying later is safe.
        public static let unavailable = Code(name: "unavailable")
        /// A tenant limit (contacts, definitions) would be passed.
        public static let quotaExceeded = Code(name: "quota_exceeded")
        public var description: String { name }
    }

    public var code: Code
    public var message: String
    /// For invalid definitions: where in the definition the problem is.
    public var definitionError: DefinitionError?

    public init(_ code: Code, _ message: String, definitionError: DefinitionError? = nil) {
        self.code = code
        self.message = message
        self.definitionError = definitionError
    }

    public var description: String { "\(code): \(message)" }

    static func unavailable(_ error: any Error) -> EngineError {
        EngineError(.unavailable, "the change could not be made durable and was not applied: \(error)")
    }

    static func invalid(_ error: DefinitionError, in what: String) -> EngineError {
        EngineError(.invalidDefinition, "\(what) is invalid at \(error)", definitionError: error)
    }
}
