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
        .executableTarget(
            name: "KairosBenchmarks",
            dependencies: [
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
