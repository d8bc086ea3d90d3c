// pcap-dump: print one line per packet of a pcap file, like `tcpdump -n -r FILE`.
// Usage: pcap-dump FILE.pcap
import PacketKit

#if canImport(Glibc)
import Glibc
#endif

/// Writes a line to standard error (fd 2).
func printError(_ text: String) {
    var line = text + "\n"
    line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}

guard CommandLine.arguments.count == 2 else { printError("usage: pcap-dump FILE.pcap"); exit(64) }
let reader: PcapReader
do { reader = try PcapReader(path: CommandLine.arguments[1]) } catch { printError("pcap-dump: \(error)"); exit(66) }

var packets = reader.makeIterator()
var count = 0
while let record = packets.next() {
    count += 1
    let micros = String(record.nanoseconds / 1000)
    let line = record.data.withUnsafeBytes { PacketSummary.describe($0, linkType: reader.linkType) }
    print("\(record.seconds).\(String(repeating: "0", count: 6 - micros.count))\(micros) \(line)")
}
if let error = packets.error {
    printError("pcap-dump: stopped after \(count) packets: \(error)")
    exit(65)
}
