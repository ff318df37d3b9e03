import KairosCore
import Synchronization

/// An effect with the tenant it belongs to.
public struct TenantEffect: Sendable, Hashable, CustomStringConvertible {
    public var tenant: String
    public var effect: Effect
    public var description: String { "[\(tenant)] \(effect)" }
}

/// Delivers effects to subscribers (journeys, webhooks, dashboards, tests).
final class EffectBus: Sendable {
    private struct State {
        var subscribers: [Int: AsyncStream<TenantEffect>.Continuation] = [:]
        var nextId = 0
    }

    private let state = Mutex(State())
    private let subscriberCount = Atomic<Int>(0)

    func subscribe() -> AsyncStream<TenantEffect> {
        let (stream, continuation) = AsyncStream<TenantEffect>.makeStream(bufferingPolicy: .unbounded)
        let id = state.withLock { state in
            state.nextId += 1
            state.subscribers[state.nextId] = continuation
            return state.nextId
        }
        subscriberCount.add(1, ordering: .relaxed)
        continuation.onTermination = { [weak self] _ in
            guard let self else { return }
            self.state.withLock { _ = $0.subscribers.removeValue(forKey: id) }
            self.subscriberCount.subtract(1, ordering: .relaxed)
        }
        return stream
    }

    /// Whether anyone listens: a caller can skip gathering effects only a subscriber would see.
    var hasSubscribers: Bool { subscriberCount.load(ordering: .relaxed) > 0 }

    func publish(_ effects: [TenantEffect]) {
        guard !effects.isEmpty, subscriberCount.load(ordering: .relaxed) > 0 else { return }
        let subscribers = state.withLock { Array($0.subscribers.values) }
        for effect in effects {
            for subscriber in subscribers { subscriber.yield(effect) }
        }
    }

    func publish(tenant: String, _ effects: [Effect]) {
        guard !effects.isEmpty, subscriberCount.load(ordering: .relaxed) > 0 else { return }
        let subscribers = state.withLock { Array($0.subscribers.values) }
        for effect in effects {
            let tagged = TenantEffect(tenant: tenant, effect: effect)
            for subscriber in subscribers { subscriber.yield(tagged) }
        }
    }
}
