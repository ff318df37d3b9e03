import CEpoll
import CScheduling
import Foundation
import KairosEngine
import Synchronization

/// How one run drives the server.
public struct RunConfiguration: Sendable {
    public var host = "127.0.0.1"
    public var port = 8080
    public var streamPort = 8081
    public var scenario: Scenario
    public var tenants: [TenantKeys]
    /// Prefix of every messageId and stream client name of the run (keeps runs apart for dedupe).
    public var runId: String
    /// Client threads (each runs its own event loop over a share of the connections).
    public var threads = 2
    /// Stop sending after this many requests (and frames) in all.
    public var maxRequests: Int?
    /// How long to wait for answers still outstanding when the run ends.
    public var drainSeconds = 5.0
    /// Open-loop runs ask for real-time priority for the client's threads, so that their own
    /// waits for a CPU on a busy machine are not counted as the server's latency. Closed-loop
    /// runs measure throughput and never ask.
    public var realtimeClient = true

    public init(scenario: Scenario, tenants: [TenantKeys], runId: String) {
        self.scenario = scenario
        self.tenants = tenants
        self.runId = runId
    }

    /// Open loop: requests are scheduled by time at `scenario.rate`.
    var openLoop: Bool { (scenario.rate ?? 0) > 0 }
}

/// Live figures for the progress line.
public struct RunProgress: Sendable {
    public var elapsedSeconds: Double
    public var completed: Int
    public var errors: Int
    public var inFlight: Int
}

/// Everything a run measured.
public struct RunMeasurements: Sendable {
    var recorder: Recorder
    public var elapsedSeconds: Double
    /// When the last campaign batch was acknowledged (seconds from the start), if there was a campaign.
    public var campaignSentSeconds: Double?
    /// How the client's threads were scheduled, as a line for the report.
    public var clientScheduling: String
    public var acknowledgedEvents: [Int] { recorder.acknowledgedEvents }
    public var inDoubtEvents: [Int] { recorder.inDoubtEvents }
}

/// Drives a server over real sockets with one epoll loop per thread. In open-loop mode each
/// connection sends at its share of the rate and measures every request from the moment it
/// was due, not from when it went out: a stalled server shows up as latency for every request
/// that had to wait (the correction for coordinated omission that wrk2 makes).
public final class LoadRunner: Sendable {
    let configuration: RunConfiguration
    private let sent = Atomic<Int>(0)
    private let completed = Atomic<Int>(0)
    private let failed = Atomic<Int>(0)
    private let stopRequested = Atomic<Bool>(false)
    private let startedAt = Atomic<UInt64>(0)
    /// When the last campaign batch was acknowledged (monotonic ns; 0: none yet).
    fileprivate let campaignFinished = Atomic<UInt64>(0)

    public init(configuration: RunConfiguration) { self.configuration = configuration }

    /// Ends the run early (e.g. on Ctrl-C); answers in flight are still awaited.
    public func stop() { stopRequested.store(true, ordering: .relaxed) }

