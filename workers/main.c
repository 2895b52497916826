/* SPDX-License-Identifier: MIT */
/*
 * main.c -- gatekeeper-worker: keeps the business config cache fresh (new businesses and config
 * changes are in force within a second), runs admission passes (admit.c) and, on a thread of its
 * own, the activity-log consumer (activity.c), until SIGINT or SIGTERM, which let the tick in hand
 * finish and exit 0. Run as many workers as you like. With HEARTBEAT_FILE set, every pass touches
 * that file, for container health checks. A Redis that may evict keys (maxmemory-policy other
 * than noeviction) stops it with exit status 1: at start, or at the first pass that reaches Redis
 * when it was unreachable at start.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "gk/confcache.h"
#include "gk/config.h"
#include "gk/log.h"
#include "gk/pg.h"
#include "gk/store.h"
#include "worker.h"

static volatile sig_atomic_t stop_signal;

static void
on_signal(int sig)
{
    stop_signal = sig;
}

/* Sets HEARTBEAT_FILE's modification time to now, creating it if needed. A failure is logged
 * once per run of failures: a health check reading the file will notice anyway. */
static void
heartbeat(const char *path, bool *failing)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    bool ok = fd >= 0 && futimens(fd, NULL) == 0;
    int err = errno;

    if (fd >= 0)
        close(fd);
    if (!ok && !*failing)
        GK_LOG(GK_LOG_WARN, "worker", "msg=\"cannot touch HEARTBEAT_FILE\" errno=%d", err);
    *failing = !ok;
}

/* Checks Redis's eviction policy unless *checked: true when it may evict keys (logged), and the
 * worker must not run. An unreachable Redis leaves *checked false, for the next try. */
static bool
evicting_redis(struct gk_store *store, bool *checked)
{
    enum gk_err rc;

    if (*checked)
        return false;
    rc = gk_store_check_eviction(store);
    *checked = rc != GK_EREDIS;
    return rc == GK_EINVAL;
}

int
main(void)
{
    static struct gk_config cfg;
    struct sigaction sa = {.sa_handler = on_signal};
    sigset_t mask, old;
    struct gk_confcache *cache = NULL;
    struct gk_store *store = NULL;
    bool redis_up = true, activity_started = false, heartbeat_failing = false, policy_checked = false;
    atomic_bool activity_stop = false;
    struct gk_activity activity = {.cfg = &cfg, .stop = &activity_stop};
    pthread_t activity_thread;
    char err[256];
    int rc = EXIT_FAILURE;

    if (gk_config_load_env(&cfg, GK_PROG_WORKER, err, sizeof(err)) != GK_OK) {
        fprintf(stderr, "gatekeeper-worker: %s\n", err);
        return 2;
    }
    if (gk_pg_check_url(cfg.database_url, err, sizeof(err)) != GK_OK) {
        fprintf(stderr, "gatekeeper-worker: DATABASE_URL %s\n", err);
        return 2;
    }
    gk_log_set_level(cfg.log_level);
    gk_config_log(&cfg, GK_PROG_WORKER);
    signal(SIGPIPE, SIG_IGN);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    /* The helper threads start with the signals blocked, so only this thread takes them and its
     * pause below is cut short (a handler run on another thread would not wake it). */
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &mask, &old);

    store = gk_store_open(&cfg.redis, cfg.test_clock);
    if (evicting_redis(store, &policy_checked))
        goto out;
    cache = gk_confcache_new();
    activity.cache = cache;
    if (gk_confcache_start(cache, cfg.database_url, NULL, 0) != GK_OK) {
        GK_LOG(GK_LOG_ERROR, "worker", "msg=\"cannot start threads\"");
        goto out;
    }
    if (pthread_create(&activity_thread, NULL, gk_activity_run, &activity) != 0) {
        GK_LOG(GK_LOG_ERROR, "worker", "msg=\"cannot start threads\"");
        goto out;
    }
    activity_started = true;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    GK_LOG(GK_LOG_INFO, "worker", "msg=started");
    while (stop_signal == 0) {
        int64_t ms;
        struct timespec pause;

        if (evicting_redis(store, &policy_checked))
            goto out;
        ms = gk_worker_pass(store, cache, &stop_signal, &redis_up);
        pause = (struct timespec){ms / 1000, (long)(ms % 1000) * 1000000L};

        if (cfg.heartbeat_file[0] != '\0')
            heartbeat(cfg.heartbeat_file, &heartbeat_failing);

        /* A signal cuts the pause short (EINTR), so shutdown is prompt. */
        nanosleep(&pause, NULL);
    }
    GK_LOG(GK_LOG_INFO, "worker", "msg=\"shutting down\" signal=%d", (int)stop_signal);
    rc = EXIT_SUCCESS;
out:
    atomic_store(&activity_stop, true);
    if (activity_started)
        pthread_join(activity_thread, NULL);
    gk_store_close(store);
    gk_confcache_stop(cache);
    gk_confcache_free(cache);
    return rc;
}
