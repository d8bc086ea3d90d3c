// swift-tools-version: 6.1
// Sixgate: bring IPv6 (and IPv4) to hosts that lack it through a tunnel gateway.
// Module map and import rules: docs/ARCHITECTURE.md (and ../shared/DESIGN.md).
import PackageDescription

let package = Package(
    name: "Sixgate",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "PacketKit", targets: ["PacketKit"]),
        .library(name: "RouteKit", targets: ["RouteKit"]),
        .library(name: "TunnelCore", targets: ["TunnelCore"]),
        .library(name: "NDPProxy", targets: ["NDPProxy"]),
        .library(name: "AddressPool", targets: ["AddressPool"]),
        .library(name: "SixgatePostgres", targets: ["SixgatePostgres"]),
        .library(name: "Diagnostics", targets: ["Diagnostics"]),
        .library(name: "Translator", targets: ["Translator"]),
        .library(name: "TunnelGateway", targets: ["TunnelGateway"]),
        .library(name: "TunnelClient", targets: ["TunnelClient"]),
        .library(name: "SixgateConfig", targets: ["SixgateConfig"]),
        .library(name: "SixgateDaemon", targets: ["SixgateDaemon"]),
        .library(name: "SixgateMetrics", targets: ["SixgateMetrics"]),
        .library(name: "SixgateSystem", targets: ["SixgateSystem"]),
        .executable(name: "gatewayd", targets: ["gatewayd"]),
        .executable(name: "gatewayctl", targets: ["gatewayctl"]),
        .executable(name: "tunnel-client", targets: ["tunnel-client"]),
        .executable(name: "ndp-proxy", targets: ["ndp-proxy"]),
        .executable(name: "sixgate-wg", targets: ["sixgate-wg"]),
        .executable(name: "pcap-dump", targets: ["pcap-dump"]),
        .executable(name: "ip6-route", targets: ["ip6-route"]),
        .executable(name: "ndp-config", targets: ["ndp-config"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.1.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.5.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.0.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
    ],
    targets: [
        // C shims (system libraries through pkg-config; Debian -dev packages).
        .systemLibrary(
            name: "CNetlink", path: "Sources/CNetlink", pkgConfig: "libnl-route-3.0",
            providers: [.apt(["libnl-3-dev", "libnl-route-3-dev"])]),
        // OpenSSL's libcrypto (Debian libssl-dev) and the TUN/recvmmsg wrappers TunnelCore needs.
        .target(name: "CTunnel", path: "Sources/CTunnel", linkerSettings: [.linkedLibrary("crypto")]),
        // AF_PACKET sockets with a BPF filter for NDPProxy.
        .target(name: "CPacketSocket", path: "Sources/CPacketSocket"),
        // libpq (Debian libpq-dev): the shared database of a group of gateways (SixgatePostgres).
        .systemLibrary(
            name: "CLibPQ", path: "Sources/CLibPQ", pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"])]),
        .systemLibrary(
            name: "CPcap", path: "Sources/CPcap", pkgConfig: "libpcap",
            providers: [.apt(["libpcap-dev"])]),

        // Process primitives (one lock, the clocks, named threads): Glibc only; below everything.
        .target(name: "SixgateSystem"),
        // Foundation: imports nothing of ours and nothing else.
        .target(name: "PacketKit", swiftSettings: [.enableUpcomingFeature("ExistentialAny")]),

        // Config files: a small TOML reader whose errors name file:line:key (Foundation only).
        .target(name: "SixgateConfig"),
        // What a daemon does as a process (issue 27: apart from config reading): its life (options,
        // signals, privilege drop, systemd readiness, the signal loop), detaching, pid files, log
        // sinks (file, stderr, syslog), the log limiter, hook scripts.
        .target(name: "SixgateDaemon", dependencies: ["CPrivileges", "SixgateSystem", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        // The release and the git commit (stamped at build time by the BuildInfo plugin) for every
        // executable's --version; a module of its own so a new commit relinks only the executables.
        .target(name: "SixgateVersion", plugins: ["BuildInfo"]),
        .plugin(name: "BuildInfo", capability: .buildTool()),
        // `metrics_listen`: /metrics over HTTP (libmicrohttpd, Debian libmicrohttpd-dev, through a C shim
        // for its varargs options, opened with dlopen on first use) in the exposition format of swift-prometheus.
        .target(name: "CMetricsHTTP", path: "Sources/CMetricsHTTP"),
        .target(name: "SixgateMetrics", dependencies: ["CMetricsHTTP", .product(name: "Prometheus", package: "swift-prometheus")]),
        // capget/capset and the bounding set (prctl), for dropping privileges after setup.
        .target(name: "CPrivileges", path: "Sources/CPrivileges"),

        // Capabilities.
        .target(name: "RouteKit", dependencies: ["PacketKit", "CNetlink", "SixgateSystem"]),
        // The I/O layer (issue 21's seam): the TUN device and UDP sockets, for TunnelCore and the
        // Translator alike (the Translator no longer imports TunnelCore to get a TUN device).
        .target(name: "SixgateIO", dependencies: ["PacketKit", "RouteKit", "CTunnel", "CPacketSocket", "SixgateSystem"]),
        .target(name: "TunnelCore", dependencies: ["PacketKit", "RouteKit", "CTunnel", "SixgateSystem", "SixgateIO"]),
        .target(name: "NDPProxy", dependencies: ["PacketKit", "RouteKit", "AddressPool", "SixgateConfig", "SixgateMetrics", "SixgateSystem", "SixgateIO"]),
        .target(name: "AddressPool", dependencies: [
            "PacketKit", "SixgateSystem",
            .product(name: "GRDB", package: "GRDB.swift"),
            .product(name: "HeapModule", package: "swift-collections"),
            .product(name: "DequeModule", package: "swift-collections"),
        ]),
        // Several gateways as one (issue 25): leases and clients in PostgreSQL through libpq, a change
        // feed and LISTEN/NOTIFY; AddressPool's allocator runs on it unchanged.
        .target(name: "SixgatePostgres", dependencies: ["AddressPool", "PacketKit", "SixgateSystem", "CLibPQ"]),
        .target(name: "Diagnostics", dependencies: ["PacketKit", "RouteKit", "CPcap", "SixgateSystem"]),
        .target(name: "Translator", dependencies: ["PacketKit", "RouteKit", "SixgateIO", "SixgateSystem"]),

        // Roles.
        .target(name: "TunnelGateway", dependencies: [
            "PacketKit", "RouteKit", "TunnelCore", "NDPProxy", "AddressPool", "Diagnostics", "SixgateConfig", "SixgateDaemon", "SixgateMetrics", "SixgateSystem", "Translator",
            "SixgatePostgres",
        ]),
        .target(name: "TunnelClient", dependencies: ["PacketKit", "RouteKit", "TunnelCore", "NDPProxy", "SixgateConfig", "SixgateDaemon", "Translator", "SixgateSystem"]),

        // Thin executables.
        .executableTarget(name: "gatewayd", dependencies: [
            "SixgateVersion", "SixgateSystem", "SixgateDaemon", "TunnelGateway", "SixgateConfig", "SixgateMetrics", .product(name: "ArgumentParser", package: "swift-argument-parser"), .product(name: "Logging", package: "swift-log"),
        ], path: "Sources/CLI/gatewayd"),
        .executableTarget(name: "gatewayctl", dependencies: [
            "SixgateVersion", "TunnelGateway", "TunnelCore", "RouteKit", "Diagnostics", .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], path: "Sources/CLI/gatewayctl"),
        .executableTarget(name: "tunnel-client", dependencies: [
            "SixgateVersion", "SixgateSystem", "SixgateDaemon", "TunnelClient", "SixgateConfig", .product(name: "ArgumentParser", package: "swift-argument-parser"), .product(name: "Logging", package: "swift-log"),
        ], path: "Sources/CLI/tunnel-client"),
        .executableTarget(name: "ndp-proxy", dependencies: [
            "SixgateVersion", "SixgateSystem", "SixgateDaemon", "NDPProxy", "SixgateConfig", "SixgateMetrics", .product(name: "ArgumentParser", package: "swift-argument-parser"), .product(name: "Logging", package: "swift-log"),
        ], path: "Sources/CLI/ndp-proxy"),
        .executableTarget(name: "sixgate-wg", dependencies: [
            "SixgateVersion", "SixgateSystem", "SixgateDaemon", "TunnelCore", "RouteKit", .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], path: "Sources/CLI/sixgate-wg"),

        // Examples (built with the package so they never rot).
        .executableTarget(name: "pcap-dump", dependencies: ["PacketKit"], path: "Examples/pcap-dump"),
        .executableTarget(name: "ip6-route", dependencies: ["PacketKit", "RouteKit"], path: "Examples/ip6-route"),
        .executableTarget(name: "ndp-config", dependencies: ["NDPProxy"], path: "Examples/ndp-config"),
        .executableTarget(name: "allocate", dependencies: ["AddressPool", "PacketKit"], path: "Examples/allocate"),
        .executableTarget(name: "npt-map", dependencies: ["PacketKit"], path: "Examples/npt-map"),
        .executableTarget(name: "client-lease", dependencies: ["TunnelClient"], path: "Examples/client-lease"),
        .executableTarget(name: "howto-doctor", dependencies: ["Diagnostics", "PacketKit"], path: "Examples/howto-doctor"),
        .executableTarget(name: "nat64", dependencies: ["Translator", "PacketKit"], path: "Examples/nat64"),
        .executableTarget(name: "metrics-endpoint", dependencies: ["SixgateMetrics"], path: "Examples/metrics-endpoint"),
        .executableTarget(name: "tunnel-pair", dependencies: ["PacketKit", "RouteKit", "TunnelCore"], path: "Examples/tunnel-pair"),
        .executableTarget(name: "engine-pair", dependencies: ["PacketKit", "TunnelCore"], path: "Examples/engine-pair"),
        .executableTarget(name: "fair-queue", dependencies: ["SixgateIO"], path: "Examples/fair-queue"),

        // Tests: one target per module that has behaviour to test.
        .target(name: "CTestSupport", path: "Tests/CTestSupport"),
        .target(name: "SixgateTestSupport", dependencies: ["CTestSupport", "RouteKit"], path: "Tests/TestSupport"),
        .testTarget(
            name: "PacketKitTests", dependencies: ["PacketKit", "SixgateTestSupport"],
            resources: [.copy("Fixtures")]),
        .testTarget(name: "TranslatorTests", dependencies: ["Translator", "PacketKit", "RouteKit", "TunnelCore", "SixgateTestSupport", "CTestSupport"]),
        .testTarget(name: "RouteKitTests", dependencies: ["RouteKit", "PacketKit", "SixgateTestSupport"]),
        .testTarget(name: "TunnelCoreTests", dependencies: ["TunnelCore", "SixgateIO", "PacketKit", "RouteKit", "SixgateSystem", "SixgateTestSupport"]),
        .testTarget(name: "AddressPoolTests", dependencies: ["AddressPool", "PacketKit", "SixgateTestSupport"]),
        .testTarget(name: "SixgatePostgresTests", dependencies: ["SixgatePostgres", "AddressPool", "PacketKit", "SixgateSystem", "SixgateTestSupport"]),
        .testTarget(name: "GatewayTests", dependencies: ["TunnelGateway", "TunnelCore", "RouteKit", "AddressPool", "PacketKit", "SixgateConfig", "SixgateTestSupport"]),
        .testTarget(name: "ClientTests", dependencies: ["TunnelClient", "TunnelCore", "RouteKit", "PacketKit", "SixgateConfig", "SixgateDaemon", "SixgateTestSupport"]),
        .testTarget(name: "NDPProxyTests", dependencies: ["NDPProxy", "AddressPool", "PacketKit", "RouteKit", "CPacketSocket", "SixgateSystem", "SixgateTestSupport"]),
        .testTarget(name: "DiagnosticsTests", dependencies: ["Diagnostics", "PacketKit", "RouteKit", "SixgateTestSupport"]),
        .testTarget(name: "CLITests", dependencies: ["SixgateTestSupport"]),
        .testTarget(name: "SixgateMetricsTests", dependencies: ["SixgateMetrics", "SixgateTestSupport"]),
        .testTarget(name: "SixgateSystemTests", dependencies: ["SixgateSystem"]),
    ]
)
