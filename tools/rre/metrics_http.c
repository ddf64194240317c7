/*
 * metrics_http.c - a /metrics endpoint for Prometheus on a long-running
 * command, served by libmicrohttpd (its own thread): GET /metrics answers
 * 200 with the text exposition format; anything else 404 or 405.
 */
#include "cli.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

struct cli_metrics_server {
    struct MHD_Daemon *daemon;
    cli_metrics_fn fn;
    void *user_data;
};

static enum MHD_Result answer(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **req_cls)
{
    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)req_cls;
    struct cli_metrics_server *srv = cls;
    unsigned status = MHD_HTTP_OK;
    char *body = NULL;
    size_t len = 0;
    const char *type = "text/plain; version=0.0.4; charset=utf-8";
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        status = MHD_HTTP_METHOD_NOT_ALLOWED;
        body = strdup("only GET\n");
    } else if (strcmp(url, "/metrics") != 0) {
        status = MHD_HTTP_NOT_FOUND;
        body = strdup("not found: the metrics are at /metrics\n");
    } else {
        FILE *out = open_memstream(&body, &len);
        if (out != NULL) {
            srv->fn(out, srv->user_data);
            fclose(out);
        }
    }
    if (body == NULL) {
        status = MHD_HTTP_INTERNAL_SERVER_ERROR;
        body = strdup("out of memory\n");
        if (body == NULL)
            return MHD_NO;
    }
    if (status != MHD_HTTP_OK)
        type = "text/plain; charset=utf-8";
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (resp == NULL) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", type);
    enum MHD_Result r = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return r;
}

/* "ADDR:PORT", "[ADDR6]:PORT" or ":PORT" (all addresses). */
static bool parse_listen(const char *text, struct sockaddr_storage *sa, socklen_t *salen)
{
    memset(sa, 0, sizeof *sa);
    const char *colon = strrchr(text, ':');
    if (colon == NULL || colon[1] == '\0')
        return false;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || port < 1 || port > 65535)
        return false;
    char host[128];
    size_t hl = (size_t)(colon - text);
    if (hl >= sizeof host)
        return false;
    memcpy(host, text, hl);
    host[hl] = '\0';
    if (host[0] == '[' && hl >= 2 && host[hl - 1] == ']') {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)sa;
        host[hl - 1] = '\0';
        if (inet_pton(AF_INET6, host + 1, &s6->sin6_addr) != 1)
            return false;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        *salen = sizeof *s6;
        return true;
    }
    struct sockaddr_in *s4 = (struct sockaddr_in *)sa;
    s4->sin_family = AF_INET;
    s4->sin_port = htons((uint16_t)port);
    if (host[0] == '\0')
        s4->sin_addr.s_addr = htonl(INADDR_ANY);
    else if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
        return false;
    *salen = sizeof *s4;
    return true;
}

bool cli_metrics_listen_valid(const char *text)
{
    struct sockaddr_storage sa;
    socklen_t len;
    return parse_listen(text, &sa, &len);
}

struct cli_metrics_server *cli_metrics_start(const char *listen, cli_metrics_fn fn, void *user_data,
                                             char *why, size_t why_cap)
{
    struct sockaddr_storage sa;
    socklen_t salen = 0;
    if (!parse_listen(listen, &sa, &salen)) {
        snprintf(why, why_cap, "'%s' is not ADDR:PORT", listen);
        return NULL;
    }
    struct cli_metrics_server *srv = calloc(1, sizeof *srv);
    if (srv == NULL) {
        snprintf(why, why_cap, "out of memory");
        return NULL;
    }
    srv->fn = fn;
    srv->user_data = user_data;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD;
    if (sa.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    uint16_t port = sa.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&sa)->sin6_port)
                                             : ntohs(((struct sockaddr_in *)&sa)->sin_port);
    srv->daemon = MHD_start_daemon(flags, port, NULL, NULL, answer, srv, MHD_OPTION_SOCK_ADDR,
                                   (struct sockaddr *)&sa, MHD_OPTION_CONNECTION_TIMEOUT,
                                   (unsigned)10, MHD_OPTION_END);
    if (srv->daemon == NULL) {
        snprintf(why, why_cap, "cannot listen on %s (in use, or not an address of this host?)",
                 listen);
        free(srv);
        return NULL;
    }
    return srv;
}

void cli_metrics_stop(struct cli_metrics_server *srv)
{
    if (srv == NULL)
        return;
    MHD_stop_daemon(srv->daemon);
    free(srv);
}
