/* SPDX-License-Identifier: MIT */
/*
 * script -- the Redis Lua scripts as the C side sees them, and the commands that run them.
 *
 * The list of scripts is generated from the files in src/scripts at build time (scripts/embed-lua
 * writes gk_lua.h): one enum gk_script value per file, its source (common.lua prepended) and
 * whether it reads the clock (calls gk_now_ms), so the list and what it says of each script
 * cannot disagree with the scripts. A struct gk_cmd writes one EVALSHA (or EVAL) straight into
 * Redis's wire format; each script's KEYS and ARGV are written by one function, beside the code
 * that reads its answer, in the order the script's header comment gives. A script that reads the
 * clock takes its business's clock key and the test-clock flag (gk_cmd_clock_key,
 * gk_cmd_clock_flag); gk_cmd_end checks that it got both, and that no other script did.
 * No hiredis here: callers send the bytes. Pure code, thread-safe.
 */
#ifndef GK_SCRIPT_H
#define GK_SCRIPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gk/crypto.h"
#include "gk/util.h"
#include "gk_lua.h"

enum gk_script {
#define GK_SCRIPT_ENUM(NAME, name, reads_clock) GK_SCRIPT_##NAME,
    GK_LUA_SCRIPTS(GK_SCRIPT_ENUM)
#undef GK_SCRIPT_ENUM
        GK_SCRIPT_COUNT
};

/* The script's file name without .lua; static storage. */
const char *gk_script_name(enum gk_script s);
/* Its source as Redis runs it (common.lua, then the file); static storage. */
const char *gk_script_src(enum gk_script s);
/* True when it reads the clock. */
bool gk_script_reads_clock(enum gk_script s);
/* The SHA-1 of every script's source, for EVALSHA, into sha (indexed by enum gk_script). */
void gk_script_shas(char sha[GK_SCRIPT_COUNT][GK_SHA1_HEX_BUF]);

/* The worker tick histogram, shared by every worker and business (tick_observe.lua). */
#define GK_WORKER_METRICS_KEY "gk:metrics:worker"

/* Command bytes that fit here are written on the caller's stack; a longer command (a batch of
 * many users, EVAL with a source) moves to the heap. */
#define GK_CMD_SMALL 8192
/* Room left in front of the arguments for "*<argc>\r\n", written once the count is known. */
#define GK_CMD_HEAD 16

/* One command being written. Callers declare it (on the stack) and touch no field. */
struct gk_cmd {
    char *buf;
    size_t len, cap;
    int argc;
    size_t body;     /* where what follows the script's SHA-1 or source begins */
    int keys_left;   /* declared by gk_cmd_keys, counted down by every key */
    bool keys_given; /* gk_cmd_keys was called */
    bool clock_key, clock_flag;
    int slot; /* the Redis Cluster slot of the first key, -1 before it */
    enum gk_script script;
    char small[GK_CMD_SMALL];
};

/* Starts c as EVALSHA of s with sha (from gk_script_shas), or as EVAL of its source when sha is
 * NULL: for a Redis that lost its script cache (NOSCRIPT). Release with gk_cmd_free. */
void gk_cmd_begin(struct gk_cmd *c, enum gk_script s, const char *sha);
/* How many keys follow; once, before the first key. */
void gk_cmd_keys(struct gk_cmd *c, int nkeys);
/* The key "gk:{<business>}:<suffix><id>" (id may be NULL): all keys of a business share its hash
 * tag. */
void gk_cmd_key(struct gk_cmd *c, const char *business, const char *suffix, const char *id);
/* The keys "gk:{<business>}:<suffix>" of the n suffixes, in order. */
void gk_cmd_business_keys(struct gk_cmd *c, const char *business, const char *const *suffixes, size_t n);
/* A key outside every business (GK_WORKER_METRICS_KEY). */
void gk_cmd_global_key(struct gk_cmd *c, const char *key);
/* The business's clock key gk:{<business>}:clock, for a script that reads the clock. */
void gk_cmd_clock_key(struct gk_cmd *c, const char *business);
/* Arguments, after every key: a string, a number in decimal, a flag as "1" or "0". */
void gk_cmd_arg(struct gk_cmd *c, const char *s);
void gk_cmd_num(struct gk_cmd *c, uint64_t v);
void gk_cmd_bool(struct gk_cmd *c, bool v);
/* The test-clock flag (GK_TEST_CLOCK), for a script that reads the clock. */
void gk_cmd_clock_flag(struct gk_cmd *c, bool test_clock);
/* The finished command, *len bytes; borrowed until gk_cmd_free. Asserts that every declared key
 * came, and that the clock key and flag came exactly when the script reads the clock. */
const char *gk_cmd_end(struct gk_cmd *c, size_t *len);
/* The ended command c again, as EVAL of the script's source: for a Redis that lost its script
 * cache (NOSCRIPT). Release out with gk_cmd_free; it is ended already (gk_cmd_end gives it). */
void gk_cmd_as_eval(const struct gk_cmd *c, struct gk_cmd *out);
/* The Redis Cluster hash slot of c's first key (every key of a call shares it: one business),
 * -1 when it has none yet. The store and the pipeline route the command by it. */
int gk_cmd_slot(const struct gk_cmd *c);
/* Frees what c took from the heap. */
void gk_cmd_free(struct gk_cmd *c);

#endif
