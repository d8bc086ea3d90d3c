// Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s (the Noise Protocol Framework, rev. 34, §5 and §9), the
// handshake WireGuard runs (paper §5.4.2-5.4.3):
//   <- s
//   ...
//   -> e, es, s, ss, {payload}
//   <- e, ee, se, psk, {payload}
// Written once, with prologue and payloads as parameters, so the same code passes the Noise test
// vectors (cacophony) and speaks WireGuard (prologue = its identifier, payload 1 = TAI64N, payload 2 empty).

/// The chaining key and handshake hash (Noise's SymmetricState).
public struct NoiseSymmetricState: Sendable {
    public var chainingKey: Bytes32
    public var hash: Bytes32

    /// InitializeSymmetric(protocol name) then MixHash(prologue). The name is longer than 32 bytes,
    /// so h = HASH(name).
    public init(protocolName: String, prologue: [UInt8]) {
        let h0 = Blake2s.hash(Array(protocolName.utf8))
        chainingKey = h0
        hash = Blake2s.hash(h0, prologue)
    }

    public mutating func mixHash(_ data: [UInt8]) { hash = Blake2s.hash(hash, data) }
    public mutating func mixHash(_ data: Bytes32) { hash = Blake2s.hash(hash, data) }

    /// MixKey: (ck, k) = KDF2(ck, input). Returns k.
    public mutating func mixKey(_ input: Bytes32) -> Bytes32 {
        let (ck, k, _) = Blake2s.kdf(2, key: chainingKey, input)
        chainingKey = ck
        return k
    }

    /// MixKeyAndHash (the psk token): (ck, τ, k) = KDF3(ck, psk); h = HASH(h || τ). Returns k.
    public mutating func mixKeyAndHash(_ psk: Bytes32) -> Bytes32 {
        let (ck, t, k) = Blake2s.kdf(3, key: chainingKey, psk)
        chainingKey = ck
        mixHash(t)
        return k
    }

    /// EncryptAndHash with key `k` and nonce 0 (every handshake key is used once).
    public mutating func encryptAndHash(_ k: Bytes32, _ plaintext: [UInt8], aead: ChaChaPoly) -> [UInt8] {
        let c = aead.seal(key: k, counter: 0, plaintext: plaintext, aad: hash.bytes)
        mixHash(c)
        return c
    }

    /// DecryptAndHash; nil when the ciphertext does not authenticate.
    public mutating func decryptAndHash(_ k: Bytes32, _ ciphertext: [UInt8], aead: ChaChaPoly) -> [UInt8]? {
        guard let p = aead.open(key: k, counter: 0, ciphertext: ciphertext, aad: hash.bytes) else { return nil }
        mixHash(ciphertext)
        return p
    }

    /// Split: (k1, k2) = KDF2(ck, ε). k1 carries initiator→responder, k2 responder→initiator.
    public func split() -> (Bytes32, Bytes32) {
        let (a, b, _) = Blake2s.kdf(2, key: chainingKey, UnsafeRawBufferPointer(start: nil, count: 0))
        return (a, b)
    }
}

/// Why a handshake message was refused. Counted by the device, never answered.
public enum HandshakeRejection: Error, Sendable, Equatable {
    case malformed
    case decryptionFailed
    case unknownPeer
    case weakKey
    case replayedTimestamp
    case floodedInitiations
    case noPendingHandshake
}

/// Noise_IKpsk2 with explicit keys, the engine beneath WireGuard's handshake messages.
public enum NoiseIKpsk2 {
    public static let protocolName = "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s"

    /// What the initiator keeps between sending message 1 and reading message 2.
    public struct InitiatorState: Sendable {
        public var symmetric: NoiseSymmetricState
        public var ephemeralPrivate: Bytes32
        public var remoteStatic: Bytes32
    }

    /// What the responder learned from message 1.
    public struct ResponderState: Sendable {
        public var symmetric: NoiseSymmetricState
        public var remoteStatic: Bytes32
        public var remoteEphemeral: Bytes32
    }

    /// The transport keys: `send` and `receive` from this side's point of view.
    public struct TransportKeys: Sendable, Equatable {
        public var send: Bytes32
        public var receive: Bytes32
    }

    /// Message 1: e, es, s, ss, {payload}. Returns e.pub || enc(s) || enc(payload).
    public static func writeMessage1(prologue: [UInt8], localPrivate: Bytes32, localPublic: Bytes32, remoteStatic: Bytes32,
                                     ephemeral: Bytes32, payload: [UInt8], aead: ChaChaPoly) throws(HandshakeRejection) -> ([UInt8], InitiatorState) {
        let secrets = try InitiationSecrets(localPrivate: localPrivate, remoteStatic: remoteStatic, ephemeral: ephemeral)
        return writeMessage1(prologue: prologue, localPublic: localPublic, secrets: secrets, payload: payload, aead: aead)
    }

