/* SPDX-License-Identifier: MIT */
/*
 * web -- the pure parts of the pages browsers load: which return_to a business allows its waiting
 * room to redirect to, and the text transforms the pages need (HTML escaping, query encoding,
 * JSON that is safe inside <script>, {{placeholder}} templates). No I/O; thread-safe.
 */
#ifndef GK_WEB_H
#define GK_WEB_H

#include <stdbool.h>
#include <stddef.h>

#include "gk/bizconf.h"

#define GK_RETURN_TO_MAX 2048 /* bytes of a return_to URL */

/* True when url may be where the waiting room of a business configured by c sends its visitors:
 * a path on the page's own site ("/x", never "//x"), or an http(s) URL whose origin
 * (scheme://host[:port], compared without regard to case) is listed in allowed_origins; "*"
 * allows no redirect. 1..GK_RETURN_TO_MAX bytes of printable ASCII, no backslash, no userinfo. */
bool gk_web_return_to_ok(const struct gk_bizconf *c, const char *url);

/* s with & < > " ' as HTML character references. Caller frees. */
char *gk_web_html_escape(const char *s);
/* s percent-encoded for a query-string value (all but A-Z a-z 0-9 - . _ ~). Caller frees. */
char *gk_web_query_escape(const char *s);
/* JSON text made safe to place inside a <script> element: < > & become \u003c \u003e \u0026,
 * which a JSON parser reads back as the same characters. Caller frees. */
char *gk_web_script_json(const char *json);

struct gk_web_var {
    const char *name;  /* placeholder {{name}} */
    const char *value; /* inserted as is: escape it first */
};

/* tmpl[0..len) with every {{name}} of vars replaced by its value; unknown placeholders stay.
 * *out_len receives the length. Caller frees (NUL-terminated). */
char *gk_web_render(const char *tmpl, size_t len, const struct gk_web_var *vars, size_t nvars,
                    size_t *out_len);

#endif
