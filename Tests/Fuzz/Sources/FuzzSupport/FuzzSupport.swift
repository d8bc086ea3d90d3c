// What every fuzz target shares: reading structured values out of the fuzzer's bytes, invariant
// checks that stop the run with a message (libFuzzer saves the input), and a private network
// namespace for targets that need sockets or a TUN device, so a run touches nothing of the host's.
import CFuzzSupport
import RouteKit
#if canImport(Glibc)
import Glibc
#endif

/// The fuzzer's input as a stream: fixed-size values and slices, zeros once it runs out.
public struct FuzzInput {
    public let bytes: UnsafeRawBufferPointer
    public var offset = 0
    public init(_ data: UnsafePointer<UInt8>?, _ size: Int) { bytes = UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : size) }
    public var isEmpty: Bool { offset >= bytes.count }
    public var remaining: Int { max(0, bytes.count - offset) }
    public mutating func u8() -> UInt8 {
        guard offset < bytes.count else { return 0 }
        defer { offset += 1 }
        return bytes[offset]
    }
    public mutating func u16() -> UInt16 { UInt16(u8()) << 8 | UInt16(u8()) }
    public mutating func u32() -> UInt32 { UInt32(u16()) << 16 | UInt32(u16()) }
    public mutating func bool() -> Bool { u8() & 1 == 1 }
    /// Up to `count` bytes (fewer at the end).
    public mutating func take(_ count: Int) -> [UInt8] {
        let n = min(count, remaining)
        defer { offset += n }
        return Array(bytes[offset..<offset + n])
    }
    /// Everything left.
    public mutating func rest() -> [UInt8] { take(remaining) }
    /// The whole input as text (invalid UTF-8 repaired, as the parsers receive file contents).
    public var text: String { String(decoding: bytes, as: UTF8.self) }
}

/// Stops the run when an invariant does not hold (a finding: libFuzzer keeps the input as crash-*).
@inline(never)
public func require(_ condition: Bool, _ message: @autoclosure () -> String, file: StaticString = #file, line: UInt = #line) {
    if !condition { fatalError("invariant: \(message())", file: file, line: line) }
}

/// Moves this process into a network namespace of its own (once) with its loopback up: sockets,
/// TUN devices and packet sockets a target opens are invisible to the host. Needs root.
public func enterPrivateNetworkNamespace() {
    if privateNamespaceEntered { return }
    privateNamespaceEntered = true
    guard sixgate_fuzz_unshare_network() == 0 else { fatalError("unshare(CLONE_NEWNET): \(String(cString: strerror(errno))) (fuzz targets with sockets need root)") }
    do { try RouteSocket().setLink("lo", up: true) } catch { fatalError("lo up: \(error)") }
}
nonisolated(unsafe) var privateNamespaceEntered = false

/// Recomputes the ICMPv6 checksum of an Ethernet frame carrying IPv6 with ICMPv6 right after the
/// fixed header, so the fuzzer's mutations reach the code behind the checksum check. Anything
/// else is left as it is.
public func fixICMPv6Checksum(_ frame: inout [UInt8]) {
    let ip = 14
    guard frame.count >= ip + 40 + 4, frame[12] == 0x86, frame[13] == 0xdd, frame[ip] >> 4 == 6, frame[ip + 6] == 58 else { return }
    let start = ip + 40
    let length = frame.count - start
    frame[start + 2] = 0; frame[start + 3] = 0
    var sum: UInt32 = 0
    func add(_ i: Int) { sum &+= UInt32(frame[i]) << 8 | UInt32(i + 1 < frame.count ? frame[i + 1] : 0) }
    for i in stride(from: ip + 8, to: ip + 40, by: 2) { add(i) }
    sum &+= UInt32(length >> 16) &+ UInt32(length & 0xffff) &+ 58
    for i in stride(from: start, to: frame.count, by: 2) { add(i) }
    while sum > 0xffff { sum = (sum & 0xffff) &+ (sum >> 16) }
    let c = ~UInt16(sum)
    frame[start + 2] = UInt8(c >> 8); frame[start + 3] = UInt8(c & 0xff)
}

/// Runs libFuzzer with `target` as the function it calls for every input (its command line is
/// libFuzzer's: corpus directories, -max_total_time=, -runs=, ...). Exits with libFuzzer's status.
public func runFuzzer(_ target: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Never {
    var argc = CommandLine.argc
    var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
    exit(LLVMFuzzerRunDriver(&argc, &argv, target))
}

/// Recomputes the header checksum of an IPv4 packet (with options), so mutations reach what lies
/// behind the check. Anything that is not IPv4 with a whole header is left as it is.
public func fixIPv4HeaderChecksum(_ packet: inout [UInt8]) {
    guard packet.count >= 20, packet[0] >> 4 == 4 else { return }
    let length = Int(packet[0] & 0x0f) * 4
    guard length >= 20, length <= packet.count else { return }
    packet[10] = 0; packet[11] = 0
    var sum: UInt32 = 0
    for i in stride(from: 0, to: length, by: 2) { sum &+= UInt32(packet[i]) << 8 | UInt32(packet[i + 1]) }
    while sum > 0xffff { sum = (sum & 0xffff) &+ (sum >> 16) }
    let c = ~UInt16(sum)
    packet[10] = UInt8(c >> 8); packet[11] = UInt8(c & 0xff)
}

/// A config parser's error must name the file it was given and a line that exists in `text`.
public func requireInsideFile(_ text: String, path: String, file: String, line: Int, _ what: String = "") {
    let lines = text.utf8.reduce(1) { $1 == 10 ? $0 + 1 : $0 }
    require(file == path && line >= 0 && line <= lines + 1, "\(what) error at \(file):\(line), outside the \(lines)-line \(path)")
}
