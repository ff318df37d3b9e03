import CLibUV
import Foundation
import KairosCore

/// What a stream connection asks of the application.
protocol StreamHandler: AnyObject {
    /// The tenant of a write key, or nil.
    func tenant(forWriteKey key: String) -> String?
    func parseJSON(_ bytes: UnsafeRawBufferPointer) -> Result<JSONValue, FastJSON.ParseError>
    /// Decodes the frames (off the loop), makes their events durable and applies them; `done`
    /// runs on the loop thread with the decoded batch and nil on success or the error to report.
    func ingest(tenant: String, frames: [[UInt8]], decoder: StreamFrameDecoder, done: @escaping (StreamFrameDecoder.Batch, String?) -> Void)
}

/// Turns one connection's event frames into events. JSON parsing and validation are most of a
/// frame's cost; done on the loop, they delayed every other connection's requests, so batches
/// are decoded on the worker pool instead.
final class StreamFrameDecoder: @unchecked Sendable {
    // @unchecked: a connection has at most one batch in flight, so one task at a time uses it.
    private let json = FastJSON()
    private let decoder = EventDecoder()
    private let client: String?
    private var lastSequence: Int64 = .min

    struct Batch: Sendable {
        var events: [Event] = []
        /// Error frames to send before the ack, in frame order.
        var replies: [JSONValue] = []
        /// The highest sequence among the frames, valid events or not: acked once the events are durable.
        var lastSequence: Int64?
    }

    init(client: String?) { self.client = client }

    static let notAnObject = "a frame must be a JSON object"

    func decode(_ frames: [[UInt8]], receivedAt: Timestamp) async -> Batch {
        var batch = Batch()
        batch.events.reserveCapacity(frames.count)
        for (index, frame) in frames.enumerated() {
            // Let waiting requests of higher priority run between slices of a big batch.
            if index % 256 == 255 { await Task.yield() }
            decode(frame, receivedAt: receivedAt, into: &batch)
        }
        return batch
    }

    private func decode(_ frame: [UInt8], receivedAt: Timestamp, into batch: inout Batch) {
        // Fields are read straight from the parser's tape; the frame never becomes a dictionary.
        let parsed = frame.withUnsafeBytes { bytes in
            Result { () throws(FastJSON.ParseError) in try json.parseMessage(bytes, envelopeKey: "seq", nestedKey: "message") }
        }
        let frameFields: FastJSON.MessageFields
        switch parsed {
        case .failure(let error):
            return batch.replies.append(["type": "error", "code": "malformed_frame", "message": .string("not valid JSON: \(error.message)")])
        case .success(nil):
            return batch.replies.append(["type": "error", "code": "malformed_frame", "message": .string(Self.notAnObject)])
        case .success(let fields?): frameFields = fields
        }
        guard let number = frameFields.envelopeValue?.numberValue, number == number.rounded(), abs(number) < 9e15 else {
            batch.replies.append(["type": "error", "code": "missing_seq", "message": "every event frame needs an integer \"seq\""])
            return
        }
        let sequence = Int64(number)
        guard sequence > lastSequence else {
            batch.replies.append(
                ["type": "error", "seq": .number(number), "code": "seq_not_increasing",
                 "message": .string("seq must increase on a connection (last was \(lastSequence))")])
            return
        }
        lastSequence = sequence
        batch.lastSequence = sequence
        var message = frameFields.fields
        // Without a messageId, a named client's frames get one from their sequence, so a resend
        // after a reconnect is recognised as a duplicate.
        if message[.messageId] == nil, let client { message[.messageId] = .string("\(client):\(sequence)") }
        switch decoder.decode(message, receivedAt: receivedAt) {
        case .success(let event): batch.events.append(event)
        case .failure(let error):
            batch.replies.append(["type": "error", "seq": .number(number), "code": "invalid_event", "message": .string(error.description)])
        }
    }
}

