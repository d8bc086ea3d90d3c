// sixgate-wg — a userspace WireGuard device on a TUN interface, configured with wg(8) through the
// UAPI socket, like wireguard-go: `sixgate-wg wg0; wg setconf wg0 wg0.conf; ip link set wg0 up`.
// Thin executable: parses arguments and prints; the work lives in TunnelCore.
import ArgumentParser
import RouteKit
import SixgateDaemon
import SixgateSystem
import SixgateVersion
import TunnelCore
#if canImport(Glibc)
import Glibc
#endif

@main
struct SixgateWG: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sixgate-wg",
        abstract: "A userspace WireGuard device (TUN + UDP), configured with wg(8) over /var/run/wireguard/NAME.sock.",
        discussion: """
            As wireguard-go does: once the interface and its UAPI socket exist, it goes to the \
            background and returns 0 (or prints why not and returns 1), so that \
            WG_QUICK_USERSPACE_IMPLEMENTATION=sixgate-wg wg-quick up wg0 works; -f (or \
            WG_PROCESS_FOREGROUND=1 in the environment) keeps it in front. It stops on SIGINT or \
            SIGTERM, or when the interface is deleted (wg-quick down: ip link delete), and then \
            removes the interface and the socket.
            """,
        version: "sixgate-wg (Sixgate) \(SixgateVersion.description)")

    @Flag(name: [.customShort("f"), .long], help: "Stay in the foreground (wireguard-go's -f).")
    var foreground = false

    @Argument(help: "The interface to create (1-15 characters; unique across network namespaces, as the UAPI directory is shared).")
    var interface: String

    @Option(help: "MTU of the interface (1280-65535).")
    var mtu: UInt32 = 1420

    @Option(help: "UDP port to listen on before `wg set listen-port` (0: any free port).")
    var listenPort: UInt16 = 0

    @Option(help: "Seconds before the initiator rekeys (protocol constant 120; shorten only to test).")
    var rekeyAfterTime: Double = 120

    @Option(help: "Seconds after which a session is refused (protocol constant 180).")
    var rejectAfterTime: Double = 180

    @Option(help: "Handshake messages per second before cookies (MAC2) are demanded.")
    var underLoadThreshold: Int = 1000

    @Option(help: "Reader threads: a multi-queue TUN device and that many UDP sockets on the port (SO_REUSEPORT), so several cores share the work of many peers (1-16).")
    var queues: Int = 1

    @Option(name: .customLong("seal-threads"), help: "Threads that seal packets beside each TUN reader, so one peer's single flow uses more cores, in order (0-16; worth it where cores are to spare).")
    var sealThreads: Int = 0

    @Option(name: .customLong("open-threads"), help: "Threads that open received packets beside each UDP reader, so one peer's single flow uses more cores, in order (0-16; worth it where cores are to spare).")
    var openThreads: Int = 0

    @Flag(name: .customLong("no-offload"), help: "Move one packet per system call: no TUN segmentation offload, TCP coalescing, UDP GSO or GRO (on by default where the kernel has them).")
    var noOffload = false

    @Option(name: .customLong("queue-target"), help: "Queue management (CoDel, RFC 8289) on the receive queue: the standing delay, in milliseconds, above which decrypted packets are ECN-marked or dropped so TCP slows down; 0 turns it off.")
    var queueTarget: Double = 5

    @Option(name: .customLong("queue-interval"), help: "CoDel's interval in milliseconds: how long the delay must stay above the target before the first mark or drop (about the flows' worst round-trip time).")
    var queueInterval: Double = 100

    @Flag(name: .customLong("stats-on-exit"), help: "Print the device's counters to standard output when stopping.")
    var statsOnExit = false

    func validate() throws {
        guard (1280...65535).contains(mtu) else { throw ValidationError("--mtu must be 1280-65535 (IPv6 needs at least 1280)") }
        guard (1...16).contains(queues) else { throw ValidationError("--queues must be 1-16") }
        guard (0...16).contains(sealThreads) else { throw ValidationError("--seal-threads must be 0-16") }
        guard (0...16).contains(openThreads) else { throw ValidationError("--open-threads must be 0-16") }
        guard queueTarget == 0 || (queueTarget > 0 && queueInterval > queueTarget) else { throw ValidationError("--queue-interval must exceed --queue-target (or --queue-target 0 turns queue management off)") }
        guard rekeyAfterTime > 0, rejectAfterTime > rekeyAfterTime else { throw ValidationError("--reject-after-time must exceed --rekey-after-time") }
    }

    func run() throws {
        // Into the background first, before any thread exists (fork copies only the calling
        // thread); the parent waits until the child has its interface and socket, then exits.
        let inFront = foreground || getenv("WG_PROCESS_FOREGROUND").map { String(cString: $0) } == "1"
        let readiness = inFront ? nil : try Background.split()
        // Block the stop signals before any thread starts, then wait for one here.
        let signals = DaemonSignals.block([SIGINT, SIGTERM])

        var timers = TunnelTimers()
        timers.rekeyAfterTime = rekeyAfterTime
        timers.rejectAfterTime = rejectAfterTime
        timers.rekeyAttemptTime = min(90, rejectAfterTime / 2)
        let device: TunnelDevice
        let uapi: UAPIServer
        do {
            device = try TunnelDevice(interfaceName: interface, listenPort: listenPort, timers: timers, underLoadThreshold: underLoadThreshold, offload: !noOffload, queues: queues,
                                  queueManagement: queueTarget == 0 ? nil : CoDel(target: Int64(queueTarget * 1e6), interval: Int64(queueInterval * 1e6)),
                                  sealHelpers: sealThreads, openHelpers: openThreads)
            try RouteSocket().setMTU(device.name, mtu)
            uapi = try UAPIServer(device: device)
        } catch {
            readiness?.fail("sixgate-wg: \(error)")
            throw ValidationError("sixgate-wg: \(error)")
        }
        device.start()
        uapi.start()
        let line = "sixgate-wg: \(device.name) up (UDP port \(device.listenPort), UAPI \(uapi.path); \(device.offloadSummary))"
        if let readiness { readiness.succeed(line) } else { print(line); fflush(nil) }
        // Until a stop signal, or until the interface is deleted under us (wg-quick down).
        let index = if_nametoindex(device.name)
        while signals.wait(seconds: 1) == nil {
            if if_nametoindex(device.name) != index { break }
        }
        uapi.stop()
        device.stop()
        if statsOnExit { print(device.offloadSummary); print(device.statistics) }
    }
}

