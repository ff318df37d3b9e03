import Foundation
import KairosCore
import Synchronization

/// Where the engine's `now` comes from. Logic never reads a clock itself: the engine
/// stamps each command with `now()` and that time is what replay uses.
public protocol EngineClock: Sendable {
    func now() -> Timestamp
}

/// The wall clock.
public struct SystemClock: EngineClock {
    public init() {}
    public func now() -> Timestamp { Timestamp(seconds: Date().timeIntervalSince1970) }
}

/// A clock that moves only when told to: for tests, demos and replays.
public final class VirtualClock: EngineClock {
    private let current: Mutex<Timestamp>

    public init(_ start: Timestamp) { current = Mutex(start) }

    public func now() -> Timestamp { current.withLock { $0 } }

    public func advance(by span: TimeSpan) { current.withLock { $0 = $0 + span } }

    public func set(_ time: Timestamp) { current.withLock { $0 = time } }
}
