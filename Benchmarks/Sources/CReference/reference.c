// C reference implementations (compiled -O2). Same validation rules as PacketKit's views:
// IPv4 version/IHL/total length/option TLVs; IPv6 version/payload length/extension-header chain
// (HBH first, TLV options inside their header, at most 16 headers, fragments, AH);
// UDP length; TCP data offset; ICMP minimum lengths.
#include "reference.h"
#include <string.h>

static inline uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }
static inline uint64_t be64(const uint8_t *p) { return (uint64_t)be32(p) << 32 | be32(p + 4); }
static inline uint32_t le32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }

uint16_t ref_checksum(const uint8_t *p, size_t n) {
    uint64_t a = 0, b = 0, c = 0, d = 0;
    while (n >= 32) {
        a += (uint64_t)le32(p) + le32(p + 16);
        b += (uint64_t)le32(p + 4) + le32(p + 20);
        c += (uint64_t)le32(p + 8) + le32(p + 24);
        d += (uint64_t)le32(p + 12) + le32(p + 28);
        p += 32; n -= 32;
    }
    while (n >= 4) { a += le32(p); p += 4; n -= 4; }
    if (n >= 2) { uint16_t v; memcpy(&v, p, 2); b += v; p += 2; n -= 2; }
    if (n) c += p[0];  /* little-endian: the odd byte is the low byte of its native word */
    uint64_t s = a + b + c + d;
    s = (s & 0xffffffff) + (s >> 32);
    s = (s & 0xffffffff) + (s >> 32);
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    uint16_t folded = (uint16_t)s;
    return (uint16_t)~(uint16_t)((folded >> 8) | (folded << 8));
}

static uint64_t transport(uint8_t proto, const uint8_t *p, size_t len) {
    switch (proto) {
    case 17: {
        if (len < 8) return 0;
        size_t ulen = be16(p + 4);
        if (ulen < 8 || ulen > len) return 0;
        return (uint64_t)be16(p) << 16 | be16(p + 2);
    }
    case 6: {
        if (len < 20) return 0;
        size_t off = (size_t)(p[12] >> 4) * 4;
        if (off < 20 || off > len) return 0;
        return (uint64_t)be16(p) << 16 | be16(p + 2) | (uint64_t)p[13] << 32;
    }
    case 1:
        if (len < 8) return 0;
        return (uint64_t)p[0] << 8 | p[1];
    case 58:
        if (len < 4) return 0;
        return (uint64_t)p[0] << 8 | p[1];
    default:
        return 1;
    }
}

static int options_ok(const uint8_t *p, size_t from, size_t to) {
    size_t o = from;
    while (o < to) {
        if (p[o] == 0) { o++; continue; }
        if (o + 2 > to) return 0;
        size_t next = o + 2 + p[o + 1];
        if (next > to) return 0;
        o = next;
    }
    return 1;
}

uint64_t ref_classify(const uint8_t *p, size_t len) {
    if (len < 1) return 0;
    if (p[0] >> 4 == 4) {
        if (len < 20) return 0;
        size_t ihl = (size_t)(p[0] & 15) * 4;
        if (ihl < 20 || ihl > len) return 0;
        size_t total = be16(p + 2);
        if (total < ihl || total > len) return 0;
        size_t o = 20;
        while (o < ihl) {
            uint8_t t = p[o];
            if (t == 0) break;
            if (t == 1) { o++; continue; }
            if (o + 1 >= ihl) return 0;
            size_t l = p[o + 1];
            if (l < 2 || o + l > ihl) return 0;
            o += l;
        }
        uint64_t h = 4ull << 56 | (uint64_t)p[9] << 48 | (uint64_t)(be32(p + 16) ^ be32(p + 12));
        if ((be16(p + 6) & 0x1fff) != 0) return h;  /* non-first fragment */
        uint64_t t = transport(p[9], p + ihl, total - ihl);
        return t ? h ^ t << 8 : 0;
    }
    if (p[0] >> 4 == 6) {
        if (len < 40) return 0;
        size_t plen = be16(p + 4);
        if (plen == 0 && p[6] == 0) return 0;
        size_t end = 40 + plen;
        if (end > len) return 0;
        uint8_t next = p[6];
        size_t off = 40;
        int count = 0;
        for (;;) {
            if (next == 0 || next == 43 || next == 60 || next == 135 || next == 139 || next == 140 || next == 253 || next == 254) {
                if (next == 0 && count != 0) return 0;
                if (off + 8 > end) return 0;
                size_t l = ((size_t)p[off + 1] + 1) * 8;
                if (off + l > end) return 0;
                if ((next == 0 || next == 60) && !options_ok(p, off + 2, off + l)) return 0;
                next = p[off];
                off += l;
            } else if (next == 44) {
                if (off + 8 > end) return 0;
                uint16_t fo = be16(p + off + 2);
                next = p[off];
                off += 8;
                if (++count > 16) return 0;
                if (fo >> 3) return 6ull << 56 | (uint64_t)next << 48;
                continue;
            } else if (next == 51) {
                if (off + 8 > end) return 0;
                size_t l = ((size_t)p[off + 1] + 2) * 4;
                if (off + l > end) return 0;
                next = p[off];
                off += l;
            } else {
                break;
            }
            if (++count > 16) return 0;
        }
        uint64_t h = 6ull << 56 | (uint64_t)next << 48 | (be64(p + 16) ^ be64(p + 32));
        uint64_t t = transport(next, p + off, end - off);
        return t ? h ^ t << 8 : 0;
    }
    return 0;
}
