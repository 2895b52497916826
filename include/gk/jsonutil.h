/* SPDX-License-Identifier: MIT */
/* jsonutil -- strict parsing of request bodies with json-c. Thread-safe. */
#ifndef GK_JSONUTIL_H
#define GK_JSONUTIL_H

#include <stddef.h>

struct json_object;

#define GK_JSON_DEPTH_MAX 8

/* Parses body[0..len) as exactly one JSON object (whitespace around it allowed, nothing else),
 * nested at most GK_JSON_DEPTH_MAX deep. NULL when it is not. Caller owns the result and drops
 * it with json_object_put(). */
struct json_object *gk_json_parse_object(const char *body, size_t len);

#endif
