// swift-tools-version: 6.2
import PackageDescription

let package = Package(
    name: "amplify-run",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "amplify-run", targets: ["amplify-run"]),
        .library(name: "AmplifyWorkflow", targets: ["AmplifyWorkflow"]),
        .library(name: "AmplifyEngine", targets: ["AmplifyEngine"]),
        .library(name: "AmplifyStages", targets: ["AmplifyStages"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        // `serve`: the dashboard's HTTP server.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
    ],
    targets: [
        // libyaml, the system library (Debian: libyaml-dev). Named CLibYAML, not CYaml (Yams has one).
        .systemLibrary(
            name: "CLibYAML",
            pkgConfig: "yaml-0.1",
            providers: [.apt(["libyaml-dev"]), .brew(["libyaml"])]
        ),
        // YAML document → checked Workflow model with diagnostics → Plan (the DAG).
        .target(
            name: "AmplifyWorkflow",
            dependencies: ["CLibYAML"]
        ),
        // The run state machine, the journal, the runner and the stage executors.
        .target(
            name: "AmplifyEngine",
            dependencies: [
                "AmplifyWorkflow",
                "CAmplifySystem",
                .product(name: "DequeModule", package: "swift-collections"),
            ]
        ),
        // The stage kinds (query-ready, dispatch, wait-approved, merge, close, cleanup, run) and the world they act on: Tracker, Git, Agent, CommandRunner.
        .target(
            name: "AmplifyStages",
            dependencies: ["AmplifyEngine", "AmplifyWorkflow"]
        ),
        // posix_spawn with a new session, and other calls Swift's Glibc module lacks.
        .target(name: "CAmplifySystem"),
        // The machine and the journal at scale with fake executors (bench/, not tests).
        .executableTarget(name: "amplify-bench", dependencies: ["AmplifyEngine", "AmplifyWorkflow"]),
        // The libFuzzer target over loading and checking workflows (fuzz/run); built normally,
        // it replays the inputs given on its command line.
        .executableTarget(name: "amplify-fuzz", dependencies: ["AmplifyWorkflow", "AmplifyStages"]),
        // Argument parsing and terminal output only.
        .executableTarget(
            name: "amplify-run",
            dependencies: [
                "AmplifyWorkflow",
                "AmplifyEngine",
                "AmplifyStages",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Hummingbird", package: "hummingbird"),
            ],
            // SwiftPM links every executable against all of Foundation (and ICU); the runner uses
            // only FoundationEssentials. Not loading the rest takes a third off every start.
            linkerSettings: [.unsafeFlags(["-Xlinker", "--as-needed"], .when(platforms: [.linux]))]
        ),
        // What both test targets share: running the built executable without blocking the pool.
        .target(name: "AmplifyTestSupport", path: "Tests/AmplifyTestSupport"),
        .testTarget(
            name: "AmplifyEngineTests",
            dependencies: ["AmplifyEngine", "AmplifyWorkflow", "AmplifyTestSupport", "amplify-run"]
        ),
        .testTarget(
            name: "AmplifyStagesTests",
            dependencies: ["AmplifyStages", "AmplifyEngine", "AmplifyWorkflow", "AmplifyTestSupport", "amplify-run"],
            exclude: ["Fixtures"]
        ),
        .testTarget(
            name: "AmplifyWorkflowTests",
            dependencies: ["AmplifyWorkflow", "AmplifyTestSupport", "amplify-run"],
            exclude: ["Malformed"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
