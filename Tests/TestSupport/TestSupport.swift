// Helpers for Sixgate's tests: run real programs, and make network namespaces that are always
// removed again. Not part of any product.
import Foundation
import CTestSupport

/// The result of running a program.
public struct ProcessResult: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
    public var succeeded: Bool { status == 0 }
}

public enum TestSupportError: Error, CustomStringConvertible {
    case missingProgram(String)
    case failed([String], ProcessResult)
    public var description: String {
        switch self {
        case .missingProgram(let p): return "\(p) is not installed: run scripts/test.sh, which installs the test peers"
        case .failed(let argv, let r): return "\(argv.joined(separator: " ")) exited \(r.status): \(r.stderr)"
        }
    }
}

/// Finds a program on PATH (and in /usr/sbin, /sbin, where Debian puts tcpdump and ip).
public func which(_ name: String) -> String? {
    let path = (ProcessInfo.processInfo.environment["PATH"] ?? "") + ":/usr/sbin:/sbin:/usr/bin:/bin"
    for dir in path.split(separator: ":") {
        let p = "\(dir)/\(name)"
        if FileManager.default.isExecutableFile(atPath: p) { return p }
    }
    return nil
}

/// Runs `argv` to completion (bounded by `timeout` seconds, then killed) and returns its output.
@discardableResult
public func run(_ argv: [String], timeout: Double = 60, check: Bool = false) throws -> ProcessResult {
    guard let exe = argv[0].hasPrefix("/") ? argv[0] : which(argv[0]) else { throw TestSupportError.missingProgram(argv[0]) }
    // Output goes to temporary files (no pipes to drain concurrently), read after exit.
    let base = NSTemporaryDirectory() + "sixgate-run-\(uniqueSuffix())"
    FileManager.default.createFile(atPath: base + ".out", contents: nil)
    FileManager.default.createFile(atPath: base + ".err", contents: nil)
    defer {
        try? FileManager.default.removeItem(atPath: base + ".out")
        try? FileManager.default.removeItem(atPath: base + ".err")
    }
    let out = try FileHandle(forWritingTo: URL(fileURLWithPath: base + ".out"))
    let err = try FileHandle(forWritingTo: URL(fileURLWithPath: base + ".err"))
    let p = Process()
    p.executableURL = URL(fileURLWithPath: exe)
    p.arguments = Array(argv.dropFirst())
    p.standardOutput = out
    p.standardError = err
    p.standardInput = FileHandle.nullDevice
    try p.run()
    let deadline = Date().addingTimeInterval(timeout)
    while p.isRunning && Date() < deadline { usleep(5_000) }
    if p.isRunning { kill(p.processIdentifier, SIGKILL) }
    p.waitUntilExit()
    try? out.close()
    try? err.close()
    let r = ProcessResult(status: p.terminationStatus,
                          stdout: (try? String(contentsOfFile: base + ".out", encoding: .utf8)) ?? "",
                          stderr: (try? String(contentsOfFile: base + ".err", encoding: .utf8)) ?? "")
    if check && !r.succeeded { throw TestSupportError.failed(argv, r) }
    return r
}

/// A process started in the background; stopped by PID.
public final class BackgroundProcess: @unchecked Sendable {
    public let process: Process
    /// The file that receives standard output and error when `captureOutput` was set.
    public let outputPath: String?

    public init(_ argv: [String], environment: [String: String] = [:], captureOutput: Bool = false) throws {
        guard let exe = argv[0].hasPrefix("/") ? argv[0] : which(argv[0]) else { throw TestSupportError.missingProgram(argv[0]) }
        process = Process()
        process.executableURL = URL(fileURLWithPath: exe)
        process.arguments = Array(argv.dropFirst())
        if !environment.isEmpty { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        process.standardInput = FileHandle.nullDevice
        if captureOutput {
            let path = NSTemporaryDirectory() + "sixgate-bg-\(uniqueSuffix()).log"
            FileManager.default.createFile(atPath: path, contents: nil)
            let h = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
            process.standardOutput = h
            process.standardError = h
            outputPath = path
        } else {
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            outputPath = nil
        }
        try process.run()
    }

    /// What the process wrote so far (with `captureOutput`).
    public var output: String { outputPath.flatMap { try? String(contentsOfFile: $0, encoding: .utf8) } ?? "" }
    public var pid: Int32 { process.processIdentifier }
    /// Sends SIGTERM (then SIGKILL after `grace` seconds) and waits.
    public func stop(grace: Double = 3) {
        guard process.isRunning else { return }
        kill(pid, SIGTERM)
        let deadline = Date().addingTimeInterval(grace)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning { kill(pid, SIGKILL) }
        process.waitUntilExit()
    }
    deinit { stop(grace: 0.5) }
}

/// Whether the tests run as root (namespace tests need it; they skip themselves otherwise).
public var isRoot: Bool { geteuid() == 0 }

/// A short unique suffix for namespace and interface names (interface names are at most 15 bytes).
public func uniqueSuffix() -> String {
    String(UInt32.random(in: 0...UInt32.max), radix: 36)
}

/// Two network namespaces joined by a veth pair, removed again by `destroy()` or on deinit.
/// Addresses: `left` has 2001:db8:5::1/64 and 192.0.2.1/24, `right` 2001:db8:5::2/64 and
/// 192.0.2.2/24 (documentation ranges; DAD off so the addresses are usable at once).
public final class NamespacePair: @unchecked Sendable {
    public let left: String, right: String
    public let leftInterface: String, rightInterface: String
    private var destroyed = false