/// The event stream over TCP (`docs/stream-protocol.md`): newline-delimited JSON; a `hello`
/// frame with the write key, then event frames with client sequence numbers; the server acks
/// the highest sequence whose fate is settled (durable, or rejected with an `error` frame).
final class StreamServer {
    let loop: EventLoop
    let limits: HTTPLimits
    unowned let handler: any StreamHandler
    private var listener: TCPListener?
    private(set) var connections: [ObjectIdentifier: StreamConnection] = [:]
    private(set) var boundPort = 0
    private var accepting = true
    /// Connections holding a few frames back for a fuller batch, and the timer that sends them.
    private var holding: [ObjectIdentifier: StreamConnection] = [:]
    private var holdTimer: UnsafeMutablePointer<uv_timer_t>?

    init(loop: EventLoop, limits: HTTPLimits, handler: any StreamHandler) {
        self.loop = loop
        self.limits = limits
        self.handler = handler
    }

    func listen(host: String, port: Int) throws(GatewayError) {
        let listener = try TCPListener(loop: loop, host: host, port: port, what: "streams") { [unowned self] in accept() }
        boundPort = listener.port
        self.listener = listener
    }

    private func accept() {
        guard let listener else { return }
        let connection = StreamConnection(server: self)
        guard listener.accept(into: connection.tcp) else {
            connection.close()
            return
        }
        connections[ObjectIdentifier(connection)] = connection
        if !accepting || connections.count > limits.maximumConnections {
            connection.fail(code: accepting ? "too_many_connections" : "shutting_down", message: "the server cannot take this stream now; retry later")
        } else {
            connection.startReading()
        }
    }

    func forget(_ connection: StreamConnection) {
        connections.removeValue(forKey: ObjectIdentifier(connection))
        holding.removeValue(forKey: ObjectIdentifier(connection))
    }

    /// Whether a connection may hold frames back: not while shutting down.
    var mayHold: Bool { accepting }

    /// Submits `connection`'s frames within `StreamConnection.maximumHoldMilliseconds`, unless
    /// it fills a batch first (`release`).
    func hold(_ connection: StreamConnection) {
        holding[ObjectIdentifier(connection)] = connection
        let timer: UnsafeMutablePointer<uv_timer_t>
        if let holdTimer {
            timer = holdTimer
        } else {
            timer = .allocate(capacity: 1)
            uv_timer_init(loop.loop, timer)
            timer.pointee.data = Unmanaged.passUnretained(self).toOpaque()
            holdTimer = timer
        }
        guard uv_is_active(UnsafeMutableRawPointer(timer).assumingMemoryBound(to: uv_handle_t.self)) == 0 else { return }
        uv_timer_start(timer, { timer in
            guard let timer, let data = timer.pointee.data else { return }
            Unmanaged<StreamServer>.fromOpaque(data).takeUnretainedValue().submitHeld()
        }, StreamConnection.maximumHoldMilliseconds, 0)
    }

    func release(_ connection: StreamConnection) { holding.removeValue(forKey: ObjectIdentifier(connection)) }

    private func submitHeld() {
        let held = holding.values
        holding = [:]
        for connection in held { connection.submit(force: true) }
    }

    func sweep(now: ContinuousClock.Instant) {
        for connection in connections.values { connection.checkIdle(now: now) }
    }

    /// Stops accepting; open streams finish their batch in flight (and get its ack), then close.
    func shutDown() {
        accepting = false
        listener?.close()
        listener = nil
        submitHeld()
        if let holdTimer {
            uv_timer_stop(holdTimer)
            uv_close(UnsafeMutableRawPointer(holdTimer).assumingMemoryBound(to: uv_handle_t.self)) { $0?.deallocate() }
            self.holdTimer = nil
        }
        for connection in connections.values { connection.closeWhenSettled() }
    }
}

