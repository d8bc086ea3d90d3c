import Testing
@testable import Diagnostics

@Suite("libpcap binding")
struct LibpcapTests {
    @Test func reportsTheLibraryVersion() {
        #expect(LivePcap.libraryVersion.hasPrefix("libpcap version 1."))
    }
}
