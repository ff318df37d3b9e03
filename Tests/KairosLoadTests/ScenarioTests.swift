import Foundation
import Testing

@testable import KairosLoad

@Suite("Load scenarios")
struct ScenarioTests {
    @Test("the built-in scenarios are valid and survive a JSON round trip")
    func builtIns() throws {
        #expect(Set(Scenario.builtIn.keys).isSuperset(of: ["site-traffic", "event-firehose", "campaign-burst"]))
        for scenario in Scenario.builtIn.values {
            try scenario.validate()
            let data = try JSONEncoder().encode(scenario)
            #expect(try Scenario.parse(data) == scenario)
        }
        #expect(Scenario.builtIn["campaign-burst"]?.campaignContacts == 100_000)
        #expect(Scenario.builtIn["event-firehose"]!.streamConnections > 0)
    }

    @Test("a scenario file is parsed with defaults for what it leaves out")
    func parsesAFile() throws {
        let scenario = try Scenario.parse(
            Data(#"{"name": "mine", "tenants": 3, "mix": {"page": 2, "decide": 1}, "rate": 150, "durationSeconds": 2}"#.utf8))
        #expect(scenario.tenants == 3)
        #expect(scenario.mix == [.page: 2, .decide: 1])
        #expect(scenario.rate == 150)
        #expect(scenario.connections == Scenario(name: "x").connections)
    }

    @Test(
        "bad scenario files are refused with a pointed message",
        arguments: [
            (#"{"name": "x", "tenantz": 2}"#, "unknown field 'tenantz'"),
            (#"{"name": "x", "mix": {"pgae": 1}}"#, "unknown operation 'pgae'"),
            (#"{"name": "x", "rate": -5}"#, "rates must be ≥ 0"),
            (#"{"name": "x", "tenants": "two"}"#, "tenants"),
            (#"{"tenants": 2}"#, "'name' is required"),
            (#"{"name": "x", "mix": {"stream": 1}}"#, "streamConnections"),
            (#"{"name": "x", "campaignContacts": 50, "contactsPerTenant": 10}"#, "campaignContacts"),
            (#"[1, 2]"#, "must be a JSON object"),
            (#"{"name": "x""#, "not valid JSON"),
        ])
    func refusesBadFiles(text: String, message: String) {
        do {
            _ = try Scenario.parse(Data(text.utf8))
            Issue.record("accepted \(text)")
        } catch {
            #expect("\(error)".contains(message), "\(error)")
        }
    }

    @Test("response heads are framed by Content-Length, case-insensitively")
    func responseHeads() {
        let bytes = Array("HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n{\"code\":\"x\"}HTTP/1.1".utf8)
        let head = HTTPResponseHead.parse(bytes)
        #expect(head?.status == 503)
        #expect(head?.contentLength == 12)
        #expect(head.map { $0.complete(in: bytes.count) } == true)
        #expect(HTTPResponseHead.parse(Array("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n".utf8)) == nil)
    }
}
