/* SPDX-License-Identifier: MIT */
/* script.c -- the script table and the command writer; see gk/script.h. */
#include "gk/script.h"

#include <stdlib.h>
#include <string.h>

#include "gk/cluster.h"

/* The sources, in the generated scripts.c. */
#define GK_SCRIPT_EXTERN(NAME, name, reads_clock) extern const char gk_lua_##name[];
GK_LUA_SCRIPTS(GK_SCRIPT_EXTERN)
#undef GK_SCRIPT_EXTERN

static const struct {
    const char *name;
    const char *src;
    bool reads_clock;
} scripts[GK_SCRIPT_COUNT] = {
#define GK_SCRIPT_ROW(NAME, name, reads_clock) {#name, gk_lua_##name, reads_clock},
    GK_LUA_SCRIPTS(GK_SCRIPT_ROW)
#undef GK_SCRIPT_ROW
};

const char *
gk_script_name(enum gk_script s)
{
    return scripts[s].name;
}

const char *
gk_script_src(enum gk_script s)
{
    return scripts[s].src;
}

bool
gk_script_reads_clock(enum gk_script s)
{
    return scripts[s].reads_clock;
}

void
gk_script_shas(char sha[GK_SCRIPT_COUNT][GK_SHA1_HEX_BUF])
{
    for (int i = 0; i < GK_SCRIPT_COUNT; i++)
        gk_sha1_hex(scripts[i].src, strlen(scripts[i].src), sha[i]);
}

/* Makes room for n more bytes, moving to the heap when the stack buffer is outgrown. */
static char *
room(struct gk_cmd *c, size_t n)
{
    if (c->len + n > c->cap) {
        size_t cap = c->cap * 2 > c->len + n ? c->cap * 2 : c->len + n;

        if (c->buf == c->small) {
            c->buf = gk_xmalloc(cap);
            memcpy(c->buf, c->small, c->len);
        } else {
            c->buf = gk_xrealloc(c->buf, cap);
        }
        c->cap = cap;
    }
    return c->buf + c->len;
}

/* Appends "<c><n>\r\n" at out; returns its length. */
static size_t
resp_len(char *out, char c, size_t n)
{
    size_t k = gk_u64_str(n, out + 1);

    out[0] = c;
    memcpy(out + 1 + k, "\r\n", 2);
    return k + 3;
}

/* Appends one bulk string made of n parts. On the request path, so no printf. */
static void
bulk(struct gk_cmd *c, const char *const *part, int n)
{
    size_t plen[5], total = 0;
    char *w;

    GK_ASSERT(n <= 5);
    for (int i = 0; i < n; i++) {
        plen[i] = strlen(part[i]);
        total += plen[i];
    }
    w = room(c, total + GK_U64_BUF + 5);
    w += resp_len(w, '$', total);
    for (int i = 0; i < n; i++) {
        memcpy(w, part[i], plen[i]);
        w += plen[i];
    }
    memcpy(w, "\r\n", 2);
    c->len = (size_t)(w + 2 - c->buf);
    c->argc++;
}

static void
bulk1(struct gk_cmd *c, const char *s)
{
    bulk(c, &s, 1);
}

static void
bulk_num(struct gk_cmd *c, uint64_t v)
{
    char n[GK_U64_BUF];

    gk_u64_str(v, n);
    bulk1(c, n);
}

void
gk_cmd_begin(struct gk_cmd *c, enum gk_script s, const char *sha)
{
    c->buf = c->small;
    c->cap = sizeof(c->small);
    c->len = GK_CMD_HEAD;
    c->argc = 0;
    c->keys_left = 0;
    c->keys_given = c->clock_key = c->clock_flag = false;
    c->slot = -1;
    c->script = s;
    bulk1(c, sha != NULL ? "EVALSHA" : "EVAL");
    bulk1(c, sha != NULL ? sha : scripts[s].src);
    c->body = c->len;
}

void
gk_cmd_keys(struct gk_cmd *c, int nkeys)
{
    GK_ASSERT(!c->keys_given && nkeys >= 0);
    bulk_num(c, (uint64_t)nkeys);
    c->keys_given = true;
    c->keys_left = nkeys;
}

/* Counts one key against those declared. */
static void
one_key(struct gk_cmd *c)
{
    GK_ASSERT(c->keys_given && c->keys_left > 0);
    c->keys_left--;
}

void
gk_cmd_key(struct gk_cmd *c, const char *business, const char *suffix, const char *id)
{
    const char *part[5] = {"gk:{", business, "}:", suffix, id};

    one_key(c);
    if (c->slot < 0)
        c->slot = gk_cluster_business_slot(business);
    bulk(c, part, id != NULL ? 5 : 4);
}

void
gk_cmd_business_keys(struct gk_cmd *c, const char *business, const char *const *suffixes, size_t n)
{
    for (size_t i = 0; i < n; i++)
        gk_cmd_key(c, business, suffixes[i], NULL);
}

void
gk_cmd_global_key(struct gk_cmd *c, const char *key)
{
    one_key(c);
    if (c->slot < 0)
        c->slot = gk_cluster_key_slot(key, strlen(key));
    bulk1(c, key);
}

void
gk_cmd_clock_key(struct gk_cmd *c, const char *business)
{
    GK_ASSERT(scripts[c->script].reads_clock && !c->clock_key);
    c->clock_key = true;
    gk_cmd_key(c, business, "clock", NULL);
}

/* Checks that an argument comes after every key. */
static void
one_arg(const struct gk_cmd *c)
{
    GK_ASSERT(c->keys_given && c->keys_left == 0);
}

void
gk_cmd_arg(struct gk_cmd *c, const char *s)
{
    one_arg(c);
    bulk1(c, s);
}

void
gk_cmd_num(struct gk_cmd *c, uint64_t v)
{
    one_arg(c);
    bulk_num(c, v);
}

void
gk_cmd_bool(struct gk_cmd *c, bool v)
{
    gk_cmd_arg(c, v ? "1" : "0");
}

void
gk_cmd_clock_flag(struct gk_cmd *c, bool test_clock)
{
    GK_ASSERT(scripts[c->script].reads_clock && !c->clock_flag);
    c->clock_flag = true;
    gk_cmd_bool(c, test_clock);
}

const char *
gk_cmd_end(struct gk_cmd *c, size_t *len)
{
    char head[GK_U64_BUF + 3];
    size_t n = resp_len(head, '*', (size_t)c->argc);
    bool clocked = scripts[c->script].reads_clock;

    GK_ASSERT(n <= GK_CMD_HEAD);
    GK_ASSERT(c->keys_given && c->keys_left == 0 && c->clock_key == clocked && c->clock_flag == clocked);
    memcpy(c->buf + GK_CMD_HEAD - n, head, n);
    *len = c->len - (GK_CMD_HEAD - n);
    return c->buf + GK_CMD_HEAD - n;
}

void
gk_cmd_as_eval(const struct gk_cmd *c, struct gk_cmd *out)
{
    size_t n = c->len - c->body;

    gk_cmd_begin(out, c->script, NULL);
    memcpy(room(out, n), c->buf + c->body, n);
    out->len += n;
    out->argc = c->argc;
    out->keys_given = c->keys_given;
    out->keys_left = c->keys_left;
    out->clock_key = c->clock_key;
    out->clock_flag = c->clock_flag;
    out->slot = c->slot;
}

int
gk_cmd_slot(const struct gk_cmd *c)
{
    return c->slot;
}

void
gk_cmd_free(struct gk_cmd *c)
{
    if (c->buf != c->small)
        free(c->buf);
    c->buf = c->small;
}
