import Foundation
import KairosCore
import KairosEngine
import Synchronization

/// A tenant the run sends to, with its keys.
public struct TenantKeys: Sendable, Hashable, Codable {
    public var id: String
    public var writeKey: String
    /// Needed for admin reads and reconciliation.
    public var secretKey: String?

    public init(id: String, writeKey: String, secretKey: String?) {
        self.id = id
        self.writeKey = writeKey
        self.secretKey = secretKey
    }

    var basicAuthorization: String { "Basic " + Data((writeKey + ":").utf8).base64EncodedString() }
}

/// One request ready to send.
struct OutgoingRequest {
    var operation: Operation
    var bytes: [UInt8]
    /// Events it carries (acknowledged ones count for reconciliation).
    var events: Int
    var tenant: Int
}

/// Hands out the campaign's contacts in batches, across connections, each contact once; a
/// batch never spans two tenants.
final class CampaignCursor: Sendable {
    private let next = Atomic<Int>(0)
    let perTenant: Int
    let tenants: Int
    let batchSize: Int
    private var batchesPerTenant: Int { (perTenant + batchSize - 1) / batchSize }

    init(contactsPerTenant: Int, tenants: Int, batchSize: Int) {
        self.perTenant = contactsPerTenant
        self.tenants = tenants
        self.batchSize = batchSize
    }

    /// The next batch: its tenant and contact numbers, or nil when every contact has been handed out.
    func claim() -> (tenant: Int, contacts: Range<Int>)? {
        let batch = next.wrappingAdd(1, ordering: .relaxed).oldValue
        guard batch < batchesPerTenant * tenants else { return nil }
        let start = (batch % batchesPerTenant) * batchSize
        return (batch / batchesPerTenant, start..<min(start + batchSize, perTenant))
    }
}

/// Realistic marketing traffic for one connection: Zipf-popular visitors, anonymous ones who
/// identify, sessions of page views with UTM parameters, pricing views, form submits, email
/// clicks, purchases with revenue, decisions and admin reads. Deterministic for a seed.
struct TrafficGenerator {
    let scenario: Scenario
    let tenants: [TenantKeys]
    let runId: String
    let source: String
    let host: String
    private let popularity: ZipfDistribution
    private let weights: [(Operation, Double)]
    private var random: SeededRandom
    private var counter = 0
    private let knownCount: Int
    private let authorizations: [String]
    /// Contacts this connection has sent events for (tenant, contact): admin reads ask for these.
    private var seen: [(tenant: Int, contact: Int)] = []
    private var seenNext = 0

    static let paths = ["/", "/blog/launch", "/docs/getting-started", "/pricing", "/pricing/enterprise", "/features", "/customers"]
    static let campaigns = [
        ("google", "cpc", "spring-sale"), ("newsletter", "email", "weekly-digest"), ("linkedin", "social", "webinar-launch"),
        ("twitter", "social", "product-hunt"),
    ]
    static let events: [(name: String, weight: Double)] = [
        ("Pricing Viewed", 30), ("Form Submitted", 15), ("Email Link Clicked", 25), ("Order Completed", 10), ("Signed Up", 8),
        ("Demo Requested", 4), ("Webinar Attended", 8),
    ]

    init(scenario: Scenario, tenants: [TenantKeys], runId: String, connection: Int, host: String, popularity: ZipfDistribution) {
        self.scenario = scenario
        self.tenants = tenants
        self.runId = runId
        self.source = "\(runId)-\(connection)"
        self.host = host
        self.popularity = popularity
        self.random = SeededRandom(seed: UInt64(truncatingIfNeeded: runId.hashValue) &+ UInt64(connection) &* 0x9E37_79B9_7F4A_7C15)
        let total = scenario.mix.values.reduce(0, +)
        var running = 0.0
        self.weights = scenario.mix.sorted { $0.key < $1.key }.compactMap { operation, weight in
            guard weight > 0 else { return nil }
            running += weight / total
            return (operation, running)
        }
        self.knownCount = Int(Double(scenario.contactsPerTenant) * scenario.knownShare)
        self.authorizations = tenants.map(\.basicAuthorization)
    }

    private mutating func nextMessageId() -> String {
        counter += 1
        return "\(source)-\(counter)"
    }

    private mutating func pickOperation() -> Operation {
        let target = random.unit()
        return weights.first { $0.1 >= target }?.0 ?? weights.last?.0 ?? .page
    }

