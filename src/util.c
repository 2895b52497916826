/* SPDX-License-Identifier: MIT */
/* util.c -- see gk/util.h for the contract. */
#include "gk/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Writes one error line in the log's format and aborts. Written here, not through gk/log.h, so
 * that util depends on nothing above it. */
__attribute__((noreturn)) static void
die(const char *mod, const char *what, const char *file, int line)
{
    char ts[32];

    gk_rfc3339(gk_now_ms(), ts, sizeof(ts));
    fprintf(stderr, "ts=%s level=error mod=%s msg=\"%s\" at=%s:%d\n", ts, mod, what, file, line);
    abort();
}

void
gk_panic(const char *file, int line, const char *what)
{
    die("panic", what, file, line);
}

static void *
check_alloc(void *p, size_t n)
{
    if (p == NULL && n != 0)
        die("util", "out of memory", __FILE__, __LINE__);
    return p;
}

void *
gk_xmalloc(size_t n)
{
    return check_alloc(malloc(n), n);
}

void *
gk_xcalloc(size_t n, size_t size)
{
    return check_alloc(calloc(n, size), n * size);
}

void *
gk_xrealloc(void *p, size_t n)
{
    return check_alloc(realloc(p, n), n);
}

char *
gk_xstrdup(const char *s)
{
    return gk_xstrndup(s, strlen(s));
}

char *
gk_xstrndup(const char *s, size_t n)
{
    char *d = gk_xmalloc(n + 1);

    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

void
gk_sbuf_add(struct gk_sbuf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->s = gk_xrealloc(b->s, b->cap);
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

size_t
gk_strlcpy(char *dst, const char *src, size_t dstlen)
{
    size_t len = strlen(src);
    size_t n = len < dstlen - 1 ? len : dstlen - 1;

    memcpy(dst, src, n);
    dst[n] = '\0';
    return len;
}

size_t
gk_u64_str(uint64_t v, char out[GK_U64_BUF])
{
    char digits[GK_U64_BUF], *d = digits + sizeof(digits);
    size_t n;

    do {
        *--d = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    n = (size_t)(digits + sizeof(digits) - d);
    memcpy(out, d, n);
    out[n] = '\0';
    return n;
}

enum gk_err
gk_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out)
{
    int64_t v = 0;
    bool neg = false;

    if (s == NULL)
        return GK_EINVAL;
    if (*s == '-') {
        neg = true;
        s++;
    }
    if (*s == '\0' || strlen(s) > 19)
        return GK_EINVAL;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9')
            return GK_EINVAL;
        if (v > (INT64_MAX - (*s - '0')) / 10)
            return GK_EINVAL;
        v = v * 10 + (*s - '0');
    }
    if (neg)
        v = -v;
    if (v < min || v > max)
        return GK_EINVAL;
    *out = v;
    return GK_OK;
}

enum gk_err
gk_parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
    int64_t v;

    if (s == NULL || *s == '-' || gk_parse_i64(s, min, max, &v) != GK_OK)
        return GK_EINVAL;
    *out = (uint32_t)v;
    return GK_OK;
}

bool
gk_id_valid(const char *s, size_t len)
{
    if (s == NULL || len == 0 || len > GK_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                  c == '_' || c == ':' || c == '@' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

static int64_t
clock_ms(clockid_t id)
{
    struct timespec ts;

    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
gk_now_ms(void)
{
    return clock_ms(CLOCK_REALTIME);
}

int64_t
gk_mono_ms(void)
{
    return clock_ms(CLOCK_MONOTONIC);
}

int64_t
gk_mono_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void
gk_rfc3339(int64_t ms, char *out, size_t outlen)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    char date[24];

    gmtime_r(&secs, &tm);
    strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, outlen, "%s.%03dZ", date, (int)(ms % 1000));
}
