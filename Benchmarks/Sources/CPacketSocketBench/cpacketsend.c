#include "cpacketsend.h"
#include <string.h>
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