    public init(tag: String) throws {
        let id = uniqueSuffix()
        left = "sg-\(tag)-l-\(id)"
        right = "sg-\(tag)-r-\(id)"
        leftInterface = "sgl\(id)"
        rightInterface = "sgr\(id)"
        do {
            try run(["ip", "netns", "add", left], check: true)
            try run(["ip", "netns", "add", right], check: true)
            try run(["ip", "link", "add", leftInterface, "netns", left, "type", "veth", "peer", "name", rightInterface, "netns", right], check: true)
            for (ns, dev, v6, v4) in [(left, leftInterface, "2001:db8:5::1/64", "192.0.2.1/24"), (right, rightInterface, "2001:db8:5::2/64", "192.0.2.2/24")] {
                try exec(ns, ["sysctl", "-qw", "net.ipv6.conf.\(dev).accept_dad=0"])
                try exec(ns, ["ip", "link", "set", "lo", "up"])
                try exec(ns, ["ip", "link", "set", dev, "up"])
                try exec(ns, ["ip", "-6", "addr", "add", v6, "dev", dev, "nodad"])
                try exec(ns, ["ip", "addr", "add", v4, "dev", dev])
            }
        } catch {
            destroy()
            throw error
        }
    }

    /// Runs a command inside namespace `ns`.
    @discardableResult
    public func exec(_ ns: String, _ argv: [String], timeout: Double = 30, check: Bool = true) throws -> ProcessResult {
        try run(["ip", "netns", "exec", ns] + argv, timeout: timeout, check: check)
    }

    public func destroy() {
        guard !destroyed else { return }
        destroyed = true
        _ = try? run(["ip", "netns", "del", left])
        _ = try? run(["ip", "netns", "del", right])
    }

    deinit { destroy() }
}

private final class CapabilityThreadBox<T>: @unchecked Sendable { var value: T?; var dropError: Int32 = 0 }

/// CAP_NET_ADMIN's number in linux/capability.h.
public let capNetAdmin: Int32 = 12

/// Runs `body` on a fresh thread whose effective capability set lacks `capability`, and waits for
/// it. Capabilities are per thread on Linux, so the test process and its other threads keep theirs;
/// the thread ends with `body`. Throws if the capability cannot be dropped.
public func withoutCapability<T: Sendable>(_ capability: Int32, _ body: @escaping @Sendable () -> T) throws -> T {
    let box = CapabilityThreadBox<T>()
    let done = DispatchSemaphore(value: 0)
    let thread = Thread {
        if sixgate_test_drop_effective_capability(capability) != 0 {
            box.dropError = errno
        } else {
            box.value = body()
        }
        done.signal()
    }
    thread.start()
    done.wait()
    guard let value = box.value else {
        throw NSError(domain: "SixgateTestSupport", code: Int(box.dropError),
                      userInfo: [NSLocalizedDescriptionKey: "capset failed: errno \(box.dropError)"])
    }
    return value
}

/// The directory of the products `swift build` made: the test runner's own (so `swift test
/// --scratch-path OTHER` finds the executables it built), else .build/debug beside Package.swift.
public var builtProductsDirectory: String {
    if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
        var dir = URL(fileURLWithPath: exe).deletingLastPathComponent()
        // The runner is PACKAGE.xctest (a file, or on some platforms a bundle's Contents/MacOS).
        while dir.path != "/", !FileManager.default.isExecutableFile(atPath: dir.appendingPathComponent("gatewayd").path) {
            guard dir.lastPathComponent.hasSuffix(".xctest") || dir.lastPathComponent == "MacOS" || dir.lastPathComponent == "Contents" else { break }
            dir = dir.deletingLastPathComponent()
        }
        if FileManager.default.isExecutableFile(atPath: dir.appendingPathComponent("gatewayd").path) { return dir.path }
    }
    return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent(".build/debug").path
}

/// Polls `condition` every 50 ms until it holds or `timeout` seconds pass; returns whether it held.
public func eventually(timeout: Double = 10, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if try condition() { return true }
        usleep(50_000)
    }
    return try condition()
}

/// Writes a script another program will execute, mode 0755, through a file descriptor opened with
/// O_CLOEXEC and a rename: a descriptor open for writing that leaked into a process a parallel
/// test spawns (Foundation's writers do not set close-on-exec) would make every exec of the script
/// fail with ETXTBSY ("Text file busy") for as long as that process lives.
public func writeExecutable(_ text: String, to path: String) throws {
    let temporary = path + ".tmp-\(uniqueSuffix())"
    let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o755)
    guard fd >= 0 else { throw TransferError("open \(temporary): \(String(cString: strerror(errno)))") }
    let bytes = Array(text.utf8)
    let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    fchmod(fd, 0o755)
    close(fd)
    guard written == bytes.count, rename(temporary, path) == 0 else {
        unlink(temporary)
        throw TransferError("write \(path): \(String(cString: strerror(errno)))")
    }
}
