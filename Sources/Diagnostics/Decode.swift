// One line per packet, as `tcpdump -n` prints it: local time, then PacketKit's decode (NDP
// messages and ICMPv6 errors named).
import Foundation
import PacketKit

public enum PacketLine {
    /// "14:03:07.123456 IP6 2001:db8:1::4 > 2001:db8:ffff::1: ICMP6, echo request, id 7, seq 1, length 64".
    public static func format(_ packet: CapturedPacket, linkType: PcapLinkType) -> String {
        var t = time_t(packet.seconds)
        var parts = tm()
        localtime_r(&t, &parts)
        let micros = String(packet.microseconds)
        let clock = String(format: "%02d:%02d:%02d", parts.tm_hour, parts.tm_min, parts.tm_sec)
        var line = "\(clock).\(String(repeating: "0", count: max(0, 6 - micros.count)))\(micros) "
        line += PacketSummary.describe(packet.bytes, linkType: linkType)
        if packet.originalLength > packet.bytes.count { line += " [captured \(packet.bytes.count) of \(packet.originalLength) bytes]" }
        return line
    }
}
