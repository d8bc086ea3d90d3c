#include "cpacketsocket.h"
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <net/if.h>
#include <arpa/inet.h>
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

int sixgate_ns_socket(int ifindex) {
    int fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, htons(ETH_P_IPV6));
    if (fd < 0) return -1;
    struct sock_fprog prog = { .len = sizeof(ns_filter) / sizeof(ns_filter[0]), .filter = ns_filter };
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
    return fd;
}

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
