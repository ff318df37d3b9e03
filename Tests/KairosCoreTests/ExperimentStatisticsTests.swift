import KairosCore
import Testing

/// Reference values were computed independently with GrowthBook's own Python packages
/// (`gbstats` 0.8.0 with SciPy, and the `growthbook` SDK's `gbhash`/`getBucketRanges`):
/// e.g. `TwoSidedTTest(ProportionStatistic(n=1000, sum=100), ProportionStatistic(n=1000, sum=120),
/// FrequentistConfig()).compute_result()`.
@Suite struct ExperimentStatisticsTests {
    func close(_ a: Double, _ b: Double, _ tolerance: Double = 1e-9) -> Bool { abs(a - b) <= tolerance * max(1, abs(b)) }

    @Test(arguments: [
        ("hero-test", "user-1", 0.0511, 0.623), ("hero-test", "user-2", 0.6144, 0.16), ("", "a", 0.0216, 0.22),
        ("checkout-cta", "anon-42", 0.3916, 0.451), ("exp", "é✓", 0.2613, 0.216), ("seed", "😀x", 0.6751, 0.797),
    ])
    func hashingMatchesGrowthBook(seed: String, value: String, version2: Double, version1: Double) {
        #expect(ExperimentHashing.bucket(seed: seed, value: value, version: 2) == version2)
        #expect(ExperimentHashing.bucket(seed: seed, value: value, version: 1) == version1)
    }

    @Test func bucketRangesAndChoiceMatchGrowthBook() {
        let ranges = ExperimentHashing.bucketRanges(variations: 3, coverage: 0.8, weights: [0.2, 0.3, 0.5])
        #expect(ranges.count == 3)
        #expect(close(ranges[0].upperBound, 0.16) && ranges[1].lowerBound == 0.2 && close(ranges[1].upperBound, 0.44))
        #expect(ranges[2].lowerBound == 0.5 && close(ranges[2].upperBound, 0.9))
        let expected: [String: Int?] = ["u1": 2, "u2": nil, "u3": 1, "u4": 2, "u5": nil, "u6": nil, "u7": nil, "u8": 0]
        for (id, variation) in expected {
            let n = ExperimentHashing.bucket(seed: "pricing", value: id)
            #expect(ExperimentHashing.chooseVariation(n, ranges: ranges) == variation, "\(id)")
        }
        // Invalid weights fall back to equal ones, as in GrowthBook.
        #expect(ExperimentHashing.normalizedWeights([0.9, 0.9], variations: 2) == [0.5, 0.5])
    }

    @Test(arguments: [
        (1000, 100, 1000, 120, 0.1999999999999999, -0.10076797484835626, 0.500767974848356, 0.19235020701505579),
        (5234, 312, 5190, 255, -0.17576330220838882, -0.3084343371189864, -0.043092267297791226, 0.009420934175468743),
        (120, 30, 95, 31, 0.3052631578947369, -0.25124383963917296, 0.8617701554286468, 0.2806588659377034),
    ])
    func frequentistMatchesGbstats(nA: Int, xA: Int, nB: Int, xB: Int, lift: Double, low: Double, high: Double, p: Double) {
        let result = ExperimentStatistics.frequentist(
            control: ConversionCounts(units: nA, conversions: xA), treatment: ConversionCounts(units: nB, conversions: xB))
        #expect(result.problem == nil)
        #expect(close(result.lift, lift))
        #expect(close(result.confidenceInterval[0], low, 1e-8))
        #expect(close(result.confidenceInterval[1], high, 1e-8))
        #expect(close(result.pValue, p, 1e-8))
    }

