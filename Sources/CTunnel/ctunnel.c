#define _GNU_SOURCE
#include <sys/socket.h>
#include <stddef.h>
#include "ctunnel.h"

_Static_assert(sizeof(struct sixgate_mmsghdr) == sizeof(struct mmsghdr), "mmsghdr layout");
_Static_assert(offsetof(struct sixgate_mmsghdr, msg_len) == offsetof(struct mmsghdr, msg_len), "mmsghdr layout");

int sixgate_recvmmsg(int fd, struct sixgate_mmsghdr *v, unsigned int n, int flags) {
    return recvmmsg(fd, (struct mmsghdr *)v, n, flags, NULL);
}

int sixgate_sendmmsg(int fd, struct sixgate_mmsghdr *v, unsigned int n, int flags) {
    return sendmmsg(fd, (struct mmsghdr *)v, n, flags);
}
