// ndp-config: read an npd6.conf, ndppd.conf or ndp-proxy TOML the way ndp-proxy does, and say what
// it means: the format, one line per rule, and every warning (host bits cleared, idle or merged
// blocks, overlapping prefixes). With --serve SECONDS it also answers on the rules' interfaces
// for that long and prints the counters (needs CAP_NET_RAW).
// Usage: ndp-config FILE [--serve SECONDS]
import Foundation
import NDPProxy

let args = CommandLine.arguments
guard args.count == 2 || (args.count == 4 && args[2] == "--serve"), let path = args.dropFirst().first else {
    print("usage: ndp-config FILE [--serve SECONDS]")
    exit(64)
}
do {
    let configuration = try NDPProxyConfig.read(path)
    print("\(path): \(configuration.format.rawValue) format")
    for line in configuration.summary { print("  \(line)") }
    for warning in configuration.warnings { print(warning) }
    if args.count == 4, let seconds = UInt32(args[3]) {
        let service = try ProxyService(path: path) { _, line in print(line) }
        service.start()
        sleep(seconds)
        for line in service.counters { print(line) }
        service.stop()
    }
} catch {
    print("ndp-config: \(error)")
    exit(1)
}
