import Histogram

/// What one worker saw: latencies per operation (microseconds, HDR histograms), errors by
/// kind, completions per second, and the events acknowledged per tenant. Merged at the end.
struct Recorder {
    struct OperationRecord {
        var latency = Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: .three)
        var succeeded = 0
        var errors: [String: Int] = [:]
    }

    var operations: [Operation: OperationRecord] = [:]
    /// Completions per second since the start, per operation.
    var timeline: [[Operation: Int]] = []
    /// Events acknowledged per tenant.
    var acknowledgedEvents: [Int]
    /// Events whose fate is unknown (sent, no answer before the end) per tenant.
    var inDoubtEvents: [Int]

    init(tenants: Int) {
        acknowledgedEvents = Array(repeating: 0, count: tenants)
        inDoubtEvents = Array(repeating: 0, count: tenants)
    }

    mutating func success(_ operation: Operation, latencyNanoseconds: UInt64, second: Int) {
        _ = operations[operation, default: OperationRecord()].latency.record(max(latencyNanoseconds / 1000, 1))
        operations[operation, default: OperationRecord()].succeeded += 1
        tick(operation, second: second)
    }

    mutating func failure(_ operation: Operation, kind: String, second: Int) {
        operations[operation, default: OperationRecord()].errors[kind, default: 0] += 1
        tick(operation, second: second)
    }

    private mutating func tick(_ operation: Operation, second: Int) {
        guard second >= 0 else { return }
        while timeline.count <= second { timeline.append([:]) }
        timeline[second][operation, default: 0] += 1
    }

    mutating func merge(_ other: Recorder) {
        for (operation, record) in other.operations {
            var mine = operations[operation, default: OperationRecord()]
            mine.latency.add(record.latency)
            mine.succeeded += record.succeeded
            for (kind, count) in record.errors { mine.errors[kind, default: 0] += count }
            operations[operation] = mine
        }
        while timeline.count < other.timeline.count { timeline.append([:]) }
        for (second, counts) in other.timeline.enumerated() {
            for (operation, count) in counts { timeline[second][operation, default: 0] += count }
        }
        for index in acknowledgedEvents.indices {
            acknowledgedEvents[index] += other.acknowledgedEvents[index]
            inDoubtEvents[index] += other.inDoubtEvents[index]
        }
    }
}
