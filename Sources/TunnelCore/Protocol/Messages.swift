// WireGuard's four messages on the wire (paper §5.4.2-5.4.7). All integers little-endian.
//   initiation (148): type=1, 3 reserved, sender, ephemeral[32], static[32+16], timestamp[12+16], mac1[16], mac2[16]
//   response (92):    type=2, 3 reserved, sender, receiver, ephemeral[32], empty[0+16], mac1[16], mac2[16]
//   cookie (64):      type=3, 3 reserved, receiver, nonce[24], cookie[16+16]
//   transport (32+):  type=4, 3 reserved, receiver, counter[8], packet[n+16]

/// The message type in the first byte (followed by three zero bytes).
public enum MessageType: UInt8, Sendable {
    case initiation = 1, response = 2, cookieReply = 3, transport = 4

    /// The type of a datagram, or nil if its header or size fits no message.
    public static func classify(_ p: UnsafeRawBufferPointer) -> MessageType? {
        guard p.count >= 4, p[1] == 0, p[2] == 0, p[3] == 0, let t = MessageType(rawValue: p[0]) else { return nil }
        switch t {
        case .initiation: return p.count == WireGuard.initiationSize ? t : nil
        case .response: return p.count == WireGuard.responseSize ? t : nil
        case .cookieReply: return p.count == WireGuard.cookieReplySize ? t : nil
        case .transport: return p.count >= WireGuard.minimumTransportSize ? t : nil
        }
    }
}

/// A static identity with the keys derived from its public key once.
public struct StaticIdentity: Sendable {
    public let privateKey: Bytes32
    public let publicKey: Bytes32
    /// HASH(LABEL_MAC1 || public): the key others use for MAC1 of messages to us.
    public let mac1Key: Bytes32
    /// HASH(LABEL_COOKIE || public): the key of cookie replies we send.
    public let cookieKey: Bytes32

    public init(privateKey: Bytes32) {
        self.privateKey = privateKey
        publicKey = X25519.publicKey(privateKey)
        mac1Key = Self.mac1Key(for: publicKey)
        cookieKey = Self.cookieKey(for: publicKey)
    }

    public static func mac1Key(for publicKey: Bytes32) -> Bytes32 { Blake2s.hash(Array(WireGuard.labelMAC1.utf8) + publicKey.bytes) }
    public static func cookieKey(for publicKey: Bytes32) -> Bytes32 { Blake2s.hash(Array(WireGuard.labelCookie.utf8) + publicKey.bytes) }
}

@inline(__always) func readLE32(_ b: [UInt8], _ o: Int) -> UInt32 {
    UInt32(b[o]) | UInt32(b[o + 1]) << 8 | UInt32(b[o + 2]) << 16 | UInt32(b[o + 3]) << 24
}
@inline(__always) func le32(_ v: UInt32) -> [UInt8] { [UInt8(v & 0xff), UInt8(v >> 8 & 0xff), UInt8(v >> 16 & 0xff), UInt8(v >> 24)] }

/// MAC1 and MAC2 (paper §5.4.4): mac1 = MAC(HASH(LABEL_MAC1 || Spub_receiver), msg up to mac1),
/// mac2 = MAC(cookie, msg up to mac2), or zeros without a fresh cookie.
public enum MessageMACs {
    /// Writes mac1 and mac2 into the last 32 bytes of `message`. Returns mac1 (a cookie reply's AAD).
    @discardableResult
    public static func add(_ message: inout [UInt8], receiverMAC1Key: Bytes32, cookie: [UInt8]?) -> [UInt8] {
        let n = message.count
        let mac1 = Blake2s.keyed(key: receiverMAC1Key.bytes, Array(message[0..<(n - 32)]), outputLength: 16)
        message.replaceSubrange((n - 32)..<(n - 16), with: mac1)
        if let cookie {
            message.replaceSubrange((n - 16)..<n, with: Blake2s.keyed(key: cookie, Array(message[0..<(n - 16)]), outputLength: 16))
        } else {
            message.replaceSubrange((n - 16)..<n, with: [UInt8](repeating: 0, count: 16))
        }
        return mac1
    }

