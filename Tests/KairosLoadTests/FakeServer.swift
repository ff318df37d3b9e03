import Foundation
import Synchronization

/// A deliberately simple HTTP/1.1 server on the loopback address (a thread per connection)
/// whose answers a test scripts: to stall, or to miscount what it received.
final class FakeServer: Sendable {
    struct Answer {
        var status = 200
        var body = #"{"success":true}"#
        /// Held this long before answering.
        var delay: Duration = .zero
    }

    private let listener: Int32
    let port: Int
    private let answer: @Sendable (_ method: String, _ path: String, _ number: Int) -> Answer
    private let requests = Atomic<Int>(0)
    private let stopped = Atomic<Bool>(false)

    var requestCount: Int { requests.load(ordering: .relaxed) }

    init(answer: @escaping @Sendable (_ method: String, _ path: String, _ number: Int) -> Answer) throws {
        self.answer = answer
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.listener = listener
        var one: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(listener, 128) == 0 else { throw POSIXError(.EADDRINUSE) }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
        }
        port = Int(UInt16(bigEndian: address.sin_port))
        Thread { [self] in
            while !stopped.load(ordering: .relaxed) {
                let connection = accept(listener, nil, nil)
                guard connection >= 0 else { return }
                Thread { self.serve(connection) }.start()
            }
        }.start()
    }

    func stop() {
        stopped.store(true, ordering: .relaxed)
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
    }

    private func serve(_ connection: Int32) {
        defer { close(connection) }
        var buffer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while !stopped.load(ordering: .relaxed) {
            // One request: the head, then Content-Length bytes.
            var headEnd: Int?
            while headEnd == nil {
                if buffer.count >= 4 {
                    for index in 3..<buffer.count where buffer[index - 3] == 13 && buffer[index - 2] == 10 && buffer[index - 1] == 13 && buffer[index] == 10 {
                        headEnd = index + 1
                        break
                    }
                }
                if headEnd != nil { break }
                let count = chunk.withUnsafeMutableBytes { recv(connection, $0.baseAddress, $0.count, 0) }
                guard count > 0 else { return }
                buffer += chunk[0..<count]
            }
            let head = String(decoding: buffer[0..<headEnd!], as: UTF8.self)
            let lines = head.components(separatedBy: "\r\n")
            let requestLine = lines[0].split(separator: " ")
            var length = 0
            for line in lines where line.lowercased().hasPrefix("content-length:") {
                length = Int(line.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) ?? 0
            }
            while buffer.count < headEnd! + length {
                let count = chunk.withUnsafeMutableBytes { recv(connection, $0.baseAddress, $0.count, 0) }
                guard count > 0 else { return }
                buffer += chunk[0..<count]
            }
            buffer.removeFirst(headEnd! + length)
            let number = requests.wrappingAdd(1, ordering: .relaxed).newValue
            let path = requestLine.count > 1 ? String(requestLine[1]) : "/"
            let reply = answer(String(requestLine[0]), path, number)
            if reply.delay > .zero { Thread.sleep(forTimeInterval: Double(reply.delay.components.seconds) + Double(reply.delay.components.attoseconds) / 1e18) }
            let body = Array(reply.body.utf8)
            let bytes = Array("HTTP/1.1 \(reply.status) X\r\ncontent-type: application/json\r\ncontent-length: \(body.count)\r\n\r\n".utf8) + body
            var offset = 0
            while offset < bytes.count {
                let written = bytes[offset...].withUnsafeBytes { send(connection, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                guard written > 0 else { return }
                offset += written
            }
        }
    }
}

/// Runs blocking work on its own thread, never on the Swift concurrency pool (the in-process
/// gateway's engine needs the pool while the harness blocks).
func offThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try work() }) }.start()
    }
}
