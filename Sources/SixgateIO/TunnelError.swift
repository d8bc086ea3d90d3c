#if canImport(Glibc)
import Glibc
#endif

/// A TunnelCore failure that names the object (device, socket, peer, config line) and why.
public struct TunnelError: Error, Sendable, CustomStringConvertible {
    public let operation: String
    public let object: String
    public let detail: String
    /// errno when a syscall failed, else 0.
    public let errno: Int32

    public init(operation: String, object: String, detail: String, errno: Int32 = 0) {
        self.operation = operation; self.object = object; self.detail = detail; self.errno = errno
    }

    /// From the current errno of a failed syscall named `call`.
    static func syscall(_ call: String, object: String, hint: String? = nil) -> TunnelError {
        let e = Glibc.errno
        var detail = "\(call): \(String(cString: strerror(e)))"
        if e == EPERM || e == EACCES { detail += " (needs root or CAP_NET_ADMIN)" }
        if let hint { detail += "; \(hint)" }
        return TunnelError(operation: call, object: object, detail: detail, errno: e)
    }

    public var description: String { "\(object): \(detail)" }
}
