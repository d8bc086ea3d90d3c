import Testing
@testable import TunnelCore

private func hex(_ s: String) -> [UInt8] { [UInt8](hexString: s.filter { !$0.isWhitespace })! }
private func key(_ s: String) -> Bytes32 { Bytes32(hex(s))! }

/// The primitives against their published vectors.
struct CryptoVectorTests {
    @Test func blake2sMatchesRFC7693AppendixB() {
        #expect(Blake2s.hash(Array("abc".utf8)).hex == "508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982")
        // BLAKE2s-256 of the empty string (blake2s-kat.txt, unkeyed).
        #expect(Blake2s.hash([]).hex == "69217a3079908094e11121d042354a7c1f55b6482ca1a51e1b250dfd1ed0eef9")
    }

    @Test func keyedBlake2sMatchesTheReferenceKAT() {
        // blake2s-kat.txt (keyed): key 00..1f, inputs of length 0, 1 and 255.
        let k = Array(UInt8(0)...31)
        #expect(Blake2s.keyed(key: k, [], outputLength: 32).hexString == "48a8997da407876b3d79c0d92325ad3b89cbb754d86ab71aee047ad345fd2c49")
        #expect(Blake2s.keyed(key: k, [0], outputLength: 32).hexString == "40d15fee7c328830166ac3f918650f807e7e01e177258cdc0a39b11f598066f1")
        #expect(Blake2s.keyed(key: k, Array(UInt8(0)...254), outputLength: 32).hexString == "3fb735061abc519dfe979e54c1ee5bfad0a9d858b3315bad34bde999efd724dd")
        // A 16-byte digest is a different parameter block, not a truncation (WireGuard's MAC).
        let mac16 = Blake2s.keyed(key: k, [], outputLength: 16)
        #expect(mac16.count == 16 && mac16 != Array(Blake2s.keyed(key: k, [], outputLength: 32)[0..<16]))
    }

    @Test func hmacBlake2sFollowsRFC2104() {
        // HMAC built by hand from the hash (64-byte block) must equal the library's.
        let k = Array(UInt8(1)...32), m = Array("WireGuard".utf8)
        let padded = k + [UInt8](repeating: 0, count: 32)
        let inner = Blake2s.hash(padded.map { $0 ^ 0x36 } + m)
        let outer = Blake2s.hash(padded.map { $0 ^ 0x5c } + inner.bytes)
        #expect(Blake2s.hmac(key: k, m) == outer)
    }

