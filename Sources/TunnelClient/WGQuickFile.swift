// tunnel-client reads wg-quick(8) files too, for a static setup against any WireGuard server.
// Errors name file:line:key, as for the TOML file.
import Foundation
import PacketKit
import SixgateConfig
import TunnelCore

/// wg-quick(8) files: [Interface] PrivateKey, Address, DNS, MTU, ListenPort, Table (auto or off),
/// PreUp/PostUp/PreDown/PostDown; one [Peer] with PublicKey, PresharedKey, Endpoint, AllowedIPs,
/// PersistentKeepalive. Routes follow AllowedIPs as wg-quick does (a /0 takes the default route,
/// with the endpoint kept on the physical path by a host route instead of wg-quick's fwmark rules).
enum WGQuickFile {
    static func parse(_ text: String, path: String) throws(ConfigError) -> ClientConfiguration {
        var c = ClientConfiguration()
        c.path = path
        c.interface = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        if !ClientConfiguration.isInterfaceName(c.interface) { c.interface = "sixgate0" }
        var section = "", peers = 0
        var addresses: [AddressAssignment] = [], dns: [IPAddress] = [], allowed: [IPPrefix] = []
        var table = "auto"
        var seen: Set<String> = []
        var lineNumber = 0
        var havePrivate = false, havePublic = false, haveEndpoint = false
        func fail(_ key: String?, _ m: String) -> ConfigError { ConfigError(file: path, line: lineNumber, key: key, message: m) }
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNumber += 1
            let line = String(raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? "").trimmingCharacters(in: .whitespaces)
            if line.isEmpty { continue }
            if line.hasPrefix("[") {
                section = line.lowercased()
                guard section == "[interface]" || section == "[peer]" else { throw fail(nil, "unknown section \(line)") }
                if section == "[peer]" {
                    peers += 1
                    guard peers == 1 else { throw fail(nil, "more than one [Peer]: tunnel-client talks to one gateway") }
                }
                continue
            }
            guard let eq = line.firstIndex(of: "=") else { throw fail(nil, "expected Key = Value") }
            let key = line[..<eq].trimmingCharacters(in: .whitespaces)
            let value = line[line.index(after: eq)...].trimmingCharacters(in: .whitespaces)
            let lower = key.lowercased()
            let qualified = section + lower
            let multi: Set<String> = ["[interface]address", "[interface]dns", "[peer]allowedips", "[interface]preup", "[interface]postup", "[interface]predown", "[interface]postdown"]
            guard multi.contains(qualified) || seen.insert(qualified).inserted else { throw fail(key, "given twice") }
            let list = value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            switch qualified {
            case "[interface]privatekey":
                guard let k = Bytes32(base64: value) else { throw fail(key, "not a WireGuard private key") }
                c.privateKey = k; havePrivate = true
            case "[interface]address":
                for s in list {
                    guard let a = ClientConfiguration.assignment(s) else { throw fail(key, "\(s.debugDescription) is not address/length") }
                    addresses.append(a)
                }
            case "[interface]dns":
                for s in list {
                    guard let a = IPAddress(s) else { throw fail(key, "\(s.debugDescription) is not an IP address (search domains are not supported)") }
                    dns.append(a)
                }
            case "[interface]mtu":
                guard let m = UInt32(value), (1280...65535).contains(m) else { throw fail(key, "must be 1280 to 65535") }
                c.mtu = m
            case "[interface]listenport":
                guard let p = UInt16(value) else { throw fail(key, "not a port") }
                c.listenPort = p
            case "[interface]table":
                guard value == "auto" || value == "off" else { throw fail(key, "only auto and off are supported (routes go to the main table)") }
                table = value
            case "[interface]preup", "[interface]postup", "[interface]predown", "[interface]postdown":
                c.shellHooks[lower, default: []].append(value)
            case "[interface]fwmark", "[interface]saveconfig":
                throw fail(key, "not supported by tunnel-client (it keeps the endpoint off the tunnel with a host route, no fwmark)")
            case "[peer]publickey":
                guard let k = Bytes32(base64: value) else { throw fail(key, "not a WireGuard public key") }
                c.gatewayPublicKey = k; havePublic = true
            case "[peer]presharedkey":
                guard let k = Bytes32(base64: value) else { throw fail(key, "not a WireGuard key") }
                c.presharedKey = k
            case "[peer]endpoint":
                guard EndpointName(value) != nil else { throw fail(key, "\(value.debugDescription) is not host:port") }
                c.endpoint = value; haveEndpoint = true
            case "[peer]allowedips":
                for s in list {
                    guard let p = IPPrefix(s) else { throw fail(key, "\(s.debugDescription) is not a prefix") }
                    allowed.append(p)
                }
            case "[peer]persistentkeepalive":
                if value == "off" { c.keepalive = 0 } else {
                    guard let k = UInt16(value) else { throw fail(key, "seconds, or off") }
                    c.keepalive = k
                }
            default:
                throw fail(key, section.isEmpty ? "outside [Interface] or [Peer]" : "unknown key in \(section)")
            }
        }
        lineNumber = max(1, lineNumber)
        guard havePrivate else { throw ConfigError(file: path, line: 1, key: "PrivateKey", message: "missing in [Interface]") }
        guard havePublic else { throw ConfigError(file: path, line: 1, key: "PublicKey", message: "missing in [Peer]") }
        guard haveEndpoint else { throw ConfigError(file: path, line: 1, key: "Endpoint", message: "missing in [Peer]: tunnel-client connects out") }
        guard !addresses.isEmpty else { throw ConfigError(file: path, line: 1, key: "Address", message: "missing in [Interface]") }
        c.addresses = .fixed(addresses: addresses, dns: dns)
        c.allowedIPs = allowed
        func selection(_ v6: Bool) -> RouteSelection {
            if table == "off" { return .none }
            let mine = allowed.filter { $0.network.isV6 == v6 }
            if mine.contains(where: { $0.length == 0 }) { return .all }
            return mine.isEmpty ? .none : .prefixes(mine)
        }
        c.ipv6Routes = selection(true)
        c.ipv4Routes = selection(false)
        // wg-quick takes the default route whatever else holds one (it uses policy routing).
        c.replaceDefaultRoute = true
        return c
    }
}
