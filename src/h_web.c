/* SPDX-License-Identifier: MIT */
/*
 * h_web.c -- what browsers load: GET /wait/<business_id> (the waiting-room page, web/wait.html),
 * GET /gatekeeper.js (the browser client, web/gatekeeper.js) and GET /admin (the operator
 * console, web/admin.html), all embedded at build time. The page gets its settings (business, a
 * checked return_to, an optional user id) as JSON inside it, and runs its inline script and style
 * under a fresh CSP nonce per response. Errors are small HTML pages (web/error.html), since a
 * person reads them. Both pages speak the visitor's language (gk/i18n.h: the business's
 * page.language, else Accept-Language): the catalogue's strings fill the {{t.<key>}}
 * placeholders, escaped, and the waiting page's script gets the whole catalogue; a business's
 * `page` brands them (logo, title, message, colour).
 */
#include "gk/handlers.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "gk/i18n.h"
#include "gk/web.h"

/* Defined in the generated files of scripts/embed-file. */
extern const char gk_file_web_wait_html[], gk_file_web_error_html[], gk_file_web_gatekeeper_js[],
    gk_file_web_admin_html[];
extern const size_t gk_file_web_wait_html_len, gk_file_web_error_html_len, gk_file_web_gatekeeper_js_len,
    gk_file_web_admin_html_len;

#define WAIT_PREFIX "/wait/"
#define HTML "text/html; charset=utf-8"
#define NONCE_BYTES 16
#define VERSION_LEN 16    /* hex digits of the client's SHA-256 */
#define PAGE_VARS_MAX 128 /* template variables of a page: a catalogue's strings and a few more */

/* The client's version (VERSION_LEN hex digits) and its ETag (the same, quoted). */
static char js_version[VERSION_LEN + 1], js_etag[VERSION_LEN + 3];
static pthread_once_t js_version_once = PTHREAD_ONCE_INIT;

static void
js_version_init(void)
{
    char hex[GK_SHA256_HEX_BUF];

    gk_sha256_hex(gk_file_web_gatekeeper_js, gk_file_web_gatekeeper_js_len, hex);
    snprintf(js_version, sizeof(js_version), "%.*s", VERSION_LEN, hex);
    snprintf(js_etag, sizeof(js_etag), "\"%s\"", js_version);
}

/* Renders an HTML template into resp under a Content-Security-Policy that lets only this
 * response's inline script and style (nonce) and same-origin scripts and fetches run. */
static void
html_page(struct gk_resp *resp, int status, const char *tmpl, size_t tmpl_len, const struct gk_web_var *vars,
          size_t nvars, const char *nonce)
{
    char csp[320];
    size_t len;
    char *body = gk_web_render(tmpl, tmpl_len, vars, nvars, &len);

    snprintf(csp, sizeof(csp),
             "default-src 'none'; script-src 'self' 'nonce-%s'; style-src 'nonce-%s'; connect-src 'self'; "
             "img-src https:; "
             "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
             nonce, nonce);
    gk_resp_body(resp, status, HTML, body, len);
    gk_resp_header(resp, "Content-Security-Policy", csp);
    gk_resp_header(resp, "Referrer-Policy", "no-referrer");
}

static bool
new_nonce(char out[2 * NONCE_BYTES + 1])
{
    unsigned char raw[NONCE_BYTES];

    if (gk_random_bytes(raw, sizeof(raw)) != GK_OK)
        return false;
    for (size_t i = 0; i < sizeof(raw); i++)
        snprintf(out + 2 * i, 3, "%02x", raw[i]);
    return true;
}

/* A page's template variables; the values (and names) it owns are freed by page_vars_cleanup. */
struct page_vars {
    struct gk_web_var v[PAGE_VARS_MAX];
    size_t n;
    char *owned[2 * PAGE_VARS_MAX];
    size_t n_owned;
};

/* Adds {{name}} = value, taking ownership of owned_name and owned_value (either may be NULL). */
static void
pv_add(struct page_vars *pv, const char *name, const char *value, char *owned_name, char *owned_value)
{
    GK_ASSERT(pv->n < PAGE_VARS_MAX);
    pv->v[pv->n++] = (struct gk_web_var){name, value};
    if (owned_name != NULL)
        pv->owned[pv->n_owned++] = owned_name;
    if (owned_value != NULL)
        pv->owned[pv->n_owned++] = owned_value;
}

