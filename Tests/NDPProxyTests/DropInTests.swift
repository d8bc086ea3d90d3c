import Foundation
@testable import NDPProxy
import PacketKit
import RouteKit
import SixgateTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Issue 29, points 1, 6 and 7: files the real daemons accept are accepted, with a warning naming
/// the line where ndp-proxy reads something other than what is written.
struct LenientFilesTests {
    @Test func hostBitsAreClearedWithAWarningNamingTheLine() throws {
        let npd6 = try NDPProxyConfig.interpret("// vps\nprefix=1111:2222:3333:4444::2/64\ninterface=eth0\n", path: "/etc/npd6.conf")
        #expect(npd6.rules.map(\.prefixes) == [[IPv6Prefix("1111:2222:3333:4444::/64")!]])
        #expect(npd6.warnings.map(\.description) == ["/etc/npd6.conf:2: prefix: warning: 1111:2222:3333:4444::2/64 has host bits set; read as 1111:2222:3333:4444::/64"])
        let ndppd = try NDPProxyConfig.interpret("proxy eth0 {\n  rule 2001:db8:1:1f::/32 {\n    static\n  }\n}\n", path: "/etc/ndppd.conf")
        #expect(ndppd.rules[0].prefixes == [IPv6Prefix("2001:db8::/32")!])
        #expect(ndppd.warnings.map(\.line) == [2] && ndppd.warnings[0].message.contains("read as 2001:db8::/32"))
        // A clean file has no warnings at all.
        #expect(try NDPProxyConfig.interpret("proxy eth0 {\n  rule 2001:db8::/32 {\n    static\n  }\n}\n", path: "x").warnings.isEmpty)
    }

    @Test func ndppdOptionsOfEveryZeroTwoReleaseAreRead() throws {
        let c = try NDPProxyConfig.interpret("""
            route-ttl 30000
            address-ttl 30000
            proxy eth0 {
                router no
                timeout 300
                autowire yes
                keepalive no
                retries 3
                promiscuous no
                deadtime 3000
                ttl 10000
                rule 2001:db8:7::/64 {
                    auto
                    autovia yes
                }
            }
            """, path: "/etc/ndppd.conf")
        #expect(c.format == .ndppd && c.warnings.isEmpty)
        #expect(c.rules[0].autoPrefixes == [IPv6Prefix("2001:db8:7::/64")!] && !c.rules[0].routerFlag && c.rules[0].solicitTimeout == 0.3 && c.rules[0].cacheTTL == 10)
        do { _ = try NDPProxyConfig.parse("proxy eth0 {\n  rule 2001:db8::/64 {\n    auto\n    autovia maybe\n  }\n}\n", path: "/etc/ndppd.conf"); Issue.record("accepted") } catch {
            #expect(error.description == "/etc/ndppd.conf:4: autovia: \"maybe\" is not yes or no")
        }
    }

    @Test func anIdleProxyBlockRunsAndSaysSo() throws {
        let c = try NDPProxyConfig.interpret("proxy eth0 {\n    router yes\n}\n", path: "/etc/ndppd.conf")
        #expect(c.rules.count == 1 && c.rules[0].prefixes.isEmpty)
        #expect(c.warnings.map(\.description) == ["/etc/ndppd.conf:1: proxy: warning: proxy eth0 has no rule: it answers nothing until one is added (ndppd runs idle too)"])
        #expect(c.summary == ["eth0: answer, idle (no rule)"])
        // Every target is outside an idle rule.
        #expect(c.rules[0].verdict(for: IPv6Address("2001:db8::1")!, localAddresses: []) == .outsidePrefix)
    }

    @Test func aRuleWithoutAMethodIsStaticWithAWarning() throws {
        let c = try NDPProxyConfig.interpret("proxy eth0 {\n  rule 2001:db8:5::/64 {\n  }\n  rule 2001:db8:6::/64\n}\n", path: "/etc/ndppd.conf")
        #expect(c.rules[0].prefixes == [IPv6Prefix("2001:db8:5::/64")!, IPv6Prefix("2001:db8:6::/64")!])
        #expect(c.warnings.map(\.line) == [2, 4] && c.warnings.allSatisfy { $0.message.contains("ndppd 0.2.4 refuses this") })
    }