final class StreamConnection {
    let tcp: UnsafeMutablePointer<uv_tcp_t>
    private unowned let server: StreamServer
    private let readBuffer: UnsafeMutableRawBufferPointer
    private var line: [UInt8] = []
    private var tenant: String?
    /// Set by the hello frame.
    private var frameDecoder: StreamFrameDecoder?
    /// Event frames read since the last submission, not yet decoded.
    private var pending: [[UInt8]] = []
    private var inFlight = false
    private var reading = false
    private var closing = false
    private var closeWhenDone = false
    private var lastActivity = ContinuousClock.now

    static let maximumLine = 64 * 1024
    /// Frames buffered while a batch is in flight before reading pauses (flow control).
    static let maximumOpenFrames = 5_000
    /// Frames in one batch: big enough to amortize the journal's commit, small enough that
    /// decoding and applying one does not hold a worker thread for long.
    static let maximumBatchFrames = 1_000
    /// A batch has a fixed cost (a task, the journal's commit, lanes, the ack) of roughly
    /// what four events cost: fewer frames than this wait up to `maximumHoldMilliseconds` for more.
    static let fullBatchFrames = 64
    static let maximumHoldMilliseconds: UInt64 = 1

    init(server: StreamServer) {
        self.server = server
        tcp = .allocate(capacity: 1)
        uv_tcp_init(server.loop.loop, tcp)
        uv_tcp_nodelay(tcp, 1)
        readBuffer = .allocate(byteCount: 64 * 1024, alignment: 16)
        tcp.pointee.data = Unmanaged.passRetained(self).toOpaque()
    }

    deinit { readBuffer.deallocate() }

    private static func from(_ pointer: UnsafeMutableRawPointer?) -> StreamConnection? {
        pointer.map { Unmanaged<StreamConnection>.fromOpaque($0).takeUnretainedValue() }
    }

    func startReading() {
        guard !reading, !closing else { return }
        reading = true
        uv_read_start(
            stream(tcp),
            { handle, _, buffer in
                guard let connection = StreamConnection.from(handle?.pointee.data), let buffer else { return }
                buffer.pointee = uv_buf_init(connection.readBuffer.baseAddress!.assumingMemoryBound(to: CChar.self), 64 * 1024)
            },
            { stream, count, buffer in
                guard let connection = StreamConnection.from(stream?.pointee.data) else { return }
                if count < 0 {
                    connection.closeWhenSettled()
                } else if count > 0, let base = buffer?.pointee.base {
                    connection.received(UnsafeRawBufferPointer(start: base, count: count))
                }
            })
    }

    private func stopReading() {
        guard reading else { return }
        reading = false
        uv_read_stop(stream(tcp))
    }

    // MARK: Frames

