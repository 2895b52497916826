/* SPDX-License-Identifier: MIT */
/*
 * startup.c -- the start-up and stop path the server and the worker share; see gk/startup.h.
 * Holds the stop flag, the one piece of process-wide state both binaries have.
 */
#include "gk/startup.h"

#include <pthread.h>
#include <stdio.h>

#include "gk/log.h"
#include "gk/pg.h"
#include "gk/store.h"

static volatile sig_atomic_t stop_signal;

static void
on_signal(int sig)
{
    stop_signal = sig;
}

int
gk_startup(enum gk_program prog, struct gk_config *cfg, struct gk_startup *st)
{
    const char *name = prog == GK_PROG_SERVER ? "gatekeeper" : "gatekeeper-worker";
    struct sigaction sa = {.sa_handler = on_signal};
    sigset_t mask;
    char err[256];

    if (gk_config_load_env(cfg, prog, err, sizeof(err)) != GK_OK) {
        fprintf(stderr, "%s: %s\n", name, err);
        return 2;
    }
    if (gk_pg_check_url(cfg->database_url, err, sizeof(err)) != GK_OK) {
        fprintf(stderr, "%s: DATABASE_URL %s\n", name, err);
        return 2;
    }
    gk_log_set_level(cfg->log_level);
    gk_config_log(cfg, prog);
    signal(SIGPIPE, SIG_IGN);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &mask, &st->old_mask);
    return 0;
}

const volatile sig_atomic_t *
gk_startup_stop_flag(void)
{
    return &stop_signal;
}

void
gk_startup_unblock(const struct gk_startup *st)
{
    pthread_sigmask(SIG_SETMASK, &st->old_mask, NULL);
}

int
gk_startup_wait(const struct gk_startup *st)
{
    while (stop_signal == 0)
        sigsuspend(&st->old_mask);
    gk_startup_unblock(st);
    return stop_signal;
}

bool
gk_startup_redis_evicts(struct gk_store *store, bool *checked)
{
    enum gk_err rc;

    if (*checked)
        return false;
    rc = gk_store_check_eviction(store);
    *checked = rc != GK_EREDIS;
    return rc == GK_EINVAL;
}