    @Test func twoBlocksForOneInterfaceAreMergedAndOverlapsAreSaid() throws {
        let c = try NDPProxyConfig.interpret("""
            proxy eth0 {
                rule 2001:db8:5::/112 { static }
            }
            proxy eth0 {
                router no
                rule 2001:db8:5::1:0/112 { static }
                rule 2001:db8:5::1:5 { static }
            }
            """, path: "/etc/ndppd.conf")
        #expect(c.rules.count == 1 && c.rules[0].prefixes.count == 3 && c.rules[0].routerFlag)
        #expect(c.warnings.map(\.description) == [
            "/etc/ndppd.conf:4: proxy: warning: a second proxy eth0 block (the first is on line 1): its rules are merged into the first; its router, ttl and timeout differ and the first block's are used",
            "/etc/ndppd.conf:0: warning: eth0: 2001:db8:5::1:5/128 overlaps 2001:db8:5::1:0/112 in the same rule; a target in both is judged by each",
        ])
        let npd6 = try NDPProxyConfig.interpret("prefix=2001:db8:5::/64\ninterface=eth0\nprefix=2001:db8:5:0:\ninterface=eth0\nprefix=2001:db8:5:0:\ninterface=eth1\n", path: "/etc/npd6.conf")
        #expect(npd6.warnings.map(\.message) == ["eth0: 2001:db8:5::/64 overlaps 2001:db8:5::/64 in rule 1; a target in both is judged by each"])
    }

    @Test func theFormatIsToldByTheShapeOfTheLinesNotByAWord() {
        #expect(NDPProxyConfig.format(of: "prefix=2001:db8:5:0:\ninterface = proxy\n", path: "/etc/x.conf") == .npd6)
        #expect(NDPProxyConfig.format(of: "interface=proxy\nprefix=2001:db8::/64\n", path: "/etc/x.conf") == .npd6)
        #expect(NDPProxyConfig.format(of: "# proxy eth0 {\nproxy eth0 {\n}\n", path: "/etc/x.conf") == .ndppd)
        #expect(NDPProxyConfig.format(of: "route-ttl 5000\n", path: "/etc/x.conf") == .ndppd)
        #expect(NDPProxyConfig.format(of: "proxy{\n}", path: "/etc/x.conf") == .ndppd)
        #expect(NDPProxyConfig.format(of: "[lan]\ninterface = \"proxy\"\n", path: "/etc/x.conf") == .toml)
        #expect(NDPProxyConfig.format(of: "", path: "/etc/p.toml") == .toml)
    }

    @Test func longValuesAreCutShortInErrors() {
        let huge = String(repeating: "x", count: 200_000)
        for text in ["prefix=\(huge)\ninterface=eth0\n", "proxy eth0 {\n  router \(huge)\n}\n", "\(huge) {\n}\n", "proxy eth0 {\n  rule \(huge)\n}\n",
                     "prefix=2001:db8::/64\ninterface=eth0\n\(huge)=1\n"] {
            do { _ = try NDPProxyConfig.parse(text, path: "/etc/x.conf"); Issue.record("accepted") } catch {
                #expect(error.description.utf8.count < 300, "\(error.description.prefix(300))")
                #expect(error.description.contains("…") || !error.description.contains("xxxxx"), "\(error.description.prefix(300))")
            }
        }
        do { _ = try NDPProxyConfig.parse("prefix=2001:db8::zz\u{1b}[2J\ninterface=eth0\n", path: "/etc/x.conf"); Issue.record("accepted") } catch {
            #expect(!error.description.contains("\u{1b}"), "control characters are escaped")
        }
    }
}

/// Issue 29, point 5: npd6's and ndppd's command lines, read as those daemons read them.
struct DaemonCommandLineTests {
    func interpret(_ args: [String], as program: String = "/usr/sbin/ndp-proxy", existing: Set<String> = [DaemonCommandLine.npd6Config],
                   formats: [String: NDPConfigFormat] = [:]) throws -> DaemonCommandLine {
        try DaemonCommandLine.interpret(args, programName: program, fileExists: { existing.contains($0) }, formatOf: { formats[$0] })
    }