/* Adds {{name}} = value, which pv takes and frees. */
static void
pv_take(struct page_vars *pv, const char *name, char *value)
{
    pv_add(pv, name, value, NULL, value);
}

static void
page_vars_cleanup(struct page_vars *pv)
{
    for (size_t i = 0; i < pv->n_owned; i++)
        free(pv->owned[i]);
}

/* s with every "{name}" replaced by with. Caller frees. */
static char *
replace_name(const char *s, const char *with)
{
    size_t n = strlen(s) + 1;
    char *out, *o;

    for (const char *p = s; (p = strstr(p, "{name}")) != NULL; p += 6)
        n += strlen(with);
    out = gk_xmalloc(n);
    o = out;
    for (const char *p = s; *p != '\0';) {
        if (strncmp(p, "{name}", 6) == 0) {
            o = stpcpy(o, with);
            p += 6;
        } else {
            *o++ = *p++;
        }
    }
    *o = '\0';
    return out;
}

/* {{lang}}, {{dir}}, {{strings}} (the catalogue as JSON for a script) and {{t.<key>}} for each of
 * the catalogue's strings, HTML-escaped; "{name}" in them becomes name_html (already escaped). */
static void
lang_vars(struct page_vars *pv, const struct gk_lang *lang, const char *name_html)
{
    struct json_object *cat = json_tokener_parse(lang->catalogue);

    pv_add(pv, "lang", lang->code, NULL, NULL);
    pv_add(pv, "dir", lang->dir, NULL, NULL);
    pv_take(pv, "strings", gk_web_script_json(lang->catalogue));
    if (cat == NULL)
        return;
    json_object_object_foreach(cat, key, val)
    {
        size_t len = strlen(key) + 3;
        char *name = gk_xmalloc(len), *esc = gk_web_html_escape(json_object_get_string(val));

        snprintf(name, len, "t.%s", key);
        if (name_html != NULL && strstr(esc, "{name}") != NULL) {
            char *with = replace_name(esc, name_html);

            free(esc);
            esc = with;
        }
        pv_add(pv, name, esc, name, esc);
    }
    json_object_put(cat);
}

