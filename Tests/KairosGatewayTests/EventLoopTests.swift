import CScheduling
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

    /// A loop at real-time priority (when the system grants it) must not hand that priority to
    /// threads started from it: libdispatch grows its pool from whichever thread enqueues work,
    /// and a real-time worker applying ingest would take a whole CPU from everything else.
    @Test func aRealtimeLoopDoesNotPassItsPriorityToThreadsItStarts() async throws {
        let loop = EventLoop()
        loop.start(name: "test-rt-loop", priority: .realtime) {}
        #expect(await eventually { loop.scheduling != nil })
        let scheduling = try #require(loop.scheduling)
        let observed = Mutex<(loop: Int32, started: Int32)?>(nil)
        loop.execute {
            let own = kairos_thread_is_realtime()
            let thread = Thread {
                let started = kairos_thread_is_realtime()
                observed.withLock { $0 = (own, started) }
            }
            thread.start()
        }
        #expect(await eventually { observed.withLock { $0 } != nil })
        let (onLoop, onStarted) = try #require(observed.withLock { $0 })
        if scheduling.priority == .realtime {
            #expect(scheduling.refusal == nil)
            #expect(onLoop == 1)
        } else {
            // Not root and no CAP_SYS_NICE: refused, said why, and the loop runs normally.
            #expect(scheduling.refusal?.isEmpty == false)
            #expect(onLoop == 0)
        }
        #expect(onStarted == 0)
        loop.stop()
        await loop.waitUntilFinished()
    }

    @Test func aNormalLoopStaysNormal() async throws {
        let loop = EventLoop()
        loop.start(name: "test-loop") {}
        #expect(await eventually { loop.scheduling != nil })
        #expect(loop.scheduling == LoopScheduling(priority: .normal, refusal: nil))
        let onLoop = Mutex<Int32?>(nil)
        loop.execute { onLoop.withLock { $0 = kairos_thread_is_realtime() } }
        #expect(await eventually { onLoop.withLock { $0 } != nil })
        #expect(onLoop.withLock { $0 } == 0)
        loop.stop()
        await loop.waitUntilFinished()
    }
}
