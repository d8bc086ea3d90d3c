// swift-tools-version: 6.1
// Benchmarks for Sixgate's hot paths: a plain harness (see README.md), each run beside a C
// reference doing the same work, compiled -O2, in the same process and run.
import PackageDescription

// SwiftPM names a path dependency after its folder: the root package is whatever the clone's folder
// is called, so the name is read from where this manifest sits (never a fixed "main").
let main = String(Context.packageDirectory.split(separator: "/").dropLast().last ?? "main")

let package = Package(
    name: "SixgateBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [.package(path: ".."), .package(url: "https://github.com/groue/GRDB.swift", from: "7.0.0")],
    targets: [
        .target(name: "CReference", cSettings: [.unsafeFlags(["-O2"])]),
        .target(name: "CHeapUsage"),
        .target(name: "CMallocCounter", cSettings: [.unsafeFlags(["-O2"])]),
        .executableTarget(
            name: "PacketKitBenchmarks",
            dependencies: [.product(name: "PacketKit", package: main), .product(name: "Translator", package: main), "CReference", "CMallocCounter"],
        ),
        .target(name: "CSealReference", cSettings: [.unsafeFlags(["-O2"])], linkerSettings: [.linkedLibrary("crypto")]),
        .executableTarget(
            name: "TunnelCoreBenchmarks",
            dependencies: [.product(name: "PacketKit", package: main), .product(name: "TunnelCore", package: main), "CSealReference", "CMallocCounter"]
        ),
        .executableTarget(
            name: "AddressPoolBenchmarks",
            dependencies: [.product(name: "PacketKit", package: main), .product(name: "AddressPool", package: main),
                           .product(name: "GRDB", package: "GRDB.swift"), "CHeapUsage"]
        ),
        .target(name: "CPacketSocketBench", path: "Sources/CPacketSocketBench"),
        .executableTarget(
            name: "NDPFlood",
            dependencies: [.product(name: "PacketKit", package: main), .product(name: "RouteKit", package: main), "CPacketSocketBench"]
        ),
        .executableTarget(
            name: "FilterRuleset",
            dependencies: [.product(name: "PacketKit", package: main), .product(name: "RouteKit", package: main)]
        ),
        .executableTarget(
            name: "PlannerBenchmarks",
            dependencies: [.product(name: "PacketKit", package: main), .product(name: "RouteKit", package: main),
                           .product(name: "AddressPool", package: main), .product(name: "TunnelGateway", package: main)]
        ),
        .executableTarget(
            name: "GroupBenchmarks",
            dependencies: [.product(name: "PacketKit", package: main), .product(name: "AddressPool", package: main),
                           .product(name: "SixgatePostgres", package: main), .product(name: "TunnelGateway", package: main),
                           .product(name: "GRDB", package: "GRDB.swift")]
        ),
        .executableTarget(
            name: "RouteKitBenchmarks",
            dependencies: [.product(name: "PacketKit", package: main), .product(name: "RouteKit", package: main)]
        ),
    ]
)
