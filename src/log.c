/* SPDX-License-Identifier: MIT */
/* log.c -- see gk/log.h for the contract. */
#include "gk/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define LINE_MAX_BYTES 4096

static atomic_int log_level = GK_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void
gk_log_set_level(enum gk_log_level level)
{
    atomic_store(&log_level, (int)level);
}

bool
gk_log_enabled(enum gk_log_level level)
{
    return (int)level >= atomic_load_explicit(&log_level, memory_order_relaxed);
}

enum gk_err
gk_log_parse_level(const char *s, enum gk_log_level *out)
{
    for (size_t i = 0; i < GK_ARRAY_LEN(level_names); i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (enum gk_log_level)i;
            return GK_OK;
        }
    }
    return GK_EINVAL;
}

void
gk_log_write(enum gk_log_level level, const char *mod, const char *reqid, const char *fmt, ...)
{
    char line[LINE_MAX_BYTES];
    char ts[32];
    size_t n;
    va_list ap;
    int r;

    gk_rfc3339(gk_now_ms(), ts, sizeof(ts));
    r = snprintf(line, sizeof(line), "ts=%s level=%s mod=%s ", ts, level_names[level], mod);
    n = r < 0 ? 0 : (size_t)r;
    if (reqid != NULL && n < sizeof(line)) {
        r = snprintf(line + n, sizeof(line) - n, "req=%s ", reqid);
        n += r < 0 ? 0 : (size_t)r;
    }
    if (n < sizeof(line)) {
        va_start(ap, fmt);
        r = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
        va_end(ap);
        n += r < 0 ? 0 : (size_t)r;
    }
    if (n >= sizeof(line))
        n = sizeof(line) - 1;
    line[n++] = '\n';
    /* One write per line; a short write to stderr is not worth retrying for a log. */
    if (write(STDERR_FILENO, line, n) < 0)
        return;
}

char *
gk_log_escape(const char *s, char *out, size_t outlen)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;

    for (; s != NULL && *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[4];
        size_t k = 0;

        if (c == '"' || c == '\\') {
            esc[k++] = '\\';
            esc[k++] = (char)c;
        } else if (c < 0x20 || c >= 0x7f) {
            esc[k++] = '%';
            esc[k++] = hex[c >> 4];
            esc[k++] = hex[c & 15];
        } else {
            esc[k++] = (char)c;
        }
        if (o + k >= outlen)
            break;
        memcpy(out + o, esc, k);
        o += k;
    }
    out[o] = '\0';
    return out;
}
