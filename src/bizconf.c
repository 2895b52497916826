/* SPDX-License-Identifier: MIT */
/*
 * bizconf.c -- see gk/bizconf.h for the contract.
 *
 * The numeric fields are described once, in num_fields[]; parsing, validation, defaults and JSON
 * output all read that table. Error messages never quote the request body: the only input echoed
 * back is an unknown key, and it is truncated to the caller's field buffer.
 */
#include "gk/bizconf.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "gk/jsonutil.h"

#define NO_ALT UINT32_MAX
/* A valid body nests two levels (object, origins array); one more lets a wrongly nested value be
 * reported as a wrong type rather than as malformed JSON. */
#define ORIGIN_MAX_LEN (GK_ORIGIN_BUF - 1)

struct num_field {
    const char *name;
    uint32_t min;
    uint32_t max;
    uint32_t alt; /* one more allowed value outside [min, max], or NO_ALT */
    uint32_t def;
};

/* docs/API.md's field table; the CHECK constraints in sql/ mirror these ranges. */
static const struct num_field num_fields[GK_BC_NUMERIC] = {
    [GK_BC_ADMISSION_LIMIT] = {"admission_limit", 1, 100000, NO_ALT, 100},
    [GK_BC_ADMISSION_FREQUENCY] = {"admission_frequency", 1, 3600, NO_ALT, 5},
    [GK_BC_JWT_EXPIRY_SECONDS] = {"jwt_expiry_seconds", 60, 600, NO_ALT, 300},
    [GK_BC_READY_TTL_SECONDS] = {"ready_ttl_seconds", 60, 3600, NO_ALT, 600},
    [GK_BC_IP_ENQUEUE_LIMIT] = {"ip_enqueue_limit", 1, 1000000, NO_ALT, 100},
    [GK_BC_IP_ENQUEUE_LIMIT_INTERVAL] = {"ip_enqueue_limit_interval", 1, 86400, NO_ALT, 60},
    [GK_BC_IP_STATUS_POLLING_LIMIT] = {"ip_status_polling_limit", 1, 1000000, NO_ALT, 60},
    [GK_BC_IP_STATUS_POLLING_LIMIT_INTERVAL] = {"ip_status_polling_limit_interval", 1, 86400, NO_ALT, 60},
    [GK_BC_MAX_ACTIVE_USERS] = {"max_active_users", 0, 10000000, NO_ALT, 0},
    [GK_BC_ABANDON_AFTER_SECONDS] = {"abandon_after_seconds", 30, 86400, 0, 0},
    [GK_BC_MAX_QUEUE_LENGTH] = {"max_queue_length", 0, 100000000, NO_ALT, 0},
    /* A backend that verifies all its visitors from one address needs more: see docs/API.md. */
    [GK_BC_IP_VERIFY_LIMIT] = {"ip_verify_limit", 1, 1000000, NO_ALT, 1200},
    [GK_BC_IP_VERIFY_LIMIT_INTERVAL] = {"ip_verify_limit_interval", 1, 86400, NO_ALT, 60},
    [GK_BC_IP_FINISH_LIMIT] = {"ip_finish_limit", 1, 1000000, NO_ALT, 600},
    [GK_BC_IP_FINISH_LIMIT_INTERVAL] = {"ip_finish_limit_interval", 1, 86400, NO_ALT, 60},
    [GK_BC_POW_MAX_NUMBER] = {"pow_max_number", 1000, 10000000, NO_ALT, 100000},
};

static const char *const qmethod_names[] = {
    [GK_QM_FIFO] = "fifo",
    [GK_QM_RANDOM] = "random",
    [GK_QM_PASSTHROUGH] = "passthrough",
    [GK_QM_REJECT] = "reject",
};

static const char *const pow_mode_names[] = {
    [GK_POW_OFF] = "off",
    [GK_POW_ON] = "on",
    [GK_POW_AUTO] = "auto",
};

const char *
gk_bizconf_field_name(enum gk_bc_field f)
{
    GK_ASSERT((unsigned)f < GK_BC_NFIELDS);
    if (f == GK_BC_QUEUEING_METHOD)
        return "queueing_method";
    if (f == GK_BC_ALLOWED_ORIGINS)
        return "allowed_origins";
    if (f == GK_BC_POW_MODE)
        return "pow_mode";
    return num_fields[f].name;
}

