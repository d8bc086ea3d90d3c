// CNetlink: libnl-3 / libnl-route-3 for RouteKit.
// Headers only, plus small static-inline helpers for what Swift cannot import
// (variadic calls, function-like macros). Nothing else lives here.
#ifndef SIXGATE_CNETLINK_SHIM_H
#define SIXGATE_CNETLINK_SHIM_H
#include <netlink/netlink.h>
#include <netlink/socket.h>
#include <netlink/errno.h>
#include <netlink/version.h>
#include <netlink/route/link.h>
#include <netlink/route/addr.h>
#include <netlink/route/route.h>
#include <netlink/route/neighbour.h>

/// The libnl version this binary was built against, e.g. "3.7.0".
static inline const char *sixgate_nl_version(void) { return LIBNL_STRING; }
#endif
