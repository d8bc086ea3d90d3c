// What a client change costs gatewayd's planner (issue 27's planner/reconciler split), at 10,000
// and 50,000 clients: the whole plan (GatewayPlanner.plan: start, SIGHUP, a renumbering) and the
// diff of two whole plans (KernelReconciler.update), against one client's change as gatewayd
// applies it (its part made, the old part out of the plan and the new in, the sets
// KernelReconciler.apply works on). The anchor, measured in the same run: reading every client's
// leases from the allocator, the data a whole plan is made from. Rows interleaved, 5 rounds,
// medians. No root, no kernel.
import AddressPool
import Foundation
import PacketKit
import RouteKit
import TunnelGateway

func seconds(_ body: () -> Void) -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
}
func median(_ xs: [Double]) -> Double { xs.sorted()[xs.count / 2] }

let key = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA="
// `PlannerBenchmarks N...`: other sizes (test.sh's smoke run uses a small one).
let sizes = CommandLine.arguments.dropFirst().compactMap { Int($0) }
var failed = false
for n in sizes.isEmpty ? [10_000, 50_000] : sizes {
    var config = GatewayConfiguration()
    config.ipv6Prefix = IPv6Prefix("2001:db8:1::/64")!
    config.ipv4Pool = IPv4Prefix("100.64.0.0/16")!
    let allocator = try AddressAllocator(pools: GatewayPlanner.pools(config), store: MemoryLeaseStore())
    let names = (0..<n).map { "client-\($0)" }
    for pool in GatewayPlanner.poolNames(config) { _ = try allocator.allocateMany(clients: names, in: pool) }
    let clients = names.map { ClientRecord(name: $0, publicKey: key) }
    let planner = GatewayPlanner(config: config, tunnelIndex: 7, uplinkIndex: 2)
    var anchor: [Double] = [], plan: [Double] = [], diff: [Double] = [], one: [Double] = [], move: [Double] = [], keep: [Double] = []
    // Issue 24: a renumbering moves every lease to its position in the new prefix (here back and
    // forth between two /64s), and while the old prefix is valid the plan carries each client's
    // old address too (a retiring prefix).
    let pools = [GatewayPlanner.pools(config)[0], GatewayPlanner.pools(config.renumbered(to: IPv6Prefix("2001:db8:2::/64")!))[0]]
    let retiring = GatewayPlanner(config: config, tunnelIndex: 7, uplinkIndex: 2, retiring: [IPv6Prefix("2001:db8:9::/64")!])
    var live = planner.plan(clients: clients, leases: { allocator.leases(of: $0) })
    var sink = 0
    let before = planner.plan(clients: Array(clients.dropLast()), leases: { allocator.leases(of: $0) })
    let after = planner.plan(clients: clients, leases: { allocator.leases(of: $0) })
    for _ in 0..<5 {
        anchor.append(seconds { for c in names { sink &+= allocator.leases(of: c).count } })
        plan.append(seconds { sink &+= planner.plan(clients: clients, leases: { allocator.leases(of: $0) }).kernel.routes.count })
        diff.append(seconds {
            // What update(to:) computes: the objects of both states, and their differences.
            let a = before.kernel.objects, b = after.kernel.objects
            sink &+= a.subtracting(b).count &+ b.subtracting(a).count
        })
        // There and back (the leases end where the other rows expect them), each move timed.
        move.append(seconds {
            sink &+= ((try? allocator.renumber(to: pools[1])) ?? []).count
            sink &+= ((try? allocator.renumber(to: pools[0])) ?? []).count
        } / 2)
        keep.append(seconds { sink &+= retiring.plan(clients: clients, leases: { allocator.leases(of: $0) }).kernel.routes.count })
        // One client's change, 100 times (a different client each time): what enrolment costs now.
        one.append(seconds {
            for i in 0..<100 {
                let c = clients[(i * 97) % n]
                let part = planner.part(c, leases: { allocator.leases(of: $0) })
                live.remove(part)
                var adding = part.kernel, removing = part.kernel
                adding.subtract(removing); removing.subtract(part.kernel)
                sink &+= adding.objects.count &+ removing.objects.count
                live.add(part)
            }
        } / 100)
    }
    // The incremental plan must be the whole plan (a check, not a timing: the smoke run fails on it).
    if live != planner.plan(clients: clients, leases: { allocator.leases(of: $0) }) {
        print("PlannerBenchmarks: after \(5 * 100) one-client changes the plan differs from the whole plan at \(n) clients")
        failed = true
    }
    let a = median(anchor), p = median(plan), d = median(diff), o = median(one), m = median(move), k = median(keep)
    print(String(format: "%6d clients   anchor (every client's leases read) %7.1f ms   whole plan %7.1f ms (%.1fx)   diff of two plans %7.1f ms (%.1fx)   one client's change %7.3f ms (%.4fx), at most %.0f/s of planning",
                 n, a * 1e3, p * 1e3, p / a, d * 1e3, d / a, o * 1e3, o / a, 1 / o))
    print(String(format: "%6d clients   renumbering: every lease moved %7.1f ms (%.1fx)   whole plan with a retiring prefix %7.1f ms (%.1fx)",
                 n, m * 1e3, m / a, k * 1e3, k / a))
    if sink == 42 { print("") }
}
if failed { exit(1) }
