import Dispatch

/// Runs blocking work (child processes, pipes, sockets) on a Dispatch thread and waits for it
/// without holding a thread of the Swift concurrency pool. Every suite runs in one process: a
/// pool thread blocked on a child process starves the engine tasks of the other suites (with
/// two cores the pool has two threads).
func blocking<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async { continuation.resume(with: Result { try work() }) }
    }
}

/// Hands a value that is used by one thread at a time to a Dispatch thread and back.
struct Handed<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
