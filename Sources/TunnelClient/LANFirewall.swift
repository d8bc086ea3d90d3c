// Router mode's filter toward the LAN: a simple CPE's default (RFC 6092 §3.2-3.3, "deny unsolicited
// inbound"), RouteKit's `FilterTable` (`table inet sixgate_cpe_<tunnel>`) over the advertised
// prefix, with the config's openings. Applied when the LAN prefix is known or changes, removed
// on exit; a table left by a crash is replaced whole at the next apply.
import Foundation
import PacketKit
import RouteKit
import SixgateSystem

extension SixgateClient {
    var lanFilterTable: FilterTable {
        FilterTable(name: "sixgate_cpe_" + config.interface.map { $0.isLetter || $0.isNumber ? String($0) : "_" }.joined())
    }

    /// Brings the filter in step with `lanPrefix` (lock held). nil, or `firewall = "off"`: none.
    func updateLANFilter(_ lanPrefix: IPv6Prefix?) throws(ClientError) {
        guard let settings = config.router else { return }
        guard settings.firewall else {
            if state.lanFirewall == nil {
                state.lanFirewall = "off"
                log("router mode: firewall = \"off\": nothing of tunnel-client's filters inbound traffic to \(settings.interface); the LAN's hosts are reachable from everywhere")
            }
            return
        }
        guard let lanPrefix else { removeLANFilter(); return }
        let policy = ForwardPolicy(interface: settings.interface, inboundEcho: settings.inboundEcho, isolateHosts: false,
                                   hosts: [ProtectedHost(name: "lan", prefixes: [.v6(lanPrefix)], openings: settings.open)], filterIPv4: false)
        guard policy != lanFilter else { return }
        do {
            // The prefix is the only thing that changes at run time: one transaction on the sets
            // when the table is ours already, else the whole table.
            if lanFilter != nil { try lanFilterTable.update(policy) } else { try lanFilterTable.apply(policy) }
        } catch {
            throw ClientError(.lanFirewall, error)
        }
        lanFilter = policy
        let open = PortOpening.normalized(settings.open)
        state.lanFirewall = "table inet \(lanFilterTable.name): open \(open.isEmpty ? "nothing" : open.map(\.description).joined(separator: " "))"
        log("router mode: new inbound connections to \(lanPrefix) on \(settings.interface) dropped except \(open.isEmpty ? "nothing" : open.map(\.description).joined(separator: ", ")) (\(state.lanFirewall!))")
    }

    /// New inbound connections' packets dropped toward the LAN (lock held); nil without a filter.
    func lanDrops() -> UInt64? {
        guard lanFilter != nil else { return nil }
        let now = MonotonicClock.seconds()
        if now - lanDropCount.readAt >= 10 {
            lanDropCount = ((try? lanFilterTable.counters())?[ProtectedHost(name: "lan", prefixes: []).counterName]?.packets, now)
        }
        return lanDropCount.value
    }

    func removeLANFilter() {
        guard lanFilter != nil else { return }
        try? lanFilterTable.remove()
        lanFilter = nil
        lanDropCount = (nil, -1e9)
        state.lanFirewall = nil
    }
}
