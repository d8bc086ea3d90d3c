// pcap files (what `gatewayctl capture` and pcap-dump read back): the reader on arbitrary bytes,
// every record summarized; a file it reads is written again record for record.
import FuzzSupport
import PacketKit

@main struct Main { static func main() { runFuzzer { data, size in fuzz(data, size) } } }

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let input = FuzzInput(data, size)
    guard let reader = try? PcapReader(bytes: Array(input.bytes)) else { return 0 }
    var records: [PcapRecord] = []
    var iterator = reader.makeIterator()
    while let r = try? iterator.nextRecord() {
        records.append(r)
        r.data.withUnsafeBytes { _ = PacketSummary.describe($0, linkType: reader.linkType) }
        if records.count > 10_000 { break }
    }
    if let all = try? reader.records() { require(all.count >= records.count || records.count > 10_000, "records() found fewer than the iterator") }
    var writer = PcapWriter(linkType: reader.linkType, snapLength: reader.snapLength)
    for r in records { writer.append(r.data, seconds: r.seconds) }
    if let again = try? PcapReader(bytes: writer.bytes) {
        require((try? again.records().count) == records.count, "a written file reads back with another record count")
    } else {
        require(false, "PcapWriter wrote a file PcapReader refuses")
    }
    return 0
}
