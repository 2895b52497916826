/* SPDX-License-Identifier: MIT */
/*
 * fuzz_bizconf -- POST /config bodies through gk_bizconf_parse_patch.
 * The input is the body as sent (not NUL-terminated: the parser takes a length). Beyond "no
 * crash", checks what the handler relies on: a refused patch is all zero and names why; an
 * accepted one holds only values in range and valid origins, and the whole config it produces
 * survives gk_bizconf_to_json and a second parse unchanged.
 */
#include <json-c/json.h>

#include "fuzz/fuzz.h"
#include "gk/bizconf.h"

static const struct gk_bizconf_patch zero_patch;

static void
check_conf(const struct gk_bizconf *c)
{
    for (int f = 0; f < GK_BC_NUMERIC; f++)
        FUZZ_CHECK(gk_bizconf_value_ok((enum gk_bc_field)f, c->num[f]));
    FUZZ_CHECK(c->queueing_method <= GK_QM_REJECT);
    FUZZ_CHECK(c->n_origins <= GK_ORIGINS_MAX);
    for (uint32_t i = 0; i < c->n_origins; i++) {
        FUZZ_CHECK(memchr(c->origins[i], '\0', GK_ORIGIN_BUF) != NULL);
        FUZZ_CHECK(gk_origin_valid(c->origins[i]));
        for (uint32_t j = 0; j < i; j++)
            FUZZ_CHECK(strcmp(c->origins[i], c->origins[j]) != 0);
    }
}

static bool
same_conf(const struct gk_bizconf *a, const struct gk_bizconf *b)
{
    if (memcmp(a->num, b->num, sizeof(a->num)) != 0 || a->queueing_method != b->queueing_method ||
        a->n_origins != b->n_origins)
        return false;
    for (uint32_t i = 0; i < a->n_origins; i++) {
        if (strcmp(a->origins[i], b->origins[i]) != 0)
            return false;
    }
    return true;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct gk_bizconf_patch p, p2;
    struct gk_bizconf c, c2;
    struct json_object *o;
    const char *text;
    size_t len;
    char field[64], msg[160];
    bool json_error;

    if (gk_bizconf_parse_patch((const char *)data, size, &p, &json_error, field, sizeof(field), msg,
                               sizeof(msg)) != GK_OK) {
        FUZZ_CHECK(memcmp(&p, &zero_patch, sizeof(p)) == 0);
        FUZZ_CHECK(memchr(field, '\0', sizeof(field)) != NULL && memchr(msg, '\0', sizeof(msg)) != NULL);
        FUZZ_CHECK(msg[0] != '\0');
        /* Not JSON: no field to name. (A field error may name "": {"": 1} is an unknown field.) */
        FUZZ_CHECK(!json_error || field[0] == '\0');
        return 0;
    }
    FUZZ_CHECK(!json_error);
    FUZZ_CHECK((p.set >> GK_BC_NFIELDS) == 0);
    gk_bizconf_defaults(&c);
    gk_bizconf_apply(&c, &p);
    check_conf(&c);

    /* What GET /config would show must be a valid POST /config body that means the same. */
    o = json_object_new_object();
    gk_bizconf_to_json(&c, o);
    text =
        json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
    FUZZ_CHECK(gk_bizconf_parse_patch(text, len, &p2, &json_error, field, sizeof(field), msg, sizeof(msg)) ==
               GK_OK);
    FUZZ_CHECK(p2.set == (1u << GK_BC_NFIELDS) - 1);
    memset(&c2, 0, sizeof(c2));
    gk_bizconf_apply(&c2, &p2);
    FUZZ_CHECK(same_conf(&c, &c2));
    json_object_put(o);
    return 0;
}
