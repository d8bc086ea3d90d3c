import SixgateTestSupport
import Testing
@testable import TunnelClient

/// Issue 27: the client's errors say what they are about and keep what lies under them.
@Suite(.enabled(if: isRoot, "needs root (netlink)"))
struct ClientErrorTests {
    @Test func anEndpointThatIsNotHostPortIsNamedAsTheEndpoint() throws {
        var c = ClientConfiguration()
        c.endpoint = "gateway-without-a-port"
        let client = try SixgateClient(config: c)
        do {
            _ = try client.resolveEndpoint()
            Issue.record("resolved \(c.endpoint)")
        } catch {
            #expect(error.subject == .endpoint("\"gateway-without-a-port\""))
            #expect(error.description == "endpoint \"gateway-without-a-port\": is not host:port")
            #expect(!error.isFatal)
        }
    }
}
