// TunnelCore — TUN device I/O and the WireGuard-compatible userspace data plane.
//
// Not built yet: issue 4 fills this module. Nothing here pretends to work; the executables that
// depend on it say so and exit non-zero (EX_UNAVAILABLE).

/// Where the TunnelCore module stands. Replaced by the real API when issue 4 lands.
public enum TunnelCoreStatus {
    /// The tracking issue that builds this module.
    public static let issue = 4
    /// False until the module does its job.
    public static let isImplemented = false
}