    /// True if mac1 is right for a message to the holder of `ownMAC1Key`. Checked before any DH.
    public static func validMAC1(_ message: [UInt8], ownMAC1Key: Bytes32) -> Bool {
        let n = message.count
        let want = Blake2s.keyed(key: ownMAC1Key.bytes, Array(message[0..<(n - 32)]), outputLength: 16)
        return constantTimeEqual(want, Array(message[(n - 32)..<(n - 16)]))
    }

    public static func validMAC2(_ message: [UInt8], cookie: [UInt8]) -> Bool {
        let n = message.count
        let want = Blake2s.keyed(key: cookie, Array(message[0..<(n - 16)]), outputLength: 16)
        return constantTimeEqual(want, Array(message[(n - 16)..<n]))
    }

    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var d: UInt8 = 0
        for i in 0..<a.count { d |= a[i] ^ b[i] }
        return d == 0
    }
}

/// WireGuard's handshake messages around the Noise engine.
public enum Handshake {
    public static let prologue = Array(WireGuard.identifier.utf8)

    /// Builds an initiation (148 bytes) from `senderIndex` to the peer, with MACs.
    public static func createInitiation(local: StaticIdentity, peerPublicKey: Bytes32, senderIndex: UInt32, timestamp: TAI64N,
                                        ephemeral: Bytes32 = X25519.generatePrivateKey(), cookie: [UInt8]?,
                                        aead: ChaChaPoly) throws(HandshakeRejection) -> (message: [UInt8], state: NoiseIKpsk2.InitiatorState, mac1: [UInt8]) {
        let secrets = try NoiseIKpsk2.InitiationSecrets(localPrivate: local.privateKey, remoteStatic: peerPublicKey, ephemeral: ephemeral)
        return createInitiation(local: local, secrets: secrets, senderIndex: senderIndex, timestamp: timestamp, cookie: cookie, aead: aead)
    }

    /// The same from secrets computed beforehand (`NoiseIKpsk2.InitiationSecrets`, the X25519 work).
    public static func createInitiation(local: StaticIdentity, secrets: NoiseIKpsk2.InitiationSecrets, senderIndex: UInt32, timestamp: TAI64N,
                                        cookie: [UInt8]?, aead: ChaChaPoly) -> (message: [UInt8], state: NoiseIKpsk2.InitiatorState, mac1: [UInt8]) {
        let peerPublicKey = secrets.remoteStatic
        let (body, state) = NoiseIKpsk2.writeMessage1(prologue: prologue, localPublic: local.publicKey, secrets: secrets,
                                                      payload: timestamp.bytes, aead: aead)
        var m = [1, 0, 0, 0] + le32(senderIndex) + body + [UInt8](repeating: 0, count: 32)
        let mac1 = MessageMACs.add(&m, receiverMAC1Key: StaticIdentity.mac1Key(for: peerPublicKey), cookie: cookie)
        return (m, state, mac1)
    }

    /// Reads an initiation addressed to `local` (MACs already checked by the caller).
    public static func consumeInitiation(local: StaticIdentity, message: [UInt8], aead: ChaChaPoly) throws(HandshakeRejection)
        -> (senderIndex: UInt32, state: NoiseIKpsk2.ResponderState, timestamp: TAI64N) {
        guard message.count == WireGuard.initiationSize, message[0] == 1 else { throw .malformed }
        let (state, payload) = try NoiseIKpsk2.readMessage1(prologue: prologue, localPrivate: local.privateKey, localPublic: local.publicKey,
                                                           message: Array(message[8..<116]), aead: aead)
        guard let ts = TAI64N(bytes: payload) else { throw .malformed }
        return (readLE32(message, 4), state, ts)
    }

    /// Builds a response (92 bytes) and the responder's transport keys.
    public static func createResponse(_ state: NoiseIKpsk2.ResponderState, senderIndex: UInt32, receiverIndex: UInt32, psk: Bytes32,
                                      ephemeral: Bytes32 = X25519.generatePrivateKey(), cookie: [UInt8]?,
                                      aead: ChaChaPoly) throws(HandshakeRejection) -> (message: [UInt8], keys: NoiseIKpsk2.TransportKeys, mac1: [UInt8]) {
        let (body, keys) = try NoiseIKpsk2.writeMessage2(state, ephemeral: ephemeral, psk: psk, payload: [], aead: aead)
        var m = [2, 0, 0, 0] + le32(senderIndex) + le32(receiverIndex) + body + [UInt8](repeating: 0, count: 32)
        let mac1 = MessageMACs.add(&m, receiverMAC1Key: StaticIdentity.mac1Key(for: state.remoteStatic), cookie: cookie)
        return (m, keys, mac1)
    }

