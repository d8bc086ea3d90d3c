// Linux packet sockets for NDPProxy: what Swift cannot express directly (struct sock_fprog with a
// classic BPF program, packet_mreq), as plain functions.
#ifndef SIXGATE_CPACKETSOCKET_H
#define SIXGATE_CPACKETSOCKET_H
#include <stdint.h>
#include <stddef.h>

/// Opens an AF_PACKET/SOCK_RAW socket for IPv6 frames on interface `ifindex`, attaches a BPF filter
/// that passes only ICMPv6 Neighbor Solicitations (next header 58 right after the IPv6 header,
/// type 135), and puts the interface in all-multicast mode for this socket (PACKET_MR_ALLMULTI), so
/// solicitations to solicited-node groups the host has not joined arrive too.
/// Returns the descriptor, or -1 with errno set. Non-blocking, close-on-exec.
int sixgate_ns_socket(int ifindex);

/// Frames one batch call moves at most.
#define SIXGATE_PACKET_BATCH 64

/// Reads up to `count` (at most SIXGATE_PACKET_BATCH) frames with one recvmmsg, without waiting:
/// frame i into `buffers + i * stride`, its length into `lengths[i]` (0 when it was longer than
/// `stride` and truncated). Returns how many were read, 0 or -1 (errno, EAGAIN when none waited).
int sixgate_packet_receive_batch(int fd, void *buffers, size_t stride, size_t count, uint32_t *lengths);

/// Sends `count` (at most SIXGATE_PACKET_BATCH) Ethernet frames, frame i at `frames + i * stride`
/// of `lengths[i]` bytes, out of `ifindex` with sendmmsg. Returns how many were sent.
int sixgate_packet_send_batch(int fd, int ifindex, const void *frames, size_t stride, const uint32_t *lengths, size_t count);

/// The same for any ICMPv6 type (136: Neighbor Advertisements, for `iface` rules' own solicitations).
int sixgate_ndp_socket(int ifindex, int icmp_type);

/// Sends one Ethernet frame out of `ifindex` through `fd`. Returns bytes sent or -1 (errno).
long sixgate_packet_send(int fd, int ifindex, const void *frame, size_t length);

/// Reads the interface's MAC address into `mac` (6 bytes). Returns 0 or -1 (errno).
int sixgate_interface_mac(int ifindex, uint8_t mac[6]);

/// Opens a raw ICMPv6 socket for a router on interface `ifindex`: passes only Router Solicitations
/// (ICMP6_FILTER), joins all-routers (ff02::2) there, sends with hop limit 255 (RFC 4861 §6.1.2),
/// reports each packet's hop limit, does not loop its own multicast back. The kernel fills in the
/// source (the interface's link-local address) and the checksum. Returns the descriptor or -1 (errno).
int sixgate_router_socket(int ifindex);

/// Waits up to `timeout_ms` for one ICMPv6 message; copies it into `buffer`, the source into
/// `source` (16 bytes) and the IPv6 hop limit it arrived with into `hop_limit`.
/// Returns its length, 0 on timeout, or -1 (errno).
long sixgate_icmp6_receive(int fd, void *buffer, size_t length, uint8_t source[16], int *hop_limit, int timeout_ms);

/// Sends an ICMPv6 message (checksum left to the kernel) to `destination` on `ifindex`.
/// Returns bytes sent or -1 (errno).
long sixgate_icmp6_send(int fd, const void *message, size_t length, const uint8_t destination[16], int ifindex);
#endif
