// Installing a lease: the facts read from the kernel, the plan (ClientPlan.swift), the endpoint's
// bypass route, then RouteKit's `KernelReconciler` makes the kernel hold it; router mode's
// advertiser and LAN filter follow, and the hooks run.
import Foundation
import NDPProxy
import PacketKit
import RouteKit
import SixgateSystem

extension SixgateClient {
    /// Installs `lease` (replacing what an earlier one installed). Lock held.
    func apply(_ lease: LeaseMessage, extraAddresses: [AddressAssignment] = []) throws(ClientError) {
        // Each answer restates how long the earlier leases stay (counted from now).
        let now = MonotonicClock.seconds()
        deprecatedUntil = Dictionary(lease.deprecated.map { ($0.prefix, now + Double($0.validLifetime)) }, uniquingKeysWith: max)
        if let old = current, old.sameConfiguration(as: lease) {
            current = lease
            if !lease.deprecated.isEmpty, let plan = try? ClientPlanner(config: config, tunnelIndex: tunIndex, lanIndex: lanIndex).plan(lease, host: ClientHostRoutes()) {
                try updateAdvertiser(plan.lanPrefix, deprecated: plan.deprecatedLANPrefixes, lease: lease)
            }
            return
        }
        let changed = current != nil
        let clatPlacement = try prepareCLAT(lease)
        let planner = ClientPlanner(config: config, tunnelIndex: tunIndex, lanIndex: lanIndex, clat: clatPlacement)
        let plan = try planner.plan(lease, extraAddresses: extraAddresses, host: try hostRoutes())
        for n in plan.notes { log(n) }
        var kernel = plan.kernel
        var bypass: [Route] = []
        if let ep = endpoint, plan.defaultFamilies.contains(ep.address.isV6) {
            bypass.append(try bypassRoute(for: ep.address))
            kernel.routes.formUnion(bypass)
        }
        if let key = try? SysctlKey.ipv6Forwarding(.all), kernel.sysctls[key] == 1 { warnAboutAcceptRA() }
        let report = reconciler.update(to: kernel)
        if let failure = report.failures.first(where: { $0.action != .remove }) { throw ClientError(.lease, failure) }
        if let mtu = lease.mtu, config.mtu == nil, mtu >= 1280 { try? rk.setMTU(config.interface, UInt32(mtu)) }
        bypassRoutes = bypass
        current = lease
        try updateAdvertiser(plan.lanPrefix, deprecated: plan.deprecatedLANPrefixes, lease: lease)
        let addresses = InstallOrder.addresses(kernel.addresses), routes = InstallOrder.routes(plan.kernel.routes)
        state.addresses = addresses.map { "\($0.address)/\($0.prefixLength)" }
        state.routes = routes.map { $0.destination.description }
        state.bypassRoutes = bypass.map(describe)
        state.dnsServers = lease.dnsServers.map(\.description)
        state.nat64Prefix = lease.nat64Prefix?.description
        state.mtu = lease.mtu.map(UInt32.init) ?? config.mtu
        state.advertisedPrefix = plan.lanPrefix?.description
        state.deprecatedAddresses = InstallOrder.addresses(kernel.addresses.filter(\.deprecated)).map { "\($0.address)/\($0.prefixLength)" }
        try updateLANFilter(plan.lanPrefix)
        log("\(changed ? "lease changed" : "configured"): \(state.addresses.joined(separator: " ")); routes \(state.routes.joined(separator: " "))"
            + (lease.deprecated.isEmpty ? "" : "; deprecated (connections on them go on): \(lease.deprecated.map(\.description).joined(separator: ", "))")
            + (bypass.isEmpty ? "" : "; endpoint kept on \(bypass.map(describe).joined(separator: ", "))")
            + (plan.lanPrefix.map { "; advertising \($0) on \(config.router!.interface)" } ?? ""))
        if !upHookRan {
            upHookRan = true
            runHook("up")
            runShell("postup")
        } else {
            runHook("lease-changed")
        }
    }

    /// Router mode: advertise the LAN prefix (again, if it, the deprecated ones or the NAT64 prefix
    /// changed). A running advertiser is updated in place: the LAN's hosts keep their router.
    func updateAdvertiser(_ lanPrefix: IPv6Prefix?, deprecated: [IPv6Prefix] = [], lease: LeaseMessage) throws(ClientError) {
        guard let settings = config.router else { return }
        let old = advertiser?.configuration
        let now = MonotonicClock.seconds()
        var retiring = deprecated.map { p in
            DeprecatedPrefix(prefix: p, validUntil: deprecatedUntil.first { $0.key.contains(p.network) || p.contains($0.key.network) }?.value ?? now)
        }
        // A LAN prefix that went without a valid lifetime left (the gateway's old prefix was
        // withdrawn at once): advertised withdrawn (preferred and valid lifetime 0) for two hours,
        // so hosts stop using it at once (RFC 9096) instead of keeping it preferred for hours.
        if let old {
            let kept = Set(retiring.map(\.prefix) + [lanPrefix].compactMap { $0 })
            for p in old.prefixes where !kept.contains(p) {
                retiring.append(DeprecatedPrefix(prefix: p, validUntil: now + 7200, withdrawn: true))
                log("router mode: \(p) withdrawn by the gateway: advertised on \(settings.interface) with lifetimes 0 so hosts stop using it at once (RFC 9096)")
            }
            for d in old.deprecatedPrefixes where d.withdrawn && d.validUntil > now && !kept.contains(d.prefix) && !retiring.contains(where: { $0.prefix == d.prefix }) {
                retiring.append(d)
            }
        }
        guard old?.prefixes != lanPrefix.map({ [$0] }) || old?.nat64Prefix != lease.nat64Prefix || old?.deprecatedPrefixes != retiring else { return }
        guard let lanPrefix else { advertiser?.stop(); advertiser = nil; return }
        var ad = AdvertisementConfiguration(interface: settings.interface, prefixes: [lanPrefix])
        ad.deprecatedPrefixes = retiring
        ad.dnsServers = settings.dnsServers.isEmpty ? lease.dnsServers.compactMap { if case .v6(let a) = $0 { a } else { nil } } : settings.dnsServers
        if ad.dnsServers.isEmpty, !lease.dnsServers.isEmpty {
            log("router mode: the gateway's DNS servers (\(lease.dnsServers.map(\.description).joined(separator: " "))) are IPv4 only and RDNSS carries IPv6 addresses (RFC 8106): none advertised on \(settings.interface); set [router] dns, or an IPv6 server in the gateway's dns")
        }
        ad.mtu = max(1280, UInt32(lease.mtu ?? UInt16(clamping: config.mtu ?? 1420)))   // never below IPv6's minimum on the LAN
        ad.maximumInterval = settings.interval
        ad.nat64Prefix = lease.nat64Prefix
        if let running = advertiser {
            running.update(ad)
            return
        }
        do {
            let a = try RouterAdvertiser(ad)
            a.log = log
            a.start()
            advertiser = a
        } catch {
            throw ClientError(.routerMode, error)
        }
    }

