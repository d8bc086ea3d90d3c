#define _GNU_SOURCE
#include <linux/capability.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <errno.h>
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <sys/socket.h>
#include "ctestsupport.h"

long sixgate_test_packet_send(int fd, int ifindex, unsigned short protocol, const void *bytes, unsigned long length) {
    struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_protocol = htons(protocol), .sll_ifindex = ifindex };
    return sendto(fd, bytes, length, 0, (struct sockaddr *)&sll, sizeof(sll));
}

int sixgate_test_drop_effective_capability(int cap) {
    if (cap < 0 || cap >= 64) { errno = EINVAL; return -1; }
    struct __user_cap_header_struct header = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct data[2];
    if (syscall(SYS_capget, &header, data) != 0) return -1;
    data[cap / 32].effective &= ~(1u << (cap % 32));
    return (int)syscall(SYS_capset, &header, data);
}
