import Foundation
@testable import NDPProxy
import PacketKit
import Testing

struct NPD6ConfigTests {
    /// The sample npd6 ships (Debian's npd6 package installs it as /etc/npd6.conf.sample).
    @Test(.enabled(if: FileManager.default.fileExists(atPath: "/etc/npd6.conf.sample"), "install npd6 (setup.sh does)"))
    func theSampleNpd6ShipsIsAccepted() throws {
        let text = try String(contentsOfFile: "/etc/npd6.conf.sample", encoding: .utf8)
        let rules = try NPD6Config.parse(text, path: "/etc/npd6.conf.sample")
        #expect(rules.count == 1)
        #expect(rules[0].interface == "eth0")
        #expect(rules[0].prefixes == [IPv6Prefix("2222:1111:2222:3333::/64")!])
        #expect(rules[0].listType == .none && rules[0].ignoreLocal && rules[0].routerFlag && !rules[0].linkOption && rules[0].hopLimit == 255)
    }

    @Test func prefixesInNpd6CompactAndFullNotation() {
        #expect(NPD6Config.parsePrefix("2001:0db8:0005:0000:") == IPv6Prefix("2001:db8:5::/64"))
        #expect(NPD6Config.parsePrefix("2001:db8:5:0:") == IPv6Prefix("2001:db8:5::/64"))
        #expect(NPD6Config.parsePrefix("2001:db8:5::") == IPv6Prefix("2001:db8:5::/48"))
        #expect(NPD6Config.parsePrefix("2001:db8:5::/64") == IPv6Prefix("2001:db8:5::/64"))
        #expect(NPD6Config.parsePrefix("0::/0") == IPv6Prefix("::/0"))
        #expect(NPD6Config.parsePrefix("2001:db8:5:0") == nil)
        #expect(NPD6Config.parsePrefix("2001:db8:zz:0:") == nil)
    }

    @Test func listsPairsAndOptions() throws {
        let rules = try NPD6Config.parse("""
            prefix = 2001:db8:1:0:
            interface = eth0
            prefix = 2001:db8:2::/64
            interface = eth1
            listtype = white
            addrlist = 2001:db8:1::5
            addrlist = 2001:0db8:0001:0000:0000:0000:0000:0006
            routerNA = off
            linkOption = true
            maxHops = 255
            """, path: "x.conf")
        #expect(rules.map(\.interface) == ["eth0", "eth1"])
        #expect(rules[0].addresses == [IPv6Address("2001:db8:1::5")!, IPv6Address("2001:db8:1::6")!])
        #expect(rules[1].listType == .white && !rules[1].routerFlag && rules[1].linkOption)
        let r = rules[0]
        #expect(r.verdict(for: IPv6Address("2001:db8:1::5")!, localAddresses: []) == .answer)
        #expect(r.verdict(for: IPv6Address("2001:db8:1::7")!, localAddresses: []) == .notListed)
        #expect(r.verdict(for: IPv6Address("2001:db8:3::5")!, localAddresses: []) == .outsidePrefix)
        #expect(r.verdict(for: IPv6Address("2001:db8:1::5")!, localAddresses: [IPv6Address("2001:db8:1::5")!]) == .local)
    }

    @Test func errorsNameTheFileTheLineAndTheKey() {
        func error(_ text: String) -> String {
            do { _ = try NPD6Config.parse(text, path: "/etc/npd6.conf"); return "accepted" } catch { return error.description }
        }
        #expect(error("prefix = 2001:db8:1:0:\ninterface = eth0\nlisttype = grey\n") == "/etc/npd6.conf:3: listtype: \"grey\" is not none, black or white")
        #expect(error("prefix = 2001:db8:1:0:\ninterface = eth0\nrouterNA = maybe\n").hasPrefix("/etc/npd6.conf:3: routerNA:"))
        #expect(error("prefix = 2001:db8:1:0:\ninterface = eth0\nprefixx = 1\n").hasPrefix("/etc/npd6.conf:3: prefixx: unknown key"))
        #expect(error("prefix = 2001:db8:1:0:\n").hasPrefix("/etc/npd6.conf:1: prefix: every prefix needs its interface"))
        #expect(error("interface = eth0\n").contains("no prefix given"))
        #expect(error("prefix = 2001:db8:1:0:\ninterface = eth0\naddrlist = 2001:db8::zz\n").hasPrefix("/etc/npd6.conf:3: addrlist:"))
        #expect(error("prefix = 2001:db8:1:0:\ninterface = eth0\nexprlist = 2001:*\n").contains("not supported"))
    }
}

/// Issue 29, point 1 (part) and point 6: files as people write them and files no one should.
struct ConfigFileShapesTests {
    let npd6 = "prefix=2001:db8:1::/64\ninterface=eth0\nlisttype=white\naddrlist=2001:db8:1::5\n"
    let ndppd = "proxy eth0 {\n    rule 2001:db8:1::/64 {\n        static\n    }\n}\n"

    @Test func crlfAndAByteOrderMarkReadAsThePlainFile() throws {
        for text in [npd6, ndppd] {
            let plain = try NDPProxyConfig.parse(text, path: "/etc/x.conf")
            #expect(try NDPProxyConfig.parse(text.replacingOccurrences(of: "\n", with: "\r\n"), path: "/etc/x.conf") == plain)
            #expect(try NDPProxyConfig.parse("\u{FEFF}" + text.replacingOccurrences(of: "\n", with: "\r\n"), path: "/etc/x.conf") == plain)
        }
        let toml = "[lan]\ninterface = \"eth0\"\nprefixes = [\"2001:db8:1::/64\"]\n"
        #expect(try NDPProxyConfig.parse("\u{FEFF}" + toml.replacingOccurrences(of: "\n", with: "\r\n"), path: "/etc/x.toml") == NDPProxyConfig.parse(toml, path: "/etc/x.toml"))
    }

    @Test func anEmptyOrCommentOnlyFileSaysSo() {
        for text in ["", "\n\n", "# nothing yet\n# prefix=2001:db8::\n", "\u{FEFF}\r\n"] {
            do { _ = try NDPProxyConfig.parse(text, path: "/etc/npd6.conf"); Issue.record("accepted \(text.debugDescription)") } catch {
                #expect(error.description == "/etc/npd6.conf:0: no proxy rules configured (the file is empty or only comments)", "\(error)")
            }
        }
    }

    @Test func aFileOverTheSizeLimitIsRefusedUnread() throws {
        let path = NSTemporaryDirectory() + "sg-big-\(UUID().uuidString).conf"
        defer { unlink(path) }
        try String(repeating: "{", count: NDPProxyConfig.maximumFileSize + 1).write(toFile: path, atomically: true, encoding: .utf8)
        do { _ = try NDPProxyConfig.load(path); Issue.record("accepted") } catch {
            #expect(error.description.contains("larger than 1048576"), "\(error)")
        }
    }
}
