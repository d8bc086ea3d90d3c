// C references for PacketKit's hot paths: the same work, written the way a C network stack would.
#ifndef SIXGATE_REFERENCE_H
#define SIXGATE_REFERENCE_H
#include <stddef.h>
#include <stdint.h>
/// RFC 1071 Internet checksum of `len` bytes (the complemented 16-bit value, network order as a number).
uint16_t ref_checksum(const uint8_t *p, size_t len);
/// Validates one IPv4 or IPv6 packet as PacketKit's views do and returns a classification hash
/// (version, addresses' low bits, protocol, ports or ICMP type), or 0 if malformed.
uint64_t ref_classify(const uint8_t *p, size_t len);
#endif
