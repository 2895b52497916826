/* SPDX-License-Identifier: MIT */
/*
 * h_web.c -- what browsers load: GET /wait/<business_id> (the waiting-room page,
 * web/wait.html), GET /gatekeeper.js (the browser client, web/gatekeeper.js) and GET /admin (the
 * operator console, web/admin.html), all embedded at build time. The page gets its settings (business, a
 * checked return_to, an optional user id) as JSON inside it, and runs its inline script and style under a
 * fresh CSP nonce per response. Errors are small HTML pages (web/error.html), since a person reads them.
 */
#include "gk/handlers.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "gk/web.h"

/* Defined in the generated files of scripts/embed-file. */
extern const char gk_file_web_wait_html[], gk_file_web_error_html[], gk_file_web_gatekeeper_js[],
    gk_file_web_admin_html[];
extern const size_t gk_file_web_wait_html_len, gk_file_web_error_html_len, gk_file_web_gatekeeper_js_len,
    gk_file_web_admin_html_len;

#define WAIT_PREFIX "/wait/"
#define HTML "text/html; charset=utf-8"
#define NONCE_BYTES 16
#define VERSION_LEN 16 /* hex digits of the client's SHA-256 */

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

/* title and message are plain text (escaped here). */
static void
error_page(struct gk_resp *resp, int status, const char *title, const char *message)
{
    char nonce[2 * NONCE_BYTES + 1];
    char *t, *m;

    if (!new_nonce(nonce)) {
        gk_reply_error(resp, 500, "internal", "No randomness for the page.", NULL);
        return;
    }
    t = gk_web_html_escape(title);
    m = gk_web_html_escape(message);
    {
        const struct gk_web_var vars[] = {{"nonce", nonce}, {"title", t}, {"message", m}};

        html_page(resp, status, gk_file_web_error_html, gk_file_web_error_html_len, vars, GK_ARRAY_LEN(vars),
                  nonce);
    }
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
wait_page(struct gk_resp *resp, const char *id, const char *return_to, const char *user_id)
{
    char nonce[2 * NONCE_BYTES + 1];
    char *config, *id_html;

    if (!new_nonce(nonce)) {
        gk_reply_error(resp, 500, "internal", "No randomness for the page.", NULL);
        return;
    }
    pthread_once(&js_version_once, js_version_init);
    config = page_config(id, return_to, user_id);
    id_html = gk_web_html_escape(id);
    {
        const struct gk_web_var vars[] = {
            {"nonce", nonce}, {"config", config}, {"business_id", id_html}, {"js_version", js_version}};

        html_page(resp, 200, gk_file_web_wait_html, gk_file_web_wait_html_len, vars, GK_ARRAY_LEN(vars),
                  nonce);
    }
    free(config);
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
        error_page(resp, 404, "No such waiting room", "This address does not lead to a waiting room.");
        return;
    }
    /* Loaded is read before the lookup, so a miss is 404 only if the cache was complete. */
    loaded = gk_confcache_loaded(ctx->app->cache);
    biz = gk_confcache_acquire(ctx->app->cache, id);
    if (biz == NULL) {
        if (!loaded) {
            gk_resp_header(resp, "Retry-After", "2");
            error_page(resp, 503, "Please try again", "The waiting room is starting; reload in a moment.");
        } else {
            error_page(resp, 404, "No such waiting room", "This address does not lead to a waiting room.");
        }
        return;
    }
    if (return_to == NULL && proxied != NULL && gk_web_return_to_ok(&biz->conf, proxied))
        redirect_with_return_to(resp, biz->id, proxied);
    else if (return_to != NULL && !gk_web_return_to_ok(&biz->conf, return_to))
        error_page(resp, 400, "This link cannot be used",
                   "The address to return to after the waiting room is not one this site allows.");
    else if (user_id != NULL && !gk_id_valid(user_id, strlen(user_id)))
        error_page(resp, 400, "This link cannot be used",
                   "The user id must be 1-128 characters of A-Z a-z 0-9 . _ : @ -.");
    else
        wait_page(resp, biz->id, return_to, user_id);
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
