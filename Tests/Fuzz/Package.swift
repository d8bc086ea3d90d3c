// swift-tools-version: 6.1
// libFuzzer targets for every parser that reads hostile input (packets, NDP, WireGuard messages and
// the handshake state machine, the lease exchange, the UAPI, every config format). Built with
// `-sanitize=fuzzer,address` by scripts/fuzz.sh, which runs each for N seconds from the seed
// corpora in Corpus/<target>; a debug build, so targets can drive internal entry points
// (`@testable import`) exactly as the sockets would.
import PackageDescription

// SwiftPM names a path dependency after its folder: the root package is whatever the clone's folder
// is called, so the name is read from where this manifest sits (never a fixed "main").
let main = String(Context.packageDirectory.split(separator: "/").dropLast(2).last ?? "main")
func target(_ name: String, _ products: [String]) -> Target {
    .executableTarget(name: name, dependencies: ["FuzzSupport"] + products.map { .product(name: $0, package: main) }, path: "Sources/\(name)",
                      swiftSettings: [.unsafeFlags(["-parse-as-library"])])
}

let package = Package(
    name: "SixgateFuzz",
    platforms: [.macOS(.v15)],
    dependencies: [.package(path: "../..")],
    targets: [
        .target(name: "CFuzzSupport"),
        .target(name: "FuzzSupport", dependencies: ["CFuzzSupport", .product(name: "RouteKit", package: main)]),
        target("fuzz-packets", ["PacketKit"]),
        target("fuzz-pcap", ["PacketKit"]),
        target("fuzz-translator", ["PacketKit", "Translator"]),
        target("fuzz-icmp-extensions", ["PacketKit", "Translator"]),
        target("fuzz-ndp", ["PacketKit", "NDPProxy"]),
        target("fuzz-wireguard", ["PacketKit", "TunnelCore", "SixgateSystem"]),
        target("fuzz-offload", ["PacketKit", "TunnelCore"]),
        target("fuzz-lease", ["PacketKit"]),
        target("fuzz-uapi", ["PacketKit", "TunnelCore"]),
        target("fuzz-config-toml", ["SixgateConfig", "TunnelGateway", "TunnelClient", "NDPProxy"]),
        target("fuzz-config-npd6", ["NDPProxy"]),
        target("fuzz-config-ndppd", ["NDPProxy"]),
        target("fuzz-config-wgquick", ["TunnelClient"]),
    ]
)
