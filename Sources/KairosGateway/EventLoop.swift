import CLibUV
import CScheduling
import Foundation
import Synchronization

/// One libuv loop on its own thread. Every `uv_*` call on its handles happens on that thread;
/// other threads (engine tasks completing a request) hand it work with `execute`, which wakes
/// the loop through an eventfd it polls. The C interop of the gateway stays in this file and in
/// `HTTPServer.swift`; nothing outside them sees a libuv pointer.
///
/// Not a `uv_async_t`: in libuv 1.44 (Debian 12) the loop busy-waits in `uv__async_io` until
/// the sending thread has returned from its `write` to the wake-up descriptor. On a busy
/// machine that thread is often preempted right there (by the loop it just woke), so the loop
/// spun, then yielded, while requests waited: a quarter of the loop thread's time under a
/// heavy event stream.
final class EventLoop: @unchecked Sendable {
    // @unchecked: the uv pointers are touched only on the loop thread (after `start`); the
    // queue of work from other threads is behind a mutex.
    let loop: UnsafeMutablePointer<uv_loop_t>
    private let wakeUp: UnsafeMutablePointer<uv_poll_t>
    private let wakeDescriptor: Int32
    private let tick: UnsafeMutablePointer<uv_timer_t>
    /// Work from other threads, and whether the loop has been signalled for it and not yet
    /// found the queue empty (so one signal serves many `execute` calls).
    private let queue = Mutex<(work: [@Sendable () -> Void], signalled: Bool)>(([], false))
    private var thread: Thread?
    /// The loop thread's id, set when it starts.
    private let loopThread = Mutex<pthread_t?>(nil)
    private let finished = Mutex<Bool>(false)
    /// How the loop thread is scheduled, known once it has started.
    private let startedScheduling = Mutex<LoopScheduling?>(nil)
    /// Called on the loop thread about once a second (timeouts).
    var onTick: (() -> Void)?

    init() {
        // A write to a connection the peer already closed must fail with EPIPE, not kill the process.
        signal(SIGPIPE, SIG_IGN)
        loop = .allocate(capacity: 1)
        uv_loop_init(loop)
        wakeDescriptor = kairos_wake_create()
        precondition(wakeDescriptor >= 0, "eventfd: \(String(cString: strerror(errno)))")
        wakeUp = .allocate(capacity: 1)
        tick = .allocate(capacity: 1)
        uv_poll_init(loop, wakeUp, wakeDescriptor)
        wakeUp.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        uv_poll_start(wakeUp, Int32(UV_READABLE.rawValue)) { handle, _, _ in
            guard let handle, let data = handle.pointee.data else { return }
            Unmanaged<EventLoop>.fromOpaque(data).takeUnretainedValue().drain()
        }
        uv_timer_init(loop, tick)
        tick.pointee.data = Unmanaged.passUnretained(self).toOpaque()
    }

    deinit {
        uv_loop_close(loop)
        close(wakeDescriptor)
        loop.deallocate()
        wakeUp.deallocate()
        tick.deallocate()
    }

    /// Whether the caller runs on the loop thread.
    var isCurrent: Bool {
        guard let id = loopThread.withLock({ $0 }) else { return false }
        return pthread_equal(id, pthread_self()) != 0
    }

    /// Runs `work` on the loop thread, soon. Safe from any thread.
    func execute(_ work: @escaping @Sendable () -> Void) {
        let signal = queue.withLock { queue in
            queue.work.append(work)
            let alreadySignalled = queue.signalled
            queue.signalled = true
            return !alreadySignalled
        }
        if signal { kairos_wake_signal(wakeDescriptor) }
    }

    /// Runs what other threads handed over until the queue is empty; only then may the next
    /// `execute` signal again, so nothing queued is left without a wake-up.
    private func drain() {
        kairos_wake_clear(wakeDescriptor)
        while true {
            let work = queue.withLock { queue -> [@Sendable () -> Void] in
                let taken = queue.work
                queue.work = []
                if taken.isEmpty { queue.signalled = false }
                return taken
            }
            if work.isEmpty { return }
            for item in work { item() }
        }
    }

