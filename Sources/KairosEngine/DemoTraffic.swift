import Foundation
import KairosCore

/// Picks items 0..<count with Zipf popularity: a few contacts are very active, most rarely seen.
public struct ZipfDistribution: Sendable {
    private let cumulative: [Double]

    public init(count: Int, exponent: Double = 1.0) {
        var running = 0.0
        var values: [Double] = []
        values.reserveCapacity(count)
        for rank in 1...max(count, 1) {
            running += 1 / pow(Double(rank), exponent)
            values.append(running)
        }
        cumulative = values.map { $0 / running }
    }

    public func sample(_ random: inout SeededRandom) -> Int {
        let target = random.unit()
        var low = 0
        var high = cumulative.count - 1
        while low < high {
            let mid = (low + high) / 2
            if cumulative[mid] < target { low = mid + 1 } else { high = mid }
        }
        return low
    }
}

/// Realistic marketing traffic for the demo tenant: anonymous visitors browsing,
/// identifying with traits, clicking emails, requesting demos, signing up.
public struct DemoTraffic: Sendable {
    public let contacts: Int
    private let popularity: ZipfDistribution
    private var random: SeededRandom

    static let paths = ["/", "/blog/launch", "/docs", "/pricing", "/pricing/enterprise", "/features", "/customers"]
    static let domains = ["gmail.com", "acme.com", "globex.io", "initech.com", "yahoo.com", "umbrella.org", "hooli.com"]
    static let titles = ["Engineer", "VP Marketing", "Director of Sales", "Student", "CTO", "Marketing Manager", "Founder"]
    static let industries = ["Software", "Retail", "Fintech", "Education", "SaaS", "Healthcare"]
    static let plans = ["free", "trial", "pro", "team"]

    public init(contacts: Int, seed: UInt64 = 42) {
        self.contacts = contacts
        self.popularity = ZipfDistribution(count: contacts)
        self.random = SeededRandom(seed: seed)
    }

    private mutating func pick<T>(_ items: [T]) -> T { items[Int(random.next() % UInt64(items.count))] }

    /// One event at `time` from a Zipf-chosen contact. Contacts whose index is
    /// odd browse anonymously until they identify (about 2% of their events).
    public mutating func next(at time: Timestamp) -> Event {
        let contact = popularity.sample(&random)
        let userId = "user-\(contact)"
        let anonymousId = "anon-\(contact)"
        let known = contact % 2 == 0
        let roll = random.unit()
        let messageId = "msg-\(random.next())"
        switch roll {
        case ..<0.02:
            let traits: [String: JSONValue] = [
                "email": .string("person\(contact)@\(pick(Self.domains))"),
                "company_size": .number(Double([8, 40, 120, 600, 2500][Int(random.next() % 5)])),
                "title": .string(pick(Self.titles)), "industry": .string(pick(Self.industries)),
                "plan": .string(pick(Self.plans)), "country": .string(pick(["FR", "DE", "US", "GB"])),
            ]
            return Event(
                type: .identify, messageId: messageId, userId: userId, anonymousId: anonymousId, traits: traits, time: time)
        case ..<0.70:
            let path = pick(Self.paths)
            return Event(
                type: .page, messageId: messageId, userId: known ? userId : nil, anonymousId: anonymousId,
                name: path.hasPrefix("/pricing") ? "Pricing" : "Page",
                properties: ["path": .string(path), "url": .string("https://example.com\(path)")],
                context: ["campaign": ["source": .string(pick(["google", "newsletter", "linkedin"]))]], time: time)
        case ..<0.85:
            return .track("Email Link Clicked", userId: userId, properties: ["campaign": "nurture"], messageId: messageId, at: time)
        case ..<0.92:
            return .track(
                "Pricing Viewed", userId: known ? userId : nil, anonymousId: anonymousId,
                properties: ["plan": .string(pick(Self.plans))], messageId: messageId, at: time)
        case ..<0.95:
            return .track("Signed Up", userId: userId, anonymousId: anonymousId, messageId: messageId, at: time)
        case ..<0.97:
            return .track("Webinar Attended", userId: userId, messageId: messageId, at: time)
        case ..<0.985:
            return .track("Demo Requested", userId: userId, messageId: messageId, at: time)
        case ..<0.99:
            return .track("Unsubscribed", userId: userId, messageId: messageId, at: time)
        default:
            return .group(
                "account-\(contact % 97)", userId: userId,
                traits: ["employees": .number(Double((contact % 97) * 40)), "name": .string("Account \(contact % 97)")],
                messageId: messageId, at: time)
        }
    }
}
