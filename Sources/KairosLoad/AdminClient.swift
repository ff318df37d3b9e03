import Foundation
import KairosCore

/// A small blocking HTTP client for the admin API: setting up tenants and definitions, and
/// reading the server's counters before and after a run.
public struct AdminClient: Sendable {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public struct Response: Sendable {
        public var status: Int
        public var body: JSONValue?
        public var text: String
    }

    public func request(_ method: String, _ path: String, key: String?, body: JSONValue? = nil) throws -> Response {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw LoadError("socket() failed") }
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else { throw LoadError("'\(host)' is not an IPv4 address") }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw LoadError("cannot connect to \(host):\(port): \(String(cString: strerror(errno)))") }
        var timeout = timeval(tv_sec: 120, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let payload = body?.jsonBytes() ?? []
        var head = "\(method) \(path) HTTP/1.1\r\nhost: \(host)\r\nconnection: close\r\n"
        if let key { head += "authorization: Bearer \(key)\r\n" }
        if !payload.isEmpty || method == "POST" || method == "PUT" {
            head += "content-type: application/json\r\ncontent-length: \(payload.count)\r\n"
        }
        let bytes = Array((head + "\r\n").utf8) + payload
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard written > 0 else { throw LoadError("sending to \(host):\(port) failed") }
            offset += written
        }
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            if let head = HTTPResponseHead.parse(received), head.complete(in: received.count) {
                let body = Array(received[head.headerLength..<head.totalLength])
                let text = String(decoding: body, as: UTF8.self)
                return Response(status: head.status, body: try? JSONValue.parse(Data(body)), text: text)
            }
            let count = chunk.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            guard count > 0 else { throw LoadError("\(method) \(path): the server closed the connection without a full answer") }
            received += chunk[0..<count]
        }
    }

    /// Like `request`, but a status outside 2xx is an error carrying the server's message.
    public func expect(_ method: String, _ path: String, key: String?, body: JSONValue? = nil) throws -> JSONValue {
        let response = try request(method, path, key: key, body: body)
        guard (200..<300).contains(response.status) else {
            throw LoadError("\(method) \(path) answered \(response.status): \(response.text)")
        }
        return response.body ?? .null
    }
}

/// Creating the run's tenants (with the demo definitions) and, for a campaign, the segment and
/// journey the campaign trait enrolls contacts in.
public enum RunSetup {
    public static func createTenants(_ client: AdminClient, operatorKey: String, runId: String, count: Int) throws -> [TenantKeys] {
        try (1...count).map { number in
            let id = "load-\(runId)-\(number)"
            let created = try client.expect("POST", "/v1/admin/tenants", key: operatorKey, body: ["id": .string(id), "demo": true])
            guard let writeKey = created.objectValue?["writeKey"]?.stringValue, let secretKey = created.objectValue?["secretKey"]?.stringValue
            else { throw LoadError("creating tenant \(id) returned no keys: \(created)") }
            return TenantKeys(id: id, writeKey: writeKey, secretKey: secretKey)
        }
    }

    /// The id of the campaign's journey.
    public static func campaignJourney(_ runId: String) -> String { "campaign-\(runId)" }

    public static func defineCampaign(_ client: AdminClient, tenants: [TenantKeys], runId: String) throws {
        let id = campaignJourney(runId)
        for tenant in tenants {
            guard let key = tenant.secretKey else { throw LoadError("a campaign needs each tenant's secret key") }
            _ = try client.expect(
                "PUT", "/v1/admin/segments/\(id)", key: key,
                body: ["name": .string("Campaign \(runId)"), "condition": ["trait": "campaign", "op": "eq", "value": .string(runId)]])
            let journey: JSONValue = [
                "name": .string("Campaign \(runId)"), "trigger": ["segment_entered": .string(id)],
                "templates": ["offer": ["channel": "email", "subject": "A spring offer", "body": "Hello {{traits.email}}"]],
                "nodes": [
                    ["id": "offer", "type": "send", "template": "offer", "next": "wait"],
                    ["id": "wait", "type": "wait", "duration": ["days": 3], "next": "done"],
                    ["id": "done", "type": "exit"],
                ],
            ]
            _ = try client.expect("PUT", "/v1/admin/journeys/\(id)", key: key, body: journey)
            _ = try client.expect("POST", "/v1/admin/journeys/\(id)/publish", key: key)
        }
    }
}
