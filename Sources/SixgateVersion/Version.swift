/// The release and the commit every Sixgate executable reports with `--version`.
public enum SixgateVersion {
    public static let current = "0.2.0"
    /// The git commit built (12 hex digits, "-modified" when tracked files had changes), or
    /// "unknown" when built outside a git checkout.
    public static let commit = BuildInfo.commit
    /// "0.2.0 (commit 0123456789ab)".
    public static var description: String { "\(current) (commit \(commit))" }
}
