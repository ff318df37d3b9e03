import Foundation
import KairosCore

/// A parsed HTTP/1.1 request (body already de-chunked; not yet decompressed).
struct HTTPRequest: Sendable {
    var method: String
    /// The path without the query (`/v1/track`).
    var path: String
    var query: String?
    /// Header names lowercased, in arrival order.
    var headers: [(name: String, value: String)]
    var body: [UInt8]
    var keepAlive: Bool

    func header(_ name: String) -> String? { headers.first { $0.name == name }?.value }

    /// Query parameters, percent-decoded (`+` as space); the last of a repeated name wins.
    var queryItems: [String: String] {
        guard let query, !query.isEmpty else { return [:] }
        var items: [String: String] = [:]
        for (name, value) in QueryString.pairs(query) { items[name] = value }
        return items
    }
}

struct HTTPResponse: Sendable {
    var status: Int
    var headers: [(name: String, value: String)] = []
    var body: [UInt8] = []
    /// Close the connection after this response (errors that leave the stream unusable).
    var close = false

    init(status: Int, headers: [(name: String, value: String)] = [], body: [UInt8] = [], close: Bool = false) {
        self.status = status
        self.headers = headers
        self.body = body
        self.close = close
    }

    static func json(_ status: Int, _ value: JSONValue) -> HTTPResponse { jsonBytes(status, value.jsonBytes()) }

    static func jsonBytes(_ status: Int, _ body: [UInt8]) -> HTTPResponse {
        HTTPResponse(status: status, headers: [("content-type", "application/json")], body: body)
    }

    /// The one error shape (DESIGN §9): `{"code": …, "message": …, "details": …}`.
    static func error(_ status: Int, _ code: String, _ message: String, details: JSONValue? = nil, close: Bool = false)
        -> HTTPResponse
    {
        var object: [String: JSONValue] = ["code": .string(code), "message": .string(message)]
        if let details { object["details"] = details }
        var response = json(status, .object(object))
        response.close = close
        return response
    }

    static let reasons: [Int: String] = [
        100: "Continue", 200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
        404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout", 411: "Length Required",
        413: "Payload Too Large", 415: "Unsupported Media Type", 409: "Conflict", 417: "Expectation Failed", 422: "Unprocessable Content",
        429: "Too Many Requests", 431: "Request Header Fields Too Large", 500: "Internal Server Error", 501: "Not Implemented",
        503: "Service Unavailable",
    ]

    /// The response as bytes on the wire.
    func serialized(keepAlive: Bool, extraHeaders: [(name: String, value: String)]) -> [UInt8] {
        // Written as bytes into one buffer: interpolating the head cost more than the body copy.
        var bytes: [UInt8] = []
        bytes.reserveCapacity(128 + 64 * (headers.count + extraHeaders.count) + body.count)
        bytes += "HTTP/1.1 ".utf8
        bytes += String(status).utf8
        bytes.append(32)
        bytes += (HTTPResponse.reasons[status] ?? "Status").utf8
        bytes += "\r\n".utf8
        for (name, value) in headers {
            bytes += name.utf8
            bytes += ": ".utf8
            bytes += value.utf8
            bytes += "\r\n".utf8
        }
        for (name, value) in extraHeaders {
            bytes += name.utf8
            bytes += ": ".utf8
            bytes += value.utf8
            bytes += "\r\n".utf8
        }
        bytes += "content-length: ".utf8
        bytes += String(body.count).utf8
        bytes += keepAlive && !close ? "\r\nconnection: keep-alive\r\n\r\n".utf8 : "\r\nconnection: close\r\n\r\n".utf8
        bytes += body
        return bytes
    }
}
