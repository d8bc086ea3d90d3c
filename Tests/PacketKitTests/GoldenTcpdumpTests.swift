import Foundation
import SixgateTestSupport
import Testing
@testable import PacketKit

/// Packets PacketKit builds, decoded by tcpdump (a decoder no one here wrote).
@Suite("Golden: tcpdump decodes what PacketKit builds")
struct GoldenTcpdumpTests {
    /// Writes the samples to a pcap (LINKTYPE_RAW, one second apart) and returns tcpdump's
    /// `-nn -vvv -tt` output split per packet, keyed by sample name.
    static func decodeSamples() throws -> [String: String] {
        var w = PcapWriter(linkType: .raw)
        let samples = Samples.bytes
        for (i, s) in samples.enumerated() { w.append(s.bytes, seconds: UInt32(i + 1)) }
        let path = NSTemporaryDirectory() + "sixgate-golden-\(uniqueSuffix()).pcap"
        try w.write(to: path)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let r = try run(["tcpdump", "-nn", "-vvv", "-tt", "-r", path], check: true)
        var blocks = [String: String]()
        var current = -1
        for line in r.stdout.split(separator: "\n", omittingEmptySubsequences: false) {
            if let dot = line.firstIndex(of: "."), let sec = Int(line[..<dot]), line[line.index(after: dot)...].hasPrefix("000000 ") {
                current = sec - 1
            }
            guard current >= 0, current < samples.count else { continue }
            blocks[samples[current].name, default: ""] += line + "\n"
        }
        #expect(blocks.count == samples.count, "tcpdump printed \(blocks.count) of \(samples.count) packets:\n\(r.stdout)\n\(r.stderr)")
        return blocks
    }

    static let expectations: [String: [String]] = [
        "icmp6-echo-request": ["2001:db8::4 > 2001:db8:ffff::1: [icmp6 sum ok] ICMP6, echo request", "id 4660, seq 1", "hlim 64", "payload length: 64"],
        "icmp6-echo-reply": ["ICMP6, echo reply", "id 4660, seq 1"],
        "icmp6-unreach": ["ICMP6, destination unreachable, unreachable port, 2001:db8::4 udp port 33434"],
        "icmp6-ptb": ["ICMP6, packet too big", "mtu 1280"],
        "icmp6-time-exceeded": ["ICMP6, time exceeded in-transit"],
        "icmp6-param-problem": ["ICMP6, parameter problem", "next header", "octet 40"],
        "ndp-rs": ["fe80::ff:fe00:a01 > ff02::2: [icmp6 sum ok] ICMP6, router solicitation", "source link-address option", "02:00:00:00:0a:01"],
        "ndp-ra": ["fe80::1 > ff02::1: [icmp6 sum ok] ICMP6, router advertisement", "hop limit 64", "Flags [other stateful]", "pref high",
                   "router lifetime 1800s", "reachable time 30000ms", "retrans timer 1000ms",
                   "mtu option (5), length 8 (1):  1420",
                   "prefix info option (3), length 32 (4): 2001:db8:1::/64, Flags [onlink, auto], valid time 2592000s, pref. time 604800s",
                   "rdnss option (25)", "lifetime 1800s, addr: 2001:db8::53 addr: 2001:db8::54",
                   "dnssl option (31)", "domain(s): example.com. lan.example.org.",
                   "route info option (24)", "2001:db8:2::/48, pref=high, lifetime=600s", "::/0, pref=low, lifetime=600s", "2001:db8:3:4:5::/80, pref=medium, lifetime=60s"],
        "ndp-ns": ["fe80::ff:fe00:a01 > ff02::1:ff00:4: [icmp6 sum ok] ICMP6, neighbor solicitation", "who has 2001:db8::4", "source link-address option", "02:00:00:00:0a:01", "hlim 255"],
        "ndp-ns-dad": [":: > ff02::1:ff00:4: [icmp6 sum ok] ICMP6, neighbor solicitation", "who has 2001:db8::4", "option (14), length 8 (1)"],
        "ndp-na": ["2001:db8::4 > fe80::ff:fe00:a01: [icmp6 sum ok] ICMP6, neighbor advertisement", "tgt is 2001:db8::4", "Flags [router, solicited]", "destination link-address option", "02:00:00:00:0a:01"],
        "ndp-redirect": ["fe80::1 > 2001:db8::4: [icmp6 sum ok] ICMP6, redirect", "2001:db8:ffff::1 to fe80::ff:fe00:a01", "destination link-address option"],
        "udp6": ["2001:db8::4.51820 > 2001:db8:ffff::1.51821: [udp sum ok] UDP, length 13"],
        "tcp6-syn": ["2001:db8::4.40000 > 2001:db8:ffff::1.80: Flags [S], cksum", "(correct)", "seq 1000", "win 64800", "options [mss 1440,nop,wscale 7]"],
        "tcp6-data": ["2001:db8:ffff::1.80 > 2001:db8::4.40000: Flags [P.], cksum", "(correct)", "seq 7:107, ack 1001", "length 100"],
        "udp6-ext-headers": ["HBH (rtalert: 0x0000)", "DSTOPT (opt_type 0x1e: len=1)", "RT6 (len=2, type=4, segleft=0", "[0]2001:db8:ffff::1)", "frag (0x00abcdef:0|19)", "1 > 2: UDP, length 3"],
        "udp6-srh-final-destination": ["RT6 (len=4, type=4, segleft=1, last-entry=1", "[0]2001:db8:ffff::1, [1]fe80::ff:fe00:a01)", "7 > 9: [udp sum ok] UDP, length 1"],
        "icmp4-echo": ["id 77", "192.0.2.10 > 203.0.113.1: ICMP echo request, id 9, seq 3, length 40", "flags [DF]", "ttl 64"],
        "icmp4-frag-needed": ["203.0.113.1 > 192.0.2.10: ICMP 203.0.113.1 unreachable - need to frag (mtu 1400)", "192.0.2.10.40000 > 203.0.113.1.443"],
        "udp4": ["192.0.2.10.5353 > 203.0.113.1.53", "proto UDP (17), length 33"],
        "tcp4": ["192.0.2.10.1234 > 203.0.113.1.443: Flags [S.], cksum", "(correct)", "seq 42", "options [mss 1460]"],
        "ipv4-options": ["options (RA)", "192.0.2.10.1 > 203.0.113.1.2: [udp sum ok] UDP, length 1"],
        "ipv4-fragment": ["id 99, offset 1480, flags [none], proto UDP (17), length 60"],
    ]

