// The doctor's check of a group's routing (issue 25): BIRD answers, it has the snippet gatewayd
// needs (`gatewayctl bird-config`), and every BGP session toward the upstream routers is Established.

/// One line of `birdc show protocols`.
public struct BIRDProtocol: Sendable, Equatable, Codable {
    public var name: String
    public var proto: String
    public var state: String
    /// The rest of the line after the time ("Established", "Active  Socket: Connection refused").
    public var info: String

    public init(name: String, proto: String, state: String, info: String) {
        self.name = name; self.proto = proto; self.state = state; self.info = info
    }

    /// Parses `birdc show protocols` (BIRD 2): a header line "Name Proto Table State Since Info",
    /// then one protocol per line.
    public static func parse(_ text: String) -> [BIRDProtocol] {
        var out: [BIRDProtocol] = []
        var seenHeader = false
        for line in text.split(separator: "\n") {
            let f = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            if f.first == "Name" { seenHeader = true; continue }
            guard seenHeader, f.count >= 5 else { continue }
            // Name Proto Table State Since(date [time]) Info...
            var rest = Array(f.dropFirst(5))
            if let first = rest.first, first.contains(":") && first.first?.isNumber == true { rest.removeFirst() }
            out.append(BIRDProtocol(name: f[0], proto: f[1], state: f[3], info: rest.joined(separator: " ")))
        }
        return out
    }
}

/// What the doctor knows of a group's BGP: BIRD's protocols, or why they could not be read.
public struct DoctorBGP: Sendable, Equatable {
    public var protocols: [BIRDProtocol]?
    public var error: String?
    /// The kernel table gatewayd announces from.
    public var announceTable: UInt32
    /// The command that prints the snippet BIRD needs.
    public var snippetCommand: String
    public init(protocols: [BIRDProtocol]?, error: String?, announceTable: UInt32, snippetCommand: String) {
        self.protocols = protocols; self.error = error; self.announceTable = announceTable; self.snippetCommand = snippetCommand
    }
}

extension KernelView {
    func bgp() -> CheckResult {
        let id = "group.bgp", title = "BGP sessions of the group"
        guard let b = setup.bgp else { return CheckResult(id: id, title: title, status: .skipped, summary: "no [group] announce_table: routes are not announced by BGP") }
        guard let protocols = b.protocols else {
            return CheckResult(id: id, title: title, status: .problem, summary: b.error ?? "BIRD does not answer",
                               fix: ["systemctl start bird", "birdc show protocols"],
                               advice: "BIRD announces what gatewayd keeps in kernel table \(b.announceTable); without it the upstream routers do not route the clients' addresses or the anycast endpoint here. Its configuration must include the output of `\(b.snippetCommand)`.")
        }
        var evidence = protocols.map { "\($0.name) (\($0.proto)): \($0.state) \($0.info)" }
        let kernels = protocols.filter { $0.name.hasPrefix("sixgate_kernel") }
        let sessions = protocols.filter { $0.proto == "BGP" }
        if kernels.count < 2 {
            return CheckResult(id: id, title: title, status: .problem, summary: "BIRD runs but does not learn table \(b.announceTable) (no sixgate_kernel4/6 protocols)",
                               evidence: evidence, fix: ["\(b.snippetCommand) > /etc/bird/sixgate.conf", "echo 'include \"/etc/bird/sixgate.conf\";' >> /etc/bird/bird.conf", "birdc configure"],
                               advice: "Then add the BGP sessions toward the upstream routers from the templates sixgate_upstream4/6.")
        }
        if sessions.isEmpty {
            return CheckResult(id: id, title: title, status: .problem, summary: "BIRD has no BGP session: nothing is announced", evidence: evidence,
                               fix: ["editor /etc/bird/bird.conf   # protocol bgp upstream6 from sixgate_upstream6 { local as ...; neighbor ... as ...; }", "birdc configure"])
        }
        let down = sessions.filter { !($0.state == "up" && $0.info.hasPrefix("Established")) }
        evidence.insert("\(sessions.count - down.count) of \(sessions.count) BGP session(s) Established", at: 0)
        if !down.isEmpty {
            return CheckResult(id: id, title: title, status: .problem,
                               summary: "BGP session(s) not Established: " + down.map { "\($0.name) (\($0.info.isEmpty ? $0.state : $0.info))" }.joined(separator: ", "),
                               evidence: evidence, fix: down.map { "birdc show protocols all \($0.name)" },
                               advice: "An upstream router that does not hear this gateway routes its clients and the anycast endpoint to the group's other gateways only. Check the neighbour's address and AS, that TCP port 179 passes both ways, and the upstream's configuration.")
        }
        return CheckResult(id: id, title: title, status: .ok, summary: "\(sessions.count) BGP session(s) Established, announcing from table \(b.announceTable)", evidence: evidence)
    }
}
