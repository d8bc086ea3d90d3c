// tunnel-pair: two TunnelCore devices, one in each of two network namespaces, peered with each other
// over the namespaces' existing link, their TUN interfaces addressed through RouteKit. Prints each
// handshake as it completes and, on exit, both devices' counters.
//
// Usage: tunnel-pair NS_A OUTER_A NS_B OUTER_B [SECONDS=30]
//   e.g. tunnel-pair sg-a 2001:db8:5::1 sg-b 2001:db8:5::2 30
// then, from another shell: ip netns exec sg-a ping 2001:db8:77::2   (or 198.51.100.2)
// Inside: A is 2001:db8:77::1/64 and 198.51.100.1/24; B is ::2 and .2. Interfaces sgpa0/sgpb0.
import PacketKit
import RouteKit
import TunnelCore
#if canImport(Glibc)
import Glibc
#endif

let args = CommandLine.arguments
guard args.count >= 5, let outerA = try? IPAddress.parse(args[2]), let outerB = try? IPAddress.parse(args[4]) else {
    print("usage: tunnel-pair NS_A OUTER_A NS_B OUTER_B [SECONDS=30]")
    exit(64)
}
let seconds = args.count > 5 ? UInt32(args[5]) ?? 30 : 30

/// One side: a device with a fresh key in `namespace`, its TUN addressed and up.
func makeSide(_ namespace: String, interface: String, host: UInt8) throws -> TunnelDevice {
    let ns = NetworkNamespace.named(namespace)
    let device = try TunnelDevice(interfaceName: interface, listenPort: 51820, namespace: ns)
    try device.configure(privateKey: X25519.generatePrivateKey())
    let rk = try RouteSocket(namespace: ns)
    let index = try rk.interfaceIndex(interface)
    try rk.setMTU(interface, 1420)
    try rk.ensureAddress(InterfaceAddress(interfaceIndex: index, address: try IPAddress.parse("2001:db8:77::\(host)"),
                                          prefixLength: 64, flags: InterfaceAddress.noDAD))
    try rk.ensureAddress(InterfaceAddress(interfaceIndex: index, address: try IPAddress.parse("198.51.100.\(host)"), prefixLength: 24))
    try rk.setLink(interface, up: true)
    return device
}

do {
    let a = try makeSide(args[1], interface: "sgpa0", host: 1)
    let b = try makeSide(args[3], interface: "sgpb0", host: 2)
    // Cryptokey routing: each side's peer owns the other's inner addresses.
    try a.setPeer(PeerConfiguration(publicKey: b.publicKey!, endpoint: Endpoint(address: outerB, port: b.listenPort),
                                    allowedIPs: [try IPPrefix.parse("2001:db8:77::2/128"), try IPPrefix.parse("198.51.100.2/32")]))
    try b.setPeer(PeerConfiguration(publicKey: a.publicKey!, endpoint: Endpoint(address: outerA, port: a.listenPort),
                                    allowedIPs: [try IPPrefix.parse("2001:db8:77::1/128"), try IPPrefix.parse("198.51.100.1/32")]))
    for (name, device) in [("A", a), ("B", b)] {
        device.onEvent = { event in
            if case .handshakeCompleted(let key) = event { print("\(name): handshake completed with \(key.base64)") } else { print("\(name): \(event)") }
            fflush(nil)
        }
        device.start()
    }
    print("tunnel-pair: up for \(seconds) s (A \(a.publicKey!.base64), B \(b.publicKey!.base64))")
    fflush(nil)
    sleep(seconds)
    a.stop(); b.stop()
    print("A: \(a.statistics)")
    print("B: \(b.statistics)")
} catch {
    print("tunnel-pair: \(error)")
    exit(1)
}