    /// Runs to the end of the duration (or the request budget), calling `progress` about once a second.
    public func run(progress: (@Sendable (RunProgress) -> Void)? = nil) throws -> RunMeasurements {
        let scenario = configuration.scenario
        let start = kairos_monotonic_ns()
        startedAt.store(start, ordering: .relaxed)
        let end = start + UInt64(scenario.durationSeconds * 1e9)
        let popularity = ZipfDistribution(count: scenario.contactsPerTenant, exponent: scenario.zipfExponent)
        let campaign = scenario.campaignContacts.map { CampaignCursor(contactsPerTenant: $0, tenants: configuration.tenants.count, batchSize: scenario.batchSize) }
        let threads = max(1, min(configuration.threads, scenario.connections + scenario.streamConnections + (campaign == nil ? 0 : 4)))
        var plans: [[ConnectionPlan]] = Array(repeating: [], count: threads)
        // With both kinds, stream connections get threads of their own: writing a burst of
        // frames must not delay reading (and timing) an HTTP answer.
        let streamThreads = scenario.connections > 0 && scenario.streamConnections > 0 && threads > 1 ? max(1, threads / 2) : threads
        let httpThreads = streamThreads == threads ? threads : threads - streamThreads
        let httpInterval = configuration.openLoop ? UInt64(Double(scenario.connections) / scenario.rate! * 1e9) : 0
        for connection in 0..<scenario.connections {
            plans[connection % httpThreads].append(ConnectionPlan(kind: .http, number: connection, interval: httpInterval))
        }
        let streamInterval = (scenario.streamRate ?? 0) > 0 ? UInt64(Double(scenario.streamConnections) / scenario.streamRate! * 1e9) : 0
        for connection in 0..<scenario.streamConnections {
            plans[threads - 1 - connection % streamThreads].append(ConnectionPlan(kind: .stream, number: connection, interval: streamInterval))
        }
        var index = scenario.connections + scenario.streamConnections
        if campaign != nil {
            for connection in 0..<4 {
                plans[index % threads].append(ConnectionPlan(kind: .campaign, number: 10_000 + connection, interval: 0))
                index += 1
            }
        }
        let results = Mutex<[Result<Recorder, LoadError>]>([])
        let refusal = Mutex<String?>(nil)
        // Not on one CPU: a real-time thread spinning for a moment on a lock held by a normal
        // one (allocators do) would keep that thread off the only CPU.
        let realtime = configuration.realtimeClient && configuration.openLoop && kairos_usable_cpus() >= 2
        let group = DispatchGroup()
        for plan in plans where !plan.isEmpty {
            group.enter()
            let thread = Thread { [self] in
                if realtime {
                    let code = kairos_thread_make_realtime(1)
                    if code != 0 { refusal.withLock { $0 = String(cString: strerror(code)) } }
                }
                let worker = Worker(
                    runner: self, plans: plan, popularity: popularity, start: start, end: end, campaign: campaign)
                let result = Result { () throws(LoadError) in try worker.run() }
                results.withLock { $0.append(result) }
                group.leave()
            }
            thread.stackSize = 1 << 20
            thread.start()
        }
        while group.wait(timeout: .now() + 1) == .timedOut {
            let now = kairos_monotonic_ns()
            progress?(
                RunProgress(
                    elapsedSeconds: Double(now - start) / 1e9, completed: completed.load(ordering: .relaxed),
                    errors: failed.load(ordering: .relaxed),
                    inFlight: sent.load(ordering: .relaxed) - completed.load(ordering: .relaxed)))
        }
        var merged = Recorder(tenants: configuration.tenants.count)
        for result in results.withLock({ $0 }) {
            switch result {
            case .success(let recorder): merged.merge(recorder)
            case .failure(let error): throw error
            }
        }
        let finished = campaignFinished.load(ordering: .relaxed)
        let scheduling =
            switch (realtime, refusal.withLock { $0 }) {
            case (false, _): "client threads at normal priority"
            case (true, nil): "client threads at real-time priority (SCHED_FIFO 1)"
            case (true, let reason?):
                "client threads at normal priority: real-time refused (\(reason)), so their own waits for a CPU count as latency"
            }
        return RunMeasurements(
            recorder: merged, elapsedSeconds: Double(kairos_monotonic_ns() - start) / 1e9,
            campaignSentSeconds: finished > 0 ? Double(finished - start) / 1e9 : nil, clientScheduling: scheduling)
    }

    /// Seconds since the run started.
    public var secondsSinceStart: Double { Double(kairos_monotonic_ns() - startedAt.load(ordering: .relaxed)) / 1e9 }

    /// Takes one request from the budget; false once it is spent or the run was stopped.
    fileprivate func claim() -> Bool {
        guard !stopRequested.load(ordering: .relaxed) else { return false }
        let number = sent.wrappingAdd(1, ordering: .relaxed).newValue
        if let limit = configuration.maxRequests, number > limit {
            sent.wrappingSubtract(1, ordering: .relaxed)
            return false
        }
        return true
    }

    fileprivate func finished(ok: Bool) {
        completed.wrappingAdd(1, ordering: .relaxed)
        if !ok { failed.wrappingAdd(1, ordering: .relaxed) }
    }

    fileprivate var stopping: Bool { stopRequested.load(ordering: .relaxed) }
}

public struct LoadError: Error, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

struct ConnectionPlan {
    enum Kind { case http, stream, campaign }
    var kind: Kind
    var number: Int
    /// Nanoseconds between sends (0: closed loop).
    var interval: UInt64
}

