// C reference for TunnelCore's per-packet crypto: OpenSSL's ChaCha20-Poly1305 called directly
// with one reused context, as a C data plane would.
#ifndef SIXGATE_SEAL_REFERENCE_H
#define SIXGATE_SEAL_REFERENCE_H
#include <stddef.h>
#include <stdint.h>
/// Seals `count` packets of `len` bytes in place at `buf` (tag after them) with counters 0..count-1.
/// Returns the number sealed.
size_t ref_seal_loop(uint8_t *buf, size_t len, size_t count);
#endif