void
gk_bizconf_field_range(enum gk_bc_field f, uint32_t *min, uint32_t *max, uint32_t *alt)
{
    GK_ASSERT((unsigned)f < GK_BC_NUMERIC);
    *min = num_fields[f].min;
    *max = num_fields[f].max;
    *alt = num_fields[f].alt;
}

bool
gk_bizconf_value_ok(enum gk_bc_field f, uint32_t v)
{
    GK_ASSERT((unsigned)f < GK_BC_NUMERIC);
    return (v >= num_fields[f].min && v <= num_fields[f].max) ||
           (num_fields[f].alt != NO_ALT && v == num_fields[f].alt);
}

void
gk_bizconf_defaults(struct gk_bizconf *c)
{
    memset(c, 0, sizeof(*c));
    for (size_t i = 0; i < GK_BC_NUMERIC; i++)
        c->num[i] = num_fields[i].def;
    c->queueing_method = GK_QM_FIFO;
    c->pow_mode = GK_POW_OFF;
    c->n_origins = 1;
    gk_strlcpy(c->origins[0], "*", sizeof(c->origins[0]));
}

/* The index of s among the n names, or -1. */
static int
name_index(const char *const *names, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(s, names[i]) == 0)
            return (int)i;
    }
    return -1;
}

enum gk_err
gk_qmethod_parse(const char *s, enum gk_qmethod *out)
{
    int i = name_index(qmethod_names, GK_ARRAY_LEN(qmethod_names), s);

    if (i < 0)
        return GK_EINVAL;
    *out = (enum gk_qmethod)i;
    return GK_OK;
}

const char *
gk_qmethod_name(enum gk_qmethod m)
{
    GK_ASSERT((size_t)m < GK_ARRAY_LEN(qmethod_names));
    return qmethod_names[m];
}

enum gk_err
gk_pow_mode_parse(const char *s, enum gk_pow_mode *out)
{
    int i = name_index(pow_mode_names, GK_ARRAY_LEN(pow_mode_names), s);

    if (i < 0)
        return GK_EINVAL;
    *out = (enum gk_pow_mode)i;
    return GK_OK;
}

const char *
gk_pow_mode_name(enum gk_pow_mode m)
{
    GK_ASSERT((size_t)m < GK_ARRAY_LEN(pow_mode_names));
    return pow_mode_names[m];
}

static bool
is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool
is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Host part of an origin: a bracketed IPv6 literal, or a name / IPv4 address of letters, digits,
 * dots and hyphens that starts and ends with a letter or digit. Returns the byte after it, or
 * NULL when there is no valid host at s. */
static const char *
scan_host(const char *s)
{
    const char *p = s;
    bool colon = false;

    if (*p == '[') {
        for (p++; is_hex(*p) || *p == ':' || *p == '.'; p++)
            colon = colon || *p == ':';
        return (*p == ']' && colon) ? p + 1 : NULL;
    }
    if (!is_alnum(*p))
        return NULL;
    while (is_alnum(*p) || *p == '.' || *p == '-')
        p++;
    return is_alnum(p[-1]) ? p : NULL;
}

bool
gk_origin_valid(const char *s)
{
    const char *p;
    const char *digits;
    uint32_t port = 0;

    if (s == NULL || strnlen(s, ORIGIN_MAX_LEN + 1) > ORIGIN_MAX_LEN)
        return false;
    if (strcmp(s, "*") == 0)
        return true;
    if (strncmp(s, "http://", 7) == 0)
        p = s + 7;
    else if (strncmp(s, "https://", 8) == 0)
        p = s + 8;
    else
        return false;
    p = scan_host(p);
    if (p == NULL)
        return false;
    if (*p == ':') {
        /* 1..65535 in canonical form: no leading zero, at most five digits. */
        digits = ++p;
        for (; *p >= '0' && *p <= '9' && p - digits < 5; p++)
            port = port * 10 + (uint32_t)(*p - '0');
        if (p == digits || *digits == '0' || port > 65535)
            return false;
    }
    return *p == '\0';
}

