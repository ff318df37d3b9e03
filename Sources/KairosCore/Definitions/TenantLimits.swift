/// What one tenant may use, set by the operator and changed at any time without a restart.
/// Every field is optional: absent means no limit (CORS: the server's own origins).
public struct TenantLimits: Sendable, Hashable {
    /// Requests per second over ingest, decide and the admin API (a token bucket).
    public var requestsPerSecond: Double?
    /// Requests allowed at once above the steady rate (the bucket's size; default: one second's worth).
    public var burst: Int?
    /// Contacts the tenant may hold; events and imports that would create more are refused.
    public var maxContacts: Int?
    /// Definitions (models, segments, journeys, templates, placements, experiments) the tenant may hold.
    public var maxDefinitions: Int?
    /// Origins allowed to call ingest and decide from a browser; nil: the server's setting.
    public var corsOrigins: [String]?

    public init(
        requestsPerSecond: Double? = nil, burst: Int? = nil, maxContacts: Int? = nil, maxDefinitions: Int? = nil,
        corsOrigins: [String]? = nil
    ) {
        self.requestsPerSecond = requestsPerSecond
        self.burst = burst
        self.maxContacts = maxContacts
        self.maxDefinitions = maxDefinitions
        self.corsOrigins = corsOrigins
    }

    public static let unlimited = TenantLimits()

    public static func parse(_ json: JSONValue) throws(DefinitionError) -> TenantLimits {
        let reader = try DefinitionReader(json, at: "", what: "tenant limits")
        try reader.rejectUnknownKeys(allowed: ["requestsPerSecond", "burst", "maxContacts", "maxDefinitions", "corsOrigins"])
        func positive(_ key: String) throws(DefinitionError) -> Double? {
            guard let value = try reader.number(key) else { return nil }
            guard value > 0 else { throw DefinitionError(pointer: reader.path(key), message: "must be greater than 0, got \(value)") }
            return value
        }
        func count(_ key: String) throws(DefinitionError) -> Int? {
            guard let value = try reader.number(key) else { return nil }
            guard value >= 0, value == value.rounded(), value < 1e12 else {
                throw DefinitionError(pointer: reader.path(key), message: "must be a whole number ≥ 0, got \(value)")
            }
            return Int(value)
        }
        var limits = TenantLimits()
        limits.requestsPerSecond = try positive("requestsPerSecond")
        if let burst = try count("burst") {
            guard burst >= 1 else { throw DefinitionError(pointer: "/burst", message: "must be at least 1") }
            limits.burst = burst
        }
        limits.maxContacts = try count("maxContacts")
        limits.maxDefinitions = try count("maxDefinitions")
        switch reader.object["corsOrigins"] {
        case nil, .null?: break
        case .array(let items)?:
            var origins: [String] = []
            for (index, item) in items.enumerated() {
                guard case .string(let origin) = item, origin == "*" || origin.hasPrefix("http://") || origin.hasPrefix("https://") else {
                    throw DefinitionError(
                        pointer: "/corsOrigins/\(index)", message: "must be \"*\" or an origin such as \"https://shop.example.com\"")
                }
                origins.append(origin.hasSuffix("/") ? String(origin.dropLast()) : origin)
            }
            limits.corsOrigins = origins
        case let other?:
            throw DefinitionError(pointer: "/corsOrigins", message: "must be an array of origins, got \(other.typeName)")
        }
        return limits
    }

    public var json: JSONValue {
        var object: [String: JSONValue] = [:]
        if let requestsPerSecond { object["requestsPerSecond"] = .number(requestsPerSecond) }
        if let burst { object["burst"] = .number(Double(burst)) }
        if let maxContacts { object["maxContacts"] = .number(Double(maxContacts)) }
        if let maxDefinitions { object["maxDefinitions"] = .number(Double(maxDefinitions)) }
        if let corsOrigins { object["corsOrigins"] = .array(corsOrigins.map(JSONValue.string)) }
        return .object(object)
    }
}