    /// The Diffie-Hellman part of message 1 (three X25519 operations), computed apart so a caller can
    /// do it outside a lock and write the message under it.
    public struct InitiationSecrets: Sendable {
        public let remoteStatic: Bytes32
        let ephemeral: Bytes32, ephemeralPublic: Bytes32, es: Bytes32, ss: Bytes32
        public init(localPrivate: Bytes32, remoteStatic: Bytes32, ephemeral: Bytes32 = X25519.generatePrivateKey()) throws(HandshakeRejection) {
            self.remoteStatic = remoteStatic
            self.ephemeral = ephemeral
            ephemeralPublic = X25519.publicKey(ephemeral)
            guard let es = try? X25519.sharedSecret(ephemeral, remoteStatic),
                  let ss = try? X25519.sharedSecret(localPrivate, remoteStatic) else { throw .weakKey }
            self.es = es; self.ss = ss
        }
    }

    /// Message 1 from secrets computed beforehand: hashing and two small AEAD seals, no X25519.
    public static func writeMessage1(prologue: [UInt8], localPublic: Bytes32, secrets: InitiationSecrets, payload: [UInt8],
                                     aead: ChaChaPoly) -> ([UInt8], InitiatorState) {
        var s = NoiseSymmetricState(protocolName: protocolName, prologue: prologue)
        s.mixHash(secrets.remoteStatic)                           // <- s (pre-message)
        let ePub = secrets.ephemeralPublic
        s.mixHash(ePub); _ = s.mixKey(ePub)                       // e (psk mode also mixes e into the key)
        let k1 = s.mixKey(secrets.es)                             // es
        let encStatic = s.encryptAndHash(k1, localPublic.bytes, aead: aead)   // s
        let k2 = s.mixKey(secrets.ss)                             // ss
        let encPayload = s.encryptAndHash(k2, payload, aead: aead)
        return (ePub.bytes + encStatic + encPayload, InitiatorState(symmetric: s, ephemeralPrivate: secrets.ephemeral, remoteStatic: secrets.remoteStatic))
    }

    /// Reads message 1 as the responder. Returns the initiator's static key and the payload.
    public static func readMessage1(prologue: [UInt8], localPrivate: Bytes32, localPublic: Bytes32,
                                    message: [UInt8], aead: ChaChaPoly) throws(HandshakeRejection) -> (ResponderState, [UInt8]) {
        guard message.count >= 32 + 48 + 16 else { throw .malformed }
        var s = NoiseSymmetricState(protocolName: protocolName, prologue: prologue)
        s.mixHash(localPublic)
        let ePub = Bytes32(message[0..<32])!
        s.mixHash(ePub); _ = s.mixKey(ePub)
        guard let es = try? X25519.sharedSecret(localPrivate, ePub) else { throw .weakKey }
        let k1 = s.mixKey(es)
        guard let staticBytes = s.decryptAndHash(k1, Array(message[32..<80]), aead: aead) else { throw .decryptionFailed }
        let remoteStatic = Bytes32(staticBytes)!
        guard let ss = try? X25519.sharedSecret(localPrivate, remoteStatic) else { throw .weakKey }
        let k2 = s.mixKey(ss)
        guard let payload = s.decryptAndHash(k2, Array(message[80...]), aead: aead) else { throw .decryptionFailed }
        return (ResponderState(symmetric: s, remoteStatic: remoteStatic, remoteEphemeral: ePub), payload)
    }

    /// Message 2: e, ee, se, psk, {payload}. Returns e.pub || enc(payload) and the responder's keys.
    public static func writeMessage2(_ state: ResponderState, ephemeral: Bytes32, psk: Bytes32, payload: [UInt8],
                                     aead: ChaChaPoly) throws(HandshakeRejection) -> ([UInt8], TransportKeys) {
        var s = state.symmetric
        let ePub = X25519.publicKey(ephemeral)
        s.mixHash(ePub); _ = s.mixKey(ePub)
        guard let ee = try? X25519.sharedSecret(ephemeral, state.remoteEphemeral) else { throw .weakKey }
        _ = s.mixKey(ee)
        guard let se = try? X25519.sharedSecret(ephemeral, state.remoteStatic) else { throw .weakKey }
        _ = s.mixKey(se)
        let k = s.mixKeyAndHash(psk)
        let enc = s.encryptAndHash(k, payload, aead: aead)
        let (i2r, r2i) = s.split()
        return (ePub.bytes + enc, TransportKeys(send: r2i, receive: i2r))
    }

    /// Reads message 2 as the initiator. Returns the payload and the initiator's keys.
    public static func readMessage2(_ state: InitiatorState, localPrivate: Bytes32, psk: Bytes32, message: [UInt8],
                                    aead: ChaChaPoly) throws(HandshakeRejection) -> ([UInt8], TransportKeys) {
        guard message.count >= 32 + 16 else { throw .malformed }
        var s = state.symmetric
        let ePub = Bytes32(message[0..<32])!
        s.mixHash(ePub); _ = s.mixKey(ePub)
        guard let ee = try? X25519.sharedSecret(state.ephemeralPrivate, ePub) else { throw .weakKey }
        _ = s.mixKey(ee)
        guard let se = try? X25519.sharedSecret(localPrivate, ePub) else { throw .weakKey }
        _ = s.mixKey(se)
        let k = s.mixKeyAndHash(psk)
        guard let payload = s.decryptAndHash(k, Array(message[32...]), aead: aead) else { throw .decryptionFailed }
        let (i2r, r2i) = s.split()
        return (payload, TransportKeys(send: i2r, receive: r2i))
    }
}
