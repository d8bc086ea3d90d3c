// The gateway's watcher: every `watch_interval` seconds (2) what gatewayd put in the kernel and
// something else took away is put back, and said. A link going down flushes the uplink's proxy
// entries, a re-created uplink comes with proxy_ndp off and a new index, an operator's `ip route
// flush` takes the client routes, someone's `sysctl -p` turns forwarding off. The watcher holds
// the kernel to the plan through the same reconciler as start and every change.
import Foundation
import PacketKit
import RouteKit

extension Gateway {
    /// gatewayd's 10 s tick: the prefix's source and lifetimes, unless the watcher already looks
    /// every `watch_interval` seconds (`watch_interval = 0` turns it off).
    public func prefixTick() {
        guard !lock.withLock({ watching }) else { return }
        followRouterAdvertisements()
        checkPrefixLifetimes()
    }

    func watch() {
        while true {
            for _ in 0..<(config.watchInterval * 10) {
                usleep(100_000)
                if !lock.withLock({ watching }) { return }
            }
            lock.withLock { restoreKernelState() }
            followRouterAdvertisements()
            checkPrefixLifetimes()
        }
    }

    /// One check (lock held). Failures are logged and tried again at the next check.
    func restoreKernelState() {
        guard watching, device != nil else { return }
        restoreFirewall()
        guard let index = try? rk.interfaceIndex(config.uplink) else {
            if !uplinkGone { log("uplink \(config.uplink) is gone; clients keep their tunnel, the internet is back when it is") }
            uplinkGone = true
            return
        }
        if uplinkGone || index != uplinkIndex {
            log("uplink \(config.uplink) is back (index \(index))")
            uplinkGone = false
            if index != uplinkIndex {
                // The proxy entries and the ISP host route ride on the uplink and follow its index.
                uplinkIndex = index
                applyPlan("watch")
            }
        }
        let report = reconciler.restore()
        for key in report.setSysctls {
            if key == .ipv4Forwarding || key == (try? SysctlKey.ipv6Forwarding(.all)) {
                log("restored \(key) = 1 (it was turned off: clients' packets were not forwarded)")
            } else if key == (try? SysctlKey.proxyNDP(.interface(config.uplink))) {
                log("restored proxy_ndp = 1 on \(config.uplink)")
            } else {
                log("restored \(key)")
            }
        }
        let proxies = report.addedProxyEntries
        if !proxies.isEmpty { log("restored \(proxies.count) proxy entr\(proxies.count == 1 ? "y" : "ies") on \(config.uplink) (flushed, e.g. when the link went down)") }
        let routes = report.addedRoutes
        if !routes.isEmpty { log("restored \(routes.count) route(s) (\(routes.prefix(3).map(\.destination.description).joined(separator: " "))\(routes.count > 3 ? " ..." : ""))") }
        for a in report.added { if case .address(let a) = a { log("restored address \(a) on \(config.interface)") } }
        for f in report.failures { log("watch: \(describe(f)); trying again in \(config.watchInterval) s") }
    }
}
