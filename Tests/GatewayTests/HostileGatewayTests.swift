import Foundation
import PacketKit
import RouteKit
import SixgateTestSupport
import Testing
import TunnelCore
#if canImport(Glibc)
import Glibc
#endif

/// A gateway that answers the lease exchange with whatever the test scripts (a TunnelCore device
/// in the gateway's namespace, no gatewayd): the client must treat the lease as untrusted input.
final class HostileGateway: @unchecked Sendable {
    let device: TunnelDevice
    let privateKey = X25519.generatePrivateKey()
    var publicKey: Bytes32 { X25519.publicKey(privateKey) }
    private let lock = NSLock()
    private var answer: LeaseMessage
    private var received: [LeaseMessage] = []

    init(namespace: String, interface: String, answer: LeaseMessage, clientKey: Bytes32) throws {
        self.answer = answer
        device = try TunnelDevice(interfaceName: interface, listenPort: 51820, namespace: .named(namespace))
        try device.configure(privateKey: privateKey)
        try device.setPeer(PeerConfiguration(publicKey: clientKey, allowedIPs: [IPPrefix("::/0")!, IPPrefix("0.0.0.0/0")!]))
        device.controlHandler = { [weak self] packet, key in self?.handle(packet, from: key) }
        device.start()
    }

    /// What it answers from now on.
    func answer(with lease: LeaseMessage) { lock.withLock { answer = lease } }
    /// Every message the client sent (requests and notices).
    var messages: [LeaseMessage] { lock.withLock { received } }

    private func handle(_ packet: UnsafeRawBufferPointer, from key: Bytes32) {
        guard let ip = try? IPv6Packet(packet), let udp = try? UDPDatagram(ip.upperLayer),
              let message = try? LeaseMessage(parsing: udp.payload) else { return }
        var reply = lock.withLock { received.append(message); return answer }
        guard message.kind == .request else { return }
        reply.transaction = message.transaction
        guard let payload = try? reply.encode(),
              let bytes = try? PacketRepr.ipv6(source: ip.destination, destination: ip.source, hopLimit: 255,
                                               .udp(UDPRepr(sourcePort: LeaseMessage.port, destinationPort: udp.sourcePort), payload: payload)).emit()
        else { return }
        _ = device.send(packet: bytes, to: key)
    }

    func stop() { device.stop() }
}

@Suite(.enabled(if: isRoot && which("nft") != nil, "needs root"))
struct HostileGatewayTests {
    /// A tunnel-client config toward the hostile gateway over the testbed's first carrier.
    func clientConfig(tun: String, key: Bytes32, gateway: HostileGateway, ipv4: String, extra: String) -> String {
        """
        interface = "\(tun)"
        private_key = "\(key.base64)"
        [gateway]
        public_key = "\(gateway.publicKey.base64)"
        endpoint = "198.51.100.129:51820"
        [routes]
        ipv6 = "default"
        ipv4 = "\(ipv4)"
        \(extra)
        """
    }

    /// The main table's routes in `ns`, one line each, as `ip` prints them (both families).
    func routes(_ bed: GatewayTestbed, _ ns: String) throws -> [String] {
        (try bed.exec(ns, ["ip", "route", "show", "table", "main"]).stdout + bed.exec(ns, ["ip", "-6", "route", "show", "table", "main"]).stdout)
            .split(separator: "\n").map(String.init).filter { !$0.contains("fe80::") }.sorted()
    }

