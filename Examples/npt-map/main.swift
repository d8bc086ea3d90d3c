// npt-map: the RFC 6296 (NPTv6) twin of each address, as gatewayd's `npt_prefix` computes it for
// proxy NDP and the kernel then sees on the wire. Shows PacketKit's NPTv6Mapping.
//
// Usage: npt-map INSIDE-PREFIX OUTSIDE-PREFIX ADDRESS...   (an inside address maps out, an
//        outside one maps in)
//   e.g. npt-map fd01:203:405::/48 2001:db8:1::/48 fd01:203:405:1::1234   (RFC 6296 Appendix B)
// Prints "ADDRESS -> TWIN" per address; exits 1 if one is in neither prefix.
import PacketKit
#if canImport(Glibc)
import Glibc
#endif

let args = Array(CommandLine.arguments.dropFirst())
guard args.count >= 3, let inside = IPv6Prefix(args[0]), let outside = IPv6Prefix(args[1]) else {
    print("usage: npt-map INSIDE-PREFIX OUTSIDE-PREFIX ADDRESS...")
    exit(64)
}
guard let mapping = NPTv6Mapping(inside: inside, outside: outside) else {
    print("npt-map: \(inside) and \(outside): NPTv6 maps prefixes of the same length, at most /64")
    exit(64)
}
var failed = false
for text in args.dropFirst(2) {
    guard let a = IPv6Address(text), let twin = mapping.outbound(a) ?? mapping.inbound(a) else {
        print("npt-map: \(text) is in neither \(inside) nor \(outside)")
        failed = true
        continue
    }
    print("\(a) -> \(twin)")
}
exit(failed ? 1 : 0)