/* Copies an unknown key for the error report, cut at a UTF-8 character boundary. */
static void
copy_key(char *dst, size_t dstlen, const char *key)
{
    size_t n = strnlen(key, dstlen - 1);

    if (key[n] != '\0') {
        while (n > 0 && ((unsigned char)key[n] & 0xC0) == 0x80)
            n--;
    }
    memcpy(dst, key, n);
    dst[n] = '\0';
}

static enum gk_err
parse_num(enum gk_bc_field f, struct json_object *v, struct gk_bizconf_patch *out, char *msg, size_t msglen)
{
    const struct num_field *nf = &num_fields[f];
    int64_t x;

    /* json-c saturates integers beyond int64 to INT64_MIN / INT64_MAX, so the range check below
     * also rejects them. Doubles (1.0, 1e2), strings, booleans and null are wrong types. */
    if (json_object_is_type(v, json_type_int)) {
        x = json_object_get_int64(v);
        if (x >= 0 && x <= UINT32_MAX && gk_bizconf_value_ok(f, (uint32_t)x)) {
            out->v.num[f] = (uint32_t)x;
            return GK_OK;
        }
    }
    if (nf->alt != NO_ALT)
        snprintf(msg, msglen, "must be %u or an integer between %u and %u", nf->alt, nf->min, nf->max);
    else
        snprintf(msg, msglen, "must be an integer between %u and %u", nf->min, nf->max);
    return GK_EINVAL;
}

/* v's text when it is a JSON string without an embedded NUL ("fifo\u0000x"), else NULL. */
static const char *
plain_string(struct json_object *v)
{
    const char *s;

    if (!json_object_is_type(v, json_type_string))
        return NULL;
    s = json_object_get_string(v);
    return (size_t)json_object_get_string_len(v) == strlen(s) ? s : NULL;
}

static enum gk_err
parse_qmethod(struct json_object *v, struct gk_bizconf_patch *out, char *msg, size_t msglen)
{
    const char *s = plain_string(v);

    if (s != NULL && gk_qmethod_parse(s, &out->v.queueing_method) == GK_OK)
        return GK_OK;
    snprintf(msg, msglen, "must be one of \"fifo\", \"random\", \"passthrough\", \"reject\"");
    return GK_EINVAL;
}

static enum gk_err
parse_pow_mode(struct json_object *v, struct gk_bizconf_patch *out, char *msg, size_t msglen)
{
    const char *s = plain_string(v);

    if (s != NULL && gk_pow_mode_parse(s, &out->v.pow_mode) == GK_OK)
        return GK_OK;
    snprintf(msg, msglen, "must be one of \"off\", \"on\", \"auto\"");
    return GK_EINVAL;
}

static enum gk_err
parse_origins(struct json_object *v, struct gk_bizconf_patch *out, char *msg, size_t msglen)
{
    struct gk_bizconf *c = &out->v;
    size_t n;

    if (!json_object_is_type(v, json_type_array) || json_object_array_length(v) > GK_ORIGINS_MAX) {
        snprintf(msg, msglen, "must be an array of at most %d origins", GK_ORIGINS_MAX);
        return GK_EINVAL;
    }
    n = json_object_array_length(v);
    for (size_t i = 0; i < n; i++) {
        struct json_object *e = json_object_array_get_idx(v, i);
        const char *s = json_object_is_type(e, json_type_string) ? json_object_get_string(e) : NULL;

        if (s == NULL || (size_t)json_object_get_string_len(e) != strlen(s) || !gk_origin_valid(s)) {
            snprintf(msg, msglen, "entry %zu must be \"*\" or an origin like https://example.com[:port]", i);
            return GK_EINVAL;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(c->origins[j], s) == 0) {
                snprintf(msg, msglen, "entry %zu repeats entry %zu", i, j);
                return GK_EINVAL;
            }
        }
        gk_strlcpy(c->origins[i], s, sizeof(c->origins[i]));
    }
    c->n_origins = (uint32_t)n;
    return GK_OK;
}

