// sendto on a packet socket for NDPFlood (the main package's CPacketSocket is not a product).
#ifndef SIXGATE_CPACKETSEND_H
#define SIXGATE_CPACKETSEND_H
#include <stddef.h>
long sixgate_packet_send(int fd, int ifindex, const void *frame, size_t length);
int sixgate_packet_bind(int fd, int ifindex);
#endif
