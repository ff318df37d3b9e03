import Foundation

/// What an optimizer has learnt about one variant: impressions and rewards.
public struct ArmStatistics: Sendable, Hashable, Codable {
    public var trials: Int
    public var rewards: Int

    public init(trials: Int = 0, rewards: Int = 0) {
        self.trials = trials
        self.rewards = rewards
    }
}

/// Thompson sampling over Bernoulli rewards: each arm's rate has a Beta(1 + rewards,
/// 1 + failures) posterior; draw from each and play the best, except for a minimum
/// share of uniformly random exploration. Deterministic for a given generator state.
public enum ThompsonSampling {
    public static func choose(_ arms: [ArmStatistics], minimumExploration: Double, random: inout SeededRandom) -> Int {
        precondition(!arms.isEmpty)
        if arms.count == 1 { return 0 }
        if random.unit() < minimumExploration { return Int(random.next() % UInt64(arms.count)) }
        var best = 0
        var bestDraw = -1.0
        for (index, arm) in arms.enumerated() {
            let failures = max(arm.trials - arm.rewards, 0)
            let draw = beta(1 + Double(arm.rewards), 1 + Double(failures), random: &random)
            if draw > bestDraw {
                bestDraw = draw
                best = index
            }
        }
        return best
    }

    static func beta(_ a: Double, _ b: Double, random: inout SeededRandom) -> Double {
        let x = gamma(a, random: &random)
        let y = gamma(b, random: &random)
        return x / (x + y)
    }

    /// Marsaglia and Tsang's method (shape ≥ 1 here: shapes are 1 + counts).
    static func gamma(_ shape: Double, random: inout SeededRandom) -> Double {
        let d = shape - 1.0 / 3.0
        let c = 1 / (9 * d).squareRoot()
        while true {
            var x: Double
            var v: Double
            repeat {
                x = normal(random: &random)
                v = 1 + c * x
            } while v <= 0
            v = v * v * v
            let u = random.unit()
            if u < 1 - 0.0331 * x * x * x * x { return d * v }
            if log(max(u, .leastNonzeroMagnitude)) < 0.5 * x * x + d * (1 - v + log(v)) { return d * v }
        }
    }

    /// Box–Muller.
    static func normal(random: inout SeededRandom) -> Double {
        let u1 = max(random.unit(), .leastNonzeroMagnitude)
        let u2 = random.unit()
        return (-2 * log(u1)).squareRoot() * cos(2 * .pi * u2)
    }
}
