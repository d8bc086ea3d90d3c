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
while true {
    let record: PcapRecord
    do {
        guard let r = try packets.nextRecord() else { break }
        record = r
    } catch where error.reason == .badTimestamp {
        // Malformed, said, and read on: the record's framing is intact.
        count += 1
        printError("pcap-dump: record \(count) skipped: \(error)")
        continue
    } catch {
        printError("pcap-dump: stopped after \(count) packets: \(error)")
        exit(65)
    }
    count += 1
    let line = record.data.withUnsafeBytes { PacketSummary.describe($0, linkType: reader.linkType) }
    let micros = record.nanoseconds / 1000   // below 1,000,000: the reader refuses more
    let digits = String(micros)
    print("\(record.seconds).\(String(repeating: "0", count: max(0, 6 - digits.count)))\(digits) \(line)")
}