/// One connection's state on a worker's loop.
private final class Connection {
    let plan: ConnectionPlan
    var socket: Int32 = -1
    var generator: TrafficGenerator
    var outbound: [UInt8] = []
    var outboundOffset = 0
    var inbound: [UInt8] = []
    var wantsWrite = false
    /// HTTP: the request on the wire and when it was due.
    var inFlight: (operation: Operation, due: UInt64, events: Int, tenant: Int)?
    /// When the next request is due (open loop), or 0 (closed loop: at once).
    var nextDue: UInt64
    var done = false
    var reconnects = 0
    // Stream state.
    var welcomed = false
    var nextSeq: UInt64 = 1
    var pending: [(seq: UInt64, due: UInt64)] = []
    var pendingHead = 0
    var rejected: Set<UInt64> = []
    let tenant: Int

    init(plan: ConnectionPlan, generator: TrafficGenerator, firstDue: UInt64, tenant: Int) {
        self.plan = plan
        self.generator = generator
        self.nextDue = firstDue
        self.tenant = tenant
    }

    var pendingCount: Int { pending.count - pendingHead }
}

private final class Worker {
    let runner: LoadRunner
    let configuration: RunConfiguration
    let start: UInt64
    let end: UInt64
    let campaign: CampaignCursor?
    var connections: [Connection] = []
    var recorder: Recorder
    /// One buffer for every receive (allocating and zeroing 64 KB per call cost more than the call).
    private var receiveBuffer = [UInt8](repeating: 0, count: 65536)
    let epoll: Int32
    let timer: Int32
    static let timerTag = UInt64.max

    init(
        runner: LoadRunner, plans: [ConnectionPlan], popularity: ZipfDistribution, start: UInt64, end: UInt64, campaign: CampaignCursor?
    ) {
        self.runner = runner
        self.configuration = runner.configuration
        self.start = start
        self.end = end
        self.campaign = campaign
        self.recorder = Recorder(tenants: configuration.tenants.count)
        self.epoll = kairos_epoll_create()
        self.timer = kairos_timerfd_create()
        for plan in plans {
            let generator = TrafficGenerator(
                scenario: configuration.scenario, tenants: configuration.tenants, runId: configuration.runId,
                connection: plan.kind == .stream ? 5_000 + plan.number : plan.number, host: configuration.host, popularity: popularity)
            // Spread the connections' first sends over one interval so they do not all fire together.
            let phase = plan.interval > 0 ? UInt64(plan.number) * plan.interval / UInt64(max(plans.count, 1)) % plan.interval : 0
            connections.append(Connection(plan: plan, generator: generator, firstDue: start + phase, tenant: plan.number % configuration.tenants.count))
        }
    }

    deinit {
        for connection in connections where connection.socket >= 0 { close(connection.socket) }
        close(epoll)
        close(timer)
    }

    /// How late a stream frame may be sent so that frames due close together share a send.
    static let streamSlack: UInt64 = 500_000

    func second(_ time: UInt64) -> Int { time >= start ? Int((time - start) / 1_000_000_000) : 0 }

    func run() throws(LoadError) -> Recorder {
        guard epoll >= 0, timer >= 0 else { throw LoadError("cannot create an epoll loop: \(String(cString: strerror(errno)))") }
        _ = kairos_epoll_set(epoll, timer, 1, Worker.timerTag, 0)
        for (index, connection) in connections.enumerated() { try open(connection, index: index) }
        var tags = [UInt64](repeating: 0, count: 256)
        var events = [UInt32](repeating: 0, count: 256)
        var armed: UInt64 = 0
        let drainDeadline = end + UInt64(configuration.drainSeconds * 1e9)
        while true {
            let now = kairos_monotonic_ns()
            var nextWake = UInt64.max
            var busy = false
            for (index, connection) in connections.enumerated() where !connection.done {
                schedule(connection, index: index, now: now)
                if connection.inFlight != nil || connection.pendingCount > 0 { busy = true }
                if !connection.done, connection.plan.interval > 0, connection.inFlight == nil, connection.nextDue < end {
                    // Stream frames due within half a millisecond go out together (their latency still
                    // counts from each frame's due time): a wake-up and a send per frame cost the
                    // client as much CPU as the server spends on it.
                    let slack: UInt64 = connection.plan.kind == .stream ? Worker.streamSlack : 0
                    nextWake = min(nextWake, connection.nextDue + slack)
                }
            }
            let sending = now < end && !runner.stopping && connections.contains { !$0.done }
            if !sending && !busy { break }
            if now >= drainDeadline {
                abandonOutstanding(now: now)
                break
            }
            if !sending { nextWake = min(nextWake, drainDeadline) } else { nextWake = min(nextWake, end) }
            if nextWake != armed, nextWake != .max {
                _ = kairos_timerfd_arm(timer, nextWake)
                armed = nextWake
            }
            let count = tags.withUnsafeMutableBufferPointer { tagBuffer in
                events.withUnsafeMutableBufferPointer { eventBuffer in
                    kairos_epoll_wait(epoll, tagBuffer.baseAddress, eventBuffer.baseAddress, 256, 1000)
                }
            }
            if count < 0 {
                if errno == EINTR { continue }
                throw LoadError("epoll_wait failed: \(String(cString: strerror(errno)))")
            }
            for slot in 0..<Int(count) {
                if tags[slot] == Worker.timerTag {
                    var expirations: UInt64 = 0
                    _ = read(timer, &expirations, 8)
                    armed = 0
                    continue
                }
                let index = Int(tags[slot])
                let connection = connections[index]
                if events[slot] & 4 != 0 { flush(connection, index: index) }
                if events[slot] & (1 | 8 | 16) != 0 { receive(connection, index: index) }
            }
        }
        return recorder
    }

