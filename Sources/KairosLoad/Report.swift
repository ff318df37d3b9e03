import Foundation
import Histogram
import KairosCore

/// One operation's figures, latencies in milliseconds.
public struct OperationReport: Sendable, Codable, Hashable {
    public var operation: String
    public var succeeded: Int
    public var errors: [String: Int]
    public var throughputPerSecond: Double
    public var p50: Double
    public var p90: Double
    public var p99: Double
    public var p999: Double
    public var max: Double
    public var mean: Double
    /// (percentile, milliseconds) points of the latency distribution, for plotting.
    public var distribution: [[Double]]

    public var errorCount: Int { errors.values.reduce(0, +) }
}

/// Sent versus counted for one tenant.
public struct TenantReconciliation: Sendable, Codable, Hashable {
    public var tenant: String
    /// Events the server acknowledged to the harness.
    public var acknowledged: Int
    /// Events sent whose answer never came (they may or may not have been applied).
    public var inDoubt: Int
    /// Events the server says it applied during the run (its counter after minus before).
    public var counted: Int
    public var duplicates: Int
    public var matches: Bool { counted >= acknowledged && counted <= acknowledged + inDoubt && duplicates == 0 }
}

public struct CampaignReport: Sendable, Codable, Hashable {
    public var journey: String
    public var contacts: Int
    /// Seconds from the start until the last campaign batch was acknowledged.
    public var sentSeconds: Double?
    /// Seconds from the start until the journey's metrics showed every contact entered (nil: not within the wait).
    public var enrolledSeconds: Double?
    public var enrolled: Int
}

/// The whole run, for the terminal, `--json` and `--html`.
public struct RunReport: Sendable, Codable {
    public var scenario: Scenario
    public var runId: String
    public var target: String
    public var mode: String
    public var startedAt: String
    public var elapsedSeconds: Double
    public var operations: [OperationReport]
    /// Completions per second, per operation.
    public var timeline: [[String: Int]]
    public var reconciliation: [TenantReconciliation]
    public var campaign: CampaignReport?
    public var serverBefore: JSONValue?
    public var serverAfter: JSONValue?
    /// The machine's CPU time during the load (Linux), stolen time included.
    public var hostCPU: HostCPUUsage?
    /// How the client's threads were scheduled.
    public var clientScheduling: String?
    /// Why the run failed its checks (empty: passed).
    public var failures: [String]

    public var passed: Bool { failures.isEmpty }
    public var totalRequests: Int { operations.reduce(0) { $0 + $1.succeeded + $1.errorCount } }
    public var totalErrors: Int { operations.reduce(0) { $0 + $1.errorCount } }

    static func operations(_ recorder: Recorder, elapsed: Double) -> [OperationReport] {
        recorder.operations.keys.sorted().map { operation in
            let record = recorder.operations[operation]!
            let histogram = record.latency
            func ms(_ value: UInt64) -> Double { Double(value) / 1000 }
            let has = histogram.totalCount > 0
            var distribution: [[Double]] = []
            if has {
                for percentile in [0.0, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99, 99.999, 100] {
                    distribution.append([percentile, ms(histogram.valueAtPercentile(percentile))])
                }
            }
            return OperationReport(
                operation: operation.rawValue, succeeded: record.succeeded, errors: record.errors,
                throughputPerSecond: Double(record.succeeded) / max(elapsed, 0.001),
                p50: has ? ms(histogram.valueAtPercentile(50)) : 0, p90: has ? ms(histogram.valueAtPercentile(90)) : 0,
                p99: has ? ms(histogram.valueAtPercentile(99)) : 0, p999: has ? ms(histogram.valueAtPercentile(99.9)) : 0,
                max: has ? ms(histogram.max) : 0, mean: has ? histogram.mean / 1000 : 0, distribution: distribution)
        }
    }

    // MARK: Terminal

