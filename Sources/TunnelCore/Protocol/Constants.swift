// WireGuard's constants (paper §5.4 and §6; wireguard-go device/constants.go and noise-protocol.go).

/// WireGuard's fixed strings, sizes and timer constants.
public enum WireGuard {
    /// The Noise prologue.
    public static let identifier = "WireGuard v1 zx2c4 Jason@zx2c4.com"
    public static let labelMAC1 = "mac1----"
    public static let labelCookie = "cookie--"

    public static let initiationSize = 148
    public static let responseSize = 92
    public static let cookieReplySize = 64
    /// type, receiver index, counter.
    public static let transportHeaderSize = 16
    public static let tagSize = 16
    /// Smallest transport message: header and the tag of an empty (keepalive) payload.
    public static let minimumTransportSize = transportHeaderSize + tagSize
    /// Total overhead on the inner packet: header, tag, and padding to 16 bytes at most.
    public static let overhead = transportHeaderSize + tagSize

    public static let rekeyAfterMessages: UInt64 = 1 << 60
    public static let rejectAfterMessages: UInt64 = UInt64.max - (1 << 13)
    public static let defaultPort: UInt16 = 51820
}
