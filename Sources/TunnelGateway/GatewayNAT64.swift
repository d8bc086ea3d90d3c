// The gateway's NAT64 translator (`[nat64]`): its TUN device is made at start (the routes into it
// are in the plan), its mappings follow the plan's.
import Foundation
import PacketKit
import RouteKit
import Translator

extension Gateway {
    /// Creates the translator's TUN and brings it up (lock held); `start` routes into it (the
    /// plan's routes) and starts it once the mappings are set.
    func createTranslator(_ n: NAT64Settings) throws(GatewayError) {
        let t: TranslatorDevice
        do { t = try TranslatorDevice(name: n.interface, configuration: planner.translatorConfiguration(n, mappings: [])) } catch { throw .setup("NAT64 \(n.interface)", error) }
        do {
            try rk.setLink(n.interface, up: true)
            translatorIndex = try rk.interfaceIndex(n.interface)
        } catch {
            throw .setup("NAT64 \(n.interface)", error)
        }
        translator = t
        log("nat64: \(n.prefix) on \(n.interface) (\(t.tun.offload ? "with" : "without") TCP segmentation offload), pool \(n.pool)")
        // The Well-Known Prefix carries global IPv4 only (RFC 6052 §3.1): hosts on a non-global
        // IPv4 network of the uplink's are out of reach through it. Said once, at start.
        if n.prefix == NAT64Settings(interface: "").prefix {
            let local = ((try? rk.addresses(interface: config.uplink)) ?? []).compactMap { a -> String? in
                guard case .v4(let v4) = a.address, !v4.isGloballyRoutable else { return nil }
                return "\(IPv4Prefix(containing: v4, length: a.prefixLength))"
            }
            if !local.isEmpty {
                log("warning: nat64 uses the Well-Known Prefix \(n.prefix), which carries only global IPv4 addresses (RFC 6052 §3.1): clients cannot reach the uplink's own network \(local.joined(separator: ", ")) through it; set [nat64] prefix to a network-specific prefix (e.g. 64:ff9b:1::/96, RFC 8215) if they must")
            }
        }
    }

    /// Brings the translator's mappings in step with the plan (lock held).
    func updateTranslator() {
        guard let t = translator, let n = config.nat64 else { return }
        do { try t.update(configuration: planner.translatorConfiguration(n, mappings: plan.translatorMappings)) } catch { log("nat64: mappings not updated: \(error)") }
    }
}