/// wireguard-go's way into the background, without its re-exec: fork before any thread, the
/// child goes on (new session, standard streams on /dev/null once ready) and reports through a
/// pipe; the parent prints what it says and exits 0 (ready) or 1 (failed, or the child died).
struct Background {
    let pipe: Int32

    /// Returns in the child; the parent never returns.
    static func split() throws -> Background {
        // What whoever started us handed down (a supervisor's status pipe, Foundation's process
        // monitor socket, a shell's descriptors): the background half must not keep them open,
        // or the starter waits for their end forever.
        let inherited = Daemon.openDescriptors()
        var fds: [Int32] = [0, 0]
        guard Glibc.pipe(&fds) == 0 else { throw ValidationError("sixgate-wg: pipe: \(String(cString: strerror(errno)))") }
        let pid = fork()
        guard pid >= 0 else { throw ValidationError("sixgate-wg: fork: \(String(cString: strerror(errno)))") }
        if pid > 0 {
            close(fds[1])
            var report = [UInt8]()
            var chunk = [UInt8](repeating: 0, count: 512)
            while true {
                let n = read(fds[0], &chunk, chunk.count)
                if n > 0 { report += chunk[..<n]; continue }
                if n < 0 && errno == EINTR { continue }
                break
            }
            let text = String(decoding: report, as: UTF8.self)
            if text.hasPrefix("ok ") {
                print(text.dropFirst(3)); fflush(nil)
                _exit(0)
            }
            let message = text.hasPrefix("error ") ? String(text.dropFirst(6)) : "sixgate-wg: the background process ended before it was ready"
            let bytes = Array((message + "\n").utf8)
            _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
            _exit(1)
        }
        close(fds[0])
        Daemon.closeInherited(inherited)
        _ = setsid()
        return Background(pipe: fds[1])
    }

    func succeed(_ line: String) {
        // The caller (wg-quick, a script reading our output) must see end of file once the parent
        // exits: nothing of ours may hold its pipes.
        let null = open("/dev/null", O_RDWR)
        if null >= 0 {
            for fd: Int32 in [0, 1, 2] { dup2(null, fd) }
            if null > 2 { close(null) }
        }
        send("ok " + line)
    }

    func fail(_ message: String) { send("error " + message) }

    private func send(_ text: String) {
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { write(pipe, $0.baseAddress, $0.count) }
        close(pipe)
    }
}
