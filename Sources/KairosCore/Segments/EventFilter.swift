/// A predicate compiled for matching events (a rule's or a filtered counter's `where`): the
/// same answers as `Predicate.evaluate(EventSubject)`, from objects read in place. Walking the
/// `Predicate` enum copied each node's payload (a reference count on its strings and values,
/// on definitions that every core shares) for every event it was checked against.
final class EventFilter: Sendable {
    private enum Kind: Sendable {
        case all, any, not, field
        /// Conditions an event cannot answer (scores, segments, counts, times): their answer
        /// for an event is fixed when the filter is made.
        case constant
    }

    /// Stored apart rather than as an enum's payloads, which a `switch` copied.
    private let kind: Kind
    private let scope: FieldScope
    private let path: String
    private let op: ComparisonOperator
    private let value: JSONValue
    private let answer: Bool
    /// The filters of `all`, `any` and `not`; walked through `children`, without reference counting.
    private let owned: [EventFilter]
    private let children: [Unmanaged<EventFilter>]

    init(_ predicate: Predicate) {
        var kind = Kind.constant
        var scope = FieldScope.property
        var path = ""
        var op = ComparisonOperator.exists
        var value = JSONValue.null
        var owned: [EventFilter] = []
        switch predicate {
        case .all(let items):
            kind = .all
            owned = items.map(EventFilter.init)
        case .any(let items):
            kind = .any
            owned = items.map(EventFilter.init)
        case .not(let item):
            kind = .not
            owned = [EventFilter(item)]
        case .field(let fieldScope, let fieldPath, let fieldOp, let fieldValue):
            (kind, scope, path, op, value) = (.field, fieldScope, fieldPath, fieldOp, fieldValue)
        default:
            break
        }
        self.kind = kind
        self.scope = scope
        self.path = path
        self.op = op
        self.value = value
        // What an event answers for every other condition (none reads the event), worked out once.
        self.answer = kind == .constant && withUnsafePointer(to: Event(type: .track, time: Timestamp(milliseconds: 0))) {
            predicate.evaluate(EventSubject(event: $0))
        }
        self.owned = owned
        self.children = owned.map { Unmanaged.passUnretained($0) }
    }

    func matches(_ event: UnsafePointer<Event>) -> Bool {
        switch kind {
        case .all:
            for child in children where !child._withUnsafeGuaranteedRef({ $0.matches(event) }) { return false }
            return true
        case .any:
            for child in children where child._withUnsafeGuaranteedRef({ $0.matches(event) }) { return true }
            return false
        case .not:
            return !children[0]._withUnsafeGuaranteedRef { $0.matches(event) }
        case .field:
            switch scope {
            case .property: return op.compare(JSONObject.value(atPath: path, of: Event.properties(of: event)), with: value)
            case .context: return op.compare(event.pointee.context.value(atPath: path), with: value)
            case .trait, .account: return op.compare(nil, with: value)
            }
        case .constant:
            return answer
        }
    }
}
