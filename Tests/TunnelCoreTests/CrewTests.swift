import PacketKit
import Testing
@testable import TunnelCore
#if canImport(Glibc)
import Glibc
#endif

/// A batch sealed by the reader alone and the same batch sealed with helpers give the same
/// datagrams in the same order (loopback, no root); a slot whose packet was not taken leaves no gap.
struct CrewTests {
    func sealedDatagrams(helpers: Int, packets: Int) throws -> [[UInt8]] {
        let receiver = try UDPSocket(port: 0), sender = try UDPSocket(port: 0)
        let crew = helpers > 0 ? Crew(helpers: helpers, name: "sg-test-seal") : nil
        defer { crew?.stop() }
        let send = SendBatch(capacity: 64, bufferSize: 2048, socket: sender, crew: crew)
        let endpoint = Endpoint(address: try IPAddress.parse("::1"), port: receiver.port)
        let out = WireGuardEngine.Outbound(key: Bytes32(Array(repeating: 7, count: 32))!, counter: 1000, remoteIndex: 0x1234_5678, endpoint: endpoint)
        var placed = 0
        while placed < packets {
            let k = min(packets - placed, send.room, 5)
            for j in 0..<k {
                let length = 60 + (placed + j) * 13 % 1300
                send.slot(j).initializeMemory(as: UInt8.self, repeating: UInt8(truncatingIfNeeded: placed + j), count: length)
                send.lengths[j] = length
            }
            var o = out
            o.counter += UInt64(placed)
            send.add(count: k, out: o)
            placed += k
            if send.isFull { send.flush() }
        }
        send.flush()
        let rx = DatagramBatch(capacity: 64, bufferSize: 2048)
        var got: [[UInt8]] = [], idle = 0
        while got.count < packets, idle < 50 {
            let n = receiver.receive(rx)
            if n == 0 { idle += 1; usleep(10_000); continue }
            for i in 0..<n { got.append(Array(UnsafeRawBufferPointer(start: rx.buffer(i), count: rx.length(i)))) }
        }
        return got
    }

    @Test func helpersSealTheSameBytesInTheSameOrder() throws {
        let alone = try sealedDatagrams(helpers: 0, packets: 150)
        let crew = try sealedDatagrams(helpers: 3, packets: 150)
        #expect(alone.count == 150)
        #expect(crew == alone, "three helpers and the reader give what the reader alone gives")
        let counters = alone.map { $0.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: 8, as: UInt64.self)) } }
        #expect(counters == (0..<150).map { 1000 + UInt64($0) }, "each packet with its reserved counter, in order")
    }

    @Test func aSkippedSlotLeavesNoGapInTheBatch() throws {
        let receiver = try UDPSocket(port: 0), sender = try UDPSocket(port: 0)
        let batch = DatagramBatch(capacity: 4, bufferSize: 256)
        let to = Endpoint(address: try IPAddress.parse("127.0.0.1"), port: receiver.port)
        for i in 0..<4 { batch.buffer(i).initializeMemory(as: UInt8.self, repeating: UInt8(i + 1), count: 10) }
        batch.append(length: 10, to: to, slot: 0)
        batch.append(length: 10, to: to, slot: 2)   // slot 1's packet was dropped
        batch.append(length: 10, to: to, slot: 3)
        #expect(sender.send(batch) == 3)
        usleep(20_000)
        let rx = DatagramBatch(capacity: 4, bufferSize: 256)
        #expect(receiver.receive(rx) == 3)
        #expect((0..<3).map { rx.buffer($0).load(as: UInt8.self) } == [1, 3, 4])
    }
}
