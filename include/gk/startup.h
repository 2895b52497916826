/* SPDX-License-Identifier: MIT */
/*
 * startup -- what the server (src/main.c) and the worker (workers/main.c) do alike to start and
 * to stop: read and check the environment (a bad value exits 2, named on stderr), set the log
 * level and log the configuration, ignore SIGPIPE, and turn SIGINT and SIGTERM into the stop
 * flag; and the check that refuses a Redis that may evict keys. The stop flag is the process-wide
 * state both binaries share; it is written only by the signal handler.
 */
#ifndef GK_STARTUP_H
#define GK_STARTUP_H

#include <signal.h>
#include <stdbool.h>

#include "gk/config.h"

struct gk_store;

/* What gk_startup_unblock and gk_startup_wait need. */
struct gk_startup {
    sigset_t old_mask; /* the signal mask before gk_startup blocked SIGINT and SIGTERM */
};

/* Loads cfg from the environment for prog and checks DATABASE_URL; on a bad value prints
 * "gatekeeper: <reason>" (or "gatekeeper-worker: ...") on stderr and returns 2, the exit status.
 * Else sets the log level, logs cfg (secrets masked), ignores SIGPIPE, installs the SIGINT and
 * SIGTERM handler that sets the stop flag, and blocks both signals in the calling thread before
 * returning 0. Call it from main before any thread starts: every thread created later inherits
 * the block, so only the main thread takes the signals (a handler run on another thread would
 * leave main asleep for good; seen under valgrind, which delivers to any thread that does not
 * block it), and the check-then-wait race of gk_startup_wait is closed. Once per process. */
int gk_startup(enum gk_program prog, struct gk_config *cfg, struct gk_startup *st);

/* The stop flag: the number of the signal that asked the process to stop, 0 until one did. */
const volatile sig_atomic_t *gk_startup_stop_flag(void);

/* Restores the calling thread's signal mask from before gk_startup, so SIGINT and SIGTERM cut
 * its sleeps short (EINTR). */
void gk_startup_unblock(const struct gk_startup *st);

/* Sleeps until SIGINT or SIGTERM has set the stop flag, then restores the mask as
 * gk_startup_unblock does. Returns the signal's number. */
int gk_startup_wait(const struct gk_startup *st);

/* Checks Redis's eviction policy unless *checked: true when it may evict keys (logged by the
 * store), and the process must not run. An unreachable Redis leaves *checked false, for the next
 * try; a policy that cannot be read (logged) counts as checked. */
bool gk_startup_redis_evicts(struct gk_store *store, bool *checked);

#endif