static enum gk_err
parse_field(const char *key, struct json_object *v, struct gk_bizconf_patch *out, char *field,
            size_t fieldlen, char *msg, size_t msglen)
{
    enum gk_err rc = GK_EINVAL;
    int f;

    for (f = 0; f < GK_BC_NFIELDS; f++) {
        if (strcmp(key, gk_bizconf_field_name((enum gk_bc_field)f)) == 0)
            break;
    }
    if (f == GK_BC_NFIELDS) {
        copy_key(field, fieldlen, key);
        snprintf(msg, msglen, "unknown field");
        return GK_EINVAL;
    }
    if (f < GK_BC_NUMERIC)
        rc = parse_num((enum gk_bc_field)f, v, out, msg, msglen);
    else if (f == GK_BC_QUEUEING_METHOD)
        rc = parse_qmethod(v, out, msg, msglen);
    else if (f == GK_BC_POW_MODE)
        rc = parse_pow_mode(v, out, msg, msglen);
    else
        rc = parse_origins(v, out, msg, msglen);
    if (rc != GK_OK) {
        gk_strlcpy(field, gk_bizconf_field_name((enum gk_bc_field)f), fieldlen);
        return rc;
    }
    out->set |= 1u << f;
    return GK_OK;
}

enum gk_err
gk_bizconf_parse_patch(const char *body, size_t len, struct gk_bizconf_patch *out, bool *json_error,
                       char *field, size_t fieldlen, char *msg, size_t msglen)
{
    struct json_object *root = NULL;
    struct json_object_iterator it, end;
    enum gk_err rc = GK_EINVAL;

    GK_ASSERT(fieldlen > 0 && msglen > 0);
    memset(out, 0, sizeof(*out));
    *json_error = false;
    field[0] = '\0';
    msg[0] = '\0';

    root = gk_json_parse_object(body, len);
    if (root == NULL) {
        *json_error = true;
        snprintf(msg, msglen, "request body must be one JSON object");
        goto out;
    }
    it = json_object_iter_begin(root);
    end = json_object_iter_end(root);
    for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
        rc = parse_field(json_object_iter_peek_name(&it), json_object_iter_peek_value(&it), out, field,
                         fieldlen, msg, msglen);
        if (rc != GK_OK)
            goto out;
    }
    rc = GK_OK;
out:
    if (rc != GK_OK) {
        /* Nothing of a refused patch may be applied by mistake. */
        memset(out, 0, sizeof(*out));
    }
    json_object_put(root);
    return rc;
}

void
gk_bizconf_apply(struct gk_bizconf *c, const struct gk_bizconf_patch *p)
{
    for (size_t i = 0; i < GK_BC_NUMERIC; i++) {
        if (p->set & (1u << i))
            c->num[i] = p->v.num[i];
    }
    if (p->set & (1u << GK_BC_QUEUEING_METHOD))
        c->queueing_method = p->v.queueing_method;
    if (p->set & (1u << GK_BC_ALLOWED_ORIGINS)) {
        c->n_origins = p->v.n_origins;
        memcpy(c->origins, p->v.origins, sizeof(c->origins));
    }
    if (p->set & (1u << GK_BC_POW_MODE))
        c->pow_mode = p->v.pow_mode;
}

/* json-c returns NULL or -1 only when malloc fails; like gk_xmalloc, give up then. */
static void
add_or_die(struct json_object *obj, const char *key, struct json_object *val)
{
    if (val == NULL || json_object_object_add(obj, key, val) != 0)
        gk_panic(__FILE__, __LINE__, "json-c: out of memory");
}

void
gk_bizconf_to_json(const struct gk_bizconf *c, struct json_object *obj)
{
    struct json_object *arr;

    for (size_t i = 0; i < GK_BC_NUMERIC; i++)
        add_or_die(obj, num_fields[i].name, json_object_new_int64(c->num[i]));
    add_or_die(obj, "queueing_method", json_object_new_string(gk_qmethod_name(c->queueing_method)));
    GK_ASSERT(c->n_origins <= GK_ORIGINS_MAX);
    arr = json_object_new_array();
    if (arr == NULL)
        gk_panic(__FILE__, __LINE__, "json-c: out of memory");
    for (uint32_t i = 0; i < c->n_origins; i++) {
        struct json_object *s = json_object_new_string(c->origins[i]);

        if (s == NULL || json_object_array_add(arr, s) != 0)
            gk_panic(__FILE__, __LINE__, "json-c: out of memory");
    }
    add_or_die(obj, "allowed_origins", arr);
    add_or_die(obj, "pow_mode", json_object_new_string(gk_pow_mode_name(c->pow_mode)));
}
