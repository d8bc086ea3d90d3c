// TunnelCore's C shim: what Swift cannot import directly, as small static-inline functions
// (and two wrappers in ctunnel.c).
// - OpenSSL libcrypto (Debian libssl-dev): ChaCha20-Poly1305 with a reusable context (no
//   allocation per packet), BLAKE2s-256, keyed BLAKE2s (BLAKE2SMAC), HMAC-BLAKE2s, X25519.
// - Linux TUN ioctls (TUNSETIFF and friends are function-like macros) and recvmmsg/sendmmsg.
#ifndef SIXGATE_CTUNNEL_SHIM_H
#define SIXGATE_CTUNNEL_SHIM_H

#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/hmac.h>
#include <openssl/params.h>
#include <openssl/crypto.h>
#include <openssl/opensslv.h>
#include <sys/socket.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <net/if.h>
#include <linux/if_tun.h>
#include <linux/udp.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

// MARK: OpenSSL

static inline const char *sixgate_openssl_version(void) { return OpenSSL_version(OPENSSL_VERSION); }

/// A ChaCha20-Poly1305 (RFC 8439) context, made once per thread and reused for every packet.
static inline EVP_CIPHER_CTX *sixgate_aead_new(int encrypt) {
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (!ctx) return NULL;
    if (EVP_CipherInit_ex(ctx, EVP_chacha20_poly1305(), NULL, NULL, NULL, encrypt) != 1) {
        EVP_CIPHER_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

static inline void sixgate_aead_free(EVP_CIPHER_CTX *ctx) { EVP_CIPHER_CTX_free(ctx); }

/// Seals `len` bytes at `in` into `out` (may equal `in`) and writes the 16-byte tag at `tag`.
/// Returns 1 on success.
static inline int sixgate_aead_seal(EVP_CIPHER_CTX *ctx, const uint8_t key[32], const uint8_t nonce[12],
                                    const uint8_t *aad, size_t aadLen, const uint8_t *in, size_t len,
                                    uint8_t *out, uint8_t tag[16]) {
    int outl = 0;
    if (EVP_CipherInit_ex(ctx, NULL, NULL, key, nonce, 1) != 1) return 0;
    if (aadLen > 0 && EVP_CipherUpdate(ctx, NULL, &outl, aad, (int)aadLen) != 1) return 0;
    if (len > 0 && EVP_CipherUpdate(ctx, out, &outl, in, (int)len) != 1) return 0;
    if (EVP_CipherFinal_ex(ctx, out + outl, &outl) != 1) return 0;
    return EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, tag) == 1;
}

/// Opens `len` bytes at `in` into `out` (may equal `in`), checking `tag`. Returns 1 if authentic.
static inline int sixgate_aead_open(EVP_CIPHER_CTX *ctx, const uint8_t key[32], const uint8_t nonce[12],
                                    const uint8_t *aad, size_t aadLen, const uint8_t *in, size_t len,
                                    uint8_t *out, const uint8_t tag[16]) {
    int outl = 0;
    if (EVP_CipherInit_ex(ctx, NULL, NULL, key, nonce, 0) != 1) return 0;
    if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, 16, (void *)tag) != 1) return 0;
    if (aadLen > 0 && EVP_CipherUpdate(ctx, NULL, &outl, aad, (int)aadLen) != 1) return 0;
    if (len > 0 && EVP_CipherUpdate(ctx, out, &outl, in, (int)len) != 1) return 0;
    return EVP_CipherFinal_ex(ctx, out + outl, &outl) == 1;
}

/// BLAKE2s-256 of `in` (RFC 7693, unkeyed). Returns 1 on success.
static inline int sixgate_blake2s256(const uint8_t *in, size_t len, uint8_t out[32]) {
    unsigned int outLen = 32;
    return EVP_Digest(in, len, out, &outLen, EVP_blake2s256(), NULL);
}

/// Keyed BLAKE2s with an `outLen`-byte digest (1...32) and a key of 1...32 bytes (RFC 7693 §3.3),
/// through OpenSSL's BLAKE2SMAC. Returns 1 on success.
static inline int sixgate_blake2s_keyed(const uint8_t *key, size_t keyLen, const uint8_t *in, size_t len,
                                        uint8_t *out, size_t outLen) {
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "BLAKE2SMAC", NULL);
    if (!mac) return 0;
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(mac);
    int ok = 0;
    if (ctx) {
        size_t size = outLen, written = 0;
        OSSL_PARAM params[2] = { OSSL_PARAM_construct_size_t(OSSL_MAC_PARAM_SIZE, &size), OSSL_PARAM_construct_end() };
        ok = EVP_MAC_init(ctx, key, keyLen, params) == 1
            && EVP_MAC_update(ctx, in, len) == 1
            && EVP_MAC_final(ctx, out, &written, outLen) == 1
            && written == outLen;
        EVP_MAC_CTX_free(ctx);
    }
    EVP_MAC_free(mac);
    return ok;
}

