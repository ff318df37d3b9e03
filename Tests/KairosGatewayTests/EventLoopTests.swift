import Dispatch
import Foundation
import Synchronization
import Testing
@testable import KairosGateway

/// Work handed to the loop from other threads: every item runs once, on the loop thread, in
/// the order each thread handed it over, however the wake-ups interleave.
@Suite struct EventLoopTests {
    final class Tally: @unchecked Sendable {
        // @unchecked: `lastSeen` and `offLoop` are touched only by closures run on the loop thread.
        var lastSeen: [Int]
        var offLoop = 0
        var outOfOrder = 0
        let done = Atomic<Int>(0)
        init(threads: Int) { lastSeen = Array(repeating: -1, count: threads) }
    }

    @Test func workFromManyThreadsRunsOnceInOrderOnTheLoop() async throws {
        let loop = EventLoop()
        loop.start(name: "test-loop") {}
        let (threads, perThread) = (6, 20_000)
        let tally = Tally(threads: threads)
        DispatchQueue.concurrentPerform(iterations: threads) { thread in
            for index in 0..<perThread {
                loop.execute {
                    if !loop.isCurrent { tally.offLoop += 1 }
                    if tally.lastSeen[thread] != index - 1 { tally.outOfOrder += 1 }
                    tally.lastSeen[thread] = index
                    tally.done.add(1, ordering: .relaxed)
                }
                // Now and then let the loop find the queue empty, so signals start again.
                if index % 997 == 0 { usleep(200) }
            }
        }
        let total = threads * perThread
        #expect(await eventually(timeout: .seconds(20)) { tally.done.load(ordering: .relaxed) == total })
        // Read on the loop, after everything before it ran.
        let checked = Atomic<Bool>(false)
        let results = Mutex<(offLoop: Int, outOfOrder: Int, last: [Int])>((0, 0, []))
        loop.execute {
            results.withLock { $0 = (tally.offLoop, tally.outOfOrder, tally.lastSeen) }
            checked.store(true, ordering: .releasing)
        }
        #expect(await eventually { checked.load(ordering: .acquiring) })
        let (offLoop, outOfOrder, last) = results.withLock { $0 }
        #expect(offLoop == 0)
        #expect(outOfOrder == 0)
        #expect(last == Array(repeating: perThread - 1, count: threads))
        #expect(tally.done.load(ordering: .relaxed) == total)
        loop.stop()
        await loop.waitUntilFinished()
        #expect(loop.isFinished)
    }
}
