// The responder's interfaces over time: the outer interface deleted and made again, the inner
// interface of an `iface` rule (ndppd's sessions: ask there, answer when a host does).
import SixgateIO
import PacketKit
import RouteKit
import SixgateSystem
#if canImport(Glibc)
import Glibc
#endif

extension Responder {
    /// The interface deleted (the socket is closed, the thread waits) or made again under the same
    /// name (a new index: the socket is opened on it). Says which, through `log`.
    func checkInterface() {
        let index = try? routes.interfaceIndex(rule.interface)
        if let index, index == interfaceIndex, !interfaceGone { return }
        socket = nil
        guard let index else {
            if !interfaceGone { log?("\(rule.interface) is gone; answering again when it is back") }
            interfaceGone = true
            return
        }
        do {
            let s = try openPacketSocket(in: namespace, rule.interface, index: index, .neighborSolicitations)
            if let bytes = try? s.macAddress() { mac = bytes.withUnsafeBytes { MACAddress(bytes: $0) } }
            socket = s
            interfaceIndex = index
            interfaceGone = false
            routeCache.removeAll()
            try? refreshLocal(force: true)
            log?("\(rule.interface) is back (index \(index)); answering")
        } catch {
            if !interfaceGone { log?("\(rule.interface): \(error); trying again") }
            interfaceGone = true
        }
    }

    /// The inner interface of an `iface` rule deleted (its socket closed; targets behind it count
    /// as silent) or made again (a new index: the socket is opened on it). Says which through `log`,
    /// as `checkInterface` does for the outer one.
    func checkInner() {
        guard let name = rule.innerInterface else { return }
        let index = try? routes.interfaceIndex(name)
        if let index, let inner, index == inner.index, !innerGone { return }
        inner = nil
        // What the old interface said is void: owed answers are dropped, the cache is emptied.
        for target in innerWaiting {
            if case .waiting(let owed)? = innerCache[target]?.state { pending.innerSilent += UInt64(owed.count) }
        }
        innerCache.removeAll()
        innerWaiting.removeAll()
        innerLinkLocal = nil
        guard let index else {
            if !innerGone { log?("inner interface \(name) is gone; targets behind it are not answered until it is back") }
            innerGone = true
            return
        }
        do {
            inner = try openInner(name, index: index)
            innerGone = false
            log?("inner interface \(name) is back (index \(index)); asking there again")
        } catch {
            if !innerGone { log?("inner interface \(name): \(error); trying again") }
            innerGone = true
        }
    }


    /// Answers at once if a host on the inner interface answered recently; otherwise owes the
    /// answer and asks there (one solicitation per target per timeout), like ndppd's sessions.
    func askInner(_ target: IPv6Address, _ owed: Owed) {
        guard let inner else {
            pending.innerSilent += 1
            if trace != nil { note("solicitation for \(target) from \(owed.source): not answered: iface rule, and the inner interface \(rule.innerInterface ?? "") is gone") }
            return
        }
        let now = MonotonicClock.seconds()
        if let entry = innerCache[target], entry.expires > now {
            switch entry.state {
            case .present:
                if trace != nil { note("solicitation for \(target) from \(owed.source): answered (iface: a host on \(rule.innerInterface ?? "") answered, cached)") }
                answer(target, owed); return
            case .absent:
                pending.innerSilent += 1
                if trace != nil { note("solicitation for \(target) from \(owed.source): not answered: iface rule, no host on \(rule.innerInterface ?? "") answered (cached)") }
                return
            case .waiting(var list):
                if list.count < 16 { list.append(owed) }
                innerCache[target] = (.waiting(list), entry.expires)
                return
            }
        }
        if innerCache.count > 65536 { innerCache = innerCache.filter { $0.value.expires > now } }
        innerCache[target] = (.waiting([owed]), now + rule.solicitTimeout)
        innerWaiting.insert(target)
        if trace != nil { note("solicitation for \(target) from \(owed.source): asking \(rule.innerInterface ?? "") (iface rule); answered if a host there answers within \(Int(rule.solicitTimeout * 1000)) ms") }
        if innerLinkLocal == nil || now - localRefreshedAt > 2 {
            let addrs = (try? routes.addresses(interface: rule.innerInterface ?? "")) ?? []
            innerLinkLocal = addrs.compactMap { a -> IPv6Address? in if case .v6(let v) = a.address, v.isLinkLocal { return v } else { return nil } }.first
        }
        // RFC 4861 §7.2.2: to the target's solicited-node group, with our link-layer address.
        let group = IPv6Address(rawValue: IPv6Address("ff02::1:ff00:0")!.rawValue | (target.rawValue & 0xff_ffff))
        let packet = PacketRepr.ipv6(source: innerLinkLocal ?? IPv6Address(rawValue: 0), destination: group, hopLimit: 255,
                                     .icmpv6(.neighborSolicitation(target: target, options: innerLinkLocal == nil ? [] : [.sourceLinkLayerAddress(inner.mac)])))
        guard let bytes = try? packet.emit() else { return }
        let frame = MACAddress(multicast: group).bytes + inner.mac.bytes + [0x86, 0xdd] + bytes
        let sent = frame.withUnsafeBytes { inner.socket.send(frame: $0) }
        if case .success(let n) = sent, n == frame.count { pending.innerSolicitations += 1 } else { pending.sendErrors += 1 }
    }

