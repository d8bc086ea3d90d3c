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

/// Sends one Ethernet frame out of `ifindex` through `fd`. Returns bytes sent or -1 (errno).
long sixgate_packet_send(int fd, int ifindex, const void *frame, size_t length);

/// Reads the interface's MAC address into `mac` (6 bytes). Returns 0 or -1 (errno).
int sixgate_interface_mac(int ifindex, uint8_t mac[6]);
#endif
