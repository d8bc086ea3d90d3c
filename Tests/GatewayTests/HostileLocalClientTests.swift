import Foundation
import SixgateTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// gatewayd's local sockets (the control socket and the WireGuard UAPI socket) against clients
/// that misbehave: hang up before reading the reply (once a SIGPIPE that ended gatewayd), and
/// never send anything (they may hold the serving thread for the 5 s client timeout, no longer).
@Suite(.enabled(if: isRoot && which("wireguard-go") != nil && which("wg") != nil && which("nft") != nil,
                "needs root, wireguard-go, wg and nft"))
struct HostileLocalClientTests {
    /// Connects to a unix socket; -1 if nobody listens.
    func connectUnix(_ path: String) -> Int32 {
        let s = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { b in path.utf8CString.withUnsafeBytes { b.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0.prefix(b.count - 1))) } }
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(s, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        if rc != 0 { close(s); return -1 }
        return s
    }

    @Test func clientsThatHangUpOrStallDoNotStopGatewayd() throws {
        let bed = try GatewayTestbed()
        defer { bed.destroy() }
        try bed.writeConfig(ndpProxy: "kernel")
        try bed.startGateway()
        for i in 0..<3 { _ = try bed.gatewayctl(["clients", "add", "c\(i)"]) }   // a status reply of some size
        let control = bed.stateDirectory + "/control.sock", uapi = "/var/run/wireguard/\(bed.tun).sock"

        // Ask, then hang up at once: the reply is written to a closed connection.
        for (path, request) in [(control, "{\"command\":\"status\"}\n"), (uapi, "get=1\n\n")] {
            for _ in 0..<30 {
                let s = connectUnix(path)
                #expect(s >= 0, "\(path) listens")
                _ = request.withCString { write(s, $0, strlen($0)) }
                close(s)
            }
        }
        usleep(300_000)
        #expect(bed.gateway?.process.isRunning == true, "gatewayd survived clients hanging up: \(bed.gateway?.output ?? "")")

        // A client that connects and says nothing, on each socket, while gatewayctl and wg still get answers.
        let stalls = [connectUnix(control), connectUnix(uapi)]
        defer { stalls.forEach { close($0) } }
        let status = try bed.gatewayctl(["status", "--json"])
        #expect(status.stdout.contains("\"c2\""), "gatewayctl got its answer past a stalled client")
        let wg = try bed.exec(bed.gw, ["wg", "show", bed.tun, "peers"])
        #expect(wg.stdout.split(separator: "\n").count == 3, "wg got its answer past a stalled client: \(wg.stdout)")
        #expect(bed.gateway?.process.isRunning == true)
    }
}
