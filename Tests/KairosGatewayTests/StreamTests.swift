import Foundation
import KairosCore
import KairosEngine
import Testing
@testable import KairosGateway

extension RawClient {
    /// Reads one newline-terminated frame as JSON (nil when the server closed).
    func readFrame() -> JSONValue? {
        var bytes: [UInt8] = []
        var byte: UInt8 = 0
        while true {
            let count = recv(socket, &byte, 1, 0)
            guard count == 1 else { return nil }
            if byte == 10 { break }
            bytes.append(byte)
        }
        return try? JSONValue.parse(Data(bytes))
    }

    func sendFrames(_ frames: [String]) { send(frames.map { $0 + "\n" }.joined()) }
}

/// The event stream over TCP: hello, frames, acks, errors, flow control, resends.
@Suite(.serialized) struct StreamTests {
    func streamPort(_ server: TestServer) throws -> Int { try #require(server.gateway.streamPort) }

    @Test func framesAreAckedOnceDurableAndBadFramesGetErrors() async throws {
        let server = try await TestServer.start { $0.streamPort = 0 }
        defer { Task { await server.stop() } }
        let port = try streamPort(server)
        let key = server.key
        let frames: [JSONValue?] = try await offPool {
            let client = try RawClient(port: port)
            client.sendFrames([#"{"type": "hello", "writeKey": "\#(key)", "client": "pusher"}"#])
            var frames = [client.readFrame()]
            client.sendFrames([
                #"{"seq": 1, "type": "identify", "userId": "s1", "traits": {"plan": "trial"}}"#,
                #"{"seq": 2, "type": "track", "event": "no user"}"#,
                #"{"seq": 3, "message": {"type": "track", "userId": "s1", "event": "Signed Up"}}"#,
            ])
            // The error for seq 2 comes first, then one ack covering 1–3.
            frames.append(client.readFrame())
            frames.append(client.readFrame())
            client.sendFrames([#"{"seq": 2, "type": "track", "userId": "s1", "event": "Late"}"#, "{oops", #"{"type": "track"}"#])
            frames.append(client.readFrame())
            frames.append(client.readFrame())
            frames.append(client.readFrame())
            return frames
        }
        #expect(frames[0]?.objectValue?["type"] == "welcome")
        #expect(frames[1]?.objectValue?["type"] == "error" && frames[1]?.objectValue?["seq"] == 2)
        #expect(frames[1]?.objectValue?["code"] == "invalid_event")
        #expect(frames[2] == ["type": "ack", "seq": 3])
        #expect(frames[3]?.objectValue?["code"] == "seq_not_increasing")
        #expect(frames[4]?.objectValue?["code"] == "malformed_frame")
        #expect(frames[5]?.objectValue?["code"] == "missing_seq")
        let contact = try #require(try await server.engine.contact(tenant: "demo", .userId("s1"), now: t0 + .days(400)))
        #expect(contact.traits["plan"] == "trial")
        #expect(contact.eventCounts.first { $0.event == "track:Signed Up" }?.total == 1)
    }

    @Test func helloIsRequiredAndKeysAreChecked() async throws {
        let server = try await TestServer.start { $0.streamPort = 0 }
        defer { Task { await server.stop() } }
        let port = try streamPort(server)
        let answers: [String?] = try await offPool {
            var answers: [String?] = []
            for first in [#"{"seq": 1, "type": "track", "userId": "x", "event": "E"}"#, #"{"type": "hello", "writeKey": "wk_wrong"}"#, "garbage"] {
                let client = try RawClient(port: port)
                client.sendFrames([first])
                answers.append(client.readFrame()?.objectValue?["code"]?.stringValue)
                answers.append(client.readFrame() == nil ? "closed" : "open")
            }
            return answers
        }
        #expect(answers == ["hello_required", "closed", "invalid_write_key", "closed", "malformed_frame", "closed"])
    }

    @Test func aResendAfterADroppedConnectionLosesAndDuplicatesNothing() async throws {
        let server = try await TestServer.start { $0.streamPort = 0 }
        defer { Task { await server.stop() } }
        let port = try streamPort(server)
        let key = server.key
        let total = 20_000
        @Sendable func frame(_ sequence: Int) -> String {
            #"{"seq": \#(sequence), "type": "track", "userId": "u\#(sequence % 50)", "event": "Clicked", "properties": {"n": \#(sequence)}}"#
        }
        // First connection: send everything as fast as possible (the server pauses reading while
        // its batch is in flight), read a few acks, then drop the connection without warning.
        let acked: Int = try await offPool {
            let client = try RawClient(port: port)
            client.sendFrames([#"{"type": "hello", "writeKey": "\#(key)", "client": "pusher-7"}"#])
            _ = client.readFrame()
            let box = RawClientBox(client)
            let writer = Thread { box.value.sendFrames((1...total).map(frame)) }
            writer.start()
            var acked = 0
            while acked < total / 4, let ack = client.readFrame() {
                acked = Int(ack.objectValue?["seq"]?.numberValue ?? 0)
            }
            shutdown(client.socket, Int32(SHUT_RDWR))
            return acked
        }
        #expect(acked >= total / 4)
        // Reconnect and resend everything after the last ack seen (and a few before it, as a
        // client that lost an ack would): dedupe by the client name and seq keeps each event once.
        let final: Int = try await offPool {
            let client = try RawClient(port: port)
            client.sendFrames([#"{"type": "hello", "writeKey": "\#(key)", "client": "pusher-7"}"#])
            _ = client.readFrame()
            client.sendFrames((max(1, acked - 100)...total).map(frame))
            var last = 0
            while last < total, let ack = client.readFrame() { last = Int(ack.objectValue?["seq"]?.numberValue ?? 0) }
            return last
        }
        #expect(final == total)
        var clicks = 0
        for user in 0..<50 {
            let contact = try await server.engine.contact(tenant: "demo", .userId("u\(user)"), now: t0 + .days(400))
            clicks += contact?.eventCounts.first { $0.event == "track:Clicked" }?.total ?? 0
        }
        #expect(clicks == total)
    }
}
