// Routes by BGP (issue 25): gatewayd keeps what this gateway should draw to itself in a kernel
// table of its own (`[group] announce_table`), and BIRD (Debian's bird2), running beside it, learns
// that table and announces it to the upstream routers with BFD. gatewayd does not speak BGP: BIRD
// does, with its sessions, timers and filters as operators know them. This file writes the BIRD
// snippet that does the learning and asks BIRD (birdc) how its sessions are.
import Diagnostics
import Foundation

extension GatewayAdmin {
    /// The BIRD 2 configuration gatewayd needs beside it: tables, the kernel protocols that learn
    /// `announce_table`, BFD, and templates for the BGP sessions toward the upstream routers (the
    /// operator's bird.conf includes it and adds the sessions; docs/scale.md).
    public static func birdConfiguration(_ config: GatewayConfiguration) throws(GatewayError) -> String {
        guard let table = config.announceTable else {
            throw .control("[group] announce_table is not set: it is the kernel table gatewayd keeps the routes to announce in (7474, say)")
        }
        return """
            # Sixgate gatewayd \(config.groupName): what this gateway announces, for BIRD 2 (written by
            # `gatewayctl bird-config`; include it from /etc/bird/bird.conf, then add the sessions below).
            #
            # gatewayd keeps in kernel table \(table): the group's anycast endpoint addresses while it runs
            # (\(config.anycast.isEmpty ? "none configured" : config.anycast.map(\.description).joined(separator: ", "))), and each client's addresses while
            # the client's session is on this gateway. Those routes point into \(config.interface), so they vanish
            # with gatewayd (a crash, kill -9) and BIRD withdraws them.

            ipv4 table sixgate4;
            ipv6 table sixgate6;

            protocol kernel sixgate_kernel4 {
                kernel table \(table);
                learn;                          # routes another daemon put there: gatewayd's (protocol 74)
                scan time 10;
                ipv4 { table sixgate4; import where krt_source = 74; export none; };
            }

            protocol kernel sixgate_kernel6 {
                kernel table \(table);
                learn;
                scan time 10;
                ipv6 { table sixgate6; import where krt_source = 74; export none; };
            }

            # A dead gateway's routes are withdrawn within about 0.3 s of its link going quiet.
            protocol bfd sixgate_bfd {
                interface "\(config.uplink)" { min rx interval 100 ms; min tx interval 100 ms; multiplier 3; };
            }

            # The sessions toward the upstream routers: one per family, for example
            #   protocol bgp upstream4 from sixgate_upstream4 { local as 64501; neighbor 198.51.100.1 as 64500; }
            #   protocol bgp upstream6 from sixgate_upstream6 { local as 64501; neighbor 2001:db8:a::1 as 64500; }
            template bgp sixgate_upstream4 {
                bfd on;
                ipv4 { table sixgate4; import none; export all; next hop self; };
            }

            template bgp sixgate_upstream6 {
                bfd on;
                ipv6 { table sixgate6; import none; export all; next hop self; };
            }

            """
    }

    /// BIRD's protocols as `birdc show protocols` prints them (`socket`: BIRD's control socket,
    /// nil for its default), for the doctor; an error text when BIRD does not answer.
    public static func birdProtocols(socket: String? = nil) -> Result<[BIRDProtocol], BIRDQueryError> {
        let birdc = ["/usr/sbin/birdc", "/usr/bin/birdc"].first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let birdc else { return .failure(BIRDQueryError(message: "birdc is not installed (Debian: apt install bird2)")) }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: birdc)
        p.arguments = (socket.map { ["-s", $0] } ?? []) + ["show", "protocols"]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        p.standardInput = FileHandle.nullDevice
        do { try p.run() } catch { return .failure(BIRDQueryError(message: "cannot run \(birdc): \(error.localizedDescription)")) }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        guard p.terminationStatus == 0, text.contains("Name") else {
            let first = text.split(separator: "\n").first.map(String.init) ?? "no output"
            return .failure(BIRDQueryError(message: "BIRD does not answer on \(socket ?? "its default socket") (\(first)): is it running? (systemctl start bird)"))
        }
        return .success(BIRDProtocol.parse(text))
    }
}

/// Why BIRD could not be asked.
public struct BIRDQueryError: Error, Sendable, Equatable { public let message: String }
