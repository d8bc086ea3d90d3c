import Foundation
import SixgateTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Issue 28: after kill -9 and a restart, gatewayd starts the handshakes toward its clients' last
/// endpoints itself, so a stock WireGuard client recovers in about one round trip instead of at its
/// own rekey timer (keepalive 10 s + rekey-timeout 5 s of loss). The loss window is printed.
@Suite(.enabled(if: isRoot && which("wireguard-go") != nil && which("wg") != nil && which("nft") != nil,
                "needs root, wireguard-go, wg and nft"))
struct RestartTests {
    @Test func afterKill9TheGatewayReachesOutToItsClientsAndTheLossWindowIsShort() throws {
        let bed = try GatewayTestbed()
        defer { bed.destroy() }
        #expect(try bed.startGatewayWithAlice())
        // gatewayd keeps the clients' endpoints in its state directory (every 10 s and at stop).
        let endpoints = bed.stateDirectory + "/endpoints"
        #expect(eventually(timeout: 15) { ((try? String(contentsOfFile: endpoints, encoding: .utf8)) ?? "").contains("alice 198.51.100.130:") })

        let interval = 0.1, count = 120
        let traffic = try BackgroundProcess(["ip", "netns", "exec", bed.cl, "ping", "-i", "\(interval)", "-c", "\(count)", "-W", "1", "2001:db8:ffff::1"], captureOutput: true)
        defer { traffic.stop() }
        usleep(2_000_000)
        bed.stopGateway(signal: SIGKILL)
        try bed.startGateway()
        #expect(bed.gateway!.output.contains("handshakes started toward 1 client(s) at their last endpoints"), "\(bed.gateway!.output)")
        traffic.process.waitUntilExit()
        let summary = traffic.output.split(separator: "\n").first { $0.contains("packets transmitted") }.map(String.init) ?? ""
        let numbers = summary.split(separator: ",").map { $0.split(separator: " ").first.flatMap { Int($0) } ?? -1 }
        let lost = numbers.count >= 2 ? numbers[0] - numbers[1] : count
        let window = Double(lost) * interval
        print("restart after kill -9: \(lost) of \(numbers.first ?? count) echo requests lost, a loss window of about \(String(format: "%.1f", window)) s (\(summary))")
        // Without reaching out, the client would lose at least its keepalive + rekey timeout (15 s).
        #expect(window < 8, "loss window \(window) s: \(traffic.output.suffix(400))")
        // The doctor does not call a client that is on its way a problem just after a restart.
        let r = try bed.gatewayctl(["doctor", "--json", "--capture-seconds", "0"], check: false)
        let checks = ((try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])?["checks"] as? [[String: Any]]) ?? []
        #expect(checks.first { $0["id"] as? String == "clients.handshake" }?["status"] as? String == "ok", "\(r.stdout)")
    }
}