    @Test func npd6sInitScriptAndItsManPageOptions() throws {
        // /etc/init.d/npd6: `start-stop-daemon --start --exec $DAEMON -- $DAEMON_ARGS`, DAEMON_ARGS="".
        #expect(try interpret([]) == DaemonCommandLine(personality: .npd6, arguments: ["--config", "/etc/npd6.conf"], daemonize: true))
        #expect(try interpret([], as: "npd6") == DaemonCommandLine(personality: .npd6, arguments: ["--config", "/etc/npd6.conf"], daemonize: true))
        // The init script's commented example, and npd6(8)'s letters bundled.
        #expect(try interpret(["--debug", "-l", "/var/log/npd6.log"], as: "/usr/bin/npd6")
            == DaemonCommandLine(personality: .npd6, arguments: ["--config", "/etc/npd6.conf", "--log-file", "/var/log/npd6.log", "--debug"], daemonize: true))
        #expect(try interpret(["-fD", "-c/etc/x.conf", "-l", "-"])
            == DaemonCommandLine(personality: .npd6, arguments: ["--config", "/etc/x.conf", "--log-file", "-", "--debug", "--debug"], daemonize: false))
        #expect(try interpret(["-v"], as: "npd6").arguments.contains("--version"))
        #expect(try interpret(["-c", "/etc/npd6.conf", "-d"], formats: ["/etc/npd6.conf": .npd6])
            == DaemonCommandLine(personality: .npd6, arguments: ["--config", "/etc/npd6.conf", "--debug"], daemonize: true))
    }

    @Test func ndppdsInitScriptAndItsManPageOptions() throws {
        // /etc/init.d/ndppd: DAEMON_ARGS="-d -p $PIDFILE", no -c: /etc/ndppd.conf.
        #expect(try interpret(["-d", "-p", "/var/run/ndppd.pid"], existing: [DaemonCommandLine.ndppdConfig])
            == DaemonCommandLine(personality: .ndppd, arguments: ["--config", "/etc/ndppd.conf", "--pidfile", "/var/run/ndppd.pid"], daemonize: true))
        #expect(try interpret(["-d", "-p", "/run/ndppd.pid"]).arguments.prefix(2) == ["--config", "/etc/ndppd.conf"], "-p is ndppd's alone")
        #expect(try interpret(["-c", "/etc/ndppd.conf", "-vv"], formats: ["/etc/ndppd.conf": .ndppd])
            == DaemonCommandLine(personality: .ndppd, arguments: ["--config", "/etc/ndppd.conf", "--debug", "--debug"], daemonize: false))
        #expect(try interpret(["-c", "/x/ndppd.conf", "-d"], formats: ["/x/ndppd.conf": .ndppd]).daemonize)
        #expect(try interpret(["-c", "/x/ndppd.conf"], as: "ndppd").daemonize == false, "ndppd stays in the foreground without -d")
    }

    @Test func ndpProxysOwnLongOptionsStayInTheForeground() throws {
        #expect(try interpret(["--config", "/etc/npd6.conf"]) == DaemonCommandLine(personality: .ndpProxy, arguments: ["--config", "/etc/npd6.conf"], daemonize: false))
        #expect(try interpret(["-c", "/etc/npd6.conf", "--check-config"]).personality == .ndpProxy)
        #expect(try interpret(["--config=/x", "--daemon", "--pidfile", "/run/p"]) == DaemonCommandLine(personality: .ndpProxy, arguments: ["--config=/x", "--pidfile", "/run/p"], daemonize: true))
        #expect(try interpret(["--logfile", "/x.log", "--version"]).arguments == ["--log-file", "/x.log", "--version"])
        #expect(throws: NDPProxyError.self) { try interpret(["--config", "/x", "-d"]) }
    }

    @Test func metricsListenIsTakenInEveryDialectWithoutChoosingOne() throws {
        // Added to npd6's init-script arguments: still npd6's dialect (detaches, -l read as npd6's).
        #expect(try interpret(["-l", "/var/log/npd6.log", "--metrics-listen", "127.0.0.1:9470"])
            == DaemonCommandLine(personality: .npd6, arguments: ["--config", "/etc/npd6.conf", "--log-file", "/var/log/npd6.log", "--metrics-listen", "127.0.0.1:9470"], daemonize: true))
        #expect(try interpret(["-d", "-p", "/run/ndppd.pid", "--metrics-listen=[::1]:9470"], existing: [DaemonCommandLine.ndppdConfig])
            == DaemonCommandLine(personality: .ndppd, arguments: ["--config", "/etc/ndppd.conf", "--pidfile", "/run/ndppd.pid", "--metrics-listen=[::1]:9470"], daemonize: true))
        #expect(try interpret(["--config", "/x", "--metrics-listen", "127.0.0.1:0"]).arguments == ["--config", "/x", "--metrics-listen", "127.0.0.1:0"])
        #expect(throws: NDPProxyError.self) { try interpret(["-f", "--metrics-listen"]) }
    }

    @Test func mistakesAreSaid() {
        #expect(throws: NDPProxyError.self) { try interpret(["-x"]) }
        #expect(throws: NDPProxyError.self) { try interpret(["-c"]) }
        #expect(throws: NDPProxyError.self) { try interpret(["-p", "/run/x.pid"], as: "npd6") }
        #expect(throws: NDPProxyError.self) { try interpret(["-f"], as: "ndppd") }
        #expect(throws: NDPProxyError.self) { try interpret(["stray"]) }
    }
}

/// Issue 27: errors say what they are about and keep the error underneath, typed, up to the
/// message ndp-proxy prints.
struct TypedErrorTests {
    @Test func aMissingInterfaceIsNamedAndRouteKitsErrorKept() {
        let name = "sgnx\(uniqueSuffix())"
        do {
            _ = try Responder(rule: ProxyRule(interface: name, prefixes: [IPv6Prefix("2001:db8::/64")!]))
            Issue.record("a responder opened on an interface that does not exist")
        } catch {
            #expect(error.subject == .interface(name))
            #expect(error.underlying is RouteKitError, "\(String(describing: error.underlying))")
            #expect(error.description.hasPrefix("interface \(name): "), "\(error)")
        }
        do {
            _ = try DaemonCommandLine.interpret(["-x"], programName: "npd6", fileExists: { _ in false }, formatOf: { _ in nil })
            Issue.record("-x taken")
        } catch {
            #expect(error.subject == .commandLine && error.description == "unknown option -x")
        }
    }
}