    // MARK: Connecting

    private func open(_ connection: Connection, index: Int) throws(LoadError) {
        let port = connection.plan.kind == .stream ? configuration.streamPort : configuration.port
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw LoadError("socket() failed: \(String(cString: strerror(errno)))") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        guard inet_pton(AF_INET, configuration.host, &address.sin_addr) == 1 else {
            close(descriptor)
            throw LoadError("'\(configuration.host)' is not an IPv4 address")
        }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else {
            let reason = String(cString: strerror(errno))
            close(descriptor)
            throw LoadError("cannot connect to \(configuration.host):\(port): \(reason)")
        }
        var one: Int32 = 1
        setsockopt(descriptor, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | O_NONBLOCK)
        connection.socket = descriptor
        connection.inbound.removeAll(keepingCapacity: true)
        connection.wantsWrite = false
        _ = kairos_epoll_set(epoll, descriptor, 1, UInt64(index), 0)
        if connection.plan.kind == .stream {
            connection.welcomed = false
            let tenant = configuration.tenants[connection.tenant]
            let hello = #"{"type":"hello","writeKey":"\#(tenant.writeKey)","client":"\#(configuration.runId)-s\#(connection.plan.number)-\#(connection.reconnects)"}"# + "\n"
            write(connection, index: index, Array(hello.utf8))
        }
    }

    /// After the server closed a connection: count what was outstanding, and open it again.
    private func reopen(_ connection: Connection, index: Int, reason: String, now: UInt64) {
        _ = kairos_epoll_remove(epoll, connection.socket)
        close(connection.socket)
        connection.socket = -1
        outstandingLost(connection, kind: reason, now: now)
        connection.reconnects += 1
        guard connection.reconnects <= 100, now < end else {
            connection.done = true
            return
        }
        do { try open(connection, index: index) } catch {
            recorder.failure(.get, kind: "connect", second: second(now))
            connection.done = true
        }
    }

    private func outstandingLost(_ connection: Connection, kind: String, now: UInt64) {
        if let inFlight = connection.inFlight {
            recorder.failure(inFlight.operation, kind: kind, second: second(now))
            recorder.inDoubtEvents[inFlight.tenant] += inFlight.events
            runner.finished(ok: false)
            connection.inFlight = nil
        }
        if connection.pendingCount > 0 {
            for _ in connection.pendingHead..<connection.pending.count {
                recorder.failure(.stream, kind: kind, second: second(now))
                runner.finished(ok: false)
            }
            recorder.inDoubtEvents[connection.tenant] += connection.pendingCount
            connection.pending.removeAll()
            connection.pendingHead = 0
        }
        connection.outbound.removeAll()
        connection.outboundOffset = 0
    }

    private func abandonOutstanding(now: UInt64) {
        for connection in connections { outstandingLost(connection, kind: "timeout", now: now) }
    }

    // MARK: Sending

