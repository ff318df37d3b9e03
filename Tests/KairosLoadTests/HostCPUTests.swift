import Testing

@testable import KairosLoad

@Suite struct HostCPUTests {
    static let before = """
        cpu  4642429 208371 312408 5971863 20592 0 29499 228751 0 0
        cpu0 2321214 104185 156204 2985931 10296 0 14749 114375 0 0
        cpu1 2321215 104186 156204 2985932 10296 0 14750 114376 0 0
        intr 123456 0 0
        ctxt 98765
        """

    @Test func parsesTheTotalLineAndCountsCores() throws {
        let sample = try #require(HostCPUSample.parse(Self.before))
        #expect(sample.cores == 2)
        #expect(sample.busy == 4642429 + 208371 + 312408 + 0 + 29499)
        #expect(sample.idle == 5971863 + 20592)
        #expect(sample.steal == 228751)
        #expect(HostCPUSample.parse("intr 1 2 3\n") == nil)
        #expect(HostCPUSample.parse("cpu  1 2\n") == nil)
    }

    @Test func sharesOfARunAndTheStealWarning() throws {
        let before = try #require(HostCPUSample.parse(Self.before))
        // 1,000 ticks pass: 600 busy, 100 idle, 300 stolen.
        var after = before
        after.busy += 600
        after.idle += 100
        after.steal += 300
        let usage = HostCPUUsage(from: before, to: after)
        #expect(usage.busyPercent == 60 && usage.idlePercent == 10 && usage.stealPercent == 30)
        #expect(usage.summary.contains("stolen by the host 30.0 %"))
        #expect(usage.summary.contains("other machines"))

        var quiet = before
        quiet.busy += 990
        quiet.steal += 10
        let calm = HostCPUUsage(from: before, to: quiet)
        #expect(calm.stealPercent == 1)
        #expect(!calm.summary.contains("other machines"))
        #if os(Linux)
        let live = try #require(HostCPUSample.read())
        #expect(live.cores >= 1 && live.total > 0)
        #endif
    }
}