    /// The indices of a response: who sent it and which of our initiations it answers.
    public static func responseIndices(_ message: [UInt8]) -> (sender: UInt32, receiver: UInt32) {
        (readLE32(message, 4), readLE32(message, 8))
    }

    /// Reads a response to our initiation `state`.
    public static func consumeResponse(_ state: NoiseIKpsk2.InitiatorState, local: StaticIdentity, psk: Bytes32, message: [UInt8],
                                       aead: ChaChaPoly) throws(HandshakeRejection) -> NoiseIKpsk2.TransportKeys {
        guard message.count == WireGuard.responseSize, message[0] == 2 else { throw .malformed }
        return try NoiseIKpsk2.readMessage2(state, localPrivate: local.privateKey, psk: psk, message: Array(message[12..<60]), aead: aead).1
    }
}

/// The responder's side of the cookie mechanism (paper §5.4.7): under load, a handshake message
/// without a valid mac2 gets a cookie reply instead of a DH computation. The secret changes every
/// two minutes, so a cookie is worth at most that long.
public struct CookieChecker: Sendable {
    private var secret = X25519.generatePrivateKey()
    private var secretBorn: Double
    public static let secretLifetime = 120.0

    public init(now: Double) { secretBorn = now }

    /// The cookie for a source address (its bytes and port): MAC(Rm, A).
    public mutating func cookie(for source: [UInt8], now: Double) -> [UInt8] {
        if now - secretBorn >= Self.secretLifetime { secret = X25519.generatePrivateKey(); secretBorn = now }
        return Blake2s.keyed(key: secret.bytes, source, outputLength: 16)
    }

    /// True if `message` carries a mac2 made with this source's current cookie.
    public mutating func validMAC2(_ message: [UInt8], source: [UInt8], now: Double) -> Bool {
        MessageMACs.validMAC2(message, cookie: cookie(for: source, now: now))
    }

    /// The 64-byte cookie reply to `message` (an initiation or response) from `source`.
    public mutating func reply(to message: [UInt8], source: [UInt8], local: StaticIdentity, now: Double, aead: ChaChaPoly) -> [UInt8] {
        let receiver = readLE32(message, 4)
        let mac1 = Array(message[(message.count - 32)..<(message.count - 16)])
        var nonce = [UInt8](repeating: 0, count: 24)
        var rng = SystemRandomNumberGenerator()
        for i in 0..<24 { nonce[i] = rng.next() }
        let sealed = XChaCha20Poly1305.seal(key: local.cookieKey, nonce: nonce, plaintext: cookie(for: source, now: now), aad: mac1, using: aead)
        return [3, 0, 0, 0] + le32(receiver) + nonce + sealed
    }
}

/// The initiator's side: keeps the cookie from a reply (for 120 s) to put in mac2 of what it sends next.
public struct CookieJar: Sendable {
    public private(set) var cookie: [UInt8]?
    private var receivedAt = 0.0
    /// mac1 of the last handshake message we sent: the reply's AAD.
    public var lastMAC1: [UInt8]?

    public init() {}

    /// The cookie to use now, if one is fresh.
    public func current(now: Double) -> [UInt8]? {
        guard let cookie, now - receivedAt < CookieChecker.secretLifetime else { return nil }
        return cookie
    }

    /// Decrypts a cookie reply with the peer's cookie key; false if it does not authenticate.
    public mutating func consume(reply: [UInt8], peerPublicKey: Bytes32, now: Double, aead: ChaChaPoly) -> Bool {
        guard reply.count == WireGuard.cookieReplySize, let lastMAC1 else { return false }
        guard let c = XChaCha20Poly1305.open(key: StaticIdentity.cookieKey(for: peerPublicKey), nonce: Array(reply[8..<32]),
                                             ciphertext: Array(reply[32..<64]), aad: lastMAC1, using: aead) else { return false }
        cookie = c
        receivedAt = now
        return true
    }
}
