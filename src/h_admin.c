/* SPDX-License-Identifier: MIT */
/*
 * h_admin.c -- POST /businesses, GET /config, POST /config.
 * Auth is "Authorization: Bearer <key>": the operator key (ADMIN_TOKEN) or the business's own
 * admin key. Keys are compared as SHA-256 hashes in constant time; only hashes are stored.
 * Reads come from the in-memory cache; writes go to PostgreSQL in one statement and then into
 * this node's cache (other nodes hear of it through NOTIFY).
 */
#include "gk/handlers.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "gk/cfgstore.h"
#include "gk/jsonutil.h"
#include "gk/log.h"

enum auth { AUTH_NONE, AUTH_OPERATOR, AUTH_BUSINESS };

static enum auth
authenticate(const struct gk_ctx *ctx, const struct gk_req *req)
{
    const char *h = gk_req_header(req, "Authorization");
    const char *key;
    size_t len;

    if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
        return AUTH_NONE;
    for (key = h + 7; *key == ' '; key++)
        ;
    len = strnlen(key, GK_SECRET_MAX + 1);
    if (len == 0 || len > GK_SECRET_MAX)
        return AUTH_NONE;
    if (gk_key_matches_hash(key, len, ctx->app->operator_key_hash))
        return AUTH_OPERATOR;
    if (ctx->biz != NULL && gk_key_matches_hash(key, len, ctx->biz->admin_key_hash))
        return AUTH_BUSINESS;
    return AUTH_NONE;
}

static void
reply_unauthorized(struct gk_resp *resp)
{
    gk_resp_header(resp, "WWW-Authenticate", "Bearer");
    gk_reply_error(resp, 401, "unauthorized", "A valid admin key is required (Authorization: Bearer <key>).",
                   NULL);
}

/* Header, then key, then business: a caller without a valid key learns nothing about which
 * businesses exist. True when the handler may go on. */
static bool
config_preamble(struct gk_ctx *ctx, const struct gk_req *req, struct gk_resp *resp)
{
    if (ctx->biz_header != NULL && gk_id_valid(ctx->biz_header, strlen(ctx->biz_header)) &&
        authenticate(ctx, req) == AUTH_NONE) {
        reply_unauthorized(resp);
        return false;
    }
    return gk_need_business(ctx, resp);
}

static void
reply_config(struct gk_resp *resp, const char *message, const struct gk_bizconf *c)
{
    struct json_object *o = json_object_new_object(), *conf = json_object_new_object();

    gk_bizconf_to_json(c, conf);
    json_object_object_add(o, "message", json_object_new_string(message));
    json_object_object_add(o, "updated_config", conf);
    gk_reply_json(resp, 200, o);
}

void
gk_h_config_get(struct gk_ctx *ctx, const struct gk_req *req, struct gk_resp *resp)
{
    if (config_preamble(ctx, req, resp))
        reply_config(resp, "Configuration retrieved successfully", &ctx->biz->conf);
}

void
gk_h_config_post(struct gk_ctx *ctx, const struct gk_req *req, struct gk_resp *resp)
{
    struct gk_bizconf_patch patch;
    struct gk_business b;
    char field[64], msg[160];
    bool json_error = false;
    enum gk_err rc;

    if (!config_preamble(ctx, req, resp))
        return;
    if (gk_bizconf_parse_patch(req->body, req->body_len, &patch, &json_error, field, sizeof(field), msg,
                               sizeof(msg)) != GK_OK) {
        if (json_error)
            gk_reply_error(resp, 400, "invalid_json", "The body must be one JSON object.", NULL);
        else
            gk_reply_error(resp, 422, "invalid_config", msg, field);
        return;
    }
    rc = gk_cfgstore_update_config(ctx->db, ctx->biz->id, &patch, &b);
    switch (rc) {
    case GK_OK:
        break;
    case GK_ENOTFOUND:
        gk_reply_error(resp, 404, "unknown_business", "No business with this business_id.", NULL);
        return;
    case GK_EINVAL:
        gk_reply_error(resp, 422, "invalid_config", "The database refused a value.", NULL);
        return;
    default:
        GK_RLOG(GK_LOG_WARN, "admin", req->id, "msg=\"config update failed\" err=\"%s\"",
                gk_cfgstore_errmsg(ctx->db));
        gk_reply_unavailable(resp, "PostgreSQL");
        return;
    }
    gk_confcache_put(ctx->app->cache, &b);
    GK_RLOG(GK_LOG_INFO, "admin", req->id, "msg=\"config updated\" business=%s version=%lld fields=%#x", b.id,
            (long long)b.version, patch.set);
    reply_config(resp, "Configuration updated successfully", &b.conf);
}

