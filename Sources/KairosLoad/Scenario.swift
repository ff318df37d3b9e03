import Foundation

/// The operations the harness can send.
public enum Operation: String, Sendable, Hashable, Codable, CaseIterable, Comparable {
    /// `POST /v1/page`: a page view with UTM parameters.
    case page
    /// `POST /v1/track`: pricing views, form submits, email clicks, purchases with revenue.
    case track
    /// `POST /v1/identify`: an anonymous visitor becomes known (a merge) or traits change.
    case identify
    /// `POST /v1/batch` of `batchSize` messages.
    case batch
    /// `POST /v1/decide` for the placements.
    case decide
    /// `GET /v1/admin/contacts`: an admin read of one contact.
    case admin
    /// One event frame over the TCP event stream (latency until its ack).
    case stream
    /// `GET path` with no body: the server's bare request cost (against /healthz or a fixed-body server).
    case get
    /// `POST /v1/batch` of identify calls giving contacts the campaign trait (campaign-burst).
    case campaign

    public static func < (left: Operation, right: Operation) -> Bool {
        allCases.firstIndex(of: left)! < allCases.firstIndex(of: right)!
    }

    /// Whether the operation carries events (counted for reconciliation).
    var carriesEvents: Bool { [.page, .track, .identify, .batch, .stream, .campaign].contains(self) }
}

/// A load scenario: who the traffic is and what it does. Read from JSON; the three built-ins
/// are `site-traffic`, `event-firehose` and `campaign-burst`.
public struct Scenario: Sendable, Hashable, Codable {
    public var name: String
    public var description: String = ""
    /// Tenants created for the run (each with the demo definitions); ignored with an existing tenant's keys.
    public var tenants = 1
    /// Distinct visitors per tenant; popularity follows a Zipf law with `zipfExponent`.
    public var contactsPerTenant = 10_000
    public var zipfExponent = 1.0
    /// Share of visitors already known (with a userId) when the run starts.
    public var knownShare = 0.3
    /// Relative weights of the HTTP operations.
    public var mix: [Operation: Double] = [.page: 1]
    /// Messages per `/v1/batch` request.
    public var batchSize = 50
    /// Requests per second over all HTTP connections (open loop); nil or 0 runs closed loop (as fast as possible).
    public var rate: Double?
    public var durationSeconds = 10.0
    public var connections = 16
    /// Event-stream connections and their total frames per second (nil or 0: as fast as the window allows).
    public var streamConnections = 0
    public var streamRate: Double?
    /// Frames a stream connection keeps unacknowledged at most.
    public var streamWindow = 2_000
    /// Path for `get` operations.
    public var path = "/healthz"
    /// A campaign: this many contacts per tenant receive the campaign trait (in batches of
    /// `batchSize` identify calls), which makes them enter a segment that enrolls them in a journey.
    public var campaignContacts: Int?

