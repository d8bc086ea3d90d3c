// sendto on a packet socket for NDPFlood (the main package's CPacketSocket is not a product).
#ifndef SIXGATE_CPACKETSEND_H
#define SIXGATE_CPACKETSEND_H
#include <stddef.h>
#include <stdint.h>
long sixgate_packet_send(int fd, int ifindex, const void *frame, size_t length);
int sixgate_packet_bind(int fd, int ifindex);
/// Asks for kernel receive timestamps (SO_TIMESTAMPNS, CLOCK_REALTIME) on `fd`.
int sixgate_bench_timestamps(int fd);
/// recvmmsg of up to 64 frames without waiting: lengths and kernel receive times (seconds,
/// CLOCK_REALTIME; 0 when missing). Returns how many, or -1.
int sixgate_bench_receive_batch(int fd, void *buffers, size_t stride, size_t count, uint32_t *lengths, double *stamps);
#endif