    public func table() -> String {
        var lines: [String] = []
        lines.append("\(scenario.name) → \(target), \(mode), \(String(format: "%.1f", elapsedSeconds)) s")
        let header = ["operation", "ok", "errors", "req/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms"]
        var rows = [header]
        for operation in operations {
            rows.append([
                operation.operation, String(operation.succeeded), String(operation.errorCount),
                String(format: "%.0f", operation.throughputPerSecond), format(operation.p50), format(operation.p90), format(operation.p99),
                format(operation.p999), format(operation.max),
            ])
        }
        let widths = header.indices.map { column in rows.map { $0[column].count }.max() ?? 0 }
        for (index, row) in rows.enumerated() {
            lines.append(
                row.enumerated().map { column, text in
                    column == 0 ? text.padding(toLength: widths[column], withPad: " ", startingAt: 0)
                        : String(repeating: " ", count: widths[column] - text.count) + text
                }.joined(separator: "  "))
            if index == 0 { lines.append(widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")) }
        }
        let errors = operations.flatMap { operation in operation.errors.map { "\(operation.operation) \($0.key): \($0.value)" } }.sorted()
        if !errors.isEmpty { lines.append("errors: " + errors.joined(separator: ", ")) }
        for tenant in reconciliation {
            lines.append(
                "reconcile \(tenant.tenant): acknowledged \(tenant.acknowledged), in doubt \(tenant.inDoubt), counted by the server \(tenant.counted)"
                    + (tenant.duplicates > 0 ? ", duplicates \(tenant.duplicates)" : "") + (tenant.matches ? " ✓" : " ✗ MISMATCH"))
        }
        if let campaign {
            let enrolled = campaign.enrolledSeconds.map { String(format: "all enrolled at %.2f s", $0) } ?? "NOT all enrolled"
            let sent = campaign.sentSeconds.map { String(format: "last batch acknowledged at %.2f s, ", $0) } ?? ""
            lines.append("campaign \(campaign.journey): \(campaign.enrolled)/\(campaign.contacts) contacts per tenant, \(sent)\(enrolled)")
        }
        if let hostCPU { lines.append(hostCPU.summary) }
        if let clientScheduling { lines.append(clientScheduling) }
        lines.append(passed ? "checks passed" : "CHECKS FAILED: " + failures.joined(separator: "; "))
        return lines.joined(separator: "\n")
    }

    private func format(_ value: Double) -> String {
        value >= 100 ? String(format: "%.0f", value) : value >= 10 ? String(format: "%.1f", value) : String(format: "%.3f", value)
    }

    public func json() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(self)
    }

    // MARK: HTML

    /// A self-contained page: the table, the latency distribution per operation and throughput
    /// over time, as SVG drawn here (no scripts, no CDN).
    public func html() -> String {
        let palette = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563", "#be185d"]
        func escape(_ text: String) -> String {
            text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
        }
        var rows = ""
        for operation in operations {
            rows += "<tr><td>\(operation.operation)</td><td>\(operation.succeeded)</td><td>\(operation.errorCount)</td>"
            rows += String(format: "<td>%.0f</td>", operation.throughputPerSecond)
            for value in [operation.p50, operation.p90, operation.p99, operation.p999, operation.max] { rows += "<td>\(format(value))</td>" }
            rows += "</tr>\n"
        }
        let checks = (reconciliation.map { tenant in
            "<li>\(escape(tenant.tenant)): acknowledged \(tenant.acknowledged), in doubt \(tenant.inDoubt), counted \(tenant.counted) \(tenant.matches ? "✓" : "✗")</li>"
        } + failures.map { "<li class=bad>\(escape($0))</li>" }).joined()
        return """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><title>Kairos load: \(escape(scenario.name))</title>
            <style>
            body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #111; }
            table { border-collapse: collapse; } td, th { padding: 4px 10px; text-align: right; border-bottom: 1px solid #ddd; }
            td:first-child, th:first-child { text-align: left; } .bad { color: #b91c1c; } svg { background: #fff; border: 1px solid #ddd; margin: 1em 0; }
            </style></head><body>
            <h1>\(escape(scenario.name)) → \(escape(target))</h1>
            <p>\(escape(mode)); \(String(format: "%.1f", elapsedSeconds)) s; started \(escape(startedAt)); run \(escape(runId)). <strong class="\(passed ? "" : "bad")">\(passed ? "Checks passed." : "Checks failed.")</strong></p>
            <table><tr><th>operation</th><th>ok</th><th>errors</th><th>req/s</th><th>p50 ms</th><th>p90 ms</th><th>p99 ms</th><th>p99.9 ms</th><th>max ms</th></tr>
            \(rows)</table>
            <ul>\(checks)</ul>
            \(hostCPU.map { "<p>\(escape($0.summary)).</p>" } ?? "")
            \(clientScheduling.map { "<p>\(escape($0)).</p>" } ?? "")
            <h2>Latency distribution</h2>
            \(latencyChart(palette: palette))
            <h2>Throughput over time</h2>
            \(throughputChart(palette: palette))
            </body></html>
            """
    }

    /// Latency (log scale) against percentile on the usual "1/(1-p)" axis, one line per operation.
    func latencyChart(palette: [String]) -> String {
        let width = 820.0, height = 360.0, left = 70.0, bottom = 40.0, top = 20.0, right = 120.0
        let plotted = operations.filter { !$0.distribution.isEmpty }
        guard !plotted.isEmpty else { return "<p>No latencies recorded.</p>" }
        let xMax = log10(1 / (1 - 0.99999))
        func x(_ percentile: Double) -> Double {
            let p = min(percentile / 100, 0.99999)
            return left + (log10(1 / (1 - p)) / xMax) * (width - left - right)
        }
        let values = plotted.flatMap { $0.distribution.map { Swift.max($0[1], 0.001) } }
        let low = floor(log10(values.min() ?? 0.01)), high = ceil(log10(values.max() ?? 1))
        let span = Swift.max(high - low, 1)
        func y(_ ms: Double) -> Double { height - bottom - (log10(Swift.max(ms, 0.001)) - low) / span * (height - top - bottom) }
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" font-size=\"11\">"
        for (label, percentile) in [("p0", 0.0), ("p90", 90.0), ("p99", 99.0), ("p99.9", 99.9), ("p99.99", 99.99), ("p99.999", 99.999)] {
            let position = x(percentile)
            svg += "<line x1=\"\(position)\" y1=\"\(top)\" x2=\"\(position)\" y2=\"\(height - bottom)\" stroke=\"#eee\"/>"
            svg += "<text x=\"\(position)\" y=\"\(height - bottom + 16)\" text-anchor=\"middle\">\(label)</text>"
        }
        for power in stride(from: low, through: high, by: 1) {
            let position = y(pow(10, power))
            svg += "<line x1=\"\(left)\" y1=\"\(position)\" x2=\"\(width - right)\" y2=\"\(position)\" stroke=\"#eee\"/>"
            svg += "<text x=\"\(left - 6)\" y=\"\(position + 4)\" text-anchor=\"end\">\(formatMilliseconds(pow(10, power)))</text>"
        }
        for (index, operation) in plotted.enumerated() {
            let color = palette[index % palette.count]
            let points = operation.distribution.map { "\(x($0[0])),\(y($0[1]))" }.joined(separator: " ")
            svg += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\" points=\"\(points)\"/>"
            svg += "<text x=\"\(width - right + 10)\" y=\"\(top + 16 * Double(index + 1))\" fill=\"\(color)\">\(operation.operation)</text>"
        }
        svg += "<text x=\"\(left)\" y=\"\(top - 6)\">latency (ms, log scale)</text></svg>"
        return svg
    }

    /// Completions per second, one line per operation.
    func throughputChart(palette: [String]) -> String {
        let width = 820.0, height = 300.0, left = 70.0, bottom = 40.0, top = 20.0, right = 120.0
        guard !timeline.isEmpty else { return "<p>No completions recorded.</p>" }
        let names = Array(Set(timeline.flatMap(\.keys))).sorted()
        let peak = Double(timeline.flatMap(\.values).max() ?? 1)
        let seconds = Double(Swift.max(timeline.count - 1, 1))
        func x(_ second: Int) -> Double { left + Double(second) / seconds * (width - left - right) }
        func y(_ count: Int) -> Double { height - bottom - Double(count) / Swift.max(peak, 1) * (height - top - bottom) }
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" font-size=\"11\">"
        for step in 0...4 {
            let value = Int(peak * Double(step) / 4)
            svg += "<line x1=\"\(left)\" y1=\"\(y(value))\" x2=\"\(width - right)\" y2=\"\(y(value))\" stroke=\"#eee\"/>"
            svg += "<text x=\"\(left - 6)\" y=\"\(y(value) + 4)\" text-anchor=\"end\">\(value)</text>"
        }
        for second in stride(from: 0, to: timeline.count, by: Swift.max(1, timeline.count / 10)) {
            svg += "<text x=\"\(x(second))\" y=\"\(height - bottom + 16)\" text-anchor=\"middle\">\(second) s</text>"
        }
        for (index, name) in names.enumerated() {
            let color = palette[index % palette.count]
            let points = timeline.enumerated().map { "\(x($0.offset)),\(y($0.element[name] ?? 0))" }.joined(separator: " ")
            svg += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\" points=\"\(points)\"/>"
            svg += "<text x=\"\(width - right + 10)\" y=\"\(top + 16 * Double(index + 1))\" fill=\"\(color)\">\(name)</text>"
        }
        svg += "<text x=\"\(left)\" y=\"\(top - 6)\">completed per second</text></svg>"
        return svg
    }

    private func formatMilliseconds(_ value: Double) -> String {
        value >= 1 ? String(format: "%.0f ms", value) : String(format: "%g ms", value)
    }
}