    @Test(arguments: [
        (1000, 100, 1000, 120, 0.9039004818067533, -0.1005846161444825, 0.5005846161444822, 0.20692160791267783, 0.006921607912677944),
        (5234, 312, 5190, 255, 0.004703814613587231, -0.30841882458709763, -0.04310777982968006, 0.00010006982028628618, 0.1758633720286751),
        (120, 30, 95, 31, 0.8603422046896068, -0.24777129440476098, 0.8582976101942347, 0.3253298854386563, 0.0200667275439194),
    ])
    func bayesianMatchesGbstats(
        nA: Int, xA: Int, nB: Int, xB: Int, chance: Double, low: Double, high: Double, riskControl: Double, riskVariation: Double
    ) {
        let result = ExperimentStatistics.bayesian(
            control: ConversionCounts(units: nA, conversions: xA), treatment: ConversionCounts(units: nB, conversions: xB))
        #expect(close(result.chanceToBeatControl, chance))
        #expect(close(result.credibleInterval[0], low))
        #expect(close(result.credibleInterval[1], high))
        // gbstats computes risk through SciPy's truncated normal; ours is the closed form.
        #expect(close(result.riskOfControl, riskControl, 1e-7))
        #expect(close(result.riskOfVariation, riskVariation, 1e-7))
    }

    @Test func bayesianWithProperPriorMatchesGbstats() {
        let result = ExperimentStatistics.bayesian(
            control: ConversionCounts(units: 1000, conversions: 100), treatment: ConversionCounts(units: 1000, conversions: 120),
            prior: .init(mean: 0.05, standardDeviation: 0.1, proper: true))
        #expect(close(result.chanceToBeatControl, 0.870998335746721))
        #expect(close(result.expectedLift, 0.09474940334128876))
        #expect(close(result.credibleInterval[0], -0.0694285149705082))
        #expect(close(result.credibleInterval[1], 0.25892732165308563))
        #expect(close(result.riskOfControl, 0.10015242070223596, 1e-7))
        #expect(close(result.riskOfVariation, 0.005403017360947202, 1e-7))
    }

    @Test func sampleRatioMismatchMatchesGbstats() {
        #expect(close(ExperimentStatistics.sampleRatioMismatchPValue(units: [5000, 5200], weights: [0.5, 0.5]), 0.0476703806561615))
        #expect(close(
            ExperimentStatistics.sampleRatioMismatchPValue(units: [1000, 1000, 1200], weights: [0.3, 0.3, 0.4]), 0.015503853599009307))
        let skewed = ExperimentStatistics.sampleRatioMismatchPValue(units: [5000, 5600], weights: [0.5, 0.5])
        #expect(close(skewed, 5.61913746484314e-09, 1e-6))
        #expect(skewed < ExperimentStatistics.sampleRatioMismatchThreshold)
    }

    @Test func degenerateInputsGiveNeutralResultsWithAReason() {
        let zero = ExperimentStatistics.frequentist(
            control: ConversionCounts(units: 100, conversions: 0), treatment: ConversionCounts(units: 100, conversions: 5))
        #expect(zero.pValue == 1 && zero.problem != nil)
        let empty = ExperimentStatistics.bayesian(
            control: ConversionCounts(units: 100, conversions: 5), treatment: ConversionCounts(units: 0, conversions: 0))
        #expect(empty.chanceToBeatControl == 0.5 && empty.problem != nil)
    }

    @Test func distributionsMatchSciPy() {
        #expect(close(Distributions.studentTCDF(1.7, degreesOfFreedom: 12.5), 0.943070508163106))
        #expect(close(Distributions.studentTCDF(-2.3, degreesOfFreedom: 3), 0.05249418032223499))
        #expect(close(Distributions.studentTQuantile(0.975, degreesOfFreedom: 17.3), 2.1070320037534676))
        #expect(close(Distributions.studentTQuantile(0.975, degreesOfFreedom: 1998), 1.9611520148367054))
        #expect(close(Distributions.studentTQuantile(0.999, degreesOfFreedom: 2), 22.327124770119866, 1e-8))
        #expect(close(Distributions.normalQuantile(0.975), 1.959963984540054))
        #expect(close(Distributions.normalQuantile(1e-10), -6.361340902404056))
        #expect(close(Distributions.normalCDF(-1.2), 0.11506967022170822))
        #expect(close(Distributions.chiSquareSurvival(3.84, degreesOfFreedom: 1), 0.05004352124870519))
        #expect(close(Distributions.chiSquareSurvival(25, degreesOfFreedom: 2), 3.7266531720786718e-06))
        #expect(close(Distributions.chiSquareSurvival(0.5, degreesOfFreedom: 4), 0.9735009788392561))
    }
}