    @Test func aHostileLeaseCannotRewriteTheClientsRoutesNorReachItsHooks() throws {
        let bed = try GatewayTestbed()
        defer { bed.destroy() }
        // The client's own world: a LAN (203.0.113.0/25 on a veth), an IPv6 default route on its
        // carrier, and the gateway's endpoint 198.51.100.129 on the connected 198.51.100.128/25.
        let lanIf = "sgy\(bed.id)", carrier = "sgc\(bed.id)", tun = "sgk\(bed.id)"
        try bed.exec(bed.cl, ["ip", "link", "add", lanIf, "type", "veth", "peer", "name", "sgz\(bed.id)"])
        try bed.exec(bed.cl, ["ip", "addr", "add", "203.0.113.1/25", "dev", lanIf])
        try bed.exec(bed.cl, ["ip", "link", "set", lanIf, "up"])
        try bed.exec(bed.cl, ["ip", "-6", "addr", "add", "2001:db8:c1::2/64", "dev", carrier, "nodad"])
        try bed.exec(bed.cl, ["ip", "-6", "route", "add", "default", "via", "2001:db8:c1::1", "dev", carrier])
        let before = try routes(bed, bed.cl)

        let clientKey = X25519.generatePrivateKey()
        var lease = LeaseMessage(kind: .reply, transaction: 0)
        lease.ipv6 = AddressAssignment(.v6(IPv6Address("2001:db8:1::4")!), prefixLength: 128)
        lease.ipv4 = AddressAssignment(.v4(IPv4Address("192.0.2.5")!), prefixLength: 1)
        lease.routes = ["::/1", "8000::/1", "198.51.100.0/24", "203.0.113.0/24", "2001:db8:77::/48", "0.0.0.0/0"].map { IPPrefix($0)! }
        lease.mtu = 576
        lease.dnsServers = ["ff02::1", "0.0.0.0", "255.255.255.255", "2001:db8:ffff::53"].map { IPAddress($0)! }
        lease.nat64Prefix = IPv6Prefix("64:ff9b::/33")
        lease.lifetime = 5
        let gateway = try HostileGateway(namespace: bed.gw, interface: "sgh\(bed.id)", answer: lease, clientKey: X25519.publicKey(clientKey))
        defer { gateway.stop() }

        let hookLog = bed.stateDirectory + "/hostile-hooks.log"
        let hook = bed.stateDirectory + "/hostile-hook.sh"
        try writeExecutable("#!/bin/sh\necho \"$SIXGATE_EVENT mtu=${SIXGATE_MTU-unset} dns=$SIXGATE_DNS\" >> \(hookLog)\n", to: hook)
        let config = clientConfig(tun: tun, key: clientKey, gateway: gateway, ipv4: "default", extra: "replace_default_route = false\n[hooks]\nup = \"\(hook)\"")
        let client = try bed.startTunnelClient(in: bed.cl, config: config, name: "hostile")
        defer { client.stop() }
        #expect(eventually(timeout: 20) { client.output.contains("configured:") }, "\(client.output)")

        // Nothing outside policy reached the kernel.
        let during = try routes(bed, bed.cl)
        #expect(!during.contains { $0.hasPrefix("::/1") || $0.hasPrefix("8000::/1") || $0.hasPrefix("128.0.0.0/1") || $0.hasPrefix("198.51.100.0/24") || $0.hasPrefix("203.0.113.0/24") },
                "\(during)")
        #expect(during.contains { $0.hasPrefix("2001:db8:77::/48 dev \(tun)") }, "a route inside policy is taken: \(during)")
        for line in before where !line.hasPrefix("default") || line.contains("2001:db8:c1::1") {
            #expect(during.contains(line), "the client's own route \(line) is intact: \(during)")
        }
        let v4 = try bed.exec(bed.cl, ["ip", "-4", "addr", "show", "dev", tun]).stdout
        #expect(v4.contains("192.0.2.5/32"), "host length only: \(v4)")
        // Every refusal is logged and reported to the gateway.
        for reason in ["route ::/1: as wide as a default route", "route 198.51.100.0/24: covers the gateway's endpoint", "route 203.0.113.0/24: overlaps 203.0.113.0/25",
                       "MTU 576", "DNS server ff02::1", "DNS server 255.255.255.255", "NAT64 prefix 64:ff9b::/33", "lifetime 5 s", "IPv4 192.0.2.5/1: taken as 192.0.2.5/32"] {
            #expect(client.output.contains("lease: left out \(reason)"), "\(reason): \(client.output)")
        }
        #expect(eventually(timeout: 5) { gateway.messages.contains { $0.kind == .notice && ($0.message ?? "").contains("route ::/1") } })
        // Hooks and status see only what passed.
        #expect(eventually(timeout: 5) { ((try? String(contentsOfFile: hookLog, encoding: .utf8)) ?? "").contains("up mtu=unset dns=2001:db8:ffff::53") },
                "\((try? String(contentsOfFile: hookLog, encoding: .utf8)) ?? "")")
        #expect(eventually(timeout: 5) { ((try? bed.tunnelClientStatus("hostile"))?["dnsServers"] as? [String]) == ["2001:db8:ffff::53"] })

        // On exit the routing table is as it was.
        client.stop(grace: 10)
        #expect(try routes(bed, bed.cl) == before)

        // A refusal whose message tries to forge a log line and colour the terminal.
        var refusal = LeaseMessage(kind: .refusal, transaction: 0)
        refusal.message = "no\nconfigured: 2001:db8::666/128\u{1b}[31m"
        gateway.answer(with: refusal)
        let second = try bed.startTunnelClient(in: bed.cl, config: config, name: "hostile2")
        defer { second.stop() }
        #expect(eventually(timeout: 20) { second.output.contains("the gateway refused a lease: no\\x0aconfigured: 2001:db8::666/128\\x1b[31m") }, "\(second.output)")
        #expect(!second.output.contains("\nconfigured: 2001:db8::666") && !second.output.contains("\u{1b}"))
    }

    /// Router mode: nothing of a hostile lease outside policy reaches the LAN's router advertisements.
    @Test(.enabled(if: which("radvdump") != nil, "needs radvdump"))
    func aHostileLeaseDoesNotReachTheLANsRouterAdvertisements() throws {
        let bed = try GatewayTestbed()
        defer { bed.destroy() }
        let lan = "sg-gl-\(bed.id)", lanHost = "sgl\(bed.id)", lanRouter = "sgm\(bed.id)", tun = "sgk\(bed.id)"
        try bed.addNamespace(lan, linkedTo: bed.cl, lanHost, lanRouter)
        let dump = try BackgroundProcess(["ip", "netns", "exec", lan, which("radvdump")!], captureOutput: true)
        defer { dump.stop() }
        let clientKey = X25519.generatePrivateKey()
        var lease = LeaseMessage(kind: .reply, transaction: 0)
        lease.ipv6 = AddressAssignment(.v6(IPv6Address("2001:db8:100::")!), prefixLength: 56)
        lease.routes = [IPPrefix("::/0")!]
        lease.mtu = 576
        lease.dnsServers = ["ff02::1", "::", "2001:db8:ffff::53"].map { IPAddress($0)! }
        lease.nat64Prefix = IPv6Prefix("64:ff9b::/33")
        let gateway = try HostileGateway(namespace: bed.gw, interface: "sgh\(bed.id)", answer: lease, clientKey: X25519.publicKey(clientKey))
        defer { gateway.stop() }
        let config = clientConfig(tun: tun, key: clientKey, gateway: gateway, ipv4: "none", extra: "[router]\ninterface = \"\(lanRouter)\"\ninterval = 4")
        let client = try bed.startTunnelClient(in: bed.cl, config: config, name: "hostile-router")
        defer { client.stop() }
        #expect(eventually(timeout: 20) { dump.output.contains("prefix 2001:db8:100::/64") }, "\(client.output) \(dump.output)")
        #expect(eventually(timeout: 10) { dump.output.contains("RDNSS 2001:db8:ffff::53") }, "\(dump.output)")
        let text = dump.output
        #expect(text.contains("AdvLinkMTU 1420;") && !text.contains("AdvLinkMTU 576;"), "\(text)")
        #expect(!text.contains("ff02::1") && !text.contains("RDNSS ::") && !text.contains("64:ff9b::/33"), "\(text)")
        #expect(client.output.contains("lease: left out MTU 576") && client.output.contains("lease: left out DNS server ff02::1"), "\(client.output)")
    }
}
