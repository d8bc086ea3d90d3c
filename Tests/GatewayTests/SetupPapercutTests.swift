import Foundation
import SixgateTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Issue 28, point 5: what a first setup trips over, checked the way an operator meets it.
@Suite(.enabled(if: isRoot && which("nft") != nil, "needs root and nft"))
struct SetupPapercutTests {
    @Test func theTunnelMTUThatDoesNotFitTheUplinkIsSaidWithTheNumbers() throws {
        let bed = try GatewayTestbed()
        defer { bed.destroy() }
        try bed.writeConfig(ndpProxy: "kernel", extra: "mtu = 1500")
        let check = try bed.exec(bed.gw, ["\(builtProductsDirectory)/gatewayd", "--config", bed.configPath, "--check-config"], check: false)
        #expect(check.succeeded && check.stderr.contains("warning: \(bed.configPath): mtu = 1500 does not fit \(bed.uplink)'s MTU 1500: each tunnel packet needs 1560 bytes")
                && check.stderr.contains("set mtu = 1440"), "\(check)")
        try bed.startGateway()
        #expect(bed.gateway!.output.contains("warning: mtu = 1500 does not fit"), "\(bed.gateway!.output)")
    }

    @Test func aPrefixesModeClientGetsARouterSectionToFillIn() throws {
        let bed = try GatewayTestbed()
        defer { bed.destroy() }
        try bed.writeConfig(ndpProxy: "off", ipv6: "prefix = \"2001:db8:100::/56\"\nallocation = \"prefixes\"\ndelegated_length = 64", ipv4: "enabled = false")
        let text = try bed.gatewayctl(["clients", "add", "carol", "--format", "tunnel-client"]).stdout
        #expect(text.contains("# This client gets a delegated /64") && text.contains("# [router]\n# interface = \"lan0\""), "\(text)")
        #expect(text.contains("# The gateway's firewall lets in replies"))
    }
}
