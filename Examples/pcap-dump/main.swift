// pcap-dump: print one line per packet of a pcap file, like `tcpdump -n -r FILE`.
// Usage: pcap-dump FILE.pcap
import PacketKit

#if canImport(Glibc)
import Glibc
#endif

guard CommandLine.arguments.count == 2 else {
    fputs("usage: pcap-dump FILE.pcap\n", stderr)
    exit(64)
}
let reader: PcapReader
do {
    reader = try PcapReader(path: CommandLine.arguments[1])
} catch {
    fputs("pcap-dump: \(error)\n", stderr)
    exit(66)
}
var iterator = reader.makeIterator()
var count = 0
while let record = iterator.next() {
    count += 1
    let line = record.data.withUnsafeBytes { PacketSummary.describe($0, linkType: reader.linkType) }
    print("\(record.seconds).\(String(record.nanoseconds / 1000).leftPadded(6)) \(line)")
}
if let error = iterator.error {
    fputs("pcap-dump: stopped after \(count) packets: \(error)\n", stderr)
    exit(65)
}

extension String {
    func leftPadded(_ n: Int) -> String { String(repeating: "0", count: max(0, n - count)) + self }
}
