/* SPDX-License-Identifier: MIT */
/*
 * schedule -- scheduled events (docs/EVENTS.md) in PostgreSQL: the table events and the record of
 * each draw (event_participants), and the parsing and JSON of an event. These are admin writes
 * and reads, off the hot path; what enqueue, status and the worker need is mirrored into Redis by
 * the store (gk_store_sched_*), which alone decides, by Redis's clock, when a pre-queue opens and
 * when the draw happens. One struct gk_pg per thread, as always.
 */
#ifndef GK_SCHEDULE_H
#define GK_SCHEDULE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gk/crypto.h"
#include "gk/pg.h"
#include "gk/util.h"

#define GK_SCHED_ID_BUF 20                /* "ev_" + 16 hex digits + NUL */
#define GK_SCHED_NAME_MAX 200             /* characters */
#define GK_SCHED_NAME_BUF 801             /* 200 characters of up to 4 UTF-8 bytes, NUL */
#define GK_SCHED_TIME_BUF 32              /* "YYYY-MM-DDTHH:MM:SS.mmmZ" */
#define GK_SCHED_LIST_MAX 100             /* GET /events answers the newest this many */
#define GK_SCHED_PARTICIPANTS_MAX 1000000 /* a pre-queue holds at most this many visitors */

/* The config fields an event may override while it runs, in this order. */
enum gk_sched_conf {
    GK_SC_ADMISSION_LIMIT,
    GK_SC_ADMISSION_FREQUENCY,
    GK_SC_MAX_ACTIVE_USERS,
    GK_SC_READY_TTL_SECONDS,
    GK_SC_N
};

enum gk_sched_state {
    GK_SCHED_SCHEDULED,
    GK_SCHED_PREQUEUE,
    GK_SCHED_OPEN,
    GK_SCHED_ENDED,
    GK_SCHED_CANCELLED
};

struct gk_sched_event {
    char id[GK_SCHED_ID_BUF];
    char business[GK_ID_BUF];
    char name[GK_SCHED_NAME_BUF];
    int64_t prequeue_ms, opens_ms, ends_ms; /* ms since the epoch; ends_ms 0 = no end */
    bool conf_set[GK_SC_N];
    uint32_t conf[GK_SC_N];
    char server_seed[GK_SHA256_HEX_BUF]; /* hex; secret until opens_ms */
    char seed_commitment[GK_SHA256_HEX_BUF];
    bool cancelled;
    bool drawn; /* the draw is recorded: the three fields below are set */
    char participants_digest[GK_SHA256_HEX_BUF];
    char draw_seed[GK_SHA256_HEX_BUF];
    int64_t participants;
};

/* Parses a POST /events body into out (name, times, overrides; nothing else). GK_EINVAL with
 * *json_error when it is not one JSON object, else with the offending field and a message. */
GK_MUSTCHECK enum gk_err gk_sched_parse(const char *body, size_t len, struct gk_sched_event *out,
                                        bool *json_error, char *field, size_t fieldlen, char *msg,
                                        size_t msglen);
/* Gives ev a new id, server_seed and seed_commitment. GK_EINVAL when no randomness is available. */
GK_MUSTCHECK enum gk_err gk_sched_new_ids(struct gk_sched_event *ev);
/* The state of ev at now_ms (Redis's clock). */
enum gk_sched_state gk_sched_state_at(const struct gk_sched_event *ev, int64_t now_ms);
/* The state's name as the API spells it. */
const char *gk_sched_state_name(enum gk_sched_state s);
/* ms since the epoch as RFC 3339 in UTC ("...Z", with milliseconds only when not 0) into out. */
void gk_sched_time_str(int64_t ms, char out[GK_SCHED_TIME_BUF]);
/* Parses an RFC 3339 date-time ("2026-12-07T10:00:00Z", "...+01:00", fractions to ms). */
GK_MUSTCHECK enum gk_err gk_sched_parse_time(const char *s, int64_t *ms);

/* Inserts ev (from gk_sched_parse and gk_sched_new_ids) for ev->business unless its time span
 * [prequeue_opens_at, ends_at or forever) overlaps a live (not cancelled) event of the business:
 * then GK_EEXIST. GK_ENOTFOUND without the business; GK_EPG (text in gk_pg_errmsg) on failure. */
GK_MUSTCHECK enum gk_err gk_sched_insert(struct gk_pg *pg, const struct gk_sched_event *ev);
/* Removes ev's row (undoes gk_sched_insert when its mirror could not be written). */
GK_MUSTCHECK enum gk_err gk_sched_delete(struct gk_pg *pg, const char *business, const char *id);
/* Reads event id of business (NULL business: of any) into out. GK_ENOTFOUND, GK_EPG. */
GK_MUSTCHECK enum gk_err gk_sched_get(struct gk_pg *pg, const char *business, const char *id,
                                      struct gk_sched_event *out);
/* The newest GK_SCHED_LIST_MAX events of business into out[0..*n) (caller's array of that size). */
GK_MUSTCHECK enum gk_err gk_sched_list(struct gk_pg *pg, const char *business, struct gk_sched_event *out,
                                       size_t *n);
/* Up to max events of any business that are not cancelled and open later than now by
 * PostgreSQL's clock (what Redis must mirror), soonest first, into out[0..*n) (caller's array of
 * max). */
#define GK_SCHED_AHEAD_MAX 1000
GK_MUSTCHECK enum gk_err gk_sched_ahead(struct gk_pg *pg, struct gk_sched_event *out, size_t max, size_t *n);
/* Marks the event cancelled (again is fine). GK_ENOTFOUND, GK_EPG. */
GK_MUSTCHECK enum gk_err gk_sched_cancel(struct gk_pg *pg, const char *business, const char *id);
/* Records the draw of event id once, in one transaction: the digest, the draw seed (hex) and the
 * participants users[i] with keys[i] in draw order (place i + 1). Recording it again is a no-op. */
GK_MUSTCHECK enum gk_err gk_sched_record_draw(struct gk_pg *pg, const char *id, const char *digest,
                                              const char *draw_seed_hex, const char *const *users,
                                              const char *const *keys, size_t n);
/* The recorded draw keys in draw order (want_users false) or the participants' user ids sorted
 * bytewise (true), as the text of one JSON array. Caller frees *out with free(). */
GK_MUSTCHECK enum gk_err gk_sched_draw_list(struct gk_pg *pg, const char *id, bool want_users, char **out);

#endif