    private func schedule(_ connection: Connection, index: Int, now: UInt64) {
        guard connection.socket >= 0 else { return }
        switch connection.plan.kind {
        case .http:
            guard connection.inFlight == nil else { return }
            let due = connection.plan.interval > 0 ? connection.nextDue : now
            guard due <= now else { return }
            guard due < end, runner.claim() else {
                connection.done = true
                return
            }
            let request = connection.generator.nextRequest()
            connection.inFlight = (request.operation, due, request.events, request.tenant)
            connection.nextDue = due + connection.plan.interval
            write(connection, index: index, request.bytes)
        case .campaign:
            guard connection.inFlight == nil else { return }
            guard let campaign, let batch = campaign.claim() else {
                connection.done = true
                return
            }
            let request = connection.generator.campaignRequest(tenant: batch.tenant, contacts: batch.contacts)
            connection.inFlight = (request.operation, now, request.events, request.tenant)
            _ = runner.claim()
            write(connection, index: index, request.bytes)
        case .stream:
            guard connection.welcomed else { return }
            // Frames go straight into the connection's outbound buffer, which keeps its capacity.
            let before = connection.outbound.count
            var count = 0
            if connection.plan.interval > 0 {
                while connection.nextDue <= now, connection.nextDue < end, count < 1000 {
                    guard runner.claim() else {
                        connection.done = connection.pendingCount == 0
                        break
                    }
                    connection.generator.appendFrame(seq: connection.nextSeq, tenant: connection.tenant, to: &connection.outbound)
                    connection.pending.append((connection.nextSeq, connection.nextDue))
                    connection.nextSeq += 1
                    connection.nextDue += connection.plan.interval
                    count += 1
                }
            } else if now < end {
                let room = configuration.scenario.streamWindow - connection.pendingCount
                while count < min(room, 200) {
                    guard runner.claim() else { break }
                    connection.generator.appendFrame(seq: connection.nextSeq, tenant: connection.tenant, to: &connection.outbound)
                    connection.pending.append((connection.nextSeq, now))
                    connection.nextSeq += 1
                    count += 1
                }
            }
            if connection.outbound.count > before { flush(connection, index: index) }
        }
    }

    private func write(_ connection: Connection, index: Int, _ bytes: [UInt8]) {
        if connection.outboundOffset < connection.outbound.count {
            connection.outbound += bytes
        } else {
            connection.outbound = bytes
            connection.outboundOffset = 0
        }
        flush(connection, index: index)
    }

