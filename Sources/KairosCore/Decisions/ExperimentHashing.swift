/// Experiment assignment exactly as GrowthBook's SDKs compute it (hashing version 2:
/// FNV-1a 32-bit over UTF-16 code units, hashed twice, 10,000 buckets), so an
/// experiment can move between Kairos and a GrowthBook SDK without reshuffling anyone.
public enum ExperimentHashing {
    /// FNV-1a 32-bit over the UTF-16 code units of `text` (the JS SDK's `charCodeAt` loop).
    public static func fnv1a32(_ text: String) -> UInt32 {
        var hash: UInt32 = 0x811C_9DC5
        for unit in text.utf16 { hash = (hash ^ UInt32(unit)) &* 0x0100_0193 }
        return hash
    }

    /// A number in [0, 1) for (seed, value): version 2 is GrowthBook's unbiased hash,
    /// version 1 its original one (kept so old GrowthBook experiments can be imported).
    public static func bucket(seed: String, value: String, version: Int = 2) -> Double {
        if version == 1 { return Double(fnv1a32(value + seed) % 1000) / 1000 }
        return Double(fnv1a32(String(fnv1a32(seed + value))) % 10_000) / 10_000
    }

    /// Weights as GrowthBook uses them: equal weights unless there is one finite,
    /// non-negative weight per variation summing to about 1.
    public static func normalizedWeights(_ weights: [Double]?, variations: Int) -> [Double] {
        guard variations > 0 else { return [] }
        if let weights, weights.count == variations, weights.allSatisfy({ $0.isFinite && $0 >= 0 }) {
            let total = weights.reduce(0, +)
            if total >= 0.99 && total <= 1.01 { return weights }
        }
        return Array(repeating: 1 / Double(variations), count: variations)
    }

    /// Each variation's [start, end) share of the unit interval; `coverage` (the traffic
    /// allocation) shrinks every range from its start, as GrowthBook does.
    public static func bucketRanges(variations: Int, coverage: Double, weights: [Double]?) -> [Range<Double>] {
        let coverage = min(max(coverage, 0), 1)
        var cumulative = 0.0
        return normalizedWeights(weights, variations: variations).map { weight in
            let start = cumulative
            cumulative += weight
            return start..<(start + coverage * weight)
        }
    }

    /// The variation whose range holds `n`; nil when `n` falls outside the covered traffic.
    public static func chooseVariation(_ n: Double, ranges: [Range<Double>]) -> Int? {
        ranges.firstIndex { $0.contains(n) }
    }
}
