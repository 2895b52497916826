/* SPDX-License-Identifier: MIT */
/* jsonutil.c -- see gk/jsonutil.h for the contract. */
#include "gk/jsonutil.h"

#include <string.h>

#include <json-c/json.h>

struct json_object *
gk_json_parse_object(const char *body, size_t len)
{
    struct json_tokener *tok;
    struct json_object *obj = NULL;
    size_t end;

    /* json-c stops at a NUL byte; a body with one inside is not one JSON object. */
    if (len == 0 || len > (size_t)INT32_MAX || memchr(body, '\0', len) != NULL)
        return NULL;
    tok = json_tokener_new_ex(GK_JSON_DEPTH_MAX);
    if (tok == NULL)
        return NULL;
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    obj = json_tokener_parse_ex(tok, body, (int)len);
    if (obj == NULL || json_tokener_get_error(tok) != json_tokener_success ||
        !json_object_is_type(obj, json_type_object))
        goto fail;
    for (end = json_tokener_get_parse_end(tok); end < len; end++) {
        if (strchr(" \t\r\n", body[end]) == NULL)
            goto fail;
    }
    json_tokener_free(tok);
    return obj;
fail:
    json_object_put(obj);
    json_tokener_free(tok);
    return NULL;
}

bool
gk_json_valid_object(const char *text, size_t len)
{
    struct json_object *o = gk_json_parse_object(text, len);

    json_object_put(o);
    return o != NULL;
}
