/* SPDX-License-Identifier: MIT */
/*
 * main.c -- the API server: reads the environment, starts the config cache and the HTTP server,
 * and stops them in reverse order on SIGINT/SIGTERM: new connections are refused at once,
 * requests in flight get SHUTDOWN_TIMEOUT seconds, then the process exits 0. A Redis that may
 * evict keys (maxmemory-policy other than noeviction) stops it with exit status 1: before it
 * listens when Redis answers at start, else once the monitor first reaches Redis. The only place
 * with process-wide state besides the stop flag of the start-up path both binaries share
 * (src/startup.c).
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gk/confcache.h"
#include "gk/config.h"
#include "gk/crypto.h"
#include "gk/handlers.h"
#include "gk/http.h"
#include "gk/log.h"
#include "gk/monitor.h"
#include "gk/pow.h"
#include "gk/qnode.h"
#include "gk/startup.h"
#include "gk/token.h"

static volatile sig_atomic_t refused;

/* Redis may evict queues (the monitor logged why): stop as on SIGTERM, but exit 1. */
static void
on_refused(void)
{
    refused = 1;
    kill(getpid(), SIGTERM);
}

int
main(void)
{
    static struct gk_config cfg; /* large; static keeps it off the stack */
    struct gk_app app = {.cfg = &cfg};
    struct gk_http_opts opts;
    struct gk_http_companion comp;
    struct gk_http *http = NULL;
    struct gk_startup st;
    char err[256];
    int rc, sig;

    /* SIGINT and SIGTERM are blocked from here on in every thread but gk_startup_wait below. */
    rc = gk_startup(GK_PROG_SERVER, &cfg, &st);
    if (rc != 0)
        return rc;
    rc = EXIT_FAILURE;
    gk_sha256_hex(cfg.admin_token, strlen(cfg.admin_token), app.operator_key_hash);
    if (cfg.metrics_token[0] != '\0')
        gk_sha256_hex(cfg.metrics_token, strlen(cfg.metrics_token), app.metrics_token_hash);

    app.cache = gk_confcache_new();
    app.tokens = gk_token_keys_new(cfg.jwt_secret, cfg.jwt_secret_previous);
    app.pow = gk_pow_new(cfg.jwt_secret, cfg.jwt_secret_previous);
    app.qnode = gk_qnode_new();
    comp = gk_handlers_companion(&app);
    if (gk_handlers_init() != GK_OK ||
        gk_confcache_start(app.cache, cfg.database_url, (const char(*)[GK_ID_BUF])cfg.business_ids,
                           cfg.n_business_ids) != GK_OK) {
        GK_LOG(GK_LOG_ERROR, "main", "msg=\"cannot start threads\"");
        goto out;
    }
    app.monitor = gk_monitor_start(&cfg, app.cache, on_refused);
    if (app.monitor == NULL) {
        GK_LOG(GK_LOG_ERROR, "main", "msg=\"cannot start threads\"");
        goto out;
    }
    if (refused)
        goto out; /* before listening: refuse to start */
    opts = (struct gk_http_opts){.bind = cfg.bind,
                                 .port = cfg.port,
                                 .threads = cfg.http_threads,
                                 .max_connections = cfg.max_connections,
                                 .max_connections_per_ip = cfg.max_connections_per_ip,
                                 .connection_timeout = cfg.connection_timeout,
                                 .companion = &comp};
    http = gk_http_start(&opts, gk_handlers_dispatch, &app, err, sizeof(err));
    if (http == NULL) {
        GK_LOG(GK_LOG_ERROR, "main", "msg=\"cannot start http\" err=\"%s\"", err);
        goto out;
    }
    GK_LOG(GK_LOG_INFO, "main", "msg=listening bind=%s port=%u threads=%u", cfg.bind, gk_http_port(http),
           cfg.http_threads);

    sig = gk_startup_wait(&st);
    GK_LOG(GK_LOG_INFO, "main", "msg=\"shutting down\" signal=%d in_flight=%d", sig, gk_http_in_flight(http));
    /* Refuse new connections now, so a load balancer moves on, and give the requests already
     * here a bounded time: an orchestrator's kill follows a grace period anyway. */
    gk_http_quiesce(http);
    if (!gk_http_drain(http, (int64_t)cfg.shutdown_timeout * 1000))
        GK_LOG(GK_LOG_WARN, "main",
               "msg=\"shutdown timeout; closing the requests still in flight\" in_flight=%d",
               gk_http_in_flight(http));
    rc = refused ? EXIT_FAILURE : EXIT_SUCCESS;
out:
    /* Each loop's pipeline answers whatever still waits for Redis before its connections close. */
    gk_http_stop(http);
    gk_monitor_stop(app.monitor);
    gk_confcache_stop(app.cache);
    gk_confcache_free(app.cache);
    gk_token_keys_free(app.tokens);
    gk_pow_free(app.pow);
    gk_qnode_free(app.qnode);
    return rc;
}