/// HMAC-BLAKE2s-256 (RFC 2104 over BLAKE2s, as WireGuard's HKDF uses). Returns 1 on success.
static inline int sixgate_hmac_blake2s(const uint8_t *key, size_t keyLen, const uint8_t *in, size_t len, uint8_t out[32]) {
    unsigned int outLen = 32;
    return HMAC(EVP_blake2s256(), key, (int)keyLen, in, len, out, &outLen) != NULL && outLen == 32;
}

/// X25519 public key for a private key (RFC 7748; OpenSSL clamps). Returns 1 on success.
static inline int sixgate_x25519_public(const uint8_t priv[32], uint8_t pub[32]) {
    EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, priv, 32);
    if (!k) return 0;
    size_t len = 32;
    int ok = EVP_PKEY_get_raw_public_key(k, pub, &len) == 1 && len == 32;
    EVP_PKEY_free(k);
    return ok;
}

/// X25519 shared secret. Fails (returns 0) for a low-order peer key that gives all zeros.
static inline int sixgate_x25519(const uint8_t priv[32], const uint8_t peer[32], uint8_t out[32]) {
    EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, priv, 32);
    EVP_PKEY *p = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, peer, 32);
    EVP_PKEY_CTX *ctx = k ? EVP_PKEY_CTX_new(k, NULL) : NULL;
    size_t len = 32;
    int ok = ctx && p && EVP_PKEY_derive_init(ctx) == 1 && EVP_PKEY_derive_set_peer(ctx, p) == 1
        && EVP_PKEY_derive(ctx, out, &len) == 1 && len == 32;
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(p);
    EVP_PKEY_free(k);
    return ok;
}

// MARK: TUN (linux/if_tun.h)

/// Attaches `fd` (an open /dev/net/tun) to interface `name` with `flags` (IFF_TUN | IFF_NO_PI ...).
/// On success the kernel's chosen name is written back into `name` (IFNAMSIZ bytes). Returns 0 or -1.
static inline int sixgate_tun_set_iff(int fd, char name[IFNAMSIZ], short flags) {
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
    ifr.ifr_flags = flags;
    if (ioctl(fd, TUNSETIFF, &ifr) != 0) return -1;
    memcpy(name, ifr.ifr_name, IFNAMSIZ);
    return 0;
}
static inline int sixgate_tun_set_persist(int fd, int persist) { return ioctl(fd, TUNSETPERSIST, (unsigned long)persist); }
static inline int sixgate_tun_set_owner(int fd, unsigned int uid) { return ioctl(fd, TUNSETOWNER, (unsigned long)uid); }
static inline int sixgate_tun_set_group(int fd, unsigned int gid) { return ioctl(fd, TUNSETGROUP, (unsigned long)gid); }
static inline short sixgate_iff_tun(void) { return IFF_TUN; }
static inline short sixgate_iff_no_pi(void) { return IFF_NO_PI; }
static inline short sixgate_iff_multi_queue(void) { return IFF_MULTI_QUEUE; }
static inline short sixgate_iff_vnet_hdr(void) { return IFF_VNET_HDR; }

/// Offloads for a device opened with IFF_VNET_HDR: every read and write then starts with a 10-byte
/// struct virtio_net_hdr (little-endian, TUNSETVNETLE). With checksum offload the kernel may hand
/// over TCP/UDP packets whose checksum field holds only the pseudo-header sum (NEEDS_CSUM); with
/// TSO4/TSO6 it hands over TCP super-packets up to 64 KiB that are cut into segments (GSO) after
/// the program writes them back. Returns 0 or -1 (errno set; kernels before 4.x lack TUNSETVNETLE).
static inline int sixgate_tun_enable_offload(int fd) {
    int hdr = 10, le = 1;
    if (ioctl(fd, TUNSETVNETHDRSZ, &hdr) != 0) return -1;
    if (ioctl(fd, TUNSETVNETLE, &le) != 0) return -1;
    return ioctl(fd, TUNSETOFFLOAD, (unsigned long)(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6));
}