    @Test func wireGuardConstructionHashes() {
        // Ci = HASH("Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s"), Hi = HASH(Ci || identifier) (paper §5.4.2).
        let s = NoiseSymmetricState(protocolName: NoiseIKpsk2.protocolName, prologue: Array(WireGuard.identifier.utf8))
        #expect(s.chainingKey.bytes == [96, 226, 109, 174, 243, 39, 239, 192, 46, 195, 53, 226, 160, 37, 210, 208, 22, 235, 66, 6, 248,
                                        114, 119, 245, 45, 56, 209, 152, 139, 120, 205, 54])
        #expect(s.hash.bytes == [34, 17, 179, 97, 8, 26, 197, 102, 105, 18, 67, 219, 69, 138, 213, 50, 45, 156, 108, 102, 34,
                                 147, 232, 183, 14, 225, 156, 101, 186, 7, 158, 243])
    }

    static let sunscreen = Array("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.".utf8)

    @Test func chaCha20Poly1305MatchesRFC8439Section2_8_2() {
        let aead = ChaChaPoly()
        let k = key("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f")
        let nonce = ChaChaPoly.nonce(bytes: hex("070000004041424344454647"))
        let sealed = aead.seal(key: k, nonce: nonce, plaintext: Self.sunscreen, aad: hex("50515253c0c1c2c3c4c5c6c7"))
        let expected = hex("""
            d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b
            1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc
            3ff4def08e4b7a9de576d26586cec64b6116 1ae10b594f09e26a7e902ecbd0600691
            """)
        #expect(sealed == expected)
        #expect(aead.open(key: k, nonce: nonce, ciphertext: sealed, aad: hex("50515253c0c1c2c3c4c5c6c7")) == Self.sunscreen)
        var tampered = sealed; tampered[5] ^= 1
        #expect(aead.open(key: k, nonce: nonce, ciphertext: tampered, aad: hex("50515253c0c1c2c3c4c5c6c7")) == nil)
        #expect(aead.open(key: k, nonce: nonce, ciphertext: sealed, aad: []) == nil)
    }

    @Test func wireGuardNonceIsACounterAfterFourZeroBytes() {
        let n = ChaChaPoly.nonce(0x0102_0304_0506_0708)
        let bytes = withUnsafeBytes(of: n) { Array($0) }
        #expect(bytes == [0, 0, 0, 0, 8, 7, 6, 5, 4, 3, 2, 1])
    }

    @Test func hChaCha20MatchesXChaChaDraftSection2_2_1() {
        let k = key("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
        let nonce = hex("000000090000004a0000000031415927")
        let sub = nonce.withUnsafeBytes { HChaCha20.subkey(key: k, nonce16: $0) }
        #expect(sub.hex == "82413b4227b27bfed30e42508a877d73a0f9e4d58a74a853c12ec41326d3ecdc")
    }

    @Test func xChaCha20Poly1305MatchesXChaChaDraftAppendixA_3_1() {
        let k = key("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f")
        let nonce = hex("404142434445464748494a4b4c4d4e4f5051525354555657")
        let aad = hex("50515253c0c1c2c3c4c5c6c7")
        let sealed = XChaCha20Poly1305.seal(key: k, nonce: nonce, plaintext: Self.sunscreen, aad: aad)
        let expected = hex("""
            bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb731c7f1b0b4aa6440bf3a82f4eda7e39
            ae64c6708c54c216cb96b72e1213b4522f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9
            21f9664c97637da9768812f615c68b13b52e c0875924c1c7987947deafd8780acf49
            """)
        #expect(sealed == expected)
        #expect(XChaCha20Poly1305.open(key: k, nonce: nonce, ciphertext: sealed, aad: aad) == Self.sunscreen)
    }

    @Test func x25519MatchesRFC7748Section6_1() throws {
        let alice = key("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
        let bob = key("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
        #expect(X25519.publicKey(alice).hex == "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
        #expect(X25519.publicKey(bob).hex == "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
        let shared = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"
        #expect(try X25519.sharedSecret(alice, X25519.publicKey(bob)).hex == shared)
        #expect(try X25519.sharedSecret(bob, X25519.publicKey(alice)).hex == shared)
    }

    @Test func x25519RejectsLowOrderPoints() {
        let alice = key("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
        // The identity (0) and a point of order 8 (RFC 7748 §7, "checking for all-zero output").
        for point in [Bytes32.zero, key("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800")] {
            #expect(throws: CryptoFailure.self) { try X25519.sharedSecret(alice, point) }
        }
    }

    @Test func keysRoundTripThroughWgBase64() {
        let k = X25519.generatePrivateKey()
        #expect(Bytes32(base64: k.base64) == k)
        #expect(k.base64.count == 44)
        #expect(Bytes32(base64: "not a key") == nil)
        #expect(Bytes32(base64: String(repeating: "A", count: 43) + "=") == Bytes32.zero)
    }

    @Test func tai64nIsBigEndianWithTheTAIOffset() {
        let t = TAI64N(seconds: 0x4000_0000_0000_000a + 1, nanoseconds: 0x0100_0000)
        #expect(t.bytes == [0x40, 0, 0, 0, 0, 0, 0, 0x0b, 1, 0, 0, 0])
        #expect(TAI64N(bytes: t.bytes) == t)
        #expect(TAI64N.now() > t)
        #expect(TAI64N.now().nanoseconds & 0xff_ffff == 0)
    }
}
