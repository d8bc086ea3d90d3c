#include "CMetricsHTTP.h"
#include <microhttpd.h>
#include <stdlib.h>
#include <unistd.h>

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
        ? MHD_create_response_from_buffer(length, body, MHD_RESPMEM_MUST_FREE)
        : MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
    if (response == NULL) { free(body); return MHD_NO; }
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED) MHD_add_response_header(response, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    enum MHD_Result r = MHD_queue_response(connection, status, response);
    MHD_destroy_response(response);
    return r;
}

struct sg_metrics_server *sg_metrics_start(int listen_fd, sg_metrics_handler handler, void *context,
                                           unsigned int connection_limit, unsigned int timeout_seconds) {
    struct sg_metrics_server *s = calloc(1, sizeof *s);
    if (s == NULL) return NULL;
    s->handler = handler;
    s->context = context;
    s->listen_fd = listen_fd;
    // The port argument is ignored when a listening socket is given.
    s->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL, 0, NULL, NULL, sg_access, s,
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
    MHD_stop_daemon(s->daemon);
    free(s);
}
