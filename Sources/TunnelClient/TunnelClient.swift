// TunnelClient — the client role composed from the capability modules.
//
// Not built yet: issue 7 fills this module. Nothing here pretends to work; the executables that
// depend on it say so and exit non-zero (EX_UNAVAILABLE).

/// Where the TunnelClient module stands. Replaced by the real API when issue 7 lands.
public enum TunnelClientStatus {
    /// The tracking issue that builds this module.
    public static let issue = 7
    /// False until the module does its job.
    public static let isImplemented = false
}
