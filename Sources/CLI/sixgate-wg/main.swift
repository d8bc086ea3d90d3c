// sixgate-wg — a userspace WireGuard device on a TUN interface, configured with wg(8) through the
// UAPI socket, like wireguard-go: `sixgate-wg wg0; wg setconf wg0 wg0.conf; ip link set wg0 up`.
// Thin executable: parses arguments and prints; the work lives in TunnelCore.
import ArgumentParser
import RouteKit
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
        discussion: "Runs in the foreground until SIGINT or SIGTERM, then removes the interface and the socket.",
        version: "sixgate-wg (Sixgate) \(SixgateVersion.description)")

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

    @Flag(name: .customLong("stats-on-exit"), help: "Print the device's counters to standard output when stopping.")
    var statsOnExit = false

    func validate() throws {
        guard (1280...65535).contains(mtu) else { throw ValidationError("--mtu must be 1280-65535 (IPv6 needs at least 1280)") }
        guard rekeyAfterTime > 0, rejectAfterTime > rekeyAfterTime else { throw ValidationError("--reject-after-time must exceed --rekey-after-time") }
    }

    func run() throws {
        // Block the stop signals before any thread starts, then wait for one here.
        let signals = DaemonSignals.block([SIGINT, SIGTERM])

        var timers = TunnelTimers()
        timers.rekeyAfterTime = rekeyAfterTime
        timers.rejectAfterTime = rejectAfterTime
        timers.rekeyAttemptTime = min(90, rejectAfterTime / 2)
        let device: TunnelDevice
        let uapi: UAPIServer
        do {
            device = try TunnelDevice(interfaceName: interface, listenPort: listenPort, timers: timers, underLoadThreshold: underLoadThreshold)
            try RouteSocket().setMTU(device.name, mtu)
            uapi = try UAPIServer(device: device)
        } catch {
            throw ValidationError("sixgate-wg: \(error)")
        }
        device.start()
        uapi.start()
        print("sixgate-wg: \(device.name) up (UDP port \(device.listenPort), UAPI \(uapi.path))")
        fflush(nil)
        _ = signals.wait()
        uapi.stop()
        device.stop()
        if statsOnExit { print(device.statistics) }
    }
}
