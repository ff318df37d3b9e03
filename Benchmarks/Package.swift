// swift-tools-version:6.1
import PackageDescription

// In-process benchmarks of the hot paths. Run with `make bench`
// (or `swift package benchmark` in this folder).
let package = Package(
    name: "KairosBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "Kairos", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark.git", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        // The benchmark tenant and traffic, shared by the suites and kairos-measure.
        .target(
            name: "BenchmarkWorkload",
            dependencies: [
                .product(name: "KairosCore", package: "Kairos"),
                .product(name: "KairosEngine", package: "Kairos"),
            ],
            path: "Benchmarks/BenchmarkWorkload"
        ),
        // The same workloads in a plain executable: no malloc interposer, so memory and
        // allocation-heavy timings read as in production (`swift run -c release kairos-measure`).
        .executableTarget(
            name: "kairos-measure",
            dependencies: [
                "BenchmarkWorkload",
                .product(name: "KairosCore", package: "Kairos"),
                .product(name: "KairosEngine", package: "Kairos"),
                .product(name: "KairosStore", package: "Kairos"),
                .product(name: "KairosGateway", package: "Kairos"),
                .product(name: "KairosMemory", package: "Kairos"),
            ],
            path: "Benchmarks/kairos-measure"
        ),
        .executableTarget(
            name: "KairosBenchmarks",
            dependencies: [
                "BenchmarkWorkload",
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "KairosCore", package: "Kairos"),
                .product(name: "KairosEngine", package: "Kairos"),
                .product(name: "KairosStore", package: "Kairos"),
            ],
            path: "Benchmarks/KairosBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        )
    ],
    swiftLanguageModes: [.v6]
)