    /// An advertisement from the inner interface: the target is there; pay what is owed.
    func handleInner(_ frame: UnsafeRawBufferPointer) {
        guard let eth = try? EthernetFrame(frame), eth.etherType == .ipv6, let ip = try? IPv6Packet(eth.payload),
              (try? NDPValidation.validate(ip)) == .neighborAdvertisement, let m = try? ICMPv6Message(ip.upperLayer),
              let na = try? NeighborAdvertisement(m) else { return }
        let target = na.target
        guard let entry = innerCache[target] else { return }   // not something we asked about
        pending.innerAnswers += 1
        innerCache[target] = (.present, now + rule.cacheTTL)
        innerWaiting.remove(target)
        if case .waiting(let owed) = entry.state {
            if trace != nil { note("solicitation for \(target): answered \(owed.count) waiting (iface: a host on \(rule.innerInterface ?? "") answered)") }
            for o in owed { answer(target, o) }
        }
    }

    /// Targets whose inner host did not answer within the timeout are absent for the cache TTL.
    func expireInner() {
        guard !innerWaiting.isEmpty else { return }
        let now = MonotonicClock.seconds()
        for target in innerWaiting {
            guard let entry = innerCache[target] else { innerWaiting.remove(target); continue }
            if case .waiting(let owed) = entry.state, entry.expires <= now {
                innerCache[target] = (.absent, now + rule.cacheTTL)
                innerWaiting.remove(target)
                pending.innerSilent += UInt64(owed.count)
                if trace != nil { note("solicitation for \(target): not answered: iface rule, no host on \(rule.innerInterface ?? "") answered within \(Int(rule.solicitTimeout * 1000)) ms") }
            }
        }
    }

    /// Whether the kernel routes `target` out of another interface (cached for `rule.routeTTL`).
    func routedElsewhere(_ target: IPv6Address) -> Bool {
        if let (answer, expires) = routeCache[target], expires > now { return answer }
        var answer = false
        if let r = try? routes.lookupRoute(to: .v6(target)), r.type == 1, let i = r.interfaceIndex { answer = i != interfaceIndex }
        if routeCache.count > 65536 { routeCache.removeAll(keepingCapacity: true) }
        routeCache[target] = (answer, now + rule.routeTTL)
        return answer
    }

    /// A one-second window per source and overall.
    func admit(_ source: IPv6Address) -> Bool {
        if now - window.start >= 1 { window = (now, 0, [:]) }
        guard window.overall < rateLimit.overall else { return false }
        let n = window.perSource[source, default: 0]
        guard n < rateLimit.perSource else { return false }
        window.overall += 1
        window.perSource[source] = n + 1
        return true
    }
}
