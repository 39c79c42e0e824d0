// swift-tools-version:6.2
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    // Release builds of the project's own targets skip the run-time exclusivity checks
    // (`swift_beginAccess`): 3% of the event loops' instructions per proxied request, 183,359 ->
    // 177,792 (bench/RESULTS.md, issue 21). Debug builds, which the test suite runs, keep them,
    // so an overlapping access is still caught there; the dependencies keep theirs.
    .unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release)),
]

let package = Package(
    name: "gemini-gateway",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "gemini-gateway", targets: ["gemini-gateway"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        // The tests' HTTP client only: the gateway's upstream client is its own, on SwiftNIO.
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        // SHA-256 for token hashes and key fingerprints. It brings its own BoringSSL copy: about
        // 1.5 minutes more on a cold build, the price of not keeping a digest of our own.
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        // The tests' child processes only (TestSupport): about 10 to 20 s more on a cold build,
        // its one module; its SystemPackage (for `FilePath`) is built already for SwiftNIO.
        .package(url: "https://github.com/swiftlang/swift-subprocess.git", from: "1.0.2"),
        .package(url: "https://github.com/apple/swift-system.git", from: "1.8.1"),
        // The PostgreSQL store (`--store postgres://…`), for several instances sharing state
        // (issue 25). Its dependencies are already here; postgres-nio itself adds about 2.5 to 4.5
        // minutes to a cold debug build.
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
    ],
    targets: [
        // Pure domain: no I/O, no NIO, no GRDB; SHA-256 from swift-crypto.
        .target(
            name: "GatewayCore",
            dependencies: [.product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: swiftSettings
        ),

        // SQLite through GRDB; the schema comes from migrations/, embedded at build time.
        .target(
            name: "GatewayStore",
            dependencies: [
                "GatewayCore",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings,
            plugins: ["EmbedMigrations"]
        ),

        // PostgreSQL through postgres-nio: the same store as `GatewayStore`'s SQLite, shared by
        // several gateway instances; its schema comes from migrations/postgres/.
        .target(
            name: "GatewayStorePostgres",
            dependencies: [
                "GatewayCore",
                "GatewayStore",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                // `store copy` reads a SQLite node.
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings,
            plugins: ["EmbedMigrations"]
        ),

        // HTTP on SwiftNIO, both sides: the listener and each client connection's handler
        // (`Server/`), the wire code they share (`Wire/`) and the upstream client (`Upstream/`).
        // It knows nothing of keys, tokens or SQLite: the policy answers through `Responder`.
        .target(
            name: "GatewayHTTP",
            dependencies: [
                "GatewayCore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                // The graceful shutdown of the listener's connections.
                .product(name: "NIOExtras", package: "swift-nio-extras"),
            ],
            // Async functions run on their caller's executor (the connection's event loop) without
            // a hop at every call, as in GatewayServer, whose async functions these call and are
            // called by: the two must agree, or every call across would hop executors.
            // Cross-module optimisation: GatewayServer calls the small wire helpers (`HTTPWire`,
            // `ForwardedHeaders`) on every request, which it can then inline.
            swiftSettings: swiftSettings + [
                .enableUpcomingFeature("NonisolatedNonsendingByDefault"),
                .unsafeFlags(["-cross-module-optimization"], .when(configuration: .release)),
            ]
        ),

        // The proxy's policy (authenticate, pick, attempt, relay, record), the operator's pages
        // (`/metrics`, `/status`, the probes) and the services of a running gateway.
        .target(
            name: "GatewayServer",
            dependencies: [
                "GatewayCore",
                "GatewayStore",
                "GatewayHTTP",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            // Async functions run on their caller's executor (the connection's event loop) without
            // a hop at every call: the request path has no actor to leave.
            swiftSettings: swiftSettings + [.enableUpcomingFeature("NonisolatedNonsendingByDefault")]
        ),

        // The executable: argument parsing and glue only.
        .executableTarget(
            name: "gemini-gateway",
            dependencies: [
                "GatewayCore",
                "GatewayStore",
                "GatewayStorePostgres",
                "GatewayServer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                // SIGHUP reloads the settings.
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                // `keys check` probes keys through the gateway's upstream transport.
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings,
            // jemalloc instead of glibc's malloc: each request's allocations are freed on other
            // threads than made them (the log writer frees the rows), which glibc serves through
            // its arenas' locks and bins; +3% requests/s and -4% CPU per request at 64
            // connections (bench/RESULTS.md, "The allocator"). Debian: libjemalloc-dev.
            linkerSettings: [.linkedLibrary("jemalloc", .when(platforms: [.linux]))]
        ),

        // A fake Gemini upstream for tests and benchmarks (replays real error bodies, streams SSE).
        .target(
            name: "FakeGemini",
            dependencies: [
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            resources: [.copy("Fixtures")],
            swiftSettings: swiftSettings
        ),

        // Benchmark: the scheduler alone (bench/run.sh runs it in release).
        .executableTarget(name: "scheduler-bench", dependencies: ["GatewayCore"], path: "bench/scheduler-bench"),
        // Benchmark: the plainest SwiftNIO reverse proxy, the floor under the gateway (bench/run.sh).
        .executableTarget(
            name: "nio-proxy-floor",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            path: "bench/nio-proxy-floor",
            swiftSettings: swiftSettings
        ),

        // Build-time tool: turns migrations/*.sql into Swift source.
        .executableTarget(name: "EmbedMigrationsTool"),
        .plugin(
            name: "EmbedMigrations",
            capability: .buildTool(),
            dependencies: ["EmbedMigrationsTool"]
        ),

        // What several test targets need: child processes on swift-subprocess (not Foundation's
        // Process), deadlines, captured logs.
        .target(
            name: "TestSupport",
            dependencies: [
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            path: "Tests/TestSupport",
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "TestSupportTests", dependencies: ["TestSupport"], swiftSettings: swiftSettings),
        .testTarget(name: "GatewayCoreTests", dependencies: ["GatewayCore", "TestSupport"]),
        .testTarget(name: "GatewayStoreTests", dependencies: ["GatewayStore", "GatewayCore", "TestSupport"]),
        .testTarget(
            name: "GatewayStorePostgresTests",
            dependencies: [
                "GatewayStorePostgres", "GatewayStore", "GatewayCore", "TestSupport",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "GatewayHTTPTests",
            dependencies: [
                "GatewayHTTP", "GatewayCore", "FakeGemini", "TestSupport",
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        .testTarget(
            name: "GatewayServerTests",
            dependencies: [
                "GatewayServer", "GatewayHTTP", "GatewayStore", "GatewayCore", "FakeGemini", "TestSupport",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        .testTarget(
            name: "FakeGeminiTests",
            dependencies: ["FakeGemini", "TestSupport", .product(name: "AsyncHTTPClient", package: "async-http-client")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "GatewayCLITests",
            dependencies: [
                "gemini-gateway", "GatewayStore", "GatewayCore", "FakeGemini", "TestSupport",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
    ]
)
