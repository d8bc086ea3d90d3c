// Test-only helpers that Swift cannot call directly (variadic syscall(2), sockaddr_ll).
#ifndef SIXGATE_CTESTSUPPORT_H
#define SIXGATE_CTESTSUPPORT_H

/// Removes capability `cap` (e.g. 12, CAP_NET_ADMIN) from the calling thread's effective set.
/// Linux capabilities are per thread, so other threads keep theirs. Returns 0 or -1 (errno set).
int sixgate_test_drop_effective_capability(int cap);

/// Sends `length` bytes out of interface `ifindex` through packet socket `fd` as one packet of
/// EtherType `protocol` (host order): on a TUN device, exactly what the reader of the TUN gets.
long sixgate_test_packet_send(int fd, int ifindex, unsigned short protocol, const void *bytes, unsigned long length);

#endif
