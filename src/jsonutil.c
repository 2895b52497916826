/* SPDX-License-Identifier: MIT */
/* jsonutil.c -- see gk/jsonutil.h for the contract. */
#include "gk/jsonutil.h"

#include <string.h>

#include <json-c/json.h>

/* True when an object key in text[0..len), already parsed as valid JSON, holds the escape \u0000.
 * json-c keeps keys as C strings and cuts such a key at the NUL, so {"admission_limit\u0000x": 1}
 * would read as admission_limit: the text does not mean what json-c would make of it. */
static bool
key_holds_nul(const char *text, size_t len)
{
    char open[GK_JSON_DEPTH_MAX + 1]; /* '{' or '[' per nesting level */
    size_t depth = 0;
    bool key_next = false;

    for (size_t i = 0; i < len; i++) {
        switch (text[i]) {
        case '{':
        case '[':
            if (depth == sizeof(open))
                return true; /* deeper than the parser allows: cannot happen */
            open[depth++] = text[i];
            key_next = text[i] == '{';
            break;
        case '}':
        case ']':
            depth -= depth > 0;
            key_next = false;
            break;
        case ',':
            key_next = depth > 0 && open[depth - 1] == '{';
            break;
        case '"':
            for (i++; i < len && text[i] != '"'; i++) {
                if (text[i] != '\\')
                    continue;
                if (key_next && i + 5 < len && memcmp(text + i + 1, "u0000", 5) == 0)
                    return true;
                i++; /* the escaped character, which may be a quote */
            }
            key_next = false;
            break;
        default:
            break;
        }
    }
    return false;
}

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
    if (key_holds_nul(body, len))
        goto fail;
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
