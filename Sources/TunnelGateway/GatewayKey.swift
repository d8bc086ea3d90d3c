// The gateway's WireGuard private key: read from the state directory, or made there (mode 0600).
import Foundation
import TunnelCore

extension Gateway {
    /// Reads the base64 key at `path`, or creates one there with mode 0600.
    public static func loadOrCreateKey(_ path: String) throws(GatewayError) -> Bytes32 {
        if let data = FileManager.default.contents(atPath: path) {
            let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            guard let key = Bytes32(base64: text) else { throw .io(path: path, detail: "not a WireGuard private key (44 characters of base64, as `wg genkey` prints)") }
            var st = stat()
            if stat(path, &st) == 0, st.st_mode & 0o077 != 0 {
                guard chmod(path, 0o600) == 0 else { throw .io(path: path, detail: "readable by others and cannot chmod 0600") }
            }
            return key
        }
        let key = X25519.generatePrivateKey()
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .io(path: path, detail: "cannot create: \(String(cString: strerror(errno)))") }
        let text = key.base64 + "\n"
        let ok = text.withCString { write(fd, $0, strlen($0)) } == text.utf8.count && fsync(fd) == 0
        close(fd)
        guard ok else { throw .io(path: path, detail: "cannot write the key") }
        return key
    }
}
