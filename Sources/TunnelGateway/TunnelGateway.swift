// TunnelGateway — the gateway role composed from the capability modules.
//
// Not built yet: issue 6 fills this module. Nothing here pretends to work; the executables that
// depend on it say so and exit non-zero (EX_UNAVAILABLE).

/// Where the TunnelGateway module stands. Replaced by the real API when issue 6 lands.
public enum TunnelGatewayStatus {
    /// The tracking issue that builds this module.
    public static let issue = 6
    /// False until the module does its job.
    public static let isImplemented = false
}
