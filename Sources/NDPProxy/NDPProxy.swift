// NDPProxy — Neighbour Discovery proxy (RFC 4861 §7.2.8), npd6/ndppd compatible.
//
// Not built yet: issue 8 fills this module. Nothing here pretends to work; the executables that
// depend on it say so and exit non-zero (EX_UNAVAILABLE).

/// Where the NDPProxy module stands. Replaced by the real API when issue 8 lands.
public enum NDPProxyStatus {
    /// The tracking issue that builds this module.
    public static let issue = 8
    /// False until the module does its job.
    public static let isImplemented = false
}
