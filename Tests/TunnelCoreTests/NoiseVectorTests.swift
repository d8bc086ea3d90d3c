import Testing
@testable import TunnelCore

private func hex(_ s: String) -> [UInt8] { [UInt8](hexString: s)! }
private func key(_ s: String) -> Bytes32 { Bytes32(hex(s))! }

/// A full Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s handshake replayed from a known transcript: the
/// cacophony test vector (as carried in snow's tests/vectors/cacophony.txt), with its fixed static
/// and ephemeral keys, prologue "John Galt", psk, payloads, and the two transport messages after it.
struct NoiseVectorTests {
    let prologue = hex("4a6f686e2047616c74")
    let psk = key("54686973206973206d7920417573747269616e20706572737065637469766521")
    let initStatic = key("e61ef9919cde45dd5f82166404bd08e38bceb5dfdfded0a34c8df7ed542214d1")
    let initEphemeral = key("893e28b9dc6ca8d611ab664754b8ceb7bac5117349a4439a6b0569da977c464a")
    let respStatic = key("4a3acbfdb163dec651dfa3194dece676d437029c62a408b4c5ea9114246e4893")
    let respEphemeral = key("bbdb4cdbd309f1a1f2e1456967fe288cadd6f712d65dc7b7793d5e63da6b375b")
    let message1 = hex("ca35def5ae56cec33dc2036731ab14896bc4c75dbb07a61f879f8e3afa4c7944001e21de9f98ddd8e2ad57527207feb56253c9c94a9e496782ecfcb2a75fbcaf1b52948cc48daefe660c62119ab5000980c84831215f2441eba616548e832985464cf17e51ee93109008399a21f7e13f")
    let message2 = hex("95ebc60d2b1fa672c1f46a8aa265ef51bfe38e7ccb39ec5be34069f144808843cb765f2caef0751b8f007572dab0322217755c0632f365717edbf34d33e87a")

    @Test func handshakeMatchesTheCacophonyTranscript() throws {
        let aead = ChaChaPoly()
        #expect(X25519.publicKey(respStatic).hex == "31e0303fd6418d2f8c0e78b91f22e8caed0fbe48656dcf4767e4834f701b8f62")

        // Initiator writes message 1 byte for byte.
        let (m1, istate) = try NoiseIKpsk2.writeMessage1(prologue: prologue, localPrivate: initStatic, localPublic: X25519.publicKey(initStatic),
                                                        remoteStatic: X25519.publicKey(respStatic), ephemeral: initEphemeral,
                                                        payload: hex("4c756477696720766f6e204d69736573"), aead: aead)
        #expect(m1 == message1)

        // Responder reads it, learns the initiator's static key and payload, and writes message 2.
        let (rstate, p1) = try NoiseIKpsk2.readMessage1(prologue: prologue, localPrivate: respStatic, localPublic: X25519.publicKey(respStatic),
                                                       message: message1, aead: aead)
        #expect(p1 == hex("4c756477696720766f6e204d69736573"))
        #expect(rstate.remoteStatic == X25519.publicKey(initStatic))
        let (m2, rkeys) = try NoiseIKpsk2.writeMessage2(rstate, ephemeral: respEphemeral, psk: psk, payload: hex("4d757272617920526f746862617264"), aead: aead)
        #expect(m2 == message2)

        // Initiator reads message 2; both sides hold mirrored transport keys.
        let (p2, ikeys) = try NoiseIKpsk2.readMessage2(istate, localPrivate: initStatic, psk: psk, message: message2, aead: aead)
        #expect(p2 == hex("4d757272617920526f746862617264"))
        #expect(ikeys.send == rkeys.receive && ikeys.receive == rkeys.send)

        // Transport messages 3 (initiator → responder) and 4 (responder → initiator), nonce 0.
        #expect(aead.seal(key: ikeys.send, counter: 0, plaintext: hex("462e20412e20486179656b"), aad: []) == hex("8153ca9833bc3c1b91a7e66e5f4d4f5b59bf9e64c2f20d15f0bba7"))
        #expect(aead.seal(key: rkeys.send, counter: 0, plaintext: hex("4361726c204d656e676572"), aad: []) == hex("07af0c9c86e1b4e80f36b04ff7688d51141af3debd0332f0a705ef"))
    }

    @Test func aTamperedMessage1IsRejected() {
        let aead = ChaChaPoly()
        for index in [0, 40, 100] {
            var m = message1; m[index] ^= 0x80
            #expect(throws: HandshakeRejection.self) {
                try NoiseIKpsk2.readMessage1(prologue: prologue, localPrivate: respStatic, localPublic: X25519.publicKey(respStatic), message: m, aead: aead)
            }
        }
        // The wrong psk fails at message 2.
        #expect(throws: HandshakeRejection.decryptionFailed) {
            let (_, istate) = try NoiseIKpsk2.writeMessage1(prologue: prologue, localPrivate: initStatic, localPublic: X25519.publicKey(initStatic),
                                                           remoteStatic: X25519.publicKey(respStatic), ephemeral: initEphemeral, payload: [], aead: aead)
            _ = try NoiseIKpsk2.readMessage2(istate, localPrivate: initStatic, psk: .zero, message: message2, aead: aead)
        }
    }
}
