/// The release every Sixgate executable reports with `--version`.
public enum SixgateVersion {
    public static let current = "0.2.0"
}
