import Foundation
import SixgateTestSupport
import Testing
@testable import RouteKit

@Suite("Typed sysctls")
struct SysctlTests {
    @Test func keysMapToProcPaths() throws {
        #expect(try SysctlKey.ipv6Forwarding(.all).path == "/proc/sys/net/ipv6/conf/all/forwarding")
        #expect(try SysctlKey.proxyNDP(.interface("eth0.100")).path == "/proc/sys/net/ipv6/conf/eth0.100/proxy_ndp")
        #expect(SysctlKey.ipv4Forwarding.path == "/proc/sys/net/ipv4/ip_forward")
        #expect(try SysctlKey.acceptRA(.default).name == "net.ipv6.conf.default.accept_ra")
    }

    @Test("interface names follow Linux's rules", arguments: ["", ".", "..", "a/b", "a:b", "has space", "sixteen-chars-xx"])
    func rejectsInvalidInterfaceNames(name: String) {
        #expect(throws: SysctlError.invalidInterfaceName(name)) { try SysctlKey.proxyNDP(.interface(name)) }
    }

    @Test func missingInterfaceNamesTheKeyAndTheLikelyCause() throws {
        let key = try SysctlKey.ipv6Forwarding(.interface("sgnosuchif0"))
        do {
            _ = try Sysctl.read(key)
            Issue.record("read a sysctl of an interface that does not exist")
        } catch {
            #expect(error == .noSuchKey(key))
            #expect(error.description.contains("net.ipv6.conf.sgnosuchif0.forwarding"))
        }
    }

    /// RouteKit's reads agree with procps `sysctl -n` (read-only: tests never change the host's sysctls).
    @Test func readsAgreeWithSysctl() throws {
        for key in [SysctlKey.ipv4Forwarding, try .ipv6Forwarding(.all), try .acceptRA(.interface("lo")), try .disableIPv6(.default)] {
            let r = try run(["sysctl", "-n", key.name], check: true)
            #expect(try Sysctl.read(key) == Int(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)), "\(key)")
        }
    }

    @Test func libnlLinksAndOpensARouteSocket() throws {
        #expect(Netlink.libraryVersion.hasPrefix("libnl 3."))
        try Netlink.probeRouteSocket()
    }
}