    private func identity(_ contact: Int) -> String {
        contact < knownCount ? #""userId":"u\#(contact)""# : #""anonymousId":"a-\#(contact)""#
    }

    /// `identity(contact)` written straight into `out` (no string in between).
    private func appendIdentity(_ contact: Int, to out: inout [UInt8]) {
        out += contact < knownCount ? #""userId":"u"#.utf8 : #""anonymousId":"a-"#.utf8
        JSONValue.writeInteger(Int64(contact), into: &out)
        out.append(34)
    }

    /// The next message id (`nextMessageId()`), written straight into `out`; without
    /// `advancing`, the last one again.
    private mutating func appendMessageId(to out: inout [UInt8], advancing: Bool = true) {
        if advancing { counter += 1 }
        out += source.utf8
        out.append(45)
        JSONValue.writeInteger(Int64(counter), into: &out)
    }

    private mutating func pick<T>(_ values: [T]) -> T { values[Int(random.next() % UInt64(values.count))] }

    /// One Segment message (without the outer request), as JSON text.
    private mutating func message(_ operation: Operation, contact: Int) -> String {
        var bytes: [UInt8] = []
        message(operation, contact: contact, into: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Appends one Segment message as JSON, piece by piece: interpolating a dozen pieces into
    /// one string grew it a dozen times, and frames are generated at tens of thousands a second.
    /// Without `opening`, the message's own "{" is left out (a stream frame has written it).
    private mutating func message(_ operation: Operation, contact: Int, into out: inout [UInt8], opening: Bool = true) {
        if opening { out.append(123) }
        switch operation {
        case .identify:
            // An anonymous visitor signs up (a merge), or a known one updates traits.
            let domain = pick(["gmail.com", "acme.com", "globex.io", "initech.com", "hooli.com"])
            let size = pick([8, 40, 120, 600, 2400])
            let title = pick(["Engineer", "VP Marketing", "Director of Sales", "CTO", "Marketing Manager", "Founder"])
            out += #""type":"identify","userId":"u"#.utf8; JSONValue.writeInteger(Int64(contact), into: &out)
            out += #"","anonymousId":"a-"#.utf8; JSONValue.writeInteger(Int64(contact), into: &out)
            out += #"","messageId":""#.utf8; appendMessageId(to: &out)
            out += #"","traits":{"email":"u"#.utf8; JSONValue.writeInteger(Int64(contact), into: &out); out += "@".utf8; out += domain.utf8
            out += #"","company_size":"#.utf8; JSONValue.writeInteger(Int64(size), into: &out); out += #","title":""#.utf8; out += title.utf8
            out += #"","industry":"Software"}}"#.utf8
        case .track:
            var target = random.unit() * 100
            var name = TrafficGenerator.events[0].name
            for event in TrafficGenerator.events {
                target -= event.weight
                if target <= 0 {
                    name = event.name
                    break
                }
            }
            out += #""type":"track","#.utf8; appendIdentity(contact, to: &out); out += #","event":""#.utf8; out += name.utf8
            out += #"","messageId":""#.utf8; appendMessageId(to: &out); out += #"","properties":"#.utf8
            switch name {
            case "Order Completed":
                let revenue = Double(random.next() % 50_000) / 100 + 9
                out += #"{"order_id":""#.utf8; appendMessageId(to: &out, advancing: false); out += #"","revenue":"#.utf8
                out += String(revenue).utf8
                out += #","currency":"USD"}"#.utf8
            case "Form Submitted": out += #"{"form":"contact-sales"}"#.utf8
            case "Email Link Clicked": out += #"{"campaign":"weekly-digest","link":"https://example.com/pricing"}"#.utf8
            default: out += "{}".utf8
            }
            out += "}".utf8
        default:
            let path = pick(TrafficGenerator.paths)
            let (utmSource, medium, campaign) = pick(TrafficGenerator.campaigns)
            out += #""type":"page","#.utf8; appendIdentity(contact, to: &out); out += #","name":""#.utf8; out += path.utf8
            out += #"","messageId":""#.utf8; appendMessageId(to: &out); out += #"","properties":{"path":""#.utf8; out += path.utf8
            out += #"","url":"https://site.example.com"#.utf8; out += path.utf8; out += "?utm_source=".utf8; out += utmSource.utf8
            out += "&utm_medium=".utf8; out += medium.utf8; out += "&utm_campaign=".utf8; out += campaign.utf8
            out += #""},"context":{"campaign":{"source":""#.utf8; out += utmSource.utf8; out += #"","medium":""#.utf8
            out += medium.utf8; out += #"","name":""#.utf8; out += campaign.utf8; out += #""}}}"#.utf8
        }
    }

    private func post(_ path: String, tenant: Int, body: String) -> [UInt8] {
        let bytes = Array(body.utf8)
        return Array(
            "POST \(path) HTTP/1.1\r\nhost: \(host)\r\nauthorization: \(authorizations[tenant])\r\ncontent-type: application/json\r\ncontent-length: \(bytes.count)\r\n\r\n"
                .utf8) + bytes
    }

    private mutating func remember(tenant: Int, contact: Int) {
        if seen.count < 256 { seen.append((tenant, contact)) } else { seen[seenNext] = (tenant, contact) }
        seenNext = (seenNext + 1) % 256
    }

    mutating func nextRequest() -> OutgoingRequest {
        var operation = pickOperation()
        var tenant = tenants.count == 1 ? 0 : Int(random.next() % UInt64(tenants.count))
        var contact = popularity.sample(&random)
        if operation == .admin {
            if seen.isEmpty {
                operation = .page
            } else {
                (tenant, contact) = seen[Int(random.next() % UInt64(seen.count))]
            }
        }
        if operation == .page || operation == .track || operation == .identify { remember(tenant: tenant, contact: contact) }
        switch operation {
        case .page, .track, .identify:
            let path = operation == .page ? "/v1/page" : operation == .track ? "/v1/track" : "/v1/identify"
            return OutgoingRequest(operation: operation, bytes: post(path, tenant: tenant, body: message(operation, contact: contact)), events: 1, tenant: tenant)
        case .batch:
            var messages: [String] = []
            for _ in 0..<scenario.batchSize {
                let kind: Operation = random.unit() < 0.7 ? .page : .track
                messages.append(message(kind, contact: popularity.sample(&random)))
            }
            return OutgoingRequest(
                operation: .batch, bytes: post("/v1/batch", tenant: tenant, body: #"{"batch":[\#(messages.joined(separator: ","))]}"#),
                events: messages.count, tenant: tenant)
        case .decide:
            let path = pick(TrafficGenerator.paths)
            let body = #"{\#(identity(contact)),"placements":["home-hero","pricing-cta"],"context":{"url":"https://site.example.com\#(path)?utm_source=google"}}"#
            return OutgoingRequest(operation: .decide, bytes: post("/v1/decide", tenant: tenant, body: body), events: 0, tenant: tenant)
        case .admin:
            let reference = contact < knownCount ? "userId=u\(contact)" : "anonymousId=a-\(contact)"
            let secret = tenants[tenant].secretKey ?? ""
            let bytes = Array("GET /v1/admin/contacts?\(reference) HTTP/1.1\r\nhost: \(host)\r\nauthorization: Bearer \(secret)\r\n\r\n".utf8)
            return OutgoingRequest(operation: .admin, bytes: bytes, events: 0, tenant: tenant)
        case .get, .stream, .campaign:
            return OutgoingRequest(operation: .get, bytes: Array("GET \(scenario.path) HTTP/1.1\r\nhost: \(host)\r\n\r\n".utf8), events: 0, tenant: tenant)
        }
    }

    /// A batch of identify calls giving the campaign trait to these contacts of a tenant.
    mutating func campaignRequest(tenant: Int, contacts: Range<Int>) -> OutgoingRequest {
        let messages = contacts.map { contact in
            #"{"type":"identify","userId":"u\#(contact)","messageId":"\#(nextMessageId())","traits":{"campaign":"\#(runId)"}}"#
        }
        return OutgoingRequest(
            operation: .campaign, bytes: post("/v1/batch", tenant: tenant, body: #"{"batch":[\#(messages.joined(separator: ","))]}"#),
            events: messages.count, tenant: tenant)
    }

    /// One event-stream frame (a Segment message with `seq`) and its tenant.
    /// Appends the next event-stream frame (one line) to `out`.
    mutating func appendFrame(seq: UInt64, tenant: Int, to out: inout [UInt8]) {
        let contact = popularity.sample(&random)
        let kind: Operation = random.unit() < 0.6 ? .page : .track
        out += #"{"seq":"#.utf8
        JSONValue.writeInteger(Int64(seq), into: &out)
        out.append(44)
        message(kind, contact: contact, into: &out, opening: false)
        out.append(10)
    }
}
