import Foundation
import SixgateDaemon
import SixgateTestSupport
import Testing

/// Hook scripts: a script that is being written when its hook fires (an editor saving it, a
/// package upgrade) is tried again instead of failing with "Text file busy".
struct HookTests {
    @Test func aScriptBeingWrittenIsTriedAgain() throws {
        let path = NSTemporaryDirectory() + "sg-hook-\(uniqueSuffix()).sh"
        defer { unlink(path) }
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o755)
        try #require(fd >= 0)
        let text = Array("#!/bin/sh\nexit 0\n".utf8)
        _ = text.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        fchmod(fd, 0o755)
        // Still open for writing: an exec now fails with ETXTBSY. It is closed 200 ms later.
        let closer = Thread { usleep(200_000); close(fd) }
        closer.start()
        #expect(Hook.run(path, environment: [:]) == nil, "run once the writer is done")
        // A script that stays busy is reported as such.
        let fd2 = open(path, O_WRONLY | O_CLOEXEC)
        defer { close(fd2) }
        let failure = Hook.run(path, environment: [:])
        #expect(failure?.contains("Text file busy (it was being written for half a second)") == true, "\(failure ?? "ran")")
    }
}
