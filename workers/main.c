/* SPDX-License-Identifier: MIT */
/*
 * main.c -- gatekeeper-worker: keeps the business config cache fresh (new businesses and config
 * changes are in force within a second), runs admission passes (admit.c) and, on a thread of its
 * own, the activity-log consumer (activity.c), and about once a second the queue's history
 * points (history.c), until SIGINT or SIGTERM, which let the tick in hand
 * finish and exit 0. Run as many workers as you like. With HEARTBEAT_FILE set, every pass touches
 * that file, for container health checks. A Redis that may evict keys (maxmemory-policy other
 * than noeviction) stops it with exit status 1: at start, or at the first pass that reaches Redis
 * when it was unreachable at start.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "gk/confcache.h"
#include "gk/config.h"
#include "gk/log.h"
#include "gk/pg.h"
#include "gk/startup.h"
#include "gk/store.h"
#include "worker.h"

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

int
main(void)
{
    static struct gk_config cfg;
    const volatile sig_atomic_t *stop = gk_startup_stop_flag();
    struct gk_startup st;
    struct gk_confcache *cache = NULL;
    struct gk_store *store = NULL;
    struct gk_pg *db = NULL;
    bool redis_up = true, activity_started = false, heartbeat_failing = false, policy_checked = false;
    atomic_bool activity_stop = false;
    struct gk_activity activity = {.cfg = &cfg, .stop = &activity_stop};
    pthread_t activity_thread;
    int64_t next_history_ms = 0, next_mirror_ms = 0;
    int rc;

    /* The helper threads start with SIGINT and SIGTERM blocked, so only this thread takes them and
     * its pause below is cut short (a handler run on another thread would not wake it). */
    rc = gk_startup(GK_PROG_WORKER, &cfg, &st);
    if (rc != 0)
        return rc;
    rc = EXIT_FAILURE;

    store = gk_store_open(&cfg.redis, cfg.test_clock);
    if (gk_startup_redis_evicts(store, &policy_checked))
        goto out;
    db = gk_pg_open(cfg.database_url);
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
    gk_startup_unblock(&st);
    GK_LOG(GK_LOG_INFO, "worker", "msg=started");
    while (*stop == 0) {
        int64_t ms;
        struct timespec pause;

        if (gk_startup_redis_evicts(store, &policy_checked))
            goto out;
        ms = gk_worker_pass(store, db, cache, stop, &redis_up);
        if (redis_up && gk_mono_ms() >= next_history_ms) {
            gk_worker_history(store, cache, stop);
            next_history_ms = gk_mono_ms() + GK_WORKER_HISTORY_EVERY_MS;
        }
        if (redis_up && gk_mono_ms() >= next_mirror_ms) {
            gk_worker_remirror(store, db);
            next_mirror_ms = gk_mono_ms() + GK_WORKER_REMIRROR_EVERY_MS;
        }
        pause = (struct timespec){ms / 1000, (long)(ms % 1000) * 1000000L};

        if (cfg.heartbeat_file[0] != '\0')
            heartbeat(cfg.heartbeat_file, &heartbeat_failing);

        /* A signal cuts the pause short (EINTR), so shutdown is prompt. */
        nanosleep(&pause, NULL);
    }
    GK_LOG(GK_LOG_INFO, "worker", "msg=\"shutting down\" signal=%d", (int)*stop);
    rc = EXIT_SUCCESS;
out:
    atomic_store(&activity_stop, true);
    if (activity_started)
        pthread_join(activity_thread, NULL);
    gk_store_close(store);
    gk_pg_close(db);
    gk_confcache_stop(cache);
    gk_confcache_free(cache);
    return rc;
}
