// The command lines of the daemons ndp-proxy replaces, so their init scripts and unit files work
// with the binary swapped: npd6 (`-c FILE -l FILE|- -f -d -D -v`, daemonizes unless -f) and ndppd
// (`-c FILE -d -p PIDFILE -v...`, daemonizes only with -d). The two give `-d` and `-v` different
// meanings; which one applies is decided as docs/ndp-proxy.md says:
//  1. called as `npd6` or `ndppd` (a symlink): that daemon's command line;
//  2. any long option: ndp-proxy's command line (foreground unless --daemon; npd6's long options
//     mean the same there);
//  3. otherwise (only short options, or none): the command line of the daemon whose format the
//     config file is in (`-c FILE`; by default /etc/npd6.conf, or /etc/ndppd.conf when only that
//     one exists or `-p` is given).
// `--metrics-listen ADDRESS` is ndp-proxy's own and is taken in every dialect without choosing
// one, so an npd6 or ndppd command line (DAEMON_ARGS in /etc/default/npd6) can add metrics.

/// Whose command line was given.
public enum DaemonPersonality: String, Sendable, Equatable {
    case ndpProxy = "ndp-proxy", npd6, ndppd
}

/// A command line in any of the three dialects, rewritten as ndp-proxy's own long options.
public struct DaemonCommandLine: Sendable, Equatable {
    public var personality: DaemonPersonality
    /// ndp-proxy's long options, equivalent to what was given (for its argument parser).
    public var arguments: [String]
    /// Whether to detach (npd6 without -f, ndppd -d, ndp-proxy --daemon).
    public var daemonize: Bool

    public static let npd6Config = "/etc/npd6.conf"
    public static let ndppdConfig = "/etc/ndppd.conf"

    /// npd6's long options (they keep their meaning in every dialect).
    static let npd6LongOptions: [String: String] = [
        "--config": "--config", "--logfile": "--log-file", "--foreground": "--foreground",
        "--debug": "--debug", "--debug2": "--debug2", "--version": "--version", "--help": "--help",
    ]

    /// Reads `arguments` (without the program name) given to the program called `programName`.
    /// `formatOf` tells the format of a config file (nil when it cannot be read); `fileExists`
    /// whether a path exists. Throws a message for the operator on an option the dialect lacks.
    public static func interpret(_ given: [String], programName: String,
                                 fileExists: (String) -> Bool,
                                 formatOf: (String) -> NDPConfigFormat?) throws(NDPProxyError) -> DaemonCommandLine {
        // Options of ndp-proxy's that every dialect takes as they are.
        var arguments: [String] = [], extensions: [String] = []
        var k = 0
        while k < given.count {
            if given[k] == "--metrics-listen" {
                guard k + 1 < given.count else { throw NDPProxyError(.commandLine, "--metrics-listen needs a value (IPV4:PORT or [IPV6]:PORT)") }
                extensions += ["--metrics-listen", given[k + 1]]; k += 2; continue
            }
            if given[k].hasPrefix("--metrics-listen=") { extensions.append(given[k]) } else { arguments.append(given[k]) }
            k += 1
        }
        var line = try interpretDialect(arguments, programName: programName, fileExists: fileExists, formatOf: formatOf)
        line.arguments += extensions
        return line
    }

