// The client's CLAT (RFC 6877): a Translator on a TUN of its own, started when the lease gives no
// IPv4 but names a CLAT address and a NAT64 prefix; and the client's hooks.
import Foundation
import NDPProxy
import PacketKit
import RouteKit
import SixgateDaemon
import SixgateSystem
import Translator
import TunnelCore

extension SixgateClient {
    // MARK: CLAT

    /// Starts, updates or stops the CLAT's translator for `lease`; where it runs (for the planner),
    /// or nil when it does not (off, the lease gives IPv4 itself, or no CLAT address or prefix).
    /// Its forwarding sysctl, address and routes are in the plan. Lock held.
    func prepareCLAT(_ lease: LeaseMessage) throws(ClientError) -> CLATPlacement? {
        guard let settings = config.clat else { return nil }
        func idle(_ reason: String) -> CLATPlacement? {
            if clatIdleReason != reason { log("clat: not running: \(reason)"); clatIdleReason = reason }
            stopCLAT()
            return nil
        }
        if let v4 = lease.ipv4 { return idle("the gateway gives IPv4 itself (\(v4)), no translation needed") }
        guard let ipv6 = settings.ipv6 ?? lease.clatAddress else {
            return idle("the lease names no CLAT address (the gateway needs [nat64] enabled = true and clat = true), and clat.ipv6 is not set")
        }
        guard let prefix = settings.prefix ?? lease.nat64Prefix else {
            return idle("the lease names no NAT64 prefix (the gateway needs [nat64] enabled = true), and clat.prefix is not set")
        }
        clatIdleReason = nil
        // An IPv4 packet grows by 20 bytes as IPv6: the CLAT's MTU is the tunnel's less 20.
        let mtu = Int(config.mtu ?? lease.mtu.map(UInt32.init) ?? 1420)
        let settingsForTranslator = TranslatorConfiguration(prefix: prefix, explicitMappings: [ExplicitMapping(ipv4: settings.ipv4, ipv6: ipv6)],
                                                            ipv6MTU: mtu, ipv4MTU: mtu - 20,
                                                            ipv4Address: CLATSettings.translatorIPv4, ipv6Address: ipv6)
        do {
            if let clat {
                if clat.configuration != settingsForTranslator { try clat.update(configuration: settingsForTranslator) }
            } else {
                let t = try TranslatorDevice(name: settings.interface, configuration: settingsForTranslator)
                clat = t
                clatIndex = try rk.interfaceIndex(settings.interface)
                t.start()
            }
            try rk.setMTU(settings.interface, UInt32(mtu - 20))
            try rk.setLink(settings.interface, up: true)
        } catch {
            stopCLAT()
            throw ClientError(.clat(interface: settings.interface), error)
        }
        warnAboutAcceptRA()
        state.clat = "\(settings.ipv4) <-> \(ipv6) via \(prefix) on \(settings.interface)"
        return CLATPlacement(ipv4: settings.ipv4, ipv6: ipv6, prefix: prefix, interfaceIndex: clatIndex)
    }

    /// Stops the CLAT: its interface goes, and with it its address and the routes through it.
    func stopCLAT() {
        clat?.stop()
        clat = nil
        clatIndex = -1
        state.clat = nil
    }

    // MARK: Hooks

    var hookEnvironment: [String: String] {
        var env = ProcessInfo.processInfo.environment
        env["SIXGATE_INTERFACE"] = config.interface
        env["SIXGATE_GATEWAY_ENDPOINT"] = endpoint?.description ?? config.endpoint
        if let l = current {
            if let a = l.ipv6 { env[a.prefixLength == 128 ? "SIXGATE_IPV6_ADDRESS" : "SIXGATE_IPV6_PREFIX"] = a.description }
            if let a = l.ipv4 { env["SIXGATE_IPV4_ADDRESS"] = a.description }
            env["SIXGATE_DNS"] = l.dnsServers.map(\.description).joined(separator: " ")
            if let p = l.nat64Prefix { env["SIXGATE_NAT64_PREFIX"] = p.description }
            if let c = state.clat { env["SIXGATE_CLAT"] = c }
            if let m = l.mtu { env["SIXGATE_MTU"] = String(m) }
        }
        env["SIXGATE_ADDRESSES"] = state.addresses.joined(separator: " ")
        if let lan = config.router?.interface { env["SIXGATE_LAN_INTERFACE"] = lan }
        return env
    }

    func runHook(_ name: String) {
        guard let path = config.hooks[name] else { return }
        var env = hookEnvironment
        env["SIXGATE_EVENT"] = name
        if let problem = Hook.run(path, environment: env) { log("hook \(name): \(problem)") }
    }

    func runShell(_ name: String) {
        for command in config.shellHooks[name] ?? [] {
            if let problem = Hook.run("/bin/sh", arguments: ["-c", command.replacingOccurrences(of: "%i", with: config.interface)], environment: hookEnvironment) {
                log("\(name): \(problem)")
            }
        }
    }
}

extension LeaseMessage {
    /// Equal in everything that is installed (the transaction and lifetime aside).
    func sameConfiguration(as o: LeaseMessage) -> Bool {
        ipv6 == o.ipv6 && ipv4 == o.ipv4 && routes == o.routes && mtu == o.mtu && dnsServers == o.dnsServers && nat64Prefix == o.nat64Prefix
            && clatAddress == o.clatAddress && deprecated.map(\.prefix) == o.deprecated.map(\.prefix)
    }
}

