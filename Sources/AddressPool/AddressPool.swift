// AddressPool — address allocation and the crash-safe lease store.
//
// Not built yet: issue 5 fills this module. Nothing here pretends to work; the executables that
// depend on it say so and exit non-zero (EX_UNAVAILABLE).

/// Where the AddressPool module stands. Replaced by the real API when issue 5 lands.
public enum AddressPoolStatus {
    /// The tracking issue that builds this module.
    public static let issue = 5
    /// False until the module does its job.
    public static let isImplemented = false
}
