// gatewayd — the gateway daemon (TUN, routes, NAT44, NDP proxy, leases).
// Thin executable: parses arguments and prints; the work lives in the library modules.
#if canImport(Glibc)
import Glibc
#endif

let usage = """
    gatewayd: the gateway daemon (TUN, routes, NAT44, NDP proxy, leases).
    This command is not implemented yet (tracking issue 6 of Sixgate).
    What works today: the PacketKit library and the pcap-dump example (see README.md).
    """
if CommandLine.arguments.dropFirst().contains(where: { $0 == "--help" || $0 == "-h" }) {
    print(usage)
    exit(0)
}
printError(usage)
exit(69)  // EX_UNAVAILABLE: refuse rather than pretend.

/// Writes a line to standard error (fd 2) without touching the C `stderr` global.
func printError(_ text: String) {
    var line = text + "\n"
    line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}
