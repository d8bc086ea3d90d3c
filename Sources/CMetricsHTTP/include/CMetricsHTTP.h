// libmicrohttpd (Debian libmicrohttpd12; its -dev package for the header) for the /metrics endpoint,
// opened with dlopen on first use. MHD_start_daemon takes its options as C varargs, which Swift
// cannot pass: sg_metrics_start passes them here.
#ifndef SG_CMETRICSHTTP_H
#define SG_CMETRICSHTTP_H
#include <stddef.h>

/// What to answer for one request: `path` is the request's URL path, `method` its method. The
/// handler fills `*body` (malloc'd; the server frees it after sending) and `*length`, and returns
/// the HTTP status code. `*content_type` must point to a string that outlives the call.
typedef unsigned int (*sg_metrics_handler)(void *context, const char *method, const char *path,
                                           char **body, size_t *length, const char **content_type);

struct sg_metrics_server;

/// Opens libmicrohttpd (once; later calls return the first answer): NULL when it is there, else
/// why not (dlerror's text).
const char *sg_metrics_load(void);

/// Serves HTTP on `listen_fd` (a bound, listening TCP socket; the server owns it from here) on a
/// thread of its own. At most `connection_limit` connections at once, each closed after
/// `timeout_seconds` of silence. NULL on failure (the socket is then still the caller's).
struct sg_metrics_server *sg_metrics_start(int listen_fd, sg_metrics_handler handler, void *context,
                                           unsigned int connection_limit, unsigned int timeout_seconds);

/// Stops the server: joins its thread, closes its connections and the listening socket.
void sg_metrics_stop(struct sg_metrics_server *server);

#endif
