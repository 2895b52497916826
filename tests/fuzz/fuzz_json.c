/* SPDX-License-Identifier: MIT */
/*
 * fuzz_json -- request bodies through gk_json_parse_object (POST /businesses, and under
 * POST /config and token segments). The input is the body as sent, not NUL-terminated.
 * Checks the contract the handlers rely on: an accepted body is one object nested at most
 * GK_JSON_DEPTH_MAX deep, with no NUL byte in the input, and it prints back to text that is
 * accepted again; gk_json_valid_object agrees.
 */
#include <json-c/json.h>

#include "fuzz/fuzz.h"
#include "gk/jsonutil.h"

static int
depth(struct json_object *v)
{
    int d = 0;

    if (json_object_is_type(v, json_type_object)) {
        json_object_object_foreach(v, key, val)
        {
            int sub = depth(val);

            (void)key;
            d = sub > d ? sub : d;
        }
        return d + 1;
    }
    if (json_object_is_type(v, json_type_array)) {
        for (size_t i = 0; i < json_object_array_length(v); i++) {
            int sub = depth(json_object_array_get_idx(v, i));

            d = sub > d ? sub : d;
        }
        return d + 1;
    }
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct json_object *o = gk_json_parse_object((const char *)data, size), *again;
    const char *text;
    size_t len;

    FUZZ_CHECK(gk_json_valid_object((const char *)data, size) == (o != NULL));
    if (o == NULL)
        return 0;
    FUZZ_CHECK(size > 0 && memchr(data, '\0', size) == NULL);
    FUZZ_CHECK(json_object_is_type(o, json_type_object));
    FUZZ_CHECK(depth(o) <= GK_JSON_DEPTH_MAX);
    text = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &len);
    again = gk_json_parse_object(text, len);
    /* json-c prints a key or string holding \u0000 back as \u0000 too, so only a NUL-free round
     * trip can be required to parse; every accepted body prints to something. */
    FUZZ_CHECK(again != NULL || memmem(text, len, "\\u0000", 6) != NULL);
    json_object_put(again);
    json_object_put(o);
    return 0;
}
