import Foundation
import KairosCore
import KairosEngine
@testable import KairosGateway

let t0 = Timestamp(iso8601: "2026-03-02T09:00:00Z")!

/// A gateway on a free loopback port with the demo tenant and one write key.
struct TestServer {
    let engine: Engine
    let gateway: Gateway
    let key: String
    var port: Int { gateway.httpPort }

    static func start(journal: (any Journal)? = nil, _ configure: (inout GatewayConfiguration) -> Void = { _ in }) async throws
        -> TestServer
    {
        let engine = Engine(journal: journal, decisionSeed: 5)
        try await DemoTenant.install(into: engine, now: t0)
        let key = try await engine.createWriteKey(tenant: DemoTenant.id, now: t0)
        var configuration = GatewayConfiguration()
        configuration.httpPort = 0
        configuration.streamPort = 0
        configure(&configuration)
        let gateway = Gateway(engine: engine, configuration: configuration)
        try await gateway.start()
        gateway.setReady(true)
        return TestServer(engine: engine, gateway: gateway, key: key)
    }

    var basic: String { "Basic " + Data((key + ":").utf8).base64EncodedString() }

    func stop() async { await gateway.shutDown() }
}

struct RawResponse: Sendable {
    var status: Int
    var headers: [String: String]
    var body: [UInt8]
    var text: String { String(decoding: body, as: UTF8.self) }
    var json: JSONValue? { try? JSONValue.parse(Data(body)) }
}

/// A blocking TCP client on the loopback address, speaking raw bytes: for pipelining, partial
/// writes, malformed requests and slow clients.
final class RawClient {
    let socket: Int32
    private var buffer: [UInt8] = []

    init(port: Int) throws {
        socket = Foundation.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else { throw GatewayError("connect failed: \(errno)") }
        // Generous: other suites share the two cores and the concurrency pool while these run.
        var timeout = timeval(tv_sec: 60, tv_usec: 0)
        setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(socket) }

    func send(_ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { Foundation.send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if written <= 0 { return }
            offset += written
        }
    }

    func send(_ text: String) { send(Array(text.utf8)) }

    /// Reads more bytes; false at end of stream (or timeout).
    private func fill() -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let count = chunk.withUnsafeMutableBytes { recv(socket, $0.baseAddress, $0.count, 0) }
        guard count > 0 else { return false }
        buffer += chunk[0..<count]
        return true
    }

    /// Reads one response (Content-Length framed); nil when the server closed first.
    func readResponse() -> RawResponse? {
        while true {
            if let end = headerEnd() {
                let head = String(decoding: buffer[0..<end], as: UTF8.self)
                var lines = head.components(separatedBy: "\r\n")
                let statusLine = lines.removeFirst().split(separator: " ")
                var headers: [String: String] = [:]
                for line in lines where !line.isEmpty {
                    let parts = line.split(separator: ":", maxSplits: 1)
                    headers[parts[0].lowercased()] = parts.count > 1 ? parts[1].trimmingCharacters(in: .whitespaces) : ""
                }
                let length = Int(headers["content-length"] ?? "0") ?? 0
                while buffer.count < end + 4 + length { guard fill() else { return nil } }
                let body = Array(buffer[(end + 4)..<(end + 4 + length)])
                buffer.removeFirst(end + 4 + length)
                return RawResponse(status: Int(statusLine[1]) ?? 0, headers: headers, body: body)
            }
            guard fill() else { return nil }
        }
    }

    /// Whether the server closed the connection (reads until end of stream).
    func isClosedByServer() -> Bool {
        while fill() {}
        return true
    }

    private func headerEnd() -> Int? {
        guard buffer.count >= 4 else { return nil }
        for index in 0...(buffer.count - 4)
        where buffer[index] == 13 && buffer[index + 1] == 10 && buffer[index + 2] == 13 && buffer[index + 3] == 10 {
            return index
        }
        return nil
    }
}

/// An HTTP/1.1 request as bytes.
func request(
    _ method: String, _ path: String, headers: [String: String] = [:], body: [UInt8] = [], chunked: Bool = false
) -> [UInt8] {
    var head = "\(method) \(path) HTTP/1.1\r\nhost: 127.0.0.1\r\n"
    for (name, value) in headers.sorted(by: { $0.key < $1.key }) { head += "\(name): \(value)\r\n" }
    if chunked {
        head += "transfer-encoding: chunked\r\n\r\n"
        var bytes = Array(head.utf8)
        var offset = 0
        while offset < body.count {
            let size = min(7, body.count - offset)
            bytes += Array("\(String(size, radix: 16))\r\n".utf8) + body[offset..<(offset + size)] + Array("\r\n".utf8)
            offset += size
        }
        return bytes + Array("0\r\n\r\n".utf8)
    }
    if !body.isEmpty || method == "POST" { head += "content-length: \(body.count)\r\n" }
    return Array((head + "\r\n").utf8) + body
}

/// Runs blocking work (sockets, child processes) on a Dispatch thread, never on the Swift
/// concurrency pool: with two cores, two blocked pool threads would starve the engine tasks
/// the server needs to answer.
func offPool<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async { continuation.resume(with: Result { try work() }) }
    }
}

/// Runs a program to its end (blocking: call it through `offPool`), with its output and error together.
func runProcess(_ path: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let output = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: output, as: UTF8.self))
}

/// One request on a new connection.
func exchange(_ port: Int, _ bytes: [UInt8]) async throws -> RawResponse? {
    try await offPool {
        let client = try RawClient(port: port)
        client.send(bytes)
        return client.readResponse()
    }
}

func eventually(timeout: Duration = .seconds(5), _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return try await condition()
}

/// Hands a client between Dispatch threads (one at a time).
final class RawClientBox: @unchecked Sendable {
    let value: RawClient
    init(_ value: RawClient) { self.value = value }
}
