import Foundation

/// The machine's CPU time from `/proc/stat`, read before and after a run.
///
/// On a virtual machine, time the host gives to other guests shows as `steal`: the server and
/// the harness wait for a CPU without using one, and latencies grow though neither did more
/// work. A report says how much of the run's CPU time was stolen so such runs can be told apart.
public struct HostCPUSample: Sendable, Hashable {
    /// Clock ticks since boot summed over all CPUs.
    public var busy: UInt64
    public var idle: UInt64
    public var steal: UInt64
    public var cores: Int

    public var total: UInt64 { busy + idle + steal }

    /// Reads `/proc/stat`; nil where it does not exist (not Linux) or cannot be parsed.
    public static func read() -> HostCPUSample? {
        guard let text = try? String(contentsOfFile: "/proc/stat", encoding: .utf8) else { return nil }
        return parse(text)
    }

    /// Parses `/proc/stat`: the `cpu` line (user nice system idle iowait irq softirq steal …) and
    /// one `cpuN` line per core. Guest time is already part of user time, so it is not added.
    public static func parse(_ text: String) -> HostCPUSample? {
        var sample: HostCPUSample?
        var cores = 0
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard let name = fields.first, name.hasPrefix("cpu") else { continue }
            if name == "cpu" {
                let ticks = fields.dropFirst().prefix(8).compactMap { UInt64($0) }
                guard ticks.count >= 4 else { return nil }
                func tick(_ index: Int) -> UInt64 { index < ticks.count ? ticks[index] : 0 }
                sample = HostCPUSample(
                    busy: tick(0) + tick(1) + tick(2) + tick(5) + tick(6), idle: tick(3) + tick(4), steal: tick(7), cores: 0)
            } else if name.dropFirst(3).allSatisfy(\.isNumber) {
                cores += 1
            }
        }
        sample?.cores = cores
        return sample
    }
}

/// Shares of the machine's CPU time between two samples, in percent.
public struct HostCPUUsage: Sendable, Codable, Hashable {
    public var cores: Int
    /// Used by any process on this machine (the server and the harness among them).
    public var busyPercent: Double
    /// Taken by the host for other guests while this machine had work waiting.
    public var stealPercent: Double
    public var idlePercent: Double

    public init(from before: HostCPUSample, to after: HostCPUSample) {
        let total = Double(after.total &- before.total)
        func share(_ ticks: UInt64) -> Double { total > 0 ? (100 * Double(ticks) / total * 10).rounded() / 10 : 0 }
        cores = after.cores
        busyPercent = share(after.busy &- before.busy)
        stealPercent = share(after.steal &- before.steal)
        idlePercent = share(after.idle &- before.idle)
    }

    /// Above this share of stolen time, a run's latencies say more about the host than about Kairos.
    public static let noticeableStealPercent = 5.0

    public var summary: String {
        var text = String(format: "host CPU during the run (%d cores): busy %.1f %%, idle %.1f %%, stolen by the host %.1f %%", cores, busyPercent, idlePercent, stealPercent)
        if stealPercent >= Self.noticeableStealPercent {
            text += " — latencies include waits for CPUs the host gave to other machines"
        }
        return text
    }
}
