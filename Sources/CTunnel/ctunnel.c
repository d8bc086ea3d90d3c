#define _GNU_SOURCE
#include <sys/socket.h>
#include <stddef.h>
#include <netinet/in.h>
#include <time.h>
#include "ctunnel.h"

_Static_assert(sizeof(struct sixgate_mmsghdr) == sizeof(struct mmsghdr), "mmsghdr layout");
_Static_assert(offsetof(struct sixgate_mmsghdr, msg_len) == offsetof(struct mmsghdr, msg_len), "mmsghdr layout");

int sixgate_recvmmsg(int fd, struct sixgate_mmsghdr *v, unsigned int n, int flags) {
    return recvmmsg(fd, (struct mmsghdr *)v, n, flags, NULL);
}

int sixgate_sendmmsg(int fd, struct sixgate_mmsghdr *v, unsigned int n, int flags) {
    return sendmmsg(fd, (struct mmsghdr *)v, n, flags);
}

int sixgate_pktinfo_enable(int fd) {
    int on = 1;
    if (setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &on, sizeof on) != 0) return -1;
    // IPv4 datagrams on the dual-stack socket report theirs with IP_PKTINFO.
    if (setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &on, sizeof on) != 0) return -1;
    return 0;
}

int sixgate_pktinfo_destination(const struct msghdr *h, uint8_t out[16]) {
    for (struct cmsghdr *c = CMSG_FIRSTHDR((struct msghdr *)h); c; c = CMSG_NXTHDR((struct msghdr *)h, c)) {
        if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
            struct in6_pktinfo info;
            memcpy(&info, CMSG_DATA(c), sizeof info);
            static const uint8_t mapped[12] = {0,0,0,0,0,0,0,0,0,0,0xff,0xff};
            if (memcmp(info.ipi6_addr.s6_addr, mapped, 12) == 0) { memcpy(out, info.ipi6_addr.s6_addr + 12, 4); return 4; }
            memcpy(out, info.ipi6_addr.s6_addr, 16);
            return 16;
        }
        if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
            struct in_pktinfo info;
            memcpy(&info, CMSG_DATA(c), sizeof info);
            memcpy(out, &info.ipi_addr, 4);
            return 4;
        }
    }
    return 0;
}

size_t sixgate_pktinfo_source(void *control, int length, const uint8_t *addr) {
    struct cmsghdr *c = (struct cmsghdr *)control;
    if (length == 4) {
        struct in_pktinfo info;
        memset(control, 0, CMSG_SPACE(sizeof info));
        memset(&info, 0, sizeof info);
        memcpy(&info.ipi_spec_dst, addr, 4);
        c->cmsg_level = IPPROTO_IP; c->cmsg_type = IP_PKTINFO; c->cmsg_len = CMSG_LEN(sizeof info);
        memcpy(CMSG_DATA(c), &info, sizeof info);
        return CMSG_SPACE(sizeof info);
    }
    struct in6_pktinfo info;
    memset(control, 0, CMSG_SPACE(sizeof info));
    memset(&info, 0, sizeof info);
    memcpy(info.ipi6_addr.s6_addr, addr, 16);
    c->cmsg_level = IPPROTO_IPV6; c->cmsg_type = IPV6_PKTINFO; c->cmsg_len = CMSG_LEN(sizeof info);
    memcpy(CMSG_DATA(c), &info, sizeof info);
    return CMSG_SPACE(sizeof info);
}

#ifndef SOL_UDP
#define SOL_UDP 17
#endif
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif

int sixgate_udp_gso_supported(int fd) {
    int size = 0;
    socklen_t len = sizeof size;
    return getsockopt(fd, SOL_UDP, UDP_SEGMENT, &size, &len) == 0;
}

int sixgate_udp_gro_enable(int fd) {
    int on = 1;
    return setsockopt(fd, SOL_UDP, UDP_GRO, &on, sizeof on);
}

size_t sixgate_udp_segment_control(void *control, size_t used, uint16_t size) {
    struct cmsghdr *c = (struct cmsghdr *)((uint8_t *)control + used);
    memset(c, 0, CMSG_SPACE(sizeof size));
    c->cmsg_level = SOL_UDP; c->cmsg_type = UDP_SEGMENT; c->cmsg_len = CMSG_LEN(sizeof size);
    memcpy(CMSG_DATA(c), &size, sizeof size);
    return used + CMSG_SPACE(sizeof size);
}

int sixgate_udp_gro_size(const struct msghdr *h) {
    for (struct cmsghdr *c = CMSG_FIRSTHDR((struct msghdr *)h); c; c = CMSG_NXTHDR((struct msghdr *)h, c)) {
        if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
            int size = 0;
            memcpy(&size, CMSG_DATA(c), sizeof size);
            return size;
        }
    }
    return 0;
}

int sixgate_timestamp_enable(int fd) {
    int on = 1;
    return setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on);
}

int64_t sixgate_receive_timestamp(const struct msghdr *h) {
    for (struct cmsghdr *c = CMSG_FIRSTHDR((struct msghdr *)h); c; c = CMSG_NXTHDR((struct msghdr *)h, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
            struct timespec t;
            memcpy(&t, CMSG_DATA(c), sizeof t);
            return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
        }
    }
    return 0;
}

int64_t sixgate_realtime_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}
