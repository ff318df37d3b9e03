/// What a predicate can ask about the contact (or event) it is evaluated against.
public protocol PredicateSubject {
    var now: Timestamp { get }
    func field(_ scope: FieldScope, path: String) -> JSONValue?
    func score(model: String) -> Double?
    func grade(model: String) -> String?
    func lifecycleStage(model: String) -> String?
    func isMember(segmentSymbol: UInt32) -> Bool
    func eventCount(_ condition: EventCondition) -> Int
    var firstSeen: Timestamp? { get }
    var lastSeen: Timestamp? { get }
}

extension Predicate {
    public func evaluate<Subject: PredicateSubject>(_ subject: Subject) -> Bool {
        switch self {
        case .all(let items):
            for item in items where !item.evaluate(subject) { return false }
            return true
        case .any(let items):
            for item in items where item.evaluate(subject) { return true }
            return false
        case .not(let item):
            return !item.evaluate(subject)
        case .field(let scope, let path, let op, let value):
            return op.compare(subject.field(scope, path: path), with: value)
        case .score(let model, let op, let value):
            guard let score = subject.score(model: model) else { return false }
            return op.compare(.number(score), with: .number(value))
        case .grade(let model, let op, let value):
            return op.compare(subject.grade(model: model).map(JSONValue.string), with: value)
        case .lifecycle(let model, let op, let value):
            return op.compare(subject.lifecycleStage(model: model).map(JSONValue.string), with: value)
        case .segment(_, let symbol):
            return subject.isMember(segmentSymbol: symbol)
        case .event(let condition):
            let count = subject.eventCount(condition)
            return condition.countOperator.compare(.number(Double(count)), with: .number(Double(condition.count)))
        case .firstSeen(let condition):
            return condition.holds(for: subject.firstSeen, now: subject.now)
        case .lastSeen(let condition):
            return condition.holds(for: subject.lastSeen, now: subject.now)
        }
    }
}

extension TimeCondition {
    func holds(for time: Timestamp?, now: Timestamp) -> Bool {
        guard let time else { return false }
        switch self {
        case .before(let limit): return time < limit
        case .after(let limit): return time > limit
        case .within(let span): return now - time < span
        case .olderThan(let span): return !(now - time < span)
        }
    }
}

extension ComparisonOperator {
    /// Compares a contact's or event's field with a definition's value.
    /// Numbers compare as numbers (numeric strings too), ISO dates as dates, other values as text.
    public func compare(_ field: JSONValue?, with value: JSONValue) -> Bool {
        switch self {
        case .exists:
            let present = field.map { !$0.isNull } ?? false
            return present == (value.boolValue ?? true)
        case .isTrue:
            let truth = field?.boolValue ?? false
            return truth == (value.boolValue ?? true)
        case .eq:
            guard let field else { return value.isNull }
            return ComparisonOperator.equal(field, value)
        case .neq:
            guard let field else { return !value.isNull }
            return !ComparisonOperator.equal(field, value)
        case .in:
            guard let field, case .array(let options) = value else { return false }
            return options.contains { ComparisonOperator.equal(field, $0) }
        case .contains:
            guard let field else { return false }
            switch field {
            case .string(let text): return value.anyString { text.localizedCaseInsensitiveContainsFast($0) }
            case .array(let items):
                return items.contains { item in
                    if case .array(let options) = value { return options.contains { ComparisonOperator.equal(item, $0) } }
                    return ComparisonOperator.equal(item, value)
                }
            default: return false
            }
        case .startsWith:
            guard case .string(let text)? = field else { return false }
            return value.anyString { text.caseInsensitiveHasPrefix($0) }
        case .endsWith:
            guard case .string(let text)? = field else { return false }
            return value.anyString { text.caseInsensitiveHasSuffix($0) }
        case .gt, .gte, .lt, .lte:
            guard let field, let order = ComparisonOperator.order(field, value) else { return false }
            switch self {
            case .gt: return order > 0
            case .gte: return order >= 0
            case .lt: return order < 0
            default: return order <= 0
            }
        }
    }

    static func equal(_ lhs: JSONValue, _ rhs: JSONValue) -> Bool {
        switch (lhs, rhs) {
        case (.number(let a), .number(let b)): return a == b
        case (.string(let a), .number(let b)): return Double(a) == b
        case (.number(let a), .string(let b)): return Double(b) == a
        case (.bool(let a), .string(let b)): return b.lowercased() == (a ? "true" : "false")
        case (.string(let a), .bool(let b)): return a.lowercased() == (b ? "true" : "false")
        default: return lhs == rhs
        }
    }

    /// -1, 0 or 1; nil when the two cannot be ordered.
    static func order(_ lhs: JSONValue, _ rhs: JSONValue) -> Int? {
        if case .string(let b) = rhs, let right = Timestamp(iso8601: b) {
            guard case .string(let a) = lhs, let left = Timestamp(iso8601: a) else { return nil }
            return left < right ? -1 : (left == right ? 0 : 1)
        }
        guard let a = lhs.numberValue, let b = rhs.numberValue else { return nil }
        return a < b ? -1 : (a == b ? 0 : 1)
    }
}

