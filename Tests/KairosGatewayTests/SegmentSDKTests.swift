import Foundation
import KairosCore
import KairosEngine
import Synchronization
import Testing
@testable import KairosGateway

/// A journal in memory that refuses its first `failures` appends, as a full disk would.
final class RefusingJournal: Journal {
    private struct State {
        var records: [JournalRecord] = []
        var next: UInt64 = 1
        var failures: Int
    }
    private let state: Mutex<State>

    init(failures: Int) { state = Mutex(State(failures: failures)) }

    func enqueue(_ records: [JournalRecord]) -> JournalAppend {
        let (sequenced, fail) = state.withLock { state -> ([JournalRecord], Bool) in
            let sequenced = records.map { record in
                var record = record
                record.sequence = state.next
                state.next += 1
                return record
            }
            if state.failures > 0 {
                state.failures -= 1
                return (sequenced, true)
            }
            state.records += sequenced
            return (sequenced, false)
        }
        let append = JournalAppend(records: sequenced)
        append.finish(fail ? .failure(GatewayError("the disk is full")) : .success(()))
        return append
    }

    func read(from sequence: UInt64, _ body: (JournalRecord) throws -> Void) throws {
        for record in state.withLock({ $0.records }) where record.sequence >= sequence { try body(record) }
    }

    var lastSequence: UInt64 { state.withLock { $0.records.last?.sequence ?? 0 } }
    var enqueuedSequence: UInt64 { state.withLock { $0.next - 1 } }
    /// Refusals still to come.
    var refusals: Int { state.withLock { $0.failures } }
    func refuse(_ count: Int) { state.withLock { $0.failures = count } }
}

/// Segment's own Python SDK (`analytics-python` from PyPI), unmodified, pointed at Kairos by
/// changing only its host: gzip on, and its retries after a 503.
@Suite(.serialized) struct SegmentSDKTests {
    /// The virtual environment `tools/install-deps.sh` prepares.
    static var python: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent(".build/python/bin/python3").path
    }

    func run(_ script: String) async throws -> (status: Int32, output: String) {
        try await offPool { try SegmentSDKTests.runBlocking(script) }
    }

    static func runBlocking(_ script: String) throws -> (status: Int32, output: String) {
        try runProcess(SegmentSDKTests.python, ["-c", script])
    }

    @Test func theUnmodifiedSDKWorksByChangingItsHost() async throws {
        #expect(FileManager.default.isExecutableFile(atPath: SegmentSDKTests.python), "run `make deps` to set up .build/python")
        // The first two journal writes fail: the SDK gets 503 and must retry the same batch.
        let journal = RefusingJournal(failures: 0)
        let server = try await TestServer.start(journal: journal) { $0.streamPort = nil }
        defer { Task { await server.stop() } }
        let (engine, key, gateway) = (server.engine, server.key, server.gateway)
        journal.refuse(2)

        let script = """
            import logging, sys
            import analytics
            failures = []
            analytics.write_key = '\(key)'
            analytics.host = 'http://127.0.0.1:\(gateway.httpPort)'
            analytics.gzip = True
            analytics.max_retries = 5
            analytics.on_error = lambda error, items: failures.append(str(error))
            analytics.identify('py-user', {'email': 'py@acme.com', 'plan': 'trial', 'first_name': 'Py'})
            analytics.track('py-user', 'Signed Up', {'plan': 'trial'})
            analytics.page('py-user', 'Docs', 'Pricing', {'path': '/pricing', 'url': 'https://example.com/pricing'})
            analytics.group('py-user', 'acme', {'employees': 1200, 'name': 'Acme'})
            analytics.alias('py-user-previous', 'py-user')
            analytics.flush()
            analytics.shutdown()
            print('failures:', failures)
            sys.exit(1 if failures else 0)
            """
        let (status, output) = try await run(script)
        #expect(status == 0, "\(output)")
        #expect(journal.refusals == 0, "the SDK did not retry after the 503s")
        let contact = try #require(try await engine.contact(tenant: DemoTenant.id, .userId("py-user"), now: t0 + .days(400)))
        #expect(contact.traits["plan"] == "trial")
        #expect(contact.accountId == "acme")
        // Each event applied once, however many times the SDK sent it.
        #expect(contact.eventCounts.first { $0.event == "track:Signed Up" }?.total == 1)
        #expect(contact.eventCounts.first { $0.event.hasPrefix("page:") }?.total == 1)
        #expect(contact.journeys.map(\.journey) == ["trial-onboarding"])
    }

    @Test func aRequestThatCanNeverSucceedIsNotRetried() async throws {
        #expect(FileManager.default.isExecutableFile(atPath: SegmentSDKTests.python), "run `make deps` to set up .build/python")
        let server = try await TestServer.start()
        defer { Task { await server.stop() } }
        // A wrong key: a 401 with code and message, which the SDK reports once instead of retrying.
        let script = """
            import time, analytics
            errors = []
            analytics.write_key = 'wk_not_a_key'
            analytics.host = 'http://127.0.0.1:\(server.port)'
            analytics.on_error = lambda error, items: errors.append(error)
            started = time.time()
            analytics.track('someone', 'Signed Up')
            analytics.flush()
            analytics.shutdown()
            print(len(errors), getattr(errors[0], 'status', None), getattr(errors[0], 'code', None), round(time.time() - started))
            """
        let (status, output) = try await run(script)
        #expect(status == 0, "\(output)")
        // One error, reported with the server's code; no retries (they back off for many seconds).
        let summary = output.split(separator: "\n").last.map(String.init) ?? ""
        let fields = summary.split(separator: " ")
        #expect(fields.prefix(3) == ["1", "401", "invalid_write_key"], "\(output)")
        #expect((Int(fields.last ?? "") ?? 99) < 4, "\(output)")
    }
}


