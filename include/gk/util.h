/* SPDX-License-Identifier: MIT */
/*
 * util -- the one error enum, aborting allocators, bounded parsing, identifier checks, clocks.
 * Everything here is thread-safe and has no state.
 */
#ifndef GK_UTIL_H
#define GK_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GK_MUSTCHECK __attribute__((warn_unused_result))
#define GK_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define GK_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Invariant check that stays on in release builds; never used to validate input. */
#define GK_ASSERT(c)                                                                                         \
    do {                                                                                                     \
        if (!(c))                                                                                            \
            gk_panic(__FILE__, __LINE__, #c);                                                                \
    } while (0)

/* business_id / user_id: 1..128 bytes of [A-Za-z0-9._:@-]; buffers hold the NUL too. */
#define GK_ID_MAX 128
#define GK_ID_BUF (GK_ID_MAX + 1)

enum gk_err {
    GK_OK = 0,
    GK_EINVAL,    /* bad input */
    GK_ENOMEM,    /* a bounded resource is exhausted */
    GK_ENOTFOUND, /* no such object */
    GK_EEXIST,    /* object already exists */
    GK_EDENIED,   /* not allowed */
    GK_EREDIS,    /* Redis unreachable or failed */
    GK_EPG,       /* PostgreSQL unreachable or failed */
};

/* Logs and aborts. */
__attribute__((noreturn)) void gk_panic(const char *file, int line, const char *what);

/* Allocators that log and abort on out-of-memory. Caller frees with free(). */
void *gk_xmalloc(size_t n);
void *gk_xcalloc(size_t n, size_t size);
void *gk_xrealloc(void *p, size_t n);
char *gk_xstrdup(const char *s);
char *gk_xstrndup(const char *s, size_t n);

/* A growing text, NUL-terminated once anything was added; start with {0}, the owner frees .s. */
struct gk_sbuf {
    char *s;
    size_t len, cap;
};
/* Appends s[0..n). */
void gk_sbuf_add(struct gk_sbuf *b, const char *s, size_t n);

/* Copies at most dstlen-1 bytes and always NUL-terminates (dstlen > 0). Returns strlen(src). */
size_t gk_strlcpy(char *dst, const char *src, size_t dstlen);

/* Parses a whole decimal string (no sign, no spaces) into [min, max]. GK_EINVAL otherwise. */
GK_MUSTCHECK enum gk_err gk_parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out);
GK_MUSTCHECK enum gk_err gk_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out);

/* Writes v in decimal and a NUL into out; returns the number of digits. For hot paths, where
 * snprintf's format parsing costs more than the digits. */
#define GK_U64_BUF 21
size_t gk_u64_str(uint64_t v, char out[GK_U64_BUF]);

/* True when s[0..len) is a valid business_id / user_id (see GK_ID_MAX). */
bool gk_id_valid(const char *s, size_t len);

/* Wall-clock milliseconds since the epoch. */
int64_t gk_now_ms(void);
/* Monotonic milliseconds, for durations and timeouts. */
int64_t gk_mono_ms(void);
/* Monotonic microseconds, for measuring short durations. */
int64_t gk_mono_us(void);
/* Formats a wall-clock time as RFC 3339 UTC with milliseconds into out (>= 25 bytes). */
void gk_rfc3339(int64_t ms, char *out, size_t outlen);

#endif
