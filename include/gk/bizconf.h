/* SPDX-License-Identifier: MIT */
/*
 * bizconf -- one business's queue configuration: fields, defaults, ranges and JSON.
 * The field table here is the single source of truth for names and ranges; sql/ mirrors it in
 * CHECK constraints. Pure code, thread-safe, no I/O.
 */
#ifndef GK_BIZCONF_H
#define GK_BIZCONF_H

#include <stddef.h>
#include <stdint.h>

#include "gk/util.h"

struct json_object; /* json-c; only bizconf.c and the handlers include its header */

#define GK_ORIGINS_MAX 16    /* entries in allowed_origins */
#define GK_ORIGIN_BUF 257    /* one origin, 1..256 bytes, plus NUL */
#define GK_ADMIN_HASH_BUF 65 /* SHA-256 in lower-case hex, plus NUL */

enum gk_qmethod { GK_QM_FIFO = 0, GK_QM_RANDOM, GK_QM_PASSTHROUGH, GK_QM_REJECT };

/* Whether a join must carry a proof of work (gk/pow.h): never, always at pow_max_number, or
 * always at a work that follows the business's join rate. */
enum gk_pow_mode { GK_POW_OFF = 0, GK_POW_ON, GK_POW_AUTO };

/* Numeric fields, in the order of docs/API.md's field table. The enum value indexes the field table. */
enum gk_bc_field {
    GK_BC_ADMISSION_LIMIT = 0,
    GK_BC_ADMISSION_FREQUENCY,
    GK_BC_JWT_EXPIRY_SECONDS,
    GK_BC_READY_TTL_SECONDS,
    GK_BC_IP_ENQUEUE_LIMIT,
    GK_BC_IP_ENQUEUE_LIMIT_INTERVAL,
    GK_BC_IP_STATUS_POLLING_LIMIT,
    GK_BC_IP_STATUS_POLLING_LIMIT_INTERVAL,
    GK_BC_MAX_ACTIVE_USERS,
    GK_BC_ABANDON_AFTER_SECONDS,
    GK_BC_MAX_QUEUE_LENGTH,
    GK_BC_IP_VERIFY_LIMIT, /* verify and gate share it */
    GK_BC_IP_VERIFY_LIMIT_INTERVAL,
    GK_BC_IP_FINISH_LIMIT, /* finish and leave share it */
    GK_BC_IP_FINISH_LIMIT_INTERVAL,
    GK_BC_POW_MAX_NUMBER, /* the work of one proof-of-work challenge (gk/pow.h) */
    GK_BC_NUMERIC,        /* count of numeric fields */
    GK_BC_QUEUEING_METHOD = GK_BC_NUMERIC,
    GK_BC_ALLOWED_ORIGINS,
    GK_BC_POW_MODE,
    GK_BC_NFIELDS,
};

struct gk_bizconf {
    uint32_t num[GK_BC_NUMERIC]; /* indexed by enum gk_bc_field */
    enum gk_qmethod queueing_method;
    uint32_t n_origins; /* 0..GK_ORIGINS_MAX; 0 means no cross-origin caller is allowed */
    char origins[GK_ORIGINS_MAX][GK_ORIGIN_BUF];
    enum gk_pow_mode pow_mode;
};

/* A partial update: only the fields whose bit (1u << enum gk_bc_field) is in `set` apply. */
struct gk_bizconf_patch {
    uint32_t set;
    struct gk_bizconf v;
};

/* A business as cached by every node. */
struct gk_business {
    char id[GK_ID_BUF];
    char admin_key_hash[GK_ADMIN_HASH_BUF]; /* "" when the business has no own admin key */
    int64_t version;                        /* bumped by every change; newer wins in caches */
    struct gk_bizconf conf;
};

/* Name ("admission_limit", ...) of a field; static storage. */
const char *gk_bizconf_field_name(enum gk_bc_field f);
/* Range of a numeric field; `alt` is one extra allowed value below min (abandon_after_seconds
 * allows 0 besides 30..86400), or UINT32_MAX when there is none. */
void gk_bizconf_field_range(enum gk_bc_field f, uint32_t *min, uint32_t *max, uint32_t *alt);
/* True when v is allowed for numeric field f. */
bool gk_bizconf_value_ok(enum gk_bc_field f, uint32_t v);

/* Fills *c with the defaults of docs/API.md. */
void gk_bizconf_defaults(struct gk_bizconf *c);

/* "fifo"... -> method; GK_EINVAL for anything else. */
GK_MUSTCHECK enum gk_err gk_qmethod_parse(const char *s, enum gk_qmethod *out);
/* Method -> static name. */
const char *gk_qmethod_name(enum gk_qmethod m);

/* "off", "on", "auto" -> mode; GK_EINVAL for anything else. */
GK_MUSTCHECK enum gk_err gk_pow_mode_parse(const char *s, enum gk_pow_mode *out);
/* Mode -> static name. */
const char *gk_pow_mode_name(enum gk_pow_mode m);

/* True when s is "*" or an origin "http[s]://host[:port]" of 1..256 bytes, no path. */
bool gk_origin_valid(const char *s);

/* Parses a POST /config body (a JSON object with any subset of the fields) into *out.
 * On GK_EINVAL, *field names the offending field ("" when the body is not valid JSON or not an
 * object, in which case *json_error is set true) and msg says why. Nothing is allocated for the
 * caller; *out is zeroed first. */
GK_MUSTCHECK enum gk_err gk_bizconf_parse_patch(const char *body, size_t len, struct gk_bizconf_patch *out,
                                                bool *json_error, char *field, size_t fieldlen, char *msg,
                                                size_t msglen);

/* Applies the set fields of p onto c. */
void gk_bizconf_apply(struct gk_bizconf *c, const struct gk_bizconf_patch *p);

/* Adds every field of c to the json-c object obj (borrowed; the caller keeps ownership). */
void gk_bizconf_to_json(const struct gk_bizconf *c, struct json_object *obj);

#endif
