/* SPDX-License-Identifier: MIT */
/*
 * fake_queue.h -- what the queue handler tests (test_h_queue.c, test_h_verify.c) share: the fake
 * store a context's queue (gk/queue.h) points to, which records what it was asked and answers with
 * the typed result the test chose, at once or when the test says (fq_answer); the fq_app the
 * handlers run in (businesses in a config cache, token keys), made and freed by setup and teardown
 * (a checked fixture); calling a handler as the dispatcher and the loop would; reading its answer.
 * Short names, as in a test file: only the handler tests include this header.
 */
#ifndef GK_TEST_FAKE_QUEUE_H
#define GK_TEST_FAKE_QUEUE_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#include "gk/clientip.h"
#include "gk/handlers.h"
#include "gk/token.h"
#include "unit/fake_http.h"

/* The socket peer of every request fq_req() makes. */
#define PEER "203.0.113.7"

/* ---- the fake store ---- */

enum fake_kind { F_NONE, F_JOIN, F_STATUS, F_VERIFY, F_FINISH, F_LEAVE };

struct fake_store {
    /* The answer: rc, the refusal (retry_after_ms > 0), and the result of the operation's kind. */
    enum gk_err rc;
    int64_t retry_after_ms;
    bool later; /* hold the operation until fq_answer */
    struct gk_join_out join;
    struct gk_status_out status;
    struct gk_verify_out verify;
    struct gk_finish_out finish;
    struct gk_leave_out leave;
    /* What it was asked, last. */
    int calls;
    enum fake_kind kind;
    char business[GK_ID_BUF], user[GK_ID_BUF], ip[GK_IP_BUF];
    struct gk_rate rate;
    struct gk_join_args join_args; /* its strings are not kept */
    bool heartbeat, gate;
    int64_t ticket; /* status: the ticket the handler passed */
    /* The operation held (later). */
    struct gk_op *held;
    void *held_out;
    const void *held_answer;
    size_t held_size;
};
extern struct fake_store fq_store;

/* Answers the held operation. */
void fq_answer(void);
/* The last operation was kind, for u1 of business from PEER, under the limit limit per interval_s. */
void fq_expect_asked(enum fake_kind kind, const char *business, uint32_t limit, uint32_t interval_s);

/* ---- the fq_app: businesses shop, polled (abandon_after_seconds 120), pass (passthrough), closed
 * (reject), lottery (random), guarded (pow_mode on, pow_max_number 1000) and paused
 * (admission_paused) in a config cache;
 * token keys and proof-of-work keys (of the same secret) ---- */

extern struct gk_app fq_app;
extern bool fq_cache_loaded; /* whether the config cache has loaded (setup: true) */

/* The checked fixture of every handler test: an empty fake store and a fresh fq_app; teardown frees
 * the fq_app. */
void fq_setup(void);
void fq_teardown(void);

/* ---- calling a handler ---- */

typedef void (*fq_handler_fn)(struct gk_ctx *ctx, const struct gk_req *req, struct gk_resp *resp);

/* Calls fn with f as the dispatcher does (the business from its header, from the cache; the
 * fake queue), then, as the loop does once the queue answered, its continuation. */
void fq_call(fq_handler_fn fn, struct gk_fake_req *f, struct gk_resp *resp);
/* A request for business (NULL: no header) from PEER. */
void fq_req(struct gk_fake_req *f, const char *method, const char *path, const char *business);
/* A token of business for user, issued iat seconds ago, expiring in exp_in seconds. */
void fq_token(const char *business, const char *user, int64_t age_s, int64_t exp_in_s,
              char out[GK_TOKEN_BUF]);
/* A request for business with a fresh token for user in the jwt header. */
void fq_req_token(struct gk_fake_req *f, const char *method, const char *path, const char *business,
                  const char *user, char tok[GK_TOKEN_BUF]);
/* Calls fn for u1 of shop, with a fresh fq_token (and a user_id header, for enqueue). */
void fq_call_with_token(fq_handler_fn fn, struct gk_resp *resp);

/* ---- reading the answer ---- */

/* resp's body, parsed: a JSON object (caller puts it). */
struct json_object *fq_body(const struct gk_resp *resp);
/* The field name of o, which must be there (NULL when it is JSON null). */
struct json_object *fq_field(struct json_object *o, const char *name);
/* The field name of o, which must have JSON type t. */
struct json_object *fq_typed(struct json_object *o, const char *name, json_type t);
/* The string or boolean field name of o. */
const char *fq_str(struct json_object *o, const char *name);
bool fq_boolean(struct json_object *o, const char *name);
/* resp is the error answer status/code (and field, unless NULL); frees it. */
void fq_expect_error(struct gk_resp *resp, int status, const char *code, const char *fieldname);
/* Calls fn with f and expects the error answer status/code (and field, unless NULL). */
void fq_expect_refusal(fq_handler_fn fn, struct gk_fake_req *f, int status, const char *code,
                       const char *fieldname);
/* Calls fn with f and expects status; the body is not looked at. */
void fq_expect_status(fq_handler_fn fn, struct gk_fake_req *f, int status);
/* resp is 429 rate_limited with Retry-After retry (whole seconds); frees it. */
void fq_expect_limited(struct gk_resp *resp, const char *retry);

#endif
