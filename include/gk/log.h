/* SPDX-License-Identifier: MIT */
/*
 * log -- levelled logfmt lines on stderr.
 * One line per event, formatted in a stack buffer and written with one write(2), so lines from
 * different threads never interleave. Never pass tokens or secrets to these calls.
 */
#ifndef GK_LOG_H
#define GK_LOG_H

#include <stdbool.h>
#include <stddef.h>

#include "gk/util.h"

enum gk_log_level { GK_LOG_DEBUG = 0, GK_LOG_INFO, GK_LOG_WARN, GK_LOG_ERROR };

/* Process-wide threshold (atomic). Default GK_LOG_INFO. */
void gk_log_set_level(enum gk_log_level level);
bool gk_log_enabled(enum gk_log_level level);
/* "debug", "info", "warn", "error" -> level. GK_EINVAL for anything else. */
GK_MUSTCHECK enum gk_err gk_log_parse_level(const char *s, enum gk_log_level *out);

/* Writes "ts=.. level=.. mod=.. [req=..] " followed by the formatted logfmt fragment.
 * reqid may be NULL. Lines longer than 4 KiB are truncated. */
void gk_log_write(enum gk_log_level level, const char *mod, const char *reqid, const char *fmt, ...)
    GK_PRINTF(4, 5);

/* Copies s into out as a logfmt-safe value: quotes, backslashes and non-printable bytes become
 * escapes, and the result is truncated to fit outlen (> 0). Returns out. */
char *gk_log_escape(const char *s, char *out, size_t outlen);

/* Arguments are evaluated only when the level is enabled. */
#define GK_LOG(level, mod, ...)                                                                              \
    do {                                                                                                     \
        if (gk_log_enabled(level))                                                                           \
            gk_log_write(level, mod, NULL, __VA_ARGS__);                                                     \
    } while (0)
#define GK_RLOG(level, mod, reqid, ...)                                                                      \
    do {                                                                                                     \
        if (gk_log_enabled(level))                                                                           \
            gk_log_write(level, mod, reqid, __VA_ARGS__);                                                    \
    } while (0)

#endif