/* s formatted into a new string. Caller frees. */
static char *str_printf(const char *fmt, ...) GK_PRINTF(1, 2);
static char *
str_printf(const char *fmt, ...)
{
    va_list ap;
    int n;
    char *out;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    GK_ASSERT(n >= 0);
    out = gk_xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(out, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return out;
}

/* {{brand}} (logo and title), {{brand_message}}, {{accent_css}} and {{page_title}} from the
 * business's page (NULL: none). Every text is escaped; the colour and the URL were validated
 * (gk_page_part_ok) to hold nothing a style sheet or an attribute could be broken out of. */
static void
brand_vars(struct page_vars *pv, const struct gk_page *page, const struct gk_lang *lang)
{
    static const struct gk_page none = {.language = "auto"};
    const struct gk_page *p = page != NULL ? page : &none;
    char *title = gk_web_html_escape(p->title), *logo = gk_web_html_escape(p->logo_url);
    char *msg = gk_web_html_escape(p->message);

    if (title[0] != '\0' || logo[0] != '\0')
        pv_take(pv, "brand",
                str_printf("<header class=\"brand\">%s%s%s%s%s%s</header>", logo[0] ? "<img src=\"" : "",
                           logo, logo[0] ? "\" alt=\"\">" : "", title[0] ? "<p class=\"brand-title\">" : "",
                           title, title[0] ? "</p>" : ""));
    else
        pv_add(pv, "brand", "", NULL, NULL);
    pv_take(pv, "brand_message",
            msg[0] != '\0' ? str_printf("<p class=\"brand-message\">%s</p>", msg) : gk_xstrdup(""));
    pv_take(pv, "accent_css",
            p->primary_color[0] != '\0' ? str_printf(":root { --accent: %s; }", p->primary_color)
                                        : gk_xstrdup(""));
    if (title[0] != '\0') {
        pv_take(pv, "page_title", gk_xstrdup(title));
    } else {
        char *t = gk_i18n_string(lang, "page_title");

        pv_take(pv, "page_title", gk_web_html_escape(t != NULL ? t : ""));
        free(t);
    }
    free(title);
    free(logo);
    free(msg);
}

/* The visitor's language for a page of biz (NULL: unknown business, Accept-Language alone). */
static const struct gk_lang *
page_lang(const struct gk_req *req, const struct gk_business *biz, struct gk_resp *resp)
{
    const struct gk_lang *lang =
        gk_i18n_pick(biz != NULL ? biz->conf.page.language : NULL, gk_req_header(req, "Accept-Language"));

    gk_resp_header(resp, "Content-Language", lang->code);
    gk_resp_header(resp, "Vary", "Accept-Language");
    return lang;
}

/* The error page: its title and message are the catalogue's strings title_key and msg_key, in
 * the visitor's language; a known business (biz, may be NULL) brands it. */
static void
error_page(struct gk_resp *resp, int status, const struct gk_req *req, const struct gk_business *biz,
           const char *title_key, const char *msg_key)
{
    char nonce[2 * NONCE_BYTES + 1];
    struct page_vars pv = {0};
    const struct gk_lang *lang;
    char *t, *m;

    if (!new_nonce(nonce)) {
        gk_reply_error(resp, 500, "internal", "No randomness for the page.", NULL);
        return;
    }
    lang = page_lang(req, biz, resp);
    t = gk_i18n_string(lang, title_key);
    m = gk_i18n_string(lang, msg_key);
    GK_ASSERT(t != NULL && m != NULL); /* every catalogue has every key: test_i18n.c */
    pv_add(&pv, "nonce", nonce, NULL, NULL);
    pv_take(&pv, "title", gk_web_html_escape(t));
    pv_take(&pv, "message", gk_web_html_escape(m));
    lang_vars(&pv, lang, NULL);
    brand_vars(&pv, biz != NULL ? &biz->conf.page : NULL, lang);
    html_page(resp, status, gk_file_web_error_html, gk_file_web_error_html_len, pv.v, pv.n, nonce);
    page_vars_cleanup(&pv);
    free(t);
    free(m);
}

/* nginx (examples/nginx) cannot percent-encode the URL it protects, so it sends it in
 * X-Gatekeeper-Return-To instead of ?return_to=; answer with the page's canonical address. */
static void
redirect_with_return_to(struct gk_resp *resp, const char *id, const char *return_to)
{
    char *enc = gk_web_query_escape(return_to);
    size_t n = strlen(WAIT_PREFIX) + strlen(id) + strlen("?return_to=") + strlen(enc) + 1;
    char *loc = gk_xmalloc(n);

    snprintf(loc, n, "%s%s?return_to=%s", WAIT_PREFIX, id, enc);
    gk_resp_body(resp, 303, HTML, gk_xstrdup(""), 0);
    gk_resp_header(resp, "Location", loc);
    free(loc);
    free(enc);
}

/* The page's settings as JSON that is safe inside <script>. Caller frees. */
static char *
page_config(const char *id, const char *return_to, const char *user_id)
{
    struct json_object *o = json_object_new_object();
    char *safe;

    json_object_object_add(o, "business_id", json_object_new_string(id));
    json_object_object_add(o, "return_to", return_to != NULL ? json_object_new_string(return_to) : NULL);
    json_object_object_add(o, "user_id", user_id != NULL ? json_object_new_string(user_id) : NULL);
    safe = gk_web_script_json(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
    json_object_put(o);
    return safe;
}

static void
wait_page(struct gk_resp *resp, const struct gk_req *req, const struct gk_business *biz,
          const char *return_to, const char *user_id)
{
    char nonce[2 * NONCE_BYTES + 1];
    struct page_vars pv = {0};
    const struct gk_lang *lang;
    char *id_html, *name_html;

    if (!new_nonce(nonce)) {
        gk_reply_error(resp, 500, "internal", "No randomness for the page.", NULL);
        return;
    }
    pthread_once(&js_version_once, js_version_init);
    lang = page_lang(req, biz, resp);
    id_html = gk_web_html_escape(biz->id);
    name_html = str_printf("<strong>%s</strong>", id_html);
    pv_add(&pv, "nonce", nonce, NULL, NULL);
    pv_take(&pv, "config", page_config(biz->id, return_to, user_id));
    pv_add(&pv, "js_version", js_version, NULL, NULL);
    lang_vars(&pv, lang, name_html);
    brand_vars(&pv, &biz->conf.page, lang);
    html_page(resp, 200, gk_file_web_wait_html, gk_file_web_wait_html_len, pv.v, pv.n, nonce);
    page_vars_cleanup(&pv);
    free(name_html);
    free(id_html);
}

void
gk_h_wait(struct gk_ctx *ctx, const struct gk_req *req, struct gk_resp *resp)
{
    const char *id = req->path + strlen(WAIT_PREFIX);
    const char *return_to = gk_req_query(req, "return_to");
    const char *user_id = gk_req_query(req, "user_id");
    const char *proxied = gk_req_header(req, "X-Gatekeeper-Return-To");
    const struct gk_business *biz;
    bool loaded;

    if (!gk_id_valid(id, strlen(id))) {
        error_page(resp, 404, req, NULL, "error_no_room_title", "error_no_room");
        return;
    }
    /* Loaded is read before the lookup, so a miss is 404 only if the cache was complete. */
    loaded = gk_confcache_loaded(ctx->app->cache);
    biz = gk_confcache_acquire(ctx->app->cache, id);
    if (biz == NULL) {
        if (!loaded) {
            gk_resp_header(resp, "Retry-After", "2");
            error_page(resp, 503, req, NULL, "error_starting_title", "error_starting");
        } else {
            error_page(resp, 404, req, NULL, "error_no_room_title", "error_no_room");
        }
        return;
    }
    if (return_to == NULL && proxied != NULL && gk_web_return_to_ok(&biz->conf, proxied))
        redirect_with_return_to(resp, biz->id, proxied);
    else if (return_to != NULL && !gk_web_return_to_ok(&biz->conf, return_to))
        error_page(resp, 400, req, biz, "error_link_title", "error_return_to");
    else if (user_id != NULL && !gk_id_valid(user_id, strlen(user_id)))
        error_page(resp, 400, req, biz, "error_link_title", "error_user_id");
    else
        wait_page(resp, req, biz, return_to, user_id);
    gk_confcache_release(biz);
}

void
gk_h_client_js(struct gk_ctx *ctx, const struct gk_req *req, struct gk_resp *resp)
{
    const char *inm = gk_req_header(req, "If-None-Match");

    (void)ctx;
    pthread_once(&js_version_once, js_version_init);
    if (inm != NULL && (strstr(inm, js_etag) != NULL || strcmp(inm, "*") == 0))
        gk_resp_body(resp, 304, "application/javascript; charset=utf-8", gk_xstrdup(""), 0);
    else
        gk_resp_body(resp, 200, "application/javascript; charset=utf-8",
                     gk_xstrndup(gk_file_web_gatekeeper_js, gk_file_web_gatekeeper_js_len),
                     gk_file_web_gatekeeper_js_len);
    gk_resp_header(resp, "Cache-Control", "public, max-age=3600");
    gk_resp_header(resp, "ETag", js_etag);
    /* Pages on the business's own site load it from here, also with <script crossorigin>. */
    gk_resp_header(resp, "Access-Control-Allow-Origin", "*");
}

void
gk_h_admin(struct gk_ctx *ctx, const struct gk_req *req, struct gk_resp *resp)
{
    char nonce[2 * NONCE_BYTES + 1];

    (void)ctx;
    (void)req;
    if (!new_nonce(nonce)) {
        gk_reply_error(resp, 500, "internal", "No randomness for the page.", NULL);
        return;
    }
    {
        const struct gk_web_var vars[] = {{"nonce", nonce}};

        html_page(resp, 200, gk_file_web_admin_html, gk_file_web_admin_html_len, vars, GK_ARRAY_LEN(vars),
                  nonce);
    }
}