    public init(name: String) { self.name = name }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case name, description, tenants, contactsPerTenant, zipfExponent, knownShare, mix, batchSize, rate, durationSeconds,
            connections, streamConnections, streamRate, streamWindow, path, campaignContacts
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(name: try container.decode(String.self, forKey: .name))
        description = try container.decodeIfPresent(String.self, forKey: .description) ?? description
        tenants = try container.decodeIfPresent(Int.self, forKey: .tenants) ?? tenants
        contactsPerTenant = try container.decodeIfPresent(Int.self, forKey: .contactsPerTenant) ?? contactsPerTenant
        zipfExponent = try container.decodeIfPresent(Double.self, forKey: .zipfExponent) ?? zipfExponent
        knownShare = try container.decodeIfPresent(Double.self, forKey: .knownShare) ?? knownShare
        if let weights = try container.decodeIfPresent([String: Double].self, forKey: .mix) {
            var mix: [Operation: Double] = [:]
            for (name, weight) in weights {
                guard let operation = Operation(rawValue: name) else {
                    throw ScenarioError(
                        "mix: unknown operation '\(name)' (one of: \(Operation.allCases.map(\.rawValue).joined(separator: ", ")))")
                }
                mix[operation] = weight
            }
            self.mix = mix
        }
        batchSize = try container.decodeIfPresent(Int.self, forKey: .batchSize) ?? batchSize
        rate = try container.decodeIfPresent(Double.self, forKey: .rate)
        durationSeconds = try container.decodeIfPresent(Double.self, forKey: .durationSeconds) ?? durationSeconds
        connections = try container.decodeIfPresent(Int.self, forKey: .connections) ?? connections
        streamConnections = try container.decodeIfPresent(Int.self, forKey: .streamConnections) ?? streamConnections
        streamRate = try container.decodeIfPresent(Double.self, forKey: .streamRate)
        streamWindow = try container.decodeIfPresent(Int.self, forKey: .streamWindow) ?? streamWindow
        path = try container.decodeIfPresent(String.self, forKey: .path) ?? path
        campaignContacts = try container.decodeIfPresent(Int.self, forKey: .campaignContacts)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .name)
        try container.encode(description, forKey: .description)
        try container.encode(tenants, forKey: .tenants)
        try container.encode(contactsPerTenant, forKey: .contactsPerTenant)
        try container.encode(zipfExponent, forKey: .zipfExponent)
        try container.encode(knownShare, forKey: .knownShare)
        try container.encode(Dictionary(uniqueKeysWithValues: mix.map { ($0.key.rawValue, $0.value) }), forKey: .mix)
        try container.encode(batchSize, forKey: .batchSize)
        try container.encodeIfPresent(rate, forKey: .rate)
        try container.encode(durationSeconds, forKey: .durationSeconds)
        try container.encode(connections, forKey: .connections)
        try container.encode(streamConnections, forKey: .streamConnections)
        try container.encodeIfPresent(streamRate, forKey: .streamRate)
        try container.encode(streamWindow, forKey: .streamWindow)
        try container.encode(path, forKey: .path)
        try container.encodeIfPresent(campaignContacts, forKey: .campaignContacts)
    }

    /// Parses a scenario file, refusing unknown fields (a typo would silently change the load).
    public static func parse(_ data: Data) throws -> Scenario {
        let object: Any
        do { object = try JSONSerialization.jsonObject(with: data) } catch {
            throw ScenarioError("the scenario is not valid JSON: \(error.localizedDescription)")
        }
        guard let fields = object as? [String: Any] else { throw ScenarioError("the scenario must be a JSON object") }
        let known = Set(CodingKeys.allCases.map(\.rawValue))
        if let unknown = fields.keys.sorted().first(where: { !known.contains($0) }) {
            throw ScenarioError("unknown field '\(unknown)' (known: \(known.sorted().joined(separator: ", ")))")
        }
        let scenario: Scenario
        do { scenario = try JSONDecoder().decode(Scenario.self, from: data) } catch let error as ScenarioError {
            throw error
        } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context) {
            throw ScenarioError("\(context.codingPath.map(\.stringValue).joined(separator: ".")): \(context.debugDescription)")
        } catch let DecodingError.keyNotFound(key, _) {
            throw ScenarioError("'\(key.stringValue)' is required")
        }
        try scenario.validate()
        return scenario
    }

    /// Checks the values make sense together.
    public func validate() throws {
        func require(_ condition: Bool, _ message: String) throws { if !condition { throw ScenarioError(message) } }
        try require(!name.isEmpty, "name must not be empty")
        try require((1...1000).contains(tenants), "tenants must be 1–1000")
        try require((1...10_000_000).contains(contactsPerTenant), "contactsPerTenant must be 1–10,000,000")
        try require(zipfExponent >= 0 && zipfExponent <= 5, "zipfExponent must be 0–5")
        try require((0...1).contains(knownShare), "knownShare must be 0–1")
        try require(mix.values.allSatisfy { $0 >= 0 && $0.isFinite }, "mix weights must be ≥ 0")
        try require(mix[.stream] == nil, "stream is not an HTTP operation: use streamConnections and streamRate")
        try require(mix[.campaign] == nil, "campaign is not a mix operation: use campaignContacts")
        try require(mix.values.reduce(0, +) > 0 || connections == 0, "mix needs at least one weight above 0")
        try require((1...500).contains(batchSize), "batchSize must be 1–500")
        try require((rate ?? 0) >= 0 && (streamRate ?? 0) >= 0, "rates must be ≥ 0")
        try require(durationSeconds > 0 && durationSeconds <= 3600, "durationSeconds must be above 0 and at most 3600")
        try require((0...10_000).contains(connections), "connections must be 0–10,000")
        try require((0...1000).contains(streamConnections), "streamConnections must be 0–1000")
        try require(connections + streamConnections > 0, "the scenario needs connections or streamConnections")
        try require((1...100_000).contains(streamWindow), "streamWindow must be 1–100,000")
        try require(path.hasPrefix("/"), "path must start with /")
        if let campaignContacts {
            try require(campaignContacts > 0 && campaignContacts <= contactsPerTenant, "campaignContacts must be 1–contactsPerTenant")
        }
    }

    // MARK: Built-ins

    public static let builtIn: [String: Scenario] = {
        var site = Scenario(name: "site-traffic")
        site.description = "Visitors browsing sites: mostly page views and personalization decisions, some events, identifies and admin reads."
        site.tenants = 4
        site.contactsPerTenant = 20_000
        site.mix = [.page: 45, .decide: 35, .track: 10, .identify: 5, .batch: 2, .admin: 3]
        site.batchSize = 20
        site.rate = 2_000
        site.connections = 32

        var firehose = Scenario(name: "event-firehose")
        firehose.description = "Maximum ingest over the TCP event stream, with a trickle of HTTP page views."
        firehose.tenants = 2
        firehose.contactsPerTenant = 50_000
        firehose.mix = [.page: 1]
        firehose.rate = 200
        firehose.connections = 2
        firehose.streamConnections = 2

        var campaign = Scenario(name: "campaign-burst")
        campaign.description = "A segment entry that enrolls 100,000 contacts in a journey at once, with site traffic alongside."
        campaign.tenants = 1
        campaign.contactsPerTenant = 100_000
        campaign.campaignContacts = 100_000
        campaign.mix = [.page: 60, .decide: 40]
        campaign.batchSize = 100
        campaign.rate = 500
        campaign.connections = 8
        campaign.durationSeconds = 20

        var fixed = Scenario(name: "bare-get")
        fixed.description = "GET one path as fast as possible: the cost of the client and the server's HTTP layer."
        fixed.mix = [.get: 1]
        fixed.connections = 32
        return [site.name: site, firehose.name: firehose, campaign.name: campaign, fixed.name: fixed]
    }()

    /// A built-in by name, or a scenario file by path.
    public static func load(_ nameOrPath: String) throws -> Scenario {
        if let scenario = builtIn[nameOrPath] { return scenario }
        guard FileManager.default.fileExists(atPath: nameOrPath) else {
            throw ScenarioError(
                "no built-in scenario or file '\(nameOrPath)' (built-ins: \(builtIn.keys.sorted().joined(separator: ", ")))")
        }
        do { return try parse(try Data(contentsOf: URL(fileURLWithPath: nameOrPath))) } catch let error as ScenarioError {
            throw ScenarioError("\(nameOrPath): \(error.message)")
        }
    }
}

public struct ScenarioError: Error, CustomStringConvertible, Hashable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