/* The business_id of a POST /businesses body; NULL after replying with the error. */
static const char *
new_business_id(struct json_object *body, struct gk_resp *resp)
{
    struct json_object *v = NULL;
    const char *id;

    json_object_object_foreach(body, key, val)
    {
        (void)val;
        if (strcmp(key, "business_id") != 0) {
            char msg[96], esc[40];

            snprintf(msg, sizeof(msg), "Unknown field \"%s\".", gk_log_escape(key, esc, sizeof(esc)));
            gk_reply_error(resp, 422, "invalid_field", msg, esc);
            return NULL;
        }
    }
    if (!json_object_object_get_ex(body, "business_id", &v) || !json_object_is_type(v, json_type_string)) {
        gk_reply_error(resp, 422, "invalid_field", "business_id is required and must be a string.",
                       "business_id");
        return NULL;
    }
    id = json_object_get_string(v);
    if (!gk_id_valid(id, (size_t)json_object_get_string_len(v))) {
        gk_reply_error(resp, 422, "invalid_field",
                       "business_id must be 1-128 characters of A-Z a-z 0-9 . _ : @ -.", "business_id");
        return NULL;
    }
    return id;
}

void
gk_h_business_create(struct gk_ctx *ctx, const struct gk_req *req, struct gk_resp *resp)
{
    struct json_object *body = NULL, *o, *conf;
    char key[GK_ADMIN_KEY_BUF], hash[GK_SHA256_HEX_BUF];
    struct gk_business b;
    const char *id;

    if (authenticate(ctx, req) != AUTH_OPERATOR) {
        reply_unauthorized(resp);
        goto out;
    }
    body = gk_json_parse_object(req->body, req->body_len);
    if (body == NULL) {
        gk_reply_error(resp, 400, "invalid_json", "The body must be one JSON object.", NULL);
        goto out;
    }
    id = new_business_id(body, resp);
    if (id == NULL)
        goto out;
    if (gk_admin_key_new(key) != GK_OK) {
        gk_reply_error(resp, 500, "internal", "No randomness available for the admin key.", NULL);
        goto out;
    }
    gk_sha256_hex(key, strlen(key), hash);
    switch (gk_cfgstore_create_business(ctx->db, id, hash, &b)) {
    case GK_OK:
        break;
    case GK_EEXIST:
        gk_reply_error(resp, 409, "business_exists", "A business with this business_id already exists.",
                       NULL);
        goto out;
    default:
        GK_RLOG(GK_LOG_WARN, "admin", req->id, "msg=\"create business failed\" err=\"%s\"",
                gk_cfgstore_errmsg(ctx->db));
        gk_reply_unavailable(resp, "PostgreSQL");
        goto out;
    }
    gk_confcache_put(ctx->app->cache, &b);
    GK_RLOG(GK_LOG_INFO, "admin", req->id, "msg=\"business created\" business=%s", b.id);
    o = json_object_new_object();
    conf = json_object_new_object();
    gk_bizconf_to_json(&b.conf, conf);
    json_object_object_add(o, "business_id", json_object_new_string(b.id));
    json_object_object_add(o, "admin_key", json_object_new_string(key));
    json_object_object_add(o, "config", conf);
    gk_reply_json(resp, 201, o);
out:
    explicit_bzero(key, sizeof(key));
    json_object_put(body);
}
