// The NDP proxy's solicitation handler (NDPProxy.Responder), driven as its socket loop drives
// it: frames from the outer interface, advertisements from the inner one, expiry of what it waits
// for, then the batch's answers sent and its counters published. The rule has every kind of
// target (static, auto, iface, a deny list). Runs on loopback in a private network namespace; the
// ICMPv6 checksum is fixed up when the first input byte says so, to get past validation.
import FuzzSupport
import PacketKit
@testable import NDPProxy

nonisolated(unsafe) let responder: Responder = {
    enterPrivateNetworkNamespace()
    var rule = ProxyRule(interface: "lo", prefixes: [IPv6Prefix("2001:db8:1::/64")!])
    rule.autoPrefixes = [IPv6Prefix("2001:db8:2::/64")!]
    rule.ifacePrefixes = [IPv6Prefix("2001:db8:3::/64")!]
    rule.innerInterface = "lo"
    rule.listType = .black
    rule.addresses = [IPv6Address("2001:db8:1::bad")!]
    rule.solicitTimeout = 0.001
    do { return try Responder(rule: rule) } catch { fatalError("\(error)") }
}()

@main struct Main { static func main() { runFuzzer { data, size in fuzz(data, size) } } }

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    var input = FuzzInput(data, size)
    let fix = input.bool()
    responder.beginBatch()
    var steps = 0
    while !input.isEmpty && steps < 64 {
        steps += 1
        let kind = input.u8() % 3
        if kind == 2 { responder.expireInner(); continue }
        var frame = input.take(Int(input.u16() % 1600))
        if fix { fixICMPv6Checksum(&frame) }
        frame.withUnsafeBytes { kind == 0 ? responder.handle($0) : responder.handleInner($0) }
    }
    responder.endBatch()
    let s = responder.statistics
    // One answer at most per solicitation received, whether at once or once the inner host answered.
    require(s.answered <= s.received, "more answers than solicitations: \(s)")
    return 0
}