    /// Starts the loop on a new thread; `setUp` runs on it first (bind listeners there).
    func start(name: String, priority: LoopPriority = .normal, setUp: @escaping @Sendable () -> Void) {
        let thread = Thread { [self] in
            loopThread.withLock { $0 = pthread_self() }
            // The kernel's name, so `top -H` and perf show which thread is the loop.
            kairos_name_this_thread(String(name.prefix(15)))
            var scheduling = LoopScheduling(priority: .normal, refusal: nil)
            if priority == .realtime {
                if kairos_usable_cpus() < 2 {
                    // Alone on one CPU, a real-time loop that spins for a moment on a lock a normal
                    // thread holds (allocators do) would keep that thread off the CPU it needs.
                    scheduling = LoopScheduling(priority: .normal, refusal: "real-time scheduling not used: the process may run on one CPU only")
                } else {
                    let code = kairos_thread_make_realtime(1)
                    scheduling = code == 0 ? LoopScheduling(priority: .realtime, refusal: nil)
                        : LoopScheduling(priority: .normal, refusal: "real-time scheduling refused: \(String(cString: strerror(code)))")
                }
            }
            startedScheduling.withLock { $0 = scheduling }
            setUp()
            uv_timer_start(tick, { timer in
                guard let timer, let data = timer.pointee.data else { return }
                Unmanaged<EventLoop>.fromOpaque(data).takeUnretainedValue().onTick?()
            }, 1000, 1000)
            uv_run(loop, UV_RUN_DEFAULT)
            // Handles closed by `stop` need one more turn to run their close callbacks.
            uv_run(loop, UV_RUN_NOWAIT)
            finished.withLock { $0 = true }
        }
        thread.name = name
        thread.stackSize = 1 << 20
        self.thread = thread
        thread.start()
    }

    /// Closes the loop's own handles and stops it once every other handle is closed.
    func stop() {
        execute { [self] in
            uv_timer_stop(tick)
            uv_close(UnsafeMutableRawPointer(tick).assumingMemoryBound(to: uv_handle_t.self), nil)
            uv_poll_stop(wakeUp)
            uv_close(UnsafeMutableRawPointer(wakeUp).assumingMemoryBound(to: uv_handle_t.self), nil)
        }
    }

    var isFinished: Bool { finished.withLock { $0 } }

    /// How the loop thread is scheduled (nil until it has started).
    var scheduling: LoopScheduling? { startedScheduling.withLock { $0 } }

    /// Waits (polling) until the loop thread has returned.
    func waitUntilFinished(timeout: Duration = .seconds(10)) async {
        let deadline = ContinuousClock.now + timeout
        while !isFinished && ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(5)) }
    }
}

/// How the gateway's loop thread asks to be scheduled.
public enum LoopPriority: String, Sendable, CaseIterable {
    /// SCHED_FIFO at the lowest real-time priority: the loop runs the moment it has work (a
    /// read, a decision, an ack) instead of waiting for a CPU behind threads applying ingest,
    /// whose turns on a busy machine last milliseconds. Threads the loop starts do not inherit
    /// it. Needs CAP_SYS_NICE (root has it) or an RLIMIT_RTPRIO, and at least two CPUs; without,
    /// the loop runs normally.
    case realtime
    /// The normal (fair) scheduler, like every other thread of the process.
    case normal
}

/// How the loop thread runs, and why not at real-time priority when that was asked for.
public struct LoopScheduling: Sendable, Equatable {
    public var priority: LoopPriority
    /// Why real-time scheduling was refused (nil when granted or not asked for).
    public var refusal: String?
}

/// A libuv error code as text (`address already in use`).
func uvError(_ code: Int32) -> String { String(cString: uv_strerror(code)) }
