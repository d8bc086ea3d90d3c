#define _GNU_SOURCE
#include "cpacketsocket.h"
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <net/if.h>
#include <arpa/inet.h>
#include <poll.h>
#include <netinet/in.h>
#include <netinet/icmp6.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>

// ldh [12] (EtherType) == 0x86dd; ldb [20] (next header) == 58; ldb [54] (ICMPv6 type) == 135.
static struct sock_filter ns_filter[] = {
    BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 12),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ETH_P_IPV6, 0, 5),
    BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 20),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 58, 0, 3),
    BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 54),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 135, 0, 1),
    BPF_STMT(BPF_RET | BPF_K, 0xffff),
    BPF_STMT(BPF_RET | BPF_K, 0),
};

int sixgate_ndp_socket(int ifindex, int icmp_type) {
    int fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, htons(ETH_P_IPV6));
    if (fd < 0) return -1;
    struct sock_filter program[sizeof(ns_filter) / sizeof(ns_filter[0])];
    memcpy(program, ns_filter, sizeof(program));
    program[5].k = (unsigned)icmp_type;   // the ICMPv6 type compared against
    struct sock_fprog prog = { .len = sizeof(program) / sizeof(program[0]), .filter = program };
    struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_IPV6), .sll_ifindex = ifindex };
    struct packet_mreq mr = { .mr_ifindex = ifindex, .mr_type = PACKET_MR_ALLMULTI };
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)) != 0 ||
        bind(fd, (struct sockaddr *)&sll, sizeof(sll)) != 0 ||
        setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof(mr)) != 0 ||
        setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(one)) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    // The receive buffer stays at the kernel's default (about 200 KiB, some 300 solicitations):
    // measured, a 4 MiB buffer answered a few more under overload but queued them for 75 ms at the
    // 99th percentile, long after a router gives up on an answer (Benchmarks/README.md).
    return fd;
}

int sixgate_packet_receive_batch(int fd, void *buffers, size_t stride, size_t count, uint32_t *lengths) {
    if (count > SIXGATE_PACKET_BATCH) count = SIXGATE_PACKET_BATCH;
    struct mmsghdr messages[SIXGATE_PACKET_BATCH];
    struct iovec vectors[SIXGATE_PACKET_BATCH];
    for (size_t i = 0; i < count; i++) {
        vectors[i] = (struct iovec){ .iov_base = (char *)buffers + i * stride, .iov_len = stride };
        messages[i] = (struct mmsghdr){ .msg_hdr = { .msg_iov = &vectors[i], .msg_iovlen = 1 } };
    }
    int n = recvmmsg(fd, messages, (unsigned)count, MSG_DONTWAIT, NULL);
    for (int i = 0; i < n; i++)
        lengths[i] = (messages[i].msg_hdr.msg_flags & MSG_TRUNC) ? 0 : messages[i].msg_len;
    return n;
}

int sixgate_packet_send_batch(int fd, int ifindex, const void *frames, size_t stride, const uint32_t *lengths, size_t count) {
    if (count > SIXGATE_PACKET_BATCH) count = SIXGATE_PACKET_BATCH;
    struct mmsghdr messages[SIXGATE_PACKET_BATCH];
    struct iovec vectors[SIXGATE_PACKET_BATCH];
    struct sockaddr_ll addresses[SIXGATE_PACKET_BATCH];
    for (size_t i = 0; i < count; i++) {
        const char *frame = (const char *)frames + i * stride;
        addresses[i] = (struct sockaddr_ll){ .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_IPV6), .sll_ifindex = ifindex, .sll_halen = 6 };
        if (lengths[i] >= 6) memcpy(addresses[i].sll_addr, frame, 6);
        vectors[i] = (struct iovec){ .iov_base = (void *)frame, .iov_len = lengths[i] };
        messages[i] = (struct mmsghdr){ .msg_hdr = { .msg_name = &addresses[i], .msg_namelen = sizeof(addresses[i]), .msg_iov = &vectors[i], .msg_iovlen = 1 } };
    }
    size_t sent = 0;
    while (sent < count) {
        int n = sendmmsg(fd, messages + sent, (unsigned)(count - sent), 0);
        if (n <= 0) break;
        sent += (size_t)n;
    }
    return (int)sent;
}

int sixgate_ns_socket(int ifindex) { return sixgate_ndp_socket(ifindex, 135); }

long sixgate_packet_send(int fd, int ifindex, const void *frame, size_t length) {
    struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_IPV6), .sll_ifindex = ifindex, .sll_halen = 6 };
    if (length >= 6) memcpy(sll.sll_addr, frame, 6);
    return sendto(fd, frame, length, 0, (struct sockaddr *)&sll, sizeof(sll));
}

int sixgate_interface_mac(int ifindex, uint8_t mac[6]) {
    int fd = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    if (!if_indextoname((unsigned)ifindex, ifr.ifr_name) || ioctl(fd, SIOCGIFHWADDR, &ifr) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    close(fd);
    memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
    return 0;
}

int sixgate_router_socket(int ifindex) {
    int fd = socket(AF_INET6, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMPV6);
    if (fd < 0) return -1;
    struct icmp6_filter filter;
    ICMP6_FILTER_SETBLOCKALL(&filter);
    ICMP6_FILTER_SETPASS(ND_ROUTER_SOLICIT, &filter);
    int on = 1, off = 0, hops = 255;
    struct ipv6_mreq mreq = { .ipv6mr_interface = (unsigned)ifindex };
    inet_pton(AF_INET6, "ff02::2", &mreq.ipv6mr_multiaddr);
    if (setsockopt(fd, IPPROTO_ICMPV6, ICMP6_FILTER, &filter, sizeof filter) < 0 ||
        setsockopt(fd, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, &on, sizeof on) < 0 ||
        setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &hops, sizeof hops) < 0 ||
        setsockopt(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, &hops, sizeof hops) < 0 ||
        setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, &ifindex, sizeof ifindex) < 0 ||
        setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, &off, sizeof off) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_BINDTOIFINDEX, &ifindex, sizeof ifindex) < 0 ||
        setsockopt(fd, IPPROTO_IPV6, IPV6_JOIN_GROUP, &mreq, sizeof mreq) < 0) {
        int e = errno; close(fd); errno = e; return -1;
    }
    return fd;
}

long sixgate_icmp6_receive(int fd, void *buffer, size_t length, uint8_t source[16], int *hop_limit, int timeout_ms) {
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    int r = poll(&pfd, 1, timeout_ms);
    if (r <= 0) return r;
    struct sockaddr_in6 from;
    char control[CMSG_SPACE(sizeof(int)) * 4];
    struct iovec iov = { .iov_base = buffer, .iov_len = length };
    struct msghdr msg = { .msg_name = &from, .msg_namelen = sizeof from, .msg_iov = &iov, .msg_iovlen = 1,
                          .msg_control = control, .msg_controllen = sizeof control };
    long n = recvmsg(fd, &msg, MSG_DONTWAIT);
    if (n < 0) return -1;
    memcpy(source, &from.sin6_addr, 16);
    *hop_limit = -1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_HOPLIMIT) memcpy(hop_limit, CMSG_DATA(c), sizeof(int));
    }
    return n;
}

long sixgate_icmp6_send(int fd, const void *message, size_t length, const uint8_t destination[16], int ifindex) {
    struct sockaddr_in6 to = { .sin6_family = AF_INET6, .sin6_scope_id = (uint32_t)ifindex };
    memcpy(&to.sin6_addr, destination, 16);
    return sendto(fd, message, length, 0, (struct sockaddr *)&to, sizeof to);
}
