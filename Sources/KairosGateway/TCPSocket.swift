import CLibUV
import Foundation

/// A listening TCP socket on an event loop; `onAccept` runs on the loop for each pending
/// connection. Shared by the HTTP server and the event stream.
final class TCPListener {
    private let tcp: UnsafeMutablePointer<uv_tcp_t>
    private let onAccept: () -> Void
    /// The port actually bound (a requested port 0 picks a free one).
    private(set) var port = 0

    init(loop: EventLoop, host: String, port: Int, what: String, onAccept: @escaping () -> Void) throws(GatewayError) {
        self.onAccept = onAccept
        tcp = .allocate(capacity: 1)
        uv_tcp_init(loop.loop, tcp)
        tcp.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        var address = sockaddr_storage()
        var status = withUnsafeMutablePointer(to: &address) { storage in
            storage.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { uv_ip4_addr(host, Int32(port), $0) }
        }
        if status != 0 {
            status = withUnsafeMutablePointer(to: &address) { storage in
                storage.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { uv_ip6_addr(host, Int32(port), $0) }
            }
        }
        guard status == 0 else {
            uv_close(handle(tcp)) { $0?.deallocate() }
            throw GatewayError("'\(host)' is not an IP address")
        }
        status = withUnsafePointer(to: &address) { storage in
            storage.withMemoryRebound(to: sockaddr.self, capacity: 1) { uv_tcp_bind(tcp, $0, 0) }
        }
        if status == 0 {
            status = uv_listen(stream(tcp), 1024) { server, status in
                guard let server, let data = server.pointee.data, status == 0 else { return }
                Unmanaged<TCPListener>.fromOpaque(data).takeUnretainedValue().onAccept()
            }
        }
        guard status == 0 else {
            uv_close(handle(tcp)) { $0?.deallocate() }
            throw GatewayError("cannot listen for \(what) on \(host):\(port): \(uvError(status))")
        }
        var bound = sockaddr_storage()
        var length = Int32(MemoryLayout<sockaddr_storage>.size)
        withUnsafeMutablePointer(to: &bound) { storage in
            storage.withMemoryRebound(to: sockaddr.self, capacity: 1) { _ = uv_tcp_getsockname(tcp, $0, &length) }
        }
        self.port = withUnsafePointer(to: &bound) { storage in
            storage.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin_port)) }
        }
    }

    /// Accepts one pending connection into `client` (an initialised handle).
    func accept(into client: UnsafeMutablePointer<uv_tcp_t>) -> Bool { uv_accept(stream(tcp), stream(client)) == 0 }

    func close() { uv_close(handle(tcp)) { $0?.deallocate() } }
}

/// One write of bytes to a connection; `completion` runs on the loop once they are on the
/// wire (or failed). Returns false when the write could not even start.
@discardableResult
func writeBytes(_ data: [UInt8], to tcp: UnsafeMutablePointer<uv_tcp_t>, completion: @escaping (Bool) -> Void) -> Bool {
    final class Pending {
        let bytes: UnsafeMutableRawBufferPointer
        let completion: (Bool) -> Void
        init(_ data: [UInt8], completion: @escaping (Bool) -> Void) {
            let bytes = UnsafeMutableRawBufferPointer.allocate(byteCount: max(data.count, 1), alignment: 1)
            data.withUnsafeBytes { bytes.copyMemory(from: $0) }
            self.bytes = bytes
            self.completion = completion
        }
        deinit { bytes.deallocate() }
    }
    // Most answers go out at once (libuv refuses this while earlier writes wait, so order is
    // kept): no copy, no write request. What does not fit is queued below.
    var data = data
    if !data.isEmpty {
        let written = data.withUnsafeBytes { raw -> Int32 in
            var buffer = uv_buf_init(
                UnsafeMutablePointer(mutating: raw.baseAddress!.assumingMemoryBound(to: CChar.self)), UInt32(raw.count))
            return uv_try_write(stream(tcp), &buffer, 1)
        }
        if written == Int32(data.count) {
            completion(true)
            return true
        }
        if written > 0 { data.removeFirst(Int(written)) }
    }
    let pending = Pending(data, completion: completion)
    let request = UnsafeMutablePointer<uv_write_t>.allocate(capacity: 1)
    request.pointee.data = Unmanaged.passRetained(pending).toOpaque()
    var buffer = uv_buf_init(pending.bytes.baseAddress!.assumingMemoryBound(to: CChar.self), UInt32(data.count))
    let status = uv_write(request, stream(tcp), &buffer, 1) { request, status in
        guard let request else { return }
        let pending = Unmanaged<Pending>.fromOpaque(request.pointee.data).takeRetainedValue()
        request.deallocate()
        pending.completion(status == 0)
    }
    guard status == 0 else {
        Unmanaged<Pending>.fromOpaque(request.pointee.data).release()
        request.deallocate()
        return false
    }
    return true
}

/// Closes a connection's handle and releases the object it carries (`handle.data`, retained
/// when the connection was created).
func closeConnection(_ tcp: UnsafeMutablePointer<uv_tcp_t>) {
    uv_close(handle(tcp)) { handle in
        guard let handle else { return }
        if let data = handle.pointee.data { Unmanaged<AnyObject>.fromOpaque(data).release() }
        handle.deallocate()
    }
}

@inline(__always) func stream<T>(_ pointer: UnsafeMutablePointer<T>) -> UnsafeMutablePointer<uv_stream_t> {
    UnsafeMutableRawPointer(pointer).assumingMemoryBound(to: uv_stream_t.self)
}

@inline(__always) func handle<T>(_ pointer: UnsafeMutablePointer<T>) -> UnsafeMutablePointer<uv_handle_t> {
    UnsafeMutableRawPointer(pointer).assumingMemoryBound(to: uv_handle_t.self)
}
