/* SPDX-License-Identifier: MIT */
/* web.c -- see gk/web.h for the contract. */
#include "gk/web.h"

#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "gk/util.h"

static char *
sb_finish(struct gk_sbuf *b)
{
    if (b->s == NULL)
        gk_sbuf_add(b, "", 0);
    return b->s;
}

bool
gk_web_return_to_ok(const struct gk_bizconf *c, const char *url)
{
    size_t len = strnlen(url, GK_RETURN_TO_MAX + 1), origin_len, authority_len;
    const char *authority;

    if (len == 0 || len > GK_RETURN_TO_MAX)
        return false;
    /* Browsers read "\" as "/" and drop tabs and newlines: refuse what could be read two ways. */
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)url[i];
        if (ch <= 0x20 || ch >= 0x7f || ch == '\\')
            return false;
    }
    if (url[0] == '/')
        return url[1] != '/'; /* "//host" is another site */
    if (strncasecmp(url, "https://", 8) == 0)
        authority = url + 8;
    else if (strncasecmp(url, "http://", 7) == 0)
        authority = url + 7;
    else
        return false;
    authority_len = strcspn(authority, "/?#");
    origin_len = (size_t)(authority - url) + authority_len;
    if (authority_len == 0 || memchr(authority, '@', authority_len) != NULL)
        return false;
    for (uint32_t i = 0; i < c->n_origins; i++) {
        if (strlen(c->origins[i]) == origin_len && strncasecmp(c->origins[i], url, origin_len) == 0)
            return true;
    }
    return false;
}

char *
gk_web_html_escape(const char *s)
{
    struct gk_sbuf b = {0};

    for (; *s != '\0'; s++) {
        switch (*s) {
        case '&':
            gk_sbuf_add(&b, "&amp;", 5);
            break;
        case '<':
            gk_sbuf_add(&b, "&lt;", 4);
            break;
        case '>':
            gk_sbuf_add(&b, "&gt;", 4);
            break;
        case '"':
            gk_sbuf_add(&b, "&quot;", 6);
            break;
        case '\'':
            gk_sbuf_add(&b, "&#39;", 5);
            break;
        default:
            gk_sbuf_add(&b, s, 1);
        }
    }
    return sb_finish(&b);
}

char *
gk_web_query_escape(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    struct gk_sbuf b = {0};

    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' ||
            ch == '.' || ch == '_' || ch == '~') {
            gk_sbuf_add(&b, s, 1);
        } else {
            char e[3] = {'%', hex[ch >> 4], hex[ch & 15]};
            gk_sbuf_add(&b, e, 3);
        }
    }
    return sb_finish(&b);
}

char *
gk_web_script_json(const char *json)
{
    struct gk_sbuf b = {0};

    for (; *json != '\0'; json++) {
        if (*json == '<')
            gk_sbuf_add(&b, "\\u003c", 6);
        else if (*json == '>')
            gk_sbuf_add(&b, "\\u003e", 6);
        else if (*json == '&')
            gk_sbuf_add(&b, "\\u0026", 6);
        else
            gk_sbuf_add(&b, json, 1);
    }
    return sb_finish(&b);
}

char *
gk_web_render(const char *tmpl, size_t len, const struct gk_web_var *vars, size_t nvars, size_t *out_len)
{
    struct gk_sbuf b = {0};
    size_t i = 0;

    while (i < len) {
        const char *open = memmem(tmpl + i, len - i, "{{", 2);
        const char *close;
        size_t name_len, v;

        if (open == NULL) {
            gk_sbuf_add(&b, tmpl + i, len - i);
            break;
        }
        gk_sbuf_add(&b, tmpl + i, (size_t)(open - (tmpl + i)));
        i = (size_t)(open - tmpl) + 2;
        close = memmem(tmpl + i, len - i, "}}", 2);
        name_len = close != NULL ? (size_t)(close - (tmpl + i)) : 0;
        for (v = 0; close != NULL && v < nvars; v++) {
            if (strlen(vars[v].name) == name_len && memcmp(vars[v].name, tmpl + i, name_len) == 0)
                break;
        }
        if (close == NULL || v == nvars) {
            gk_sbuf_add(&b, "{{", 2);
            continue;
        }
        gk_sbuf_add(&b, vars[v].value, strlen(vars[v].value));
        i += name_len + 2;
    }
    *out_len = b.len;
    return sb_finish(&b);
}