/// As `sixgate_tun_enable_offload`, and UDP segmentation offload too (TUN_F_USO4 | TUN_F_USO6,
/// Linux 6.2): UDP datagrams of one socket write may then arrive as one super-packet. Returns 1 when
/// USO is on, 0 when the kernel refused it (TSO and checksums still on), -1 on failure (errno set).
static inline int sixgate_tun_enable_offload_uso(int fd) {
    if (sixgate_tun_enable_offload(fd) != 0) return -1;
#ifndef TUN_F_USO4
#define TUN_F_USO4 0x20   /* linux/if_tun.h since 6.2; Debian 12's headers are 6.1 */
#define TUN_F_USO6 0x40
#endif
    if (ioctl(fd, TUNSETOFFLOAD, (unsigned long)(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_USO4 | TUN_F_USO6)) == 0) return 1;
    (void)ioctl(fd, TUNSETOFFLOAD, (unsigned long)(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6));
    return 0;
}

// MARK: Batched datagrams (ctunnel.c: recvmmsg/sendmmsg need _GNU_SOURCE, which must not leak
// into a header that Swift imports beside Glibc)

/// The layout of glibc's `struct mmsghdr` (checked by a static assertion in ctunnel.c).
struct sixgate_mmsghdr {
    struct msghdr msg_hdr;
    unsigned int msg_len;
};

/// recvmmsg(2) without a timeout. Returns the number of messages or -1 (errno set).
int sixgate_recvmmsg(int fd, struct sixgate_mmsghdr *v, unsigned int n, int flags);
/// sendmmsg(2). Returns the number of messages sent or -1 (errno set).
int sixgate_sendmmsg(int fd, struct sixgate_mmsghdr *v, unsigned int n, int flags);

// MARK: Packet information (sticky source addresses)

/// Bytes of control buffer one message needs: a packet-information message and a UDP
/// segmentation one (UDP_SEGMENT on send, UDP_GRO on receive).
#define SIXGATE_PKTINFO_SPACE 96
/// Bytes of control buffer one received message needs: packet information (40), UDP_GRO (24) and
/// a receive timestamp (SCM_TIMESTAMPNS, 32), with room to spare.
#define SIXGATE_RECEIVE_CONTROL_SPACE 128
/// Asks for each datagram's destination address (IP_PKTINFO and IPV6_RECVPKTINFO on a dual-stack
/// socket). Returns 0, or -1 with errno set.
int sixgate_pktinfo_enable(int fd);
/// The destination address of a received message from its control data: 4 (IPv4, in out[0..3]),
/// 16 (IPv6), or 0 when the message carries none.
int sixgate_pktinfo_destination(const struct msghdr *h, uint8_t out[16]);
/// Writes a control message into `control` (at most 40 bytes of it; SIXGATE_PKTINFO_SPACE is room
/// for this and a UDP_SEGMENT message) that sends from `addr`
/// (4 bytes: IPv4, with IP_PKTINFO; 16: IPv6, with IPV6_PKTINFO). Returns its length.
size_t sixgate_pktinfo_source(void *control, int length, const uint8_t *addr);

// MARK: UDP segmentation offload (Linux 4.18) and UDP receive coalescing (Linux 5.0)

/// Whether the socket takes UDP_SEGMENT (getsockopt succeeds). 1 or 0.
int sixgate_udp_gso_supported(int fd);
/// Turns on UDP_GRO: the kernel hands over runs of same-size datagrams of one flow as one buffer
/// with their size in a control message. Returns 0, or -1 with errno set.
int sixgate_udp_gro_enable(int fd);
/// Appends a UDP_SEGMENT control message (`size` bytes per datagram) after the `used` bytes of
/// `control` (SIXGATE_PKTINFO_SPACE bytes); returns the new control length.
size_t sixgate_udp_segment_control(void *control, size_t used, uint16_t size);
/// The datagram size of a coalesced receive (its UDP_GRO control message), or 0 when it has none.
int sixgate_udp_gro_size(const struct msghdr *h);

// MARK: Receive timestamps (the time a datagram waited in the socket's queue)

/// Asks the kernel to stamp each received datagram with the time it arrived (SO_TIMESTAMPNS,
/// CLOCK_REALTIME). Returns 0, or -1 with errno set.
int sixgate_timestamp_enable(int fd);
/// The arrival time of a received message in nanoseconds since the epoch (its SCM_TIMESTAMPNS
/// control message), or 0 when it has none.
int64_t sixgate_receive_timestamp(const struct msghdr *h);
/// CLOCK_REALTIME now, in nanoseconds since the epoch (the clock receive timestamps use).
int64_t sixgate_realtime_ns(void);

#endif
