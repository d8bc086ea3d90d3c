// pcap-dump: print one line per packet of a pcap file, like `tcpdump -n -r FILE`.
// Usage: pcap-dump FILE.pcap
import PacketKit

#if canImport(Glibc)
import Glibc
#endif

guard CommandLine.arguments.count == 2 else {
    printError("usage: pcap-dump FILE.pcap")
    exit(64)
}
let reader: PcapReader
do {
    reader = try PcapReader(path: CommandLine.arguments[1])
} catch {
    printError("pcap-dump: \(error)")
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
    printError("pcap-dump: stopped after \(count) packets: \(error)")
    exit(65)
}

extension String {
    func leftPadded(_ n: Int) -> String { String(repeating: "0", count: max(0, n - count)) + self }
}

/// Writes a line to standard error (fd 2) without touching the C `stderr` global.
func printError(_ text: String) {
    var line = text + "\n"
    line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}
