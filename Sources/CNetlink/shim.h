// CNetlink: libnl-3 / libnl-route-3 for RouteKit.
// Headers only, plus small static-inline helpers for what Swift cannot import
// (variadic calls such as syscall(), function-like macros). Nothing else lives here.
#ifndef SIXGATE_CNETLINK_SHIM_H
#define SIXGATE_CNETLINK_SHIM_H
#include <netlink/netlink.h>
#include <netlink/socket.h>
#include <netlink/msg.h>
#include <netlink/attr.h>
#include <netlink/errno.h>
#include <netlink/version.h>
#include <netlink/cache.h>
#include <netlink/route/rtnl.h>
#include <netlink/route/link.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/addr.h>
#include <netlink/route/route.h>
#include <netlink/route/neighbour.h>
#include <linux/rtnetlink.h>
#include <linux/neighbour.h>
#include <linux/if_addr.h>
#include <sys/syscall.h>
#include <unistd.h>

/// The libnl version this binary was built against, e.g. "3.7.0".
static inline const char *sixgate_nl_version(void) { return LIBNL_STRING; }

/// setns(fd, CLONE_NEWNET) for the calling thread. The corresponding C function is `setns`.
static inline int sixgate_setns_net(int fd) { return (int)syscall(SYS_setns, fd, 0x40000000 /* CLONE_NEWNET */); }

/// NLMSG_ALIGN(sizeof(struct rtmsg)) etc. are macros; the sizes Swift needs for nlmsg_append.
static inline int sixgate_nlmsg_alignto(void) { return NLMSG_ALIGNTO; }
#endif
