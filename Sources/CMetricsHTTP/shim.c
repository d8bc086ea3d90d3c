#include "CMetricsHTTP.h"
#include <dlfcn.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

// libmicrohttpd is opened when a daemon is asked to serve metrics, not at start: it brings GnuTLS
// and eight more libraries, 2.5 MB of resident memory in every daemon that never serves /metrics
// (Benchmarks/README.md, footprint).
static struct {
    __typeof__(&MHD_start_daemon) start_daemon;
    __typeof__(&MHD_stop_daemon) stop_daemon;
    __typeof__(&MHD_create_response_from_buffer) create_response_from_buffer;
    __typeof__(&MHD_add_response_header) add_response_header;
    __typeof__(&MHD_queue_response) queue_response;
    __typeof__(&MHD_destroy_response) destroy_response;
} mhd;
static pthread_once_t mhd_once = PTHREAD_ONCE_INIT;
static char mhd_error[256];

static void mhd_load(void) {
    void *h = dlopen("libmicrohttpd.so.12", RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) { snprintf(mhd_error, sizeof mhd_error, "%s", dlerror()); return; }
#define SG_SYMBOL(field, name) \
    if ((*(void **)&mhd.field = dlsym(h, name)) == NULL) { snprintf(mhd_error, sizeof mhd_error, "%s", dlerror()); mhd.start_daemon = NULL; return; }
    SG_SYMBOL(stop_daemon, "MHD_stop_daemon")
    SG_SYMBOL(create_response_from_buffer, "MHD_create_response_from_buffer")
    SG_SYMBOL(add_response_header, "MHD_add_response_header")
    SG_SYMBOL(queue_response, "MHD_queue_response")
    SG_SYMBOL(destroy_response, "MHD_destroy_response")
    SG_SYMBOL(start_daemon, "MHD_start_daemon")
#undef SG_SYMBOL
}

const char *sg_metrics_load(void) {
    pthread_once(&mhd_once, mhd_load);
    return mhd.start_daemon ? NULL : mhd_error;
}

struct sg_metrics_server {
    struct MHD_Daemon *daemon;
    sg_metrics_handler handler;
    void *context;
    int listen_fd;
};

static enum MHD_Result sg_access(void *cls, struct MHD_Connection *connection, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **request_state) {
    (void)version; (void)upload_data;
    struct sg_metrics_server *s = cls;
    // A request body (POST, PUT) arrives in further calls: take it and drop it; answer once.
    if (*request_state == NULL) { *request_state = (void *)1; return MHD_YES; }
    if (*upload_data_size != 0) { *upload_data_size = 0; return MHD_YES; }
    char *body = NULL;
    size_t length = 0;
    const char *type = "text/plain; charset=utf-8";
    unsigned int status = s->handler(s->context, method, url, &body, &length, &type);
    struct MHD_Response *response = body
        ? mhd.create_response_from_buffer(length, body, MHD_RESPMEM_MUST_FREE)
        : mhd.create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
    if (response == NULL) { free(body); return MHD_NO; }
    mhd.add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED) mhd.add_response_header(response, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    enum MHD_Result r = mhd.queue_response(connection, status, response);
    mhd.destroy_response(response);
    return r;
}

struct sg_metrics_server *sg_metrics_start(int listen_fd, sg_metrics_handler handler, void *context,
                                           unsigned int connection_limit, unsigned int timeout_seconds) {
    if (sg_metrics_load() != NULL) return NULL;
    struct sg_metrics_server *s = calloc(1, sizeof *s);
    if (s == NULL) return NULL;
    s->handler = handler;
    s->context = context;
    s->listen_fd = listen_fd;
    // The port argument is ignored when a listening socket is given.
    s->daemon = mhd.start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL, 0, NULL, NULL, sg_access, s,
                                 MHD_OPTION_LISTEN_SOCKET, listen_fd,
                                 MHD_OPTION_CONNECTION_LIMIT, connection_limit,
                                 MHD_OPTION_CONNECTION_TIMEOUT, timeout_seconds,
                                 MHD_OPTION_END);
    if (s->daemon == NULL) { free(s); return NULL; }
    return s;
}

void sg_metrics_stop(struct sg_metrics_server *s) {
    if (s == NULL) return;
    // MHD_stop_daemon closes the listening socket it was given as well (a test checks the port is free after).
    mhd.stop_daemon(s->daemon);
    free(s);
}
