// PacketKit's parsers on arbitrary bytes: every protocol view (IPv4, IPv6 and its extension
// headers, ICMPv4, ICMPv6, every NDP message and option, UDP, TCP, Ethernet, Linux cooked), the
// NDP validation rules, the summaries, and the value-type round trip: whatever PacketRepr parses
// it must emit, and what it emits it must parse again.
import FuzzSupport
import PacketKit

@main struct Main { static func main() { runFuzzer { data, size in fuzz(data, size) } } }

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let input = FuzzInput(data, size)
    let b = input.bytes
    _ = PacketSummary.describe(b, linkType: .ethernet)
    _ = PacketSummary.describe(b, linkType: .raw)
    _ = PacketSummary.describe(b, linkType: .linuxCooked)
    if let e = try? EthernetFrame(b) { _ = e.vlan; ip(e.payload) }
    if let l = try? LinuxCookedFrame(b) { ip(l.payload) }
    ip(b)
    transport(b)
    return 0
}

func ip(_ b: UnsafeRawBufferPointer) {
    if let p = try? IPv4Packet(b) {
        _ = p.isHeaderChecksumValid
        _ = IPv4Repr(p)
        let pseudo = p.pseudoHeader()
        if !p.isFragment {
            if let u = try? UDPDatagram(p.payload) { _ = u.isChecksumValid(.ipv4(source: p.source, destination: p.destination)); _ = pseudo }
            if let t = try? TCPSegment(p.payload) { _ = t.isChecksumValid(.ipv4(source: p.source, destination: p.destination)) }
            if let m = try? ICMPv4Message(p.payload) { _ = ICMPv4Repr(m) }
        }
    }
    if let p = try? IPv6Packet(b) {
        for h in p.extensionHeaders { _ = IPv6ExtensionHeaderRepr(h) }
        _ = p.fragment
        _ = IPv6Repr(p)
        _ = try? NDPValidation.validate(p)
        if p.fragment == nil {
            let u = p.upperLayer
            if let m = try? ICMPv6Message(u) {
                _ = m.isChecksumValid(source: p.source, destination: p.destination)
                _ = try? ICMPv6Repr(m)
                if let rs = try? RouterSolicitation(m) { options(rs.options) }
                if let ra = try? RouterAdvertisement(m) { options(ra.options); _ = try? RouterAdvertisementRepr(ra) }
                if let ns = try? NeighborSolicitation(m) { options(ns.options) }
                if let na = try? NeighborAdvertisement(m) { options(na.options) }
                if let r = try? Redirect(m) { options(r.options) }
            }
            if let t = try? UDPDatagram(u) { _ = t.isChecksumValid(.ipv6(source: p.source, destination: p.destination)) }
            if let t = try? TCPSegment(u) { _ = t.isChecksumValid(.ipv6(source: p.source, destination: p.destination)) }
        }
    }
    // The value types: what parses must emit, and what is emitted must parse.
    if let r = try? PacketRepr(parsing: b) {
        if let out = try? r.emit() {
            do { _ = try PacketRepr(parsing: out) } catch { require(false, "PacketRepr emitted bytes it cannot parse: \(error)") }
        }
    }
}

func options(_ o: NDPOptions) {
    for option in o { _ = try? NDPOptionRepr(option); _ = option.linkLayerAddress }
    _ = try? o.reprs()
}

func transport(_ b: UnsafeRawBufferPointer) {
    _ = try? UDPDatagram(b)
    if let t = try? TCPSegment(b) { _ = t.options }
    _ = try? ICMPv4Message(b)
    if let m = try? ICMPv6Message(b) { _ = try? ICMPv6Repr(m) }
}