    @Test func tcpdumpDecodesEveryBuiltPacketWithTheRightFields() throws {
        let blocks = try Self.decodeSamples()
        for (name, _) in Samples.named {
            let text = blocks[name] ?? ""
            #expect(!text.contains("bad cksum"), "\(name):\n\(text)")
            // An ICMPv4 error quotes the invoking IP header plus 8 bytes (RFC 792), so tcpdump marks
            // the quoted TCP header as cut ("[|tcp]"); anything else cut short is a defect.
            let cut = text.replacingOccurrences(of: name == "icmp4-frag-needed" ? "[|tcp]" : "\u{0}", with: "")
            #expect(!cut.contains("[|"), "tcpdump saw a truncated \(name):\n\(text)")
            #expect(!text.lowercased().contains("malformed"), "\(name):\n\(text)")
            guard let wanted = Self.expectations[name] else { Issue.record("no expectations for \(name)"); continue }
            for w in wanted {
                #expect(text.contains(w), "\(name): expected \"\(w)\" in:\n\(text)")
            }
        }
    }

    /// The checker itself must be able to fail: a packet with a broken checksum is flagged.
    @Test func tcpdumpFlagsABrokenChecksum() throws {
        var bytes = Samples.bytes.first { $0.name == "udp6" }!.bytes
        bytes[bytes.count - 1] ^= 0xff
        var w = PcapWriter(linkType: .raw)
        w.append(bytes, seconds: 1)
        let path = NSTemporaryDirectory() + "sixgate-golden-bad-\(uniqueSuffix()).pcap"
        try w.write(to: path)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let r = try run(["tcpdump", "-nn", "-vvv", "-r", path], check: true)
        #expect(r.stdout.contains("bad udp cksum"), "\(r.stdout)")
    }
}
