// A peer and its keypairs (paper §5.4.5-5.4.6; wireguard-go device/peer.go, keypair.go).
import PacketKit

/// Transport keys from one handshake, with the send counter and the replay window.
final class Keypair {
    let sendKey: Bytes32
    let receiveKey: Bytes32
    let localIndex: UInt32
    let remoteIndex: UInt32
    let created: Double
    let isInitiator: Bool
    var sendCounter: UInt64 = 0
    var replay = ReplayWindow()
    unowned let peer: Peer

    init(keys: NoiseIKpsk2.TransportKeys, localIndex: UInt32, remoteIndex: UInt32, created: Double, isInitiator: Bool, peer: Peer) {
        sendKey = keys.send; receiveKey = keys.receive
        self.localIndex = localIndex; self.remoteIndex = remoteIndex
        self.created = created; self.isInitiator = isInitiator; self.peer = peer
    }
}

/// What a program sets for a peer (the `[Peer]` section of a wg config).
public struct PeerConfiguration: Sendable, Equatable {
    public var publicKey: Bytes32
    public var presharedKey: Bytes32
    public var endpoint: Endpoint?
    public var allowedIPs: [IPPrefix]
    /// Seconds between keepalives when idle; 0 is off.
    public var persistentKeepalive: UInt16

    public init(publicKey: Bytes32, presharedKey: Bytes32 = .zero, endpoint: Endpoint? = nil, allowedIPs: [IPPrefix] = [], persistentKeepalive: UInt16 = 0) {
        self.publicKey = publicKey; self.presharedKey = presharedKey; self.endpoint = endpoint
        self.allowedIPs = allowedIPs; self.persistentKeepalive = persistentKeepalive
    }
}

/// A peer's state as `wg show` reports it.
public struct PeerStatus: Sendable {
    public var configuration: PeerConfiguration
    /// Wall-clock time of the last completed handshake (seconds, nanoseconds), or zeros.
    public var lastHandshake: (seconds: Int64, nanoseconds: Int64)
    public var receivedBytes: UInt64
    public var sentBytes: UInt64
    /// Handshakes completed with this peer since it was added.
    public var handshakes: Int
}

final class Peer {
    var config: PeerConfiguration
    let mac1Key: Bytes32
    var cookieJar = CookieJar()

    // Handshake in flight (initiator side).
    var pending: (localIndex: UInt32, state: NoiseIKpsk2.InitiatorState, sentAt: Double)?
    var attemptStartedAt: Double?
    /// On the engine's `wantedInitiations` (its X25519 work to be done outside the lock).
    var initiationWanted = false
    var retryJitter = 0.0
    // Replay and flood guards for initiations we receive.
    var lastTimestamp: TAI64N?
    var lastInitiationConsumedAt = -1e9

    var current: Keypair?
    var previous: Keypair?
    var next: Keypair?

    var lastHandshakeWall: (seconds: Int64, nanoseconds: Int64) = (0, 0)
    var handshakes = 0
    var rxBytes: UInt64 = 0
    var txBytes: UInt64 = 0
    var lastSent = -1e9
    var lastReceived = -1e9
    var lastDataSent = -1e9
    /// When the first data packet since the last authenticated receive went out (nil: none
    /// unanswered). Not moved by later sends, as wireguard-go's new-handshake timer is not.
    var unansweredSince: Double?
    var lastDataReceived = -1e9
    /// Packets waiting for a handshake (bounded; the oldest are dropped and counted).
    var queue: [[UInt8]] = []
    static let queueLimit = 128

    init(_ config: PeerConfiguration) {
        self.config = config
        mac1Key = StaticIdentity.mac1Key(for: config.publicKey)
    }

    var status: PeerStatus {
        PeerStatus(configuration: config, lastHandshake: lastHandshakeWall, receivedBytes: rxBytes, sentBytes: txBytes, handshakes: handshakes)
    }
}