    /// Other interfaces' default routes and the interfaces' names (the planner's facts). Lock held.
    func hostRoutes() throws(ClientError) -> ClientHostRoutes {
        var facts = ClientHostRoutes()
        for v6 in [true, false] {
            do {
                facts.defaultRoutes[v6] = try rk.routes(ipv6: v6, table: 254).filter { $0.destination.length == 0 && $0.type == 1 && !isOurs($0.interfaceIndex) }
            } catch {
                throw ClientError(.routes(ipv6: v6), error)
            }
        }
        for l in (try? rk.links()) ?? [] { facts.interfaceNames[l.index] = l.name }
        return facts
    }

    /// The tunnel's interface or the CLAT's.
    func isOurs(_ index: Int32?) -> Bool { index == tunIndex || (index == clatIndex && clat != nil) }

    /// "203.0.113.129/32 via 198.51.100.1 dev eth0", with the interface's name.
    func describe(_ r: Route) -> String {
        let name = r.interfaceIndex.flatMap { i in (try? rk.links())?.first { $0.index == i }?.name } ?? r.interfaceIndex.map { "#\($0)" } ?? "?"
        return "\(r.destination)" + (r.gateway.map { " via \($0)" } ?? "") + " dev \(name)"
    }

    /// A host route for the endpoint through the path the kernel uses now (RTM_GETROUTE, never
    /// parsed command output), so the tunnel's own UDP keeps leaving through the physical interface.
    func bypassRoute(for address: IPAddress) throws(ClientError) -> Route {
        let host = IPPrefix(host: address)
        // Ignore our own earlier bypass route (a restart after a crash, or a re-check): taken out
        // for the lookup, and marked missing so the reconciler puts the right one back.
        let found: Route
        do {
            if let mine = bypassRoutes.first(where: { $0.destination == host }) ?? (try? rk.routes(ipv6: address.isV6, table: 254))?.first(where: {
                $0.destination == host && $0.protocolNumber == RouteSocket.sixgateProtocol }) {
                try? rk.removeRoute(mine)
                reconciler.noteMissing(.route(mine))
            }
            found = try rk.lookupRoute(to: address)
        } catch {
            throw ClientError(.endpointRoute("\(address)"), "no route to the gateway's endpoint \(address): \(error)", underlying: error)
        }
        guard let index = found.interfaceIndex, !isOurs(index) else {
            throw ClientError(.endpointRoute("\(address)"), "the route to the gateway's endpoint \(address) leads into the tunnel itself; give it a route through the physical interface")
        }
        return Route(destination: host, interfaceIndex: index, gateway: found.gateway)
    }

    /// Router mode turns forwarding on, and with it the kernel stops taking router advertisements
    /// on interfaces with accept_ra=1: their RA-learned default route would expire.
    func warnAboutAcceptRA() {
        guard let routes = try? rk.routes(ipv6: true, table: 254), let links = try? rk.links() else { return }
        for r in routes where r.destination.length == 0 && r.protocolNumber == 9 && r.interfaceIndex != tunIndex {   // 9: RTPROT_RA
            guard let name = links.first(where: { $0.index == r.interfaceIndex })?.name,
                  let key = try? SysctlKey.acceptRA(.interface(name)), (try? Sysctl.read(key)) == 1 else { continue }
            log("warning: forwarding is on and \(name) has accept_ra=1, so its router-advertised default route will expire; fix: sysctl -w net.ipv6.conf.\(name).accept_ra=2")
        }
    }
}

/// The order status output lists addresses and routes in (a plan is a set).
enum InstallOrder {
    static func addresses(_ s: Set<InterfaceAddress>) -> [InterfaceAddress] {
        s.sorted { a, b in a.address.isV6 != b.address.isV6 ? a.address.isV6 : a.description < b.description }
    }
    static func routes(_ s: Set<Route>) -> [Route] {
        s.sorted { a, b in a.destination.isIPv6 != b.destination.isIPv6 ? a.destination.isIPv6 : a.destination.description < b.destination.description }
    }
}

extension IPPrefix {
    var isIPv6: Bool { if case .v6 = self { true } else { false } }
}