extension JSONValue {
    func anyString(_ test: (String) -> Bool) -> Bool {
        switch self {
        case .string(let text): return test(text)
        case .array(let items): return items.contains { $0.stringValue.map(test) ?? false }
        default: return false
        }
    }
}

extension String {
    /// Case-insensitive substring test without Foundation's locale machinery. ASCII text (trait
    /// values mostly are) is compared byte by byte, without lowercased copies or a generic search.
    func localizedCaseInsensitiveContainsFast(_ other: String) -> Bool {
        if other.isEmpty { return true }
        if let found = asciiCaseInsensitiveFind(other, .anywhere) { return found }
        return lowercased().contains(other.lowercased())
    }

    func caseInsensitiveHasPrefix(_ prefix: String) -> Bool {
        if let found = asciiCaseInsensitiveFind(prefix, .start) { return found }
        return lowercased().hasPrefix(prefix.lowercased())
    }

    func caseInsensitiveHasSuffix(_ suffix: String) -> Bool {
        if let found = asciiCaseInsensitiveFind(suffix, .end) { return found }
        return lowercased().hasSuffix(suffix.lowercased())
    }

    private enum Anchor { case anywhere, start, end }

    /// Whether `pattern` occurs in this string at `anchor`, ignoring ASCII case; nil when either
    /// string is not ASCII (Unicode case rules then apply, through `lowercased()`).
    private func asciiCaseInsensitiveFind(_ pattern: String, _ anchor: Anchor) -> Bool? {
        let found = utf8.withContiguousStorageIfAvailable { text in
            pattern.utf8.withContiguousStorageIfAvailable { pattern -> Bool? in
                guard !text.contains(where: { $0 >= 128 }), !pattern.contains(where: { $0 >= 128 }) else { return nil }
                guard pattern.count <= text.count else { return false }
                @inline(__always) func lower(_ byte: UInt8) -> UInt8 { byte &- 65 < 26 ? byte | 0x20 : byte }
                let last = text.count - pattern.count
                let starts = anchor == .start ? 0...0 : anchor == .end ? last...last : 0...last
                for start in starts {
                    var offset = 0
                    while offset < pattern.count && lower(text[start + offset]) == lower(pattern[offset]) { offset += 1 }
                    if offset == pattern.count { return true }
                }
                return false
            }
        }
        guard case .some(.some(.some(let answer))) = found else { return nil }
        return answer
    }
}

// MARK: - What a predicate depends on

/// What can change a predicate's outcome; used to index segments so that an
/// event re-evaluates only the segments it can affect.
public struct PredicateDependencies: Sendable, Hashable {
    /// Counter names (`track:Signed Up`) or wildcards (`page:*`) of event conditions.
    public var eventKeys: Set<String> = []
    public var traitKeys: Set<String> = []
    public var usesAccount = false
    public var scoreModels: Set<String> = []
    public var segments: Set<String> = []
    /// Uses first/last seen: any event can change it.
    public var usesSeen = false
    /// May change with time alone (windows, relative times, decaying scores).
    public var isTimeDependent = false
    public var eventConditions: [EventCondition] = []
}

extension Predicate {
    public func collectDependencies(into deps: inout PredicateDependencies) {
        switch self {
        case .all(let items), .any(let items): items.forEach { $0.collectDependencies(into: &deps) }
        case .not(let item): item.collectDependencies(into: &deps)
        case .field(let scope, let path, _, _):
            switch scope {
            case .trait: deps.traitKeys.insert(String(path.split(separator: ".").first ?? Substring(path)))
            case .account: deps.usesAccount = true
            case .property, .context: break
            }
        case .score(let model, _, _), .grade(let model, _, _), .lifecycle(let model, _, _):
            deps.scoreModels.insert(model)
        case .segment(let id, _): deps.segments.insert(id)
        case .event(let condition):
            deps.eventKeys.insert(
                condition.name.map { Event.counterName(type: condition.type, name: $0) } ?? "\(condition.type.rawValue):*")
            deps.eventConditions.append(condition)
            if condition.window != nil { deps.isTimeDependent = true }
        case .firstSeen(let condition), .lastSeen(let condition):
            deps.usesSeen = true
            if case .within = condition { deps.isTimeDependent = true }
            if case .olderThan = condition { deps.isTimeDependent = true }
        }
    }

    public var dependencies: PredicateDependencies {
        var deps = PredicateDependencies()
        collectDependencies(into: &deps)
        return deps
    }

    /// Rewrites event conditions and segment references with their resolved symbols.
    func resolvingSymbols(_ resolve: (String) -> UInt32) -> Predicate {
        switch self {
        case .all(let items): return .all(items.map { $0.resolvingSymbols(resolve) })
        case .any(let items): return .any(items.map { $0.resolvingSymbols(resolve) })
        case .not(let item): return .not(item.resolvingSymbols(resolve))
        case .segment(let id, _): return .segment(id: id, symbol: resolve(SymbolTable.segmentKey(id)))
        case .event(var condition):
            condition.counterSymbol = resolve(condition.counterKey)
            return .event(condition)
        default: return self
        }
    }
}
