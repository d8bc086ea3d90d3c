// Hook scripts named in config files (gatewayd's and tunnel-client's [hooks]): run one with the
// facts in its environment, wait a bounded time, and say what went wrong instead of throwing.
import Foundation

public enum Hook {
    /// Runs `executable` with `arguments` and `environment`, waiting at most `timeout` seconds
    /// (then it is terminated). Returns nil on exit status 0, else a line saying what happened.
    /// A script that is being written at that moment (an editor saving it, a package upgrade)
    /// cannot be executed (ETXTBSY): tried again for up to half a second.
    public static func run(_ executable: String, arguments: [String] = [], environment: [String: String], timeout: Double = 10) -> String? {
        var p = Process()
        for attempt in 0..<6 {
            p = Process()
            p.executableURL = URL(fileURLWithPath: executable)
            p.arguments = arguments
            p.environment = environment
            do {
                try p.run()
                break
            } catch {
                // Foundation wraps the spawn's errno (NSCocoaErrorDomain 256 around NSPOSIXErrorDomain 26).
                let e = error as NSError, under = e.userInfo[NSUnderlyingErrorKey] as? NSError
                let busy = [e, under].contains { $0?.domain == NSPOSIXErrorDomain && $0?.code == Int(ETXTBSY) }
                if busy && attempt < 5 { usleep(100_000); continue }
                // The errno's own words ("Permission denied", "No such file or directory"), not Foundation's wrapper's.
                return "cannot run \(executable): \((under ?? e).localizedDescription)" + (busy ? " (it was being written for half a second)" : "")
            }
        }
        let deadline = Date().addingTimeInterval(timeout)
        while p.isRunning, Date() < deadline { usleep(20_000) }
        if p.isRunning {
            p.terminate()
            return "\(executable) still running after \(Int(timeout)) s; stopped"
        }
        return p.terminationStatus == 0 ? nil : "\(executable) exited with \(p.terminationStatus)"
    }
}
