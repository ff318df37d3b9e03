// swift-tools-version:6.1
import PackageDescription

/// Settings applied to every target, so the whole package builds under the same rules.
let strictSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .unsafeFlags(["-warnings-as-errors"], .when(configuration: .debug)),
    // Exclusive access to class properties and globals is checked at run time in debug builds
    // (which run the tests); release builds leave the checks out: they were about a twentieth
    // of the CPU of applying events, a call into the runtime for each access to an actor's state.
    .unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release)),
]

let package = Package(
    name: "Kairos",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "KairosCore", targets: ["KairosCore"]),
        .library(name: "KairosEngine", targets: ["KairosEngine"]),
        .library(name: "KairosStore", targets: ["KairosStore"]),
        .executable(name: "kairos", targets: ["kairos"]),
        .executable(name: "kairos-snapshot", targets: ["kairos-snapshot"]),
        .executable(name: "kairos-load", targets: ["kairos-load"]),
        .library(name: "KairosGateway", targets: ["KairosGateway"]),
        .library(name: "KairosMemory", targets: ["KairosMemory"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.6.0"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache.git", from: "2.1.1"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
    ],
    targets: [
        // Cache hints (a prefetch) for applying events to contacts whose state is not in cache.
        .target(name: "CMemoryHints"),
        .target(
            name: "KairosCore",
            dependencies: [
                "CMemoryHints",
                .product(name: "Mustache", package: "swift-mustache"),
                // Persistent maps: the journey catalog derives a new version in O(log n).
                .product(name: "HashTreeCollections", package: "swift-collections"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "KairosEngine",
            dependencies: [
                "KairosCore",
                .product(name: "HeapModule", package: "swift-collections"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "HashTreeCollections", package: "swift-collections"),
            ],
            swiftSettings: strictSettings
        ),
        // The gateway's C libraries (Debian's libuv1-dev, libhttp-parser-dev, zlib1g-dev) and a
        // small C++ wrapper over libsimdjson-dev with a plain C interface.
        .systemLibrary(name: "CLibUV", pkgConfig: "libuv", providers: [.apt(["libuv1-dev"])]),
        .systemLibrary(name: "CHTTPParser", providers: [.apt(["libhttp-parser-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .target(
            name: "CSimdJSON",
            cxxSettings: [.unsafeFlags(["-std=c++17", "-O2"])],
            linkerSettings: [.linkedLibrary("simdjson"), .linkedLibrary("stdc++")]
        ),
        .target(
            name: "KairosGateway",
            dependencies: ["KairosCore", "KairosEngine", "KairosStore", "CLibUV", "CHTTPParser", "CZlib", "CSimdJSON", "CScheduling"],
            swiftSettings: strictSettings
        ),
        // Debian's libsqlite3-dev; only KairosStore imports it.
        .systemLibrary(
            name: "CSQLite",
            pkgConfig: "sqlite3",
            providers: [.apt(["libsqlite3-dev"])]
        ),
        .target(
            name: "KairosStore",
            dependencies: ["KairosCore", "KairosEngine", "CSQLite"],
            swiftSettings: strictSettings
        ),
        // Debian's libmimalloc-dev: linked into the executables, it serves every `malloc` of the process.
        .systemLibrary(name: "CMimalloc", providers: [.apt(["libmimalloc-dev"])]),
        .target(name: "KairosMemory", dependencies: ["CMimalloc"], swiftSettings: strictSettings),
        // Command-line pieces shared by `kairos` and the tools.
        .target(
            name: "KairosCLI",
            dependencies: [
                "KairosCore",
                "KairosEngine",
                "KairosStore",
                "KairosMemory",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "kairos",
            dependencies: [
                "KairosCore",
                "KairosEngine",
                "KairosStore",
                "KairosCLI",
                "KairosGateway",
                "KairosMemory",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strictSettings
        ),
        // The snapshot restore tool on its own (the same commands as `kairos snapshot`).
        .executableTarget(
            name: "kairos-snapshot",
            dependencies: [
                "KairosCLI",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "tools/kairos-snapshot",
            swiftSettings: strictSettings
        ),
        // Thin C wrappers over epoll and timerfd for the load harness's client loop.
        .target(name: "CEpoll"),
        // Real-time scheduling for the gateway's loop thread and the load client's threads.
        .target(name: "CScheduling"),
        // The load harness: traffic, the open-loop client, reconciliation and reports.
        .target(
            name: "KairosLoad",
            dependencies: [
                "KairosCore",
                "KairosEngine",
                "CEpoll",
                "CScheduling",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "kairos-load",
            dependencies: [
                "KairosLoad",
                "KairosGateway",
                "KairosMemory",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "tools/kairos-load",
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "KairosCoreTests",
            dependencies: ["KairosCore"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "KairosEngineTests",
            dependencies: ["KairosCore", "KairosEngine"],
            swiftSettings: strictSettings
        ),
        // Runs the built `kairos` executable as a child process (kill -9, restart).
        .testTarget(
            name: "EndToEndTests",
            dependencies: ["KairosCore"],
            swiftSettings: strictSettings
        ),
        // The gateway over real sockets on the loopback address.
        .testTarget(
            name: "KairosGatewayTests",
            dependencies: ["KairosCore", "KairosEngine", "KairosGateway", "CScheduling"],
            swiftSettings: strictSettings
        ),
        // The load harness against fake and real servers on the loopback address.
        .testTarget(
            name: "KairosLoadTests",
            dependencies: ["KairosCore", "KairosEngine", "KairosGateway", "KairosLoad"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "KairosStoreTests",
            dependencies: ["KairosCore", "KairosEngine", "KairosStore"],
            swiftSettings: strictSettings
        ),
    ],
    swiftLanguageModes: [.v6]
)
