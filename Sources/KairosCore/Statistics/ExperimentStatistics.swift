import Foundation

/// Conversion counts of one variation: `units` exposed, `conversions` of them converted.
public struct ConversionCounts: Sendable, Hashable, Codable {
    public var units: Int
    public var conversions: Int

    public init(units: Int, conversions: Int) {
        self.units = units
        self.conversions = conversions
    }

    /// A proportion metric's mean and variance, as GrowthBook's `ProportionStatistic`.
    public var mean: Double { units == 0 ? 0 : Double(conversions) / Double(units) }
    public var variance: Double { mean * (1 - mean) }
}

/// A variation against control, computed exactly as GrowthBook's stats engine (gbstats)
/// does for a proportion metric and a relative effect. Formulas and sources: docs/experiments.md.
public enum ExperimentStatistics {
    public struct Frequentist: Sendable, Hashable, Codable {
        /// Relative lift (treatment − control) / control.
        public var lift: Double
        public var confidenceInterval: [Double]
        public var pValue: Double
        /// Why the test could not be computed (the other fields are then neutral), if so.
        public var problem: String?
    }

    public struct Bayesian: Sendable, Hashable, Codable {
        public var chanceToBeatControl: Double
        public var expectedLift: Double
        public var credibleInterval: [Double]
        /// Expected loss of choosing control, and of choosing this variation (relative).
        public var riskOfControl: Double
        public var riskOfVariation: Double
        public var problem: String?
    }

    /// A Gaussian prior on the relative effect; GrowthBook's default is improper (flat).
    public struct Prior: Sendable, Hashable, Codable {
        public var mean: Double
        public var standardDeviation: Double
        public var proper: Bool

        public init(mean: Double = 0, standardDeviation: Double = 0.3, proper: Bool = false) {
            self.mean = mean
            self.standardDeviation = standardDeviation
            self.proper = proper
        }
    }

    static let baselineZero = "the control's conversion rate is zero"
    static let zeroVariance = "a variation has zero variance (all or none converted)"
    static let noUnits = "a variation has no exposures"

    /// Delta-method relative difference and its variance (gbstats `frequentist_diff`/`frequentist_variance`).
    static func relativeDifference(_ control: ConversionCounts, _ treatment: ConversionCounts) -> (Double, Double) {
        let meanA = control.mean
        let meanB = treatment.mean
        let variance = treatment.variance / (meanA * meanA * Double(treatment.units))
            + control.variance * meanB * meanB / (pow(meanA, 4) * Double(control.units))
        return ((meanB - meanA) / meanA, variance)
    }

    /// Two-sided Welch t-test on the relative lift (gbstats `TwoSidedTTest`).
    public static func frequentist(control: ConversionCounts, treatment: ConversionCounts, alpha: Double = 0.05)
        -> Frequentist
    {
        func neutral(_ problem: String) -> Frequentist {
            Frequentist(lift: 0, confidenceInterval: [0, 0], pValue: 1, problem: problem)
        }
        guard control.units > 1, treatment.units > 1 else { return neutral(noUnits) }
        guard control.mean != 0 else { return neutral(baselineZero) }
        guard control.variance > 0, treatment.variance > 0 else { return neutral(zeroVariance) }
        let (lift, variance) = relativeDifference(control, treatment)
        let nA = Double(control.units)
        let nB = Double(treatment.units)
        let dof = pow(treatment.variance / nB + control.variance / nA, 2)
            / (pow(treatment.variance, 2) / (nB * nB * (nB - 1)) + pow(control.variance, 2) / (nA * nA * (nA - 1)))
        let standardError = variance.squareRoot()
        let t = lift / standardError
        let pValue = 2 * (1 - Distributions.studentTCDF(abs(t), degreesOfFreedom: dof))
        let width = Distributions.studentTQuantile(1 - alpha / 2, degreesOfFreedom: dof) * standardError
        return Frequentist(lift: lift, confidenceInterval: [lift - width, lift + width], pValue: pValue, problem: nil)
    }

    /// Gaussian posterior on the relative lift (gbstats `EffectBayesianABTest`).
    public static func bayesian(
        control: ConversionCounts, treatment: ConversionCounts, prior: Prior = Prior(), alpha: Double = 0.05
    ) -> Bayesian {
        func neutral(_ problem: String) -> Bayesian {
            Bayesian(chanceToBeatControl: 0.5, expectedLift: 0, credibleInterval: [0, 0], riskOfControl: 0,
                     riskOfVariation: 0, problem: problem)
        }
        guard control.mean != 0 else { return neutral(baselineZero) }
        guard control.units > 0, treatment.units > 0 else { return neutral(noUnits) }
        guard control.variance > 0, treatment.variance > 0 else { return neutral(zeroVariance) }
        let (dataMean, dataVariance) = relativeDifference(control, treatment)
        let priorVariance = prior.standardDeviation * prior.standardDeviation
        let precision = 1 / dataVariance + (prior.proper ? 1 / priorVariance : 0)
        let mean = prior.proper ? (dataMean / dataVariance + prior.mean / priorVariance) / precision : dataMean
        let sd = (1 / precision).squareRoot()
        let z = Distributions.normalQuantile(1 - alpha / 2)
        // Expected loss, in closed form: E[max(0, X)] and E[max(0, −X)] for X ~ N(mean, sd²).
        let r = mean / sd
        let riskOfControl = mean * Distributions.normalCDF(r) + sd * Distributions.normalPDF(r)
        let riskOfVariation = sd * Distributions.normalPDF(r) - mean * Distributions.normalCDF(-r)
        return Bayesian(
            chanceToBeatControl: Distributions.normalCDF(r), expectedLift: mean,
            credibleInterval: [mean - z * sd, mean + z * sd], riskOfControl: riskOfControl,
            riskOfVariation: riskOfVariation, problem: nil)
    }

    /// Sample-ratio-mismatch p-value: chi-square goodness of fit of the observed units
    /// against the configured weights (gbstats `check_srm`).
    public static func sampleRatioMismatchPValue(units: [Int], weights: [Double]) -> Double {
        let total = Double(units.reduce(0, +))
        guard total > 0, units.count == weights.count else { return 1 }
        let totalWeight = weights.reduce(0, +)
        var x = 0.0
        for (observed, weight) in zip(units, weights) where weight > 0 {
            let expected = weight / totalWeight * total
            x += pow(Double(observed) - expected, 2) / expected
        }
        return Distributions.chiSquareSurvival(x, degreesOfFreedom: Double(units.count - 1))
    }

    /// GrowthBook flags a sample-ratio mismatch below this p-value.
    public static let sampleRatioMismatchThreshold = 0.001
}