    private func received(_ bytes: UnsafeRawBufferPointer) {
        lastActivity = .now
        var start = 0
        while start < bytes.count, let found = memchr(bytes.baseAddress! + start, 10, bytes.count - start) {
            let index = UnsafeRawPointer(found) - bytes.baseAddress!
            line.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[start..<index]))
            start = index + 1
            if !frame() { return }
            line.removeAll(keepingCapacity: true)
        }
        line.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[start...]))
        if line.count > StreamConnection.maximumLine {
            return fail(code: "frame_too_large", message: "a frame is longer than \(StreamConnection.maximumLine) bytes")
        }
        submit()
        if pending.count >= StreamConnection.maximumOpenFrames { stopReading() }
    }

    /// Handles one line; false when the connection is being closed.
    private func frame() -> Bool {
        if line.last == 13 { line.removeLast() }
        if line.allSatisfy({ $0 == 32 || $0 == 9 }) { return true }  // blank lines keep a connection alive
        guard line.count <= StreamConnection.maximumLine else {
            fail(code: "frame_too_large", message: "a frame is longer than \(StreamConnection.maximumLine) bytes")
            return false
        }
        guard tenant == nil else {
            pending.append(line)
            return true
        }
        // The first frame authenticates.
        let parsed = line.withUnsafeBytes { server.handler.parseJSON($0) }
        let object: [String: JSONValue]
        switch parsed {
        case .success(.object(let value)): object = value
        case .success:
            fail(code: "malformed_frame", message: StreamFrameDecoder.notAnObject)
            return false
        case .failure(let error):
            fail(code: "malformed_frame", message: "not valid JSON: \(error.message)")
            return false
        }
        guard object["type"] == "hello", case .string(let key)? = object["writeKey"] else {
            fail(code: "hello_required", message: "the first frame must be {\"type\": \"hello\", \"writeKey\": \"…\"}")
            return false
        }
        guard let tenant = server.handler.tenant(forWriteKey: key) else {
            fail(code: "invalid_write_key", message: "the write key is not valid")
            return false
        }
        self.tenant = tenant
        frameDecoder = StreamFrameDecoder(client: object["client"]?.stringValue)
        send(["type": "welcome", "tenant": .string(tenant)])
        return true
    }

    /// Submits the pending frames as one batch when nothing is in flight (one batch at a time
    /// keeps acks in order). Fewer than `fullBatchFrames` wait up to `maximumHoldMilliseconds`
    /// for more unless `force`d: frames trickling in as the previous ack goes out made batches
    /// of a handful, and the batches' fixed cost a quarter of the stream's.
    func submit(force: Bool = false) {
        guard !inFlight, !pending.isEmpty, let tenant, let frameDecoder, !closing else { return }
        if !force && pending.count < Self.fullBatchFrames && !closeWhenDone && server.mayHold {
            server.hold(self)
            return
        }
        server.release(self)
        let frames: [[UInt8]]
        if pending.count <= StreamConnection.maximumBatchFrames {
            frames = pending
            pending = []
        } else {
            frames = Array(pending.prefix(StreamConnection.maximumBatchFrames))
            pending.removeFirst(StreamConnection.maximumBatchFrames)
        }
        inFlight = true
        server.handler.ingest(tenant: tenant, frames: frames, decoder: frameDecoder) { [self] batch, failure in
            inFlight = false
            for reply in batch.replies { send(reply) }
            if let failure {
                // Nothing of the batch was applied: say so and close; the client resends what is unacked.
                fail(code: "unavailable", message: failure)
                return
            }
            if let last = batch.lastSequence { send(["type": "ack", "seq": .number(Double(last))]) }
            if closeWhenDone && pending.isEmpty {
                closeAfterWrites()
                return
            }
            submit()
            if closeWhenDone && !inFlight {
                closeAfterWrites()
            } else if !reading && !closeWhenDone {
                startReading()
            }
        }
    }

    // MARK: Writing and closing

    private func send(_ frame: JSONValue) {
        var bytes = frame.jsonBytes()
        bytes.append(10)
        write(bytes, closeAfter: false)
    }

    /// Sends an error frame and closes.
    func fail(code: String, message: String) {
        stopReading()
        var bytes = JSONValue.object(["type": "error", "code": .string(code), "message": .string(message)]).jsonBytes()
        bytes.append(10)
        write(bytes, closeAfter: true)
    }

    private func closeAfterWrites() {
        stopReading()
        write([], closeAfter: true)
    }

    func closeWhenSettled() {
        closeWhenDone = true
        stopReading()
        if !inFlight {
            submitRemainingThenClose()
        }
    }

    private func submitRemainingThenClose() {
        if !pending.isEmpty, tenant != nil { submit(force: true) }
        if !inFlight { closeAfterWrites() }
    }

    func checkIdle(now: ContinuousClock.Instant) {
        guard !closing, !inFlight, now - lastActivity > server.limits.idleTimeout * 10 else { return }
        fail(code: "idle", message: "no frame for \(server.limits.idleTimeout * 10); send a blank line to keep a stream open")
    }

    private func write(_ data: [UInt8], closeAfter: Bool) {
        guard !closing else { return }
        let started = writeBytes(data, to: tcp) { [self] written in
            if !written || closeAfter { close() }
        }
        if !started { close() }
    }

    func close() {
        guard !closing else { return }
        closing = true
        reading = false
        server.forget(self)
        closeConnection(tcp)
    }
}
