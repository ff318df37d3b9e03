import DequeModule
import KairosCore
import Synchronization

/// Counts for one step of a journey.
public struct JourneyNodeMetrics: Sendable, Hashable, Codable {
    /// Runs that arrived at the step.
    public var arrived = 0
    /// Runs waiting at the step now.
    public var waiting = 0
    public var messages = 0
    public var messagesSkipped = 0
}

/// A journey's counts, exact at the moment they are read (kept from contacts' effects).
public struct JourneyReport: Sendable, Hashable, Codable {
    public var journey: String
    public var entered = 0
    /// Runs in progress (entered and not exited).
    public var active = 0
    public var waiting = 0
    /// Runs that reached an exit step.
    public var completed = 0
    public var goalReached = 0
    /// Exits by reason (`completed`, `goal`, `exit_criteria`, `archived`, `merged`).
    public var exited: [String: Int] = [:]
    public var messages = 0
    public var messagesSkipped = 0
    public var nodes: [String: JourneyNodeMetrics] = [:]

    /// Goal reached per entry (nil before the first entry).
    public var conversionRate: Double? { entered > 0 ? Double(goalReached) / Double(entered) : nil }

    init(journey: String) { self.journey = journey }
}

/// A tenant's journey counts, updated from the effects contact actors produce.
final class JourneyMetrics: Sendable {
    private let reports = Mutex<[String: JourneyReport]>([:])

    func apply(_ effects: [Effect]) {
        guard effects.contains(where: { $0.kind.isJourneyEffect }) else { return }
        reports.withLock { reports in
            for effect in effects {
                switch effect.kind {
                case .journeyEntered(let journey, _):
                    reports[journey, default: JourneyReport(journey: journey)].entered += 1
                    reports[journey]!.active += 1
                case .journeyStep(let journey, let node):
                    reports[journey, default: JourneyReport(journey: journey)].nodes[node, default: JourneyNodeMetrics()].arrived += 1
                case .journeyWaiting(let journey, let node):
                    reports[journey, default: JourneyReport(journey: journey)].waiting += 1
                    reports[journey]!.nodes[node, default: JourneyNodeMetrics()].waiting += 1
                case .journeyResumed(let journey, let node):
                    reports[journey, default: JourneyReport(journey: journey)].waiting -= 1
                    reports[journey]!.nodes[node, default: JourneyNodeMetrics()].waiting -= 1
                case .message(let message):
                    reports[message.journey, default: JourneyReport(journey: message.journey)].messages += 1
                    reports[message.journey]!.nodes[message.node, default: JourneyNodeMetrics()].messages += 1
                case .messageSkipped(let journey, let node, _):
                    reports[journey, default: JourneyReport(journey: journey)].messagesSkipped += 1
                    reports[journey]!.nodes[node, default: JourneyNodeMetrics()].messagesSkipped += 1
                case .journeyExited(let journey, _, let reason):
                    reports[journey, default: JourneyReport(journey: journey)].active -= 1
                    reports[journey]!.exited[reason.rawValue, default: 0] += 1
                    if reason == .completed { reports[journey]!.completed += 1 }
                    if reason == .goal { reports[journey]!.goalReached += 1 }
                default: break
                }
            }
        }
    }

    func report(_ journey: String) -> JourneyReport { reports.withLock { $0[journey] } ?? JourneyReport(journey: journey) }

    func export() -> [String: JourneyReport] { reports.withLock { $0 } }
    func restore(_ value: [String: JourneyReport]) { reports.withLock { $0 = value } }
}

/// One message waiting for delivery, in the order journeys emitted them.
public struct OutboxEntry: Sendable, Hashable {
    /// Position in the tenant's outbox (1, 2, …), for reading onwards.
    public var position: UInt64
    public var contact: UInt64
    public var userId: String?
    public var time: Timestamp
    public var message: OutboxMessage
}

/// A tenant's messages to deliver. Entries are rebuilt exactly by replay (journey steps are
/// deterministic) and kept in snapshots; each carries an idempotency key that a delivery
/// worker uses so a message replayed after a crash is sent once.
final class Outbox: Sendable {
    /// The most messages kept waiting; past it the oldest are dropped (and counted).
    static let capacity = 1_000_000

    struct State: Sendable {
        var entries = Deque<OutboxEntry>()
        var nextPosition: UInt64 = 1
        var dropped: UInt64 = 0
    }

    private let state = Mutex(State())

    /// Appends a command's messages. Contacts run in parallel lanes, so their messages are put
    /// in contact order (each contact's own in the order it emitted them): replay gives the
    /// same outbox, position for position.
    func apply(_ effects: [Effect]) {
        guard effects.contains(where: { if case .message = $0.kind { return true } else { return false } }) else { return }
        let messages = effects.enumerated().filter { if case .message = $0.element.kind { return true } else { return false } }
            .sorted { ($0.element.contact, $0.offset) < ($1.element.contact, $1.offset) }.map(\.element)
        state.withLock { state in
            for effect in messages {
                guard case .message(let message) = effect.kind else { continue }
                state.entries.append(
                    OutboxEntry(position: state.nextPosition, contact: effect.contact, userId: effect.userId, time: effect.time, message: message))
                state.nextPosition += 1
                if state.entries.count > Outbox.capacity {
                    state.entries.removeFirst()
                    state.dropped += 1
                }
            }
        }
    }

    /// Entries after `position`, at most `limit`.
    func read(after position: UInt64, limit: Int) -> [OutboxEntry] {
        state.withLock { state in
            var result: [OutboxEntry] = []
            for entry in state.entries where entry.position > position {
                result.append(entry)
                if result.count == limit { break }
            }
            return result
        }
    }

    var count: Int { state.withLock { $0.entries.count } }

    func export() -> State { state.withLock { $0 } }
    func restore(_ value: State) { state.withLock { $0 = value } }
}

extension Effect.Kind {
    var isJourneyEffect: Bool {
        switch self {
        case .journeyEntered, .journeyStep, .journeyWaiting, .journeyResumed, .message, .messageSkipped, .journeyExited: return true
        default: return false
        }
    }
}
