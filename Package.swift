// swift-tools-version:6.1
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "SiteSync",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "SiteSyncCore", targets: ["SiteSyncCore"]),
        .library(name: "TrialRecords", targets: ["TrialRecords"]),
        .library(name: "SiteSyncClient", targets: ["SiteSyncClient"]),
        .library(name: "SiteSyncRules", targets: ["SiteSyncRules"]),
        .library(name: "SiteSyncSQLiteStore", targets: ["SiteSyncSQLiteStore"]),
        .library(name: "SiteSyncPostgresStore", targets: ["SiteSyncPostgresStore"]),
        .library(name: "SiteSyncServer", targets: ["SiteSyncServer"]),
        .executable(name: "sitesync", targets: ["sitesync"]),
        .executable(name: "sitesync-server", targets: ["sitesync-server"]),
        .executable(name: "sitesync-bench", targets: ["sitesync-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.0"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/swiftcsv/SwiftCSV", from: "0.10.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache", from: "2.1.1"),
    ],
    targets: [
        // Shared by both sides: clocks, versions, wire messages, schema and validation. Foundation,
        // and swift-crypto: SHA-256 for the ids derived from content (conflict ids), scrypt for
        // people's passwords (_CryptoExtras).
        .target(
            name: "SiteSyncCore",
            dependencies: [.product(name: "Crypto", package: "swift-crypto"), .product(name: "_CryptoExtras", package: "swift-crypto")],
            swiftSettings: swiftSettings
        ),
        // The sync rules: validating, merging and applying a push, and reading a pull, as steps a
        // store carries out in its own transaction. No I/O, no HTTP, no database library: refusals
        // carry a stable code, and the server gives each its status.
        .target(name: "SiteSyncRules", dependencies: ["SiteSyncCore"], path: "rules", swiftSettings: swiftSettings),
        // SQLite storage shared by the replica and the server's SQLite store: value conversions,
        // schema migrations, stamps in shadow rows.
        .target(
            name: "SiteSyncSQLite",
            dependencies: [
                "SiteSyncCore",
                .product(name: "GRDB", package: "GRDB.swift"),
                // The SQLite C API, for binding values straight into prepared statements on hot paths.
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
            ],
            swiftSettings: swiftSettings
        ),
        // The trial's tables and their rules.
        .target(name: "TrialRecords", dependencies: ["SiteSyncCore"], swiftSettings: swiftSettings),
        // The site laptop: SQLite replica, change tracking, sync engine, HTTP transport.
        .target(
            name: "SiteSyncClient",
            dependencies: [
                "SiteSyncCore", "SiteSyncSQLite",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                // People's signing keys (Ed25519) and their wrapping by the password (AES-GCM).
                .product(name: "Crypto", package: "swift-crypto"),
                // HTTPS to a server whose certificate a private CA signed: URLSession on Linux
                // cannot be given a CA of its own.
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                // The password's scrypt at a sign-in, off the caller's executor.
                .product(name: "NIOPosix", package: "swift-nio"),
                // JSONDecoder reading a response's ByteBuffer without a copy.
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            path: "client",
            swiftSettings: swiftSettings
        ),
        // The embedded store: the server's data in one SQLite file, through GRDB. It implements the
        // rules' store ports; it knows no HTTP.
        .target(
            name: "SiteSyncSQLiteStore",
            dependencies: [
                "SiteSyncCore", "SiteSyncRules", "SiteSyncSQLite",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "stores/SQLite",
            swiftSettings: swiftSettings
        ),
        // The PostgreSQL store, for several server instances: postgres-nio, LISTEN/NOTIFY, advisory
        // locks. It implements the rules' store ports; it knows no HTTP.
        .target(
            name: "SiteSyncPostgresStore",
            dependencies: [
                "SiteSyncCore", "SiteSyncRules",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "stores/Postgres",
            swiftSettings: swiftSettings
        ),
        // The central server: HTTP app, auth, review and monitoring pages, over either store.
        .target(
            name: "SiteSyncServer",
            dependencies: [
                "SiteSyncCore", "SiteSyncRules", "SiteSyncSQLite", "SiteSyncSQLiteStore", "SiteSyncPostgresStore",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                // HTTP request and response parts in the server's pipeline (the request deadline).
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Mustache", package: "swift-mustache"),
            ],
            path: "server",
            swiftSettings: swiftSettings
        ),
        // What the two command-line tools show alike: aligned tables, colours on a terminal, durations.
        .target(name: "CommandLineOutput", dependencies: ["SiteSyncCore"], swiftSettings: swiftSettings),
        .executableTarget(
            name: "sitesync",
            dependencies: [
                "SiteSyncClient", "SiteSyncCore", "TrialRecords", "CommandLineOutput",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "SwiftCSV", package: "SwiftCSV"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "sitesync-server",
            dependencies: [
                "SiteSyncServer", "SiteSyncSQLiteStore", "SiteSyncPostgresStore", "SiteSyncRules", "SiteSyncCore", "SiteSyncSQLite", "TrialRecords",
                "CommandLineOutput",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "sitesync-bench",
            dependencies: [
                "SiteSyncClient", "SiteSyncServer", "SiteSyncSQLiteStore", "SiteSyncPostgresStore", "SiteSyncRules", "TrialRecords", "LoopbackHTTP",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // The getting-started guide's example: a screen's data layer on a replica, with live sync.
        // Built with everything else, and run by the end-to-end tests.
        .executableTarget(
            name: "LiveScreenExample",
            dependencies: ["SiteSyncClient", "TrialRecords", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Examples/LiveScreen",
            swiftSettings: swiftSettings
        ),
        // Raw HTTP/1.1 over loopback sockets from plain threads: the flood of the tests and the bench.
        .target(name: "LoopbackHTTP", swiftSettings: swiftSettings),
        // Helpers shared by the test targets; not a product.
        .target(
            name: "SiteSyncTestSupport",
            dependencies: [
                "SiteSyncServer", "SiteSyncSQLiteStore", "SiteSyncPostgresStore", "SiteSyncRules", "SiteSyncClient", "SiteSyncCore", "SiteSyncSQLite",
                "TrialRecords", "LoopbackHTTP",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            path: "Tests/SiteSyncTestSupport",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SiteSyncCoreTests", dependencies: ["SiteSyncCore", "SiteSyncTestSupport", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: swiftSettings),
        .testTarget(name: "TrialRecordsTests", dependencies: ["TrialRecords", "SiteSyncTestSupport"], swiftSettings: swiftSettings),
        .testTarget(
            name: "SiteSyncClientTests",
            dependencies: [
                "SiteSyncClient", "SiteSyncSQLite", "SiteSyncTestSupport", "TrialRecords", .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SiteSyncServerTests",
            dependencies: [
                "SiteSyncServer", "SiteSyncSQLiteStore", "SiteSyncPostgresStore", "SiteSyncRules", "SiteSyncSQLite", "SiteSyncTestSupport", "TrialRecords",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // Live servers on loopback, real replicas, and the command-line tools run as processes.
        .testTarget(
            name: "EndToEndTests",
            dependencies: [
                "SiteSyncClient", "SiteSyncServer", "SiteSyncSQLiteStore", "SiteSyncPostgresStore", "SiteSyncRules", "SiteSyncTestSupport", "TrialRecords",
                "sitesync", "sitesync-server", "LiveScreenExample",
                // The operator's name the account commands record.
                "CommandLineOutput",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "GRDB", package: "GRDB.swift"),
                // A channel for request contexts of the in-process server the convergence test drives.
                .product(name: "NIOEmbedded", package: "swift-nio"),
                // PostgreSQL failures injected into the convergence test's histories on that store.
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
