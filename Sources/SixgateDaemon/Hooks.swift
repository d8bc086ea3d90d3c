// Hook scripts named in config files (gatewayd's and tunnel-client's [hooks]): run one with the
// facts in its environment, wait a bounded time, and say what went wrong instead of throwing.
import Foundation

public enum Hook {
    /// Runs `executable` with `arguments` and `environment`, waiting at most `timeout` seconds
    /// (then it is terminated). Returns nil on exit status 0, else a line saying what happened.
    public static func run(_ executable: String, arguments: [String] = [], environment: [String: String], timeout: Double = 10) -> String? {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = arguments
        p.environment = environment
        do {
            try p.run()
        } catch {
            return "cannot run \(executable): \(error.localizedDescription)"
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
