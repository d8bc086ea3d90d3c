import AddressPool
import Foundation
import PacketKit
import SixgateTestSupport
import Testing

/// A fresh directory for one test's store, removed afterwards.
final class StoreDirectory {
    let path: String
    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("sg-leases-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    var database: String { path + "/leases.db" }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

struct SQLiteStoreTests {
    @Test func leasesSurviveAReopenWithTheSameAnswers() throws {
        let dir = try StoreDirectory()
        let clock = TestClock()
        do {
            let a = try AddressAllocator(pools: [howtoV6()], store: try SQLiteLeaseStore(path: dir.database), now: clock.now)
            _ = try a.allocate(client: "laptop", in: "v6")
            _ = try a.allocate(client: "phone", in: "v6")
            _ = try a.assignStatic(client: "nas", prefix: p("2001:db8:1::40/128"), in: "v6")
            _ = try a.release(client: "laptop")
        }
        let b = try AddressAllocator(pools: [howtoV6()], store: try SQLiteLeaseStore(path: dir.database), now: clock.now)
        #expect(b.leases(of: "phone").map(\.prefix) == [p("2001:db8:1::5/128")])
        #expect(b.leases(of: "nas").first?.isStatic == true)
        #expect(b.leases(of: "laptop").isEmpty)
        // The quiet period survives the restart: a newcomer does not get ::4, its owner does.
        #expect(try b.allocate(client: "tablet", in: "v6").prefix == p("2001:db8:1::6/128"))
        #expect(try b.allocate(client: "laptop", in: "v6").prefix == p("2001:db8:1::4/128"))
        #expect(try SQLiteLeaseStore(path: dir.database, readOnly: true).integrityCheck() == "ok")
    }

    @Test func aSecondWriterIsRefusedAndNamesTheHolder() throws {
        let dir = try StoreDirectory()
        let first = try SQLiteLeaseStore(path: dir.database)
        do {
            _ = try SQLiteLeaseStore(path: dir.database)
            Issue.record("a second writer opened the store")
        } catch {
            #expect(error.description.contains(dir.database) && error.description.contains("pid \(getpid())"), "\(error)")
        }
        _ = first
    }

    @Test func aReaderSeesEachCommitWhileTheWriterKeepsWriting() throws {
        let dir = try StoreDirectory()
        let writer = try AddressAllocator(pools: [howtoV6()], store: try SQLiteLeaseStore(path: dir.database))
        let reader = try SQLiteLeaseStore(path: dir.database, readOnly: true)
        for i in 0..<20 {
            let lease = try writer.allocate(client: "c\(i)", in: "v6")
            #expect(try reader.loadAll().contains(lease), "commit \(i) not visible to the reader")
        }
        #expect(throws: AddressPoolError.self) { try reader.commit([]) }
    }

    /// The seam readers poll (NDPProxy's kernel mode, issue 25): the stamp moves with every commit
    /// of another process's writer, and stays put without one, so a reader loads only when needed.
    @Test func theChangeStampMovesWithEveryCommitAndOnlyThen() throws {
        let dir = try StoreDirectory()
        let writer = try AddressAllocator(pools: [howtoV6()], store: try SQLiteLeaseStore(path: dir.database))
        let reader = try SQLiteLeaseStore(path: dir.database, readOnly: true)
        var last = try #require(reader.changeStamp)
        #expect(reader.changeStamp == last, "no commit, no change")
        for i in 0..<5 {
            _ = try writer.allocate(client: "s\(i)", in: "v6")
            let now = try #require(reader.changeStamp)
            #expect(now != last, "commit \(i) did not move the stamp")
            last = now
        }
        let memory = MemoryLeaseStore()
        let before = memory.changeStamp
        try memory.commit([])
        #expect(memory.changeStamp != before && memory.changeStamp != nil)
    }

    @Test func aReaderOfAStoreNotYetSetUpSeesItEmptyThenSeesTheWritersLeases() throws {
        let dir = try StoreDirectory()
        // What a reader finds if the writer was killed before its first migration committed.
        FileManager.default.createFile(atPath: dir.database, contents: Data())
        let reader = try SQLiteLeaseStore(path: dir.database, readOnly: true)
        #expect(try reader.loadAll().isEmpty)
        let writer = try AddressAllocator(pools: [howtoV6()], store: try SQLiteLeaseStore(path: dir.database))
        let lease = try writer.allocate(client: "laptop", in: "v6")
        #expect(try reader.loadAll() == [lease])
    }

    @Test func recordsOfARemovedOrNarrowedPoolAreKeptNotDropped() throws {
        let dir = try StoreDirectory()
        let v4 = PoolConfiguration(name: "v4", prefix: p("192.0.2.0/24"), kind: .ipv4Hosts)
        do {
            let a = try AddressAllocator(pools: [howtoV6(), v4], store: try SQLiteLeaseStore(path: dir.database))
            _ = try a.allocate(client: "laptop", inPools: ["v6", "v4"])
        }
        let store = try SQLiteLeaseStore(path: dir.database)
        let b = try AddressAllocator(pools: [howtoV6()], store: store)
        #expect(b.orphaned.map(\.prefix) == [p("192.0.2.1/32")])
        #expect(b.leases(of: "laptop").count == 1)
        _ = try b.allocate(client: "phone", in: "v6")
        #expect(try store.loadAll().count == 3)
    }

    @Test func aMissingDirectoryOrReadOnlyMissingFileIsNamed() {
        #expect(throws: AddressPoolError.self) { try SQLiteLeaseStore(path: "/nonexistent-dir/leases.db") }
        do { _ = try SQLiteLeaseStore(path: "/nonexistent-dir/leases.db") } catch {
            #expect(error.description.contains("/nonexistent-dir/leases.db"))
        }
        do { _ = try SQLiteLeaseStore(path: "/nonexistent-dir/x.db", readOnly: true); Issue.record("opened") } catch {
            #expect(error.description.contains("/nonexistent-dir/x.db"))
        }
    }
}

/// Crash safety: the `allocate` example allocates in a loop and prints each lease after it is
/// committed; it is killed with SIGKILL at random moments, many times, on the same store. After each
/// kill the store must open, pass SQLite's integrity check, and hold every lease that was printed,
/// with no address held by two clients.
struct CrashSafetyTests {
    static var allocateBinary: String { builtProductsDirectory + "/allocate" }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: CrashSafetyTests.allocateBinary), "build the allocate example first"))
    func everyReportedLeaseSurvivesSIGKILL() throws {
        let dir = try StoreDirectory()
        var rng = SeededGenerator(state: UInt64(UInt32.random(in: 0...UInt32.max)))
        var reported: [String: String] = [:]   // client -> prefix, as printed
        let rounds = 25
        var killedMidway = 0
        for round in 0..<rounds {
            let proc = try BackgroundProcess([Self.allocateBinary, dir.database, "2001:db8:7::/64", "--reserve", "2001:db8:7::1/128",
                                              "--loop", "100000", "--start", String(round * 100_000), "--release-every", "7"], captureOutput: true)
            usleep(UInt32(20_000 + rng.next() % 250_000))
            let wasRunning = proc.process.isRunning
            kill(proc.pid, SIGKILL)
            proc.process.waitUntilExit()
            if wasRunning { killedMidway += 1 }
            // Only complete lines were reported; a torn last line was not.
            let lines = proc.output.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
            for line in lines {
                let w = line.split(separator: " ")
                if w.first == "released", w.count == 3 { reported[String(w[1])] = nil }
                else if w.count == 2 { reported[String(w[0])] = String(w[1]) }
                else { Issue.record("round \(round): unexpected line \(line)") }
            }
            // Killed before it even created the file: then it can have reported nothing.
            guard FileManager.default.fileExists(atPath: dir.database) else {
                #expect(reported.isEmpty, "round \(round): leases reported but no store file")
                continue
            }
            let store = try SQLiteLeaseStore(path: dir.database, readOnly: true)
            #expect(try store.integrityCheck() == "ok", "round \(round)")
            let rows = try store.loadAll()
            let active = rows.filter(\.isActive)
            let byClient = Dictionary(active.map { ($0.client, $0.prefix.description) }, uniquingKeysWith: { a, _ in a + " and more" })
            // A release that was committed but not yet printed when the kill came is fine (the
            // example releases one client after every seventh lease): at most one per round, and
            // the row must still be there, released, at the reported prefix.
            let released = Dictionary(rows.filter { !$0.isActive }.map { ($0.client, $0.prefix.description) }, uniquingKeysWith: { a, _ in a })
            var unreportedReleases = 0
            for (client, prefix) in reported {
                if byClient[client] == nil, released[client] == prefix {
                    unreportedReleases += 1
                    reported[client] = nil
                    continue
                }
                #expect(byClient[client] == prefix, "round \(round): \(client) was reported at \(prefix), store has \(byClient[client] ?? "nothing")")
            }
            #expect(unreportedReleases <= 1, "round \(round): \(unreportedReleases) leases vanished")
            #expect(Set(active.map(\.prefix)).count == active.count, "round \(round): an address is active twice")
            #expect(Set(active.map(\.client)).count == active.count, "round \(round): a client holds two addresses")
        }
        #expect(killedMidway >= rounds / 2, "most kills should land mid-loop (\(killedMidway) of \(rounds))")
        #expect(reported.count > rounds, "too few leases reported to test anything: \(reported.count)")
        print("crash safety: \(rounds) kills, \(killedMidway) mid-loop, \(reported.count) leases reported and found")
    }
}