/// A journal that holds every append until released (a slow disk).
final class HeldJournal: Journal {
    private struct State {
        var records: [JournalRecord] = []
        var next: UInt64 = 1
        var held: [JournalAppend] = []
        var holding = false
    }
    private let state = Mutex(State())

    func hold() { state.withLock { $0.holding = true } }

    func release() {
        let held = state.withLock { state -> [JournalAppend] in
            state.holding = false
            defer { state.held = [] }
            return state.held
        }
        for append in held { append.finish(.success(())) }
    }

    var heldCount: Int { state.withLock { $0.held.count } }

    func enqueue(_ records: [JournalRecord]) -> JournalAppend {
        let (append, holding) = state.withLock { state -> (JournalAppend, Bool) in
            let sequenced = records.map { record in
                var record = record
                record.sequence = state.next
                state.next += 1
                return record
            }
            state.records += sequenced
            let append = JournalAppend(records: sequenced)
            if state.holding { state.held.append(append) }
            return (append, state.holding)
        }
        if !holding { append.finish(.success(())) }
        return append
    }

    func read(from sequence: UInt64, _ body: (JournalRecord) throws -> Void) throws {
        for record in state.withLock({ $0.records }) where record.sequence >= sequence { try body(record) }
    }

    var lastSequence: UInt64 { state.withLock { $0.records.last?.sequence ?? 0 } }
    var enqueuedSequence: UInt64 { state.withLock { $0.next - 1 } }
}

@Suite struct BackpressureTests {
    /// While the journal is slow, requests past the in-flight limit are refused at once with
    /// 503 `overloaded` (the SDKs retry those); the ones in flight complete when it catches up.
    @Test func requestsPastTheInFlightLimitAreRefusedNotQueued() async throws {
        let journal = HeldJournal()
        let server = try await TestServer.start(journal: journal) {
            $0.streamPort = nil
            $0.limits.maximumInFlight = 2
        }
        defer { Task { await server.stop() } }
        let (key, gateway) = (server.key, server.gateway)
        journal.hold()
        let port = gateway.httpPort
        let auth = ["authorization": "Basic " + Data((key + ":").utf8).base64EncodedString()]
        let body = Array(#"{"userId": "held", "event": "E"}"#.utf8)
        // Two requests are taken in (their writes wait for the journal) …
        let first = Task { try await exchange(port, request("POST", "/v1/track", headers: auth, body: body)) }
        let second = Task { try await exchange(port, request("POST", "/v1/track", headers: auth, body: body)) }
        #expect(await eventually(timeout: .seconds(30)) { journal.heldCount == 2 })
        // … the third is refused with the reason, and health checks are still answered.
        let third = try #require(try await exchange(port, request("POST", "/v1/track", headers: auth, body: body)))
        #expect(third.status == 503 && third.json?.objectValue?["code"] == "overloaded")
        #expect(try await exchange(port, request("GET", "/healthz"))?.status == 200)
        journal.release()
        #expect(try await first.value?.status == 200)
        #expect(try await second.value?.status == 200)
        // With the backlog gone, requests are taken in again.
        #expect(try await exchange(port, request("POST", "/v1/track", headers: auth, body: body))?.status == 200)
    }
}
