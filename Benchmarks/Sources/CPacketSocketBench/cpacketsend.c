#define _GNU_SOURCE
#include "cpacketsend.h"
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>

long sixgate_packet_send(int fd, int ifindex, const void *frame, size_t length) {
    struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_IPV6), .sll_ifindex = ifindex, .sll_halen = 6 };
    if (length >= 6) memcpy(sll.sll_addr, frame, 6);
    return sendto(fd, frame, length, 0, (struct sockaddr *)&sll, sizeof(sll));
}

int sixgate_packet_bind(int fd, int ifindex) {
    struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_IPV6), .sll_ifindex = ifindex };
    return bind(fd, (struct sockaddr *)&sll, sizeof(sll));
}

int sixgate_bench_timestamps(int fd) {
    int one = 1;
    return setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one));
}

int sixgate_bench_receive_batch(int fd, void *buffers, size_t stride, size_t count, uint32_t *lengths, double *stamps) {
    enum { most = 64 };
    if (count > most) count = most;
    struct mmsghdr messages[most];
    struct iovec vectors[most];
    char control[most][CMSG_SPACE(sizeof(struct timespec))];
    for (size_t i = 0; i < count; i++) {
        vectors[i] = (struct iovec){ .iov_base = (char *)buffers + i * stride, .iov_len = stride };
        messages[i] = (struct mmsghdr){ .msg_hdr = { .msg_iov = &vectors[i], .msg_iovlen = 1, .msg_control = control[i], .msg_controllen = sizeof(control[i]) } };
    }
    int n = recvmmsg(fd, messages, (unsigned)count, MSG_DONTWAIT, NULL);
    for (int i = 0; i < n; i++) {
        lengths[i] = messages[i].msg_len;
        stamps[i] = 0;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&messages[i].msg_hdr); c; c = CMSG_NXTHDR(&messages[i].msg_hdr, c)) {
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_TIMESTAMPNS) {
                struct timespec ts;
                memcpy(&ts, CMSG_DATA(c), sizeof(ts));
                stamps[i] = (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
            }
        }
    }
    return n;
}