    static func interpretDialect(_ arguments: [String], programName: String,
                                 fileExists: (String) -> Bool,
                                 formatOf: (String) -> NDPConfigFormat?) throws(NDPProxyError) -> DaemonCommandLine {
        let called = programName.split(separator: "/").last.map(String.init) ?? programName
        var personality: DaemonPersonality? = called == "npd6" ? .npd6 : called == "ndppd" ? .ndppd : nil
        let isLong = { (a: String) in a.hasPrefix("--") }
        let longName = { (a: String) in String(a.split(separator: "=", maxSplits: 1).first ?? "") }
        // Any long option: ndp-proxy's own dialect (its long options include npd6's: --config,
        // --debug, --foreground, --version; --logfile is read as --log-file).
        if personality == nil, arguments.contains(where: isLong) || arguments == ["-h"] {
            personality = .ndpProxy
        }
        if personality == .ndpProxy {
            // Native: long options as they are; -c and -h as their long forms; -d and -v are refused
            // (their meaning is npd6's or ndppd's).
            var out: [String] = []
            var daemonize = false
            var i = 0
            while i < arguments.count {
                let a = arguments[i]
                switch a {
                case "-c": out.append("--config")
                case "-h": out.append("--help")
                case "--daemon": daemonize = true
                case "-d", "-v", "-D", "-f", "-l", "-p":
                    throw NDPProxyError(.commandLine, "\(a) is npd6's or ndppd's option; with ndp-proxy's long options say --debug, --daemon, --version, --foreground, --log-file or --pidfile")
                default: out.append(npd6LongOptions[longName(a)].map { n in a.contains("=") ? n + a.drop(while: { $0 != "=" }) : n } ?? a)
                }
                i += 1
            }
            return DaemonCommandLine(personality: .ndpProxy, arguments: out, daemonize: daemonize)
        }
        // Short options: split "-vvv" and "-fd" into single letters, keep option values.
        var letters: [(flag: Character, value: String?)] = []
        var longs: [String] = []
        var i = 0
        let takesValue: Set<Character> = ["c", "l", "p"]
        while i < arguments.count {
            let a = arguments[i]
            if isLong(a) {
                guard let n = npd6LongOptions[longName(a)] else { throw NDPProxyError(.commandLine, "unknown option \(a)") }
                if ["--config", "--log-file"].contains(n) && !a.contains("=") {
                    guard i + 1 < arguments.count else { throw NDPProxyError(.commandLine, "\(a) needs a value") }
                    longs += [n, arguments[i + 1]]; i += 2; continue
                }
                longs.append(a.contains("=") ? n + a.drop(while: { $0 != "=" }) : n)
                i += 1; continue
            }
            guard a.hasPrefix("-"), a.count >= 2 else { throw NDPProxyError(.commandLine, "unexpected argument \(a) (npd6 and ndppd take options only)") }
            var chars = Array(a.dropFirst())
            while let c = chars.first {
                chars.removeFirst()
                if takesValue.contains(c) {
                    var value = String(chars)
                    chars = []
                    if value.isEmpty {
                        guard i + 1 < arguments.count else { throw NDPProxyError(.commandLine, "-\(c) needs a value") }
                        i += 1; value = arguments[i]
                    }
                    letters.append((c, value))
                } else {
                    guard "dDfvh".contains(c) else { throw NDPProxyError(.commandLine, "unknown option -\(c)") }
                    letters.append((c, nil))
                }
            }
            i += 1
        }
        let config = letters.last(where: { $0.flag == "c" })?.value
            ?? (longs.firstIndex(of: "--config").map { longs[$0 + 1] })
            ?? longs.first(where: { $0.hasPrefix("--config=") }).map { String($0.dropFirst("--config=".count)) }
        let vCount = letters.filter { $0.flag == "v" }.count
        if personality == nil {
            if letters.contains(where: { $0.flag == "p" }) || vCount > 1 { personality = .ndppd }
            else if letters.contains(where: { "fDl".contains($0.flag) }) || !longs.isEmpty { personality = .npd6 }
            else if let config { personality = formatOf(config) == .ndppd ? .ndppd : .npd6 }
            else { personality = !fileExists(npd6Config) && fileExists(ndppdConfig) ? .ndppd : .npd6 }
        }
        var out = ["--config", config ?? (personality == .ndppd ? ndppdConfig : npd6Config)]
        var daemonize = personality == .npd6
        var debug = 0
        for (flag, value) in letters {
            switch (personality!, flag) {
            case (_, "c"): break
            case (_, "h"): out.append("--help")
            case (.npd6, "d"): debug = max(debug, 1)
            case (.npd6, "D"): debug = 2
            case (.npd6, "f"): daemonize = false
            case (.npd6, "v"): out.append("--version")
            case (.npd6, "l"): out += ["--log-file", value ?? "-"]
            case (.ndppd, "d"): daemonize = true
            case (.ndppd, "v"): debug = min(2, debug + 1)
            case (.ndppd, "p"): out += ["--pidfile", value ?? ""]
            default: throw NDPProxyError(.commandLine, "-\(flag) is not one of \(personality!.rawValue)'s options")
            }
        }
        var j = 0
        while j < longs.count {
            switch longs[j] {
            case "--config": j += 1
            case "--foreground": daemonize = false
            case "--debug": debug = max(debug, 1)
            case "--debug2": debug = 2
            case let l where l.hasPrefix("--config="): break
            default: out.append(longs[j])
            }
            j += 1
        }
        out += Array(repeating: "--debug", count: debug)
        return DaemonCommandLine(personality: personality!, arguments: out, daemonize: daemonize)
    }
}
