/* SPDX-License-Identifier: MIT */
/* jsonutil -- strict parsing of request bodies with json-c. Thread-safe. */
#ifndef GK_JSONUTIL_H
#define GK_JSONUTIL_H

#include <stdbool.h>
#include <stddef.h>

struct json_object;

#define GK_JSON_DEPTH_MAX 4 /* every body the API takes nests at most 2 deep */

/* Parses body[0..len) as exactly one JSON object in strict JSON and valid UTF-8 (whitespace
 * around it allowed, nothing else, no NUL byte, no object key holding \u0000, which json-c would
 * cut short), nested at most GK_JSON_DEPTH_MAX deep. NULL when it is not.
 * Caller owns the result and drops it with json_object_put(). */
struct json_object *gk_json_parse_object(const char *body, size_t len);
/* True when gk_json_parse_object would accept text[0..len); for modules that only check. */
bool gk_json_valid_object(const char *text, size_t len);

#endif