    private func flush(_ connection: Connection, index: Int) {
        while connection.outboundOffset < connection.outbound.count {
            let written = connection.outbound[connection.outboundOffset...].withUnsafeBytes {
                send(connection.socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            if written > 0 {
                connection.outboundOffset += written
                continue
            }
            if written < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { break }
            if written < 0 && errno == EINTR { continue }
            return reopen(connection, index: index, reason: "send_failed", now: kairos_monotonic_ns())
        }
        let pendingWrite = connection.outboundOffset < connection.outbound.count
        if !pendingWrite {
            connection.outbound.removeAll(keepingCapacity: true)
            connection.outboundOffset = 0
        }
        if pendingWrite != connection.wantsWrite {
            connection.wantsWrite = pendingWrite
            _ = kairos_epoll_set(epoll, connection.socket, pendingWrite ? 5 : 1, UInt64(index), 1)
        }
    }

    // MARK: Receiving

    private func receive(_ connection: Connection, index: Int) {
        while connection.socket >= 0 {
            let count = receiveBuffer.withUnsafeMutableBytes { recv(connection.socket, $0.baseAddress, $0.count, 0) }
            if count > 0 {
                connection.inbound += receiveBuffer[0..<count]
                if count < receiveBuffer.count { break }
                continue
            }
            if count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { break }
            if count < 0 && errno == EINTR { continue }
            parse(connection, index: index)
            return reopen(connection, index: index, reason: "closed_by_server", now: kairos_monotonic_ns())
        }
        parse(connection, index: index)
    }

    private func parse(_ connection: Connection, index: Int) {
        if connection.plan.kind == .stream { parseFrames(connection) } else { parseResponses(connection) }
    }

    private func parseResponses(_ connection: Connection) {
        while let response = HTTPResponseHead.parse(connection.inbound) {
            guard response.complete(in: connection.inbound.count) else { return }
            connection.inbound.removeFirst(response.totalLength)
            guard let inFlight = connection.inFlight else { continue }
            connection.inFlight = nil
            let now = kairos_monotonic_ns()
            if (200..<300).contains(response.status) {
                recorder.success(inFlight.operation, latencyNanoseconds: now &- inFlight.due, second: second(now))
                recorder.acknowledgedEvents[inFlight.tenant] += inFlight.events
                runner.finished(ok: true)
            } else {
                recorder.failure(inFlight.operation, kind: "http_\(response.status)", second: second(now))
                runner.finished(ok: false)
            }
            if inFlight.operation == .campaign, campaign != nil {
                runner.campaignFinished.store(now, ordering: .relaxed)
            }
        }
    }

    private func parseFrames(_ connection: Connection) {
        var lineStart = 0
        let bytes = connection.inbound
        let now = kairos_monotonic_ns()
        for position in bytes.indices where bytes[position] == 10 {
            let line = bytes[lineStart..<position]
            lineStart = position + 1
            let text = String(decoding: line, as: UTF8.self)
            if text.contains(#""type":"ack""#), let seq = StreamFrame.seq(in: text) {
                while connection.pendingHead < connection.pending.count, connection.pending[connection.pendingHead].seq <= seq {
                    let frame = connection.pending[connection.pendingHead]
                    connection.pendingHead += 1
                    if connection.rejected.remove(frame.seq) != nil {
                        runner.finished(ok: false)
                        continue
                    }
                    recorder.success(.stream, latencyNanoseconds: now &- frame.due, second: second(now))
                    recorder.acknowledgedEvents[connection.tenant] += 1
                    runner.finished(ok: true)
                }
                if connection.pendingHead > 4096, connection.pendingHead * 2 > connection.pending.count {
                    connection.pending.removeFirst(connection.pendingHead)
                    connection.pendingHead = 0
                }
            } else if text.contains(#""type":"welcome""#) {
                connection.welcomed = true
            } else if text.contains(#""type":"error""#) {
                let code = StreamFrame.code(in: text) ?? "error"
                if let seq = StreamFrame.seq(in: text) {
                    connection.rejected.insert(seq)
                    recorder.failure(.stream, kind: "stream_" + code, second: second(now))
                } else {
                    recorder.failure(.stream, kind: "stream_" + code, second: second(now))
                }
            }
        }
        if lineStart > 0 { connection.inbound.removeFirst(lineStart) }
    }
}

/// Just enough of an HTTP/1.1 response head to frame it: status and Content-Length.
struct HTTPResponseHead {
    var status: Int
    var headerLength: Int
    var contentLength: Int

    var totalLength: Int { headerLength + contentLength }
    func complete(in available: Int) -> Bool { available >= totalLength }

    static func parse(_ bytes: [UInt8]) -> HTTPResponseHead? {
        guard bytes.count >= 16 else { return nil }
        var end = -1
        var index = 3
        while index < bytes.count {
            if bytes[index] == 10 && bytes[index - 1] == 13 && bytes[index - 2] == 10 && bytes[index - 3] == 13 {
                end = index + 1
                break
            }
            index += 1
        }
        guard end > 0 else { return nil }
        func digit(_ offset: Int) -> Int { Int(bytes[offset]) - 48 }
        let status = digit(9) * 100 + digit(10) * 10 + digit(11)
        var length = 0
        // Find "content-length:" case-insensitively at the start of a header line.
        let name: [UInt8] = Array("content-length:".utf8)
        var line = 0
        while line < end {
            var next = line
            while next < end && bytes[next] != 10 { next += 1 }
            if next - line > name.count {
                var matches = true
                for offset in 0..<name.count where bytes[line + offset] | 0x20 != name[offset] | 0x20 {
                    matches = false
                    break
                }
                if matches {
                    var position = line + name.count
                    while position < next && (bytes[position] == 32 || bytes[position] == 9) { position += 1 }
                    while position < next, bytes[position] >= 48, bytes[position] <= 57 {
                        length = length * 10 + Int(bytes[position]) - 48
                        position += 1
                    }
                }
            }
            line = next + 1
        }
        return HTTPResponseHead(status: status, headerLength: end, contentLength: length)
    }
}

/// Reads fields of the server's stream frames without a JSON parser (they are small and flat).
enum StreamFrame {
    static func seq(in text: String) -> UInt64? {
        guard let range = text.range(of: #""seq":"#) else { return nil }
        return UInt64(text[range.upperBound...].prefix { $0.isNumber })
    }

    static func code(in text: String) -> String? {
        guard let range = text.range(of: #""code":""#) else { return nil }
        return String(text[range.upperBound...].prefix { $0 != "\"" })
    }
}
