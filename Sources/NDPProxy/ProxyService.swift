// The running proxy: one responder or kernel-entry keeper per rule of a config file, reloaded
// in place (an invalid new file leaves the running rules as they are), dumped and counted on
// request. The ndp-proxy executable is this plus signals and a command line.
import Foundation
import RouteKit

/// Every rule of one config file, running.
public final class ProxyService: @unchecked Sendable {
    /// How loud a line is (the executable maps these onto its logger).
    public enum Level: Sendable { case debug, info, notice, warning, error }

    public struct Options: Sendable, Equatable {
        /// Answers per second overall and per source (nil: the responder's defaults).
        public var rateLimit: Int?
        public var rateLimitPerSource: Int?
        /// 0: no per-solicitation lines; 1: one line per solicitation, at most `traceLimit` a
        /// second per interface; 2: the same with ten times the limit.
        public var debugLevel = 0
        public var traceLimit = 50
        public init() {}
    }

    public let path: String
    public let options: Options
    public let namespace: NetworkNamespace
    public private(set) var configuration: NDPProxyConfiguration
    public private(set) var responders: [Responder] = []
    public private(set) var kernel: [KernelProxy] = []
    let log: @Sendable (Level, String) -> Void

    /// Reads `path` and opens what its rules need (sockets on the interfaces; it does not start
    /// answering yet: see `start`). Throws the config error or the first interface's.
    public init(path: String, options: Options = Options(), namespace: NetworkNamespace = .current,
                log: @escaping @Sendable (Level, String) -> Void) throws {
        self.path = path
        self.options = options
        self.namespace = namespace
        self.log = log
        configuration = try NDPProxyConfig.read(path)
        (responders, kernel) = try Self.open(configuration.rules, namespace: namespace)
    }

    static func open(_ rules: [ProxyRule], namespace: NetworkNamespace) throws(NDPProxyError) -> ([Responder], [KernelProxy]) {
        var responders: [Responder] = [], kernel: [KernelProxy] = []
        do {
            for r in rules {
                if r.mode == .kernel { kernel.append(try KernelProxy(rule: r)) } else { responders.append(try Responder(rule: r, namespace: namespace)) }
            }
        } catch {
            for r in responders { r.stop() }
            throw error
        }
        return (responders, kernel)
    }

    /// Logs the warnings and the rules, syncs kernel entries and starts the responders.
    public func start() {
        for w in configuration.warnings { log(.warning, w.description) }
        sync()
        for r in responders { begin(r) }
        for line in configuration.summary { log(.info, "rule \(line)") }
        for r in responders { log(.info, "answering on \(r.rule.interface) for \((r.rule.prefixes + r.rule.autoPrefixes + r.rule.ifacePrefixes).map(\.description).joined(separator: " "))") }
        for k in kernel { log(.info, "kernel proxy entries on \(k.rule.interface): \(k.installed.count)") }
    }

    func begin(_ r: Responder) {
        r.rateLimit = (options.rateLimit ?? r.rateLimit.overall, options.rateLimitPerSource ?? r.rateLimit.perSource)
        let log = self.log
        r.log = { log(.notice, $0) }
        if options.debugLevel > 0 {
            r.traceLimit = options.traceLimit * (options.debugLevel >= 2 ? 10 : 1)
            r.trace = { log(.debug, $0) }
        }
        r.start()
    }

    /// Brings kernel-mode entries in line with their lists or lease stores.
    public func sync() {
        for k in kernel {
            do {
                let (added, removed) = try k.sync()
                if added + removed > 0 { log(.info, "\(k.rule.interface): proxy entries +\(added) -\(removed), \(k.installed.count) kept") }
            } catch {
                log(.error, "\(error)")   // keeps serving what it has; tried again at the next sync
            }
        }
    }

    /// Re-reads the config file. A valid, changed one replaces the rules (responders restarted,
    /// kernel entries re-synced); an invalid one, or one whose interfaces cannot be opened, is
    /// logged with file:line:key and the running rules stay. Returns whether the rules changed.
    @discardableResult
    public func reload(_ why: String) -> Bool {
        let next: NDPProxyConfiguration
        do { next = try NDPProxyConfig.read(path) } catch {
            log(.error, "reload (\(why)): \(error); keeping the running rules")
            return false
        }
        guard next.rules != configuration.rules else {
            log(.info, "reload (\(why)): \(path) unchanged")
            sync()
            return false
        }
        let opened: ([Responder], [KernelProxy])
        do { opened = try Self.open(next.rules, namespace: namespace) } catch {
            log(.error, "reload (\(why)): \(error); keeping the running rules")
            return false
        }
        // The old go, the new come: kernel entries are removed and put back within one sync.
        for r in responders { r.stop() }
        for k in kernel { k.removeAll() }
        (responders, kernel) = opened
        configuration = next
        for w in next.warnings { log(.warning, w.description) }
        sync()
        for r in responders { begin(r) }
        log(.info, "reload (\(why)): \(next.rules.count) rule(s): \(next.summary.joined(separator: "; "))")
        return true
    }

    /// Every rule and what it holds (npd6.conf: "SIGUSR2 dumps the targets").
    public var dump: [String] {
        configuration.rules.map { r in
            "rule: \(r.interface) \(r.mode.rawValue) prefixes \(r.prefixes.map(\.description).joined(separator: " ")) auto \(r.autoPrefixes.map(\.description).joined(separator: " ")) "
                + (r.innerInterface.map { "iface \($0) \(r.ifacePrefixes.map(\.description).joined(separator: " ")) " } ?? "")
                + "list \(r.listType.rawValue) \(r.addresses.sorted { $0.description < $1.description }.map(\.description).joined(separator: " "))"
        } + kernel.map { k in "\(k.rule.interface): kernel proxy entries \(k.installed.sorted { $0.description < $1.description }.map(\.description).joined(separator: " "))" }
    }

    /// One line of counters per interface.
    public var counters: [String] {
        responders.map { "\($0.rule.interface): \($0.statistics)" } + kernel.map { "\($0.rule.interface): \($0.installed.count) kernel proxy entries" }
    }

    /// Stops the responders and removes the kernel entries this service added.
    public func stop() {
        for r in responders { r.stop() }
        for k in kernel { k.removeAll() }
    }
}
