// AddressPool's errors: each names the pool, the address or client, and what to do.
import PacketKit

/// Why an allocation, an assignment or the store failed. `description` is the operator's text.
public enum AddressPoolError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Every slot of `pool` is leased, reserved or in its quiet period.
    case exhausted(pool: String, size: String, inQuietPeriod: Int)
    case unknownPool(String)
    /// A configuration problem found before anything was allocated.
    case invalidConfiguration(pool: String, reason: String)
    /// Two pools share addresses; pools must be disjoint.
    case overlappingPools(String, String)
    /// The address (or prefix) is not a slot of the pool.
    case notInPool(pool: String, address: String)
    /// A reserved address was asked for as a static assignment.
    case reserved(pool: String, address: String)
    /// The address is leased to another client (or still in its quiet period after that client).
    case alreadyLeased(pool: String, address: String, client: String)
    case invalidClient(String)
    /// The lease store failed; `detail` is the database's message.
    case store(operation: String, path: String, detail: String)
    /// A shared store: another writer (another gateway) changed the slot between this writer's read
    /// and its commit; nothing was written. The allocator reads the changes and tries again; this
    /// reaches a caller only when every try met a conflict.
    case conflict(pool: String, address: String, store: String)

    public var description: String {
        switch self {
        case .exhausted(let pool, let size, let quiet):
            var text = "pool \(pool) is exhausted: all \(size) slots are leased or reserved"
            if quiet > 0 { text += " (\(quiet) released ones are in their quiet period; they come back when it ends)" }
            return text + "; widen the pool or release clients"
        case .unknownPool(let name): return "no pool named \(name)"
        case .invalidConfiguration(let pool, let reason): return "pool \(pool): \(reason)"
        case .overlappingPools(let a, let b): return "pools \(a) and \(b) overlap; give each its own prefix"
        case .notInPool(let pool, let address): return "\(address) is not a slot of pool \(pool)"
        case .reserved(let pool, let address): return "\(address) is reserved in pool \(pool)"
        case .alreadyLeased(let pool, let address, let client): return "\(address) in pool \(pool) is held by client \(client)"
        case .invalidClient(let reason): return "invalid client identity: \(reason)"
        case .store(let operation, let path, let detail): return "lease store \(path): \(operation) failed: \(detail)"
        case .conflict(let pool, let address, let store):
            return "lease store \(store): \(address) in pool \(pool) was changed by another gateway at the same moment, on every try; nothing was written (try again)"
        }
    }
}
