/* SPDX-License-Identifier: MIT */
/* draw.c -- gatekeeper-audit draw: see audit/main.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "audit.h"
#include "gk/draw.h"
#include "gk/util.h"

#define FILE_MAX (256 << 20)

/* The whole file at path, NUL-terminated, or NULL. Caller frees. */
static char *
slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;

    if (f == NULL)
        return NULL;
    if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || n > FILE_MAX || fseek(f, 0, SEEK_SET) != 0)
        goto out;
    buf = gk_xmalloc((size_t)n + 1);
    if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
        goto out;
    }
    buf[n] = '\0';
    *len = (size_t)n;
out:
    fclose(f);
    return buf;
}

static const char *
str_member(struct json_object *o, const char *key)
{
    struct json_object *v = NULL;

    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

static int
failed(const char *what)
{
    fprintf(stderr, "FAIL: %s\n", what);
    return 1;
}

/* The user ids of participants.txt (one per line) into a NULL-ended array; *n of them. The
 * strings point into text. Caller frees the array. */
static const char **
split_lines(char *text, size_t *n)
{
    size_t cap = 16;
    const char **users = gk_xmalloc(cap * sizeof(*users));

    *n = 0;
    for (char *line = strtok(text, "\r\n"); line != NULL; line = strtok(NULL, "\r\n")) {
        if (*n + 1 >= cap) {
            cap *= 2;
            users = gk_xrealloc(users, cap * sizeof(*users));
        }
        users[(*n)++] = line;
    }
    users[*n] = NULL;
    return users;
}

/* Every step with the participants known: digest, count, and each key in order. */
static int
check_participants(struct json_object *draw, struct json_object *order,
                   const unsigned char seed[GK_SHA256_LEN], const char *path)
{
    char *text = NULL, digest[GK_SHA256_HEX_BUF];
    const char **users = NULL;
    struct gk_draw_entry *entries = NULL;
    size_t len = 0, n = 0;
    int rc = 1;

    text = slurp(path, &len);
    if (text == NULL) {
        fprintf(stderr, "cannot read %s\n", path);
        return 2;
    }
    users = split_lines(text, &n);
    gk_draw_sort_users(users, n);
    gk_draw_digest(users, n, digest);
    if (strcmp(digest, str_member(draw, "participants_digest")) != 0) {
        rc = failed("participants_digest is not the SHA-256 of these participants");
        goto out;
    }
    if ((size_t)json_object_array_length(order) != n) {
        rc = failed("order does not have one draw key per participant");
        goto out;
    }
    entries = gk_xcalloc(n + 1, sizeof(*entries));
    gk_draw_order(seed, users, n, entries);
    for (size_t i = 0; i < n; i++) {
        const char *k = json_object_get_string(json_object_array_get_idx(order, i));

        if (k == NULL || strcmp(k, entries[i].key) != 0) {
            fprintf(stderr, "FAIL: order[%zu] is not the draw key of the participant drawn there (%s)\n", i,
                    entries[i].user);
            goto out;
        }
    }
    printf("ok: %zu participants, every draw key recomputed in order\n", n);
    rc = 0;
out:
    free(entries);
    free(users);
    free(text);
    return rc;
}

static int
check_draw(struct json_object *draw, const char *participants_path)
{
    const char *commit = str_member(draw, "seed_commitment"), *server = str_member(draw, "server_seed");
    const char *digest = str_member(draw, "participants_digest"), *dseed = str_member(draw, "draw_seed");
    unsigned char seed[GK_SHA256_LEN], want[GK_SHA256_LEN];
    char hex[GK_SHA256_HEX_BUF];
    struct json_object *order = NULL;

    if (commit == NULL || server == NULL || digest == NULL || dseed == NULL ||
        !json_object_object_get_ex(draw, "order", &order) || !json_object_is_type(order, json_type_array)) {
        fprintf(stderr,
                "not a draw: seed_commitment, server_seed, participants_digest, draw_seed and order are "
                "required\n");
        return 2;
    }
    if (gk_unhex(server, seed, sizeof(seed)) != GK_OK)
        return failed("server_seed is not 32 bytes in hex");
    gk_sha256(seed, sizeof(seed), want);
    gk_hex(want, sizeof(want), hex);
    if (strcmp(hex, commit) != 0)
        return failed("seed_commitment is not the SHA-256 of server_seed");
    if (gk_draw_seed(seed, digest, want) != GK_OK)
        return failed("participants_digest is not 64 hex digits");
    gk_hex(want, sizeof(want), hex);
    if (strcmp(hex, dseed) != 0)
        return failed("draw_seed is not SHA-256(server_seed || participants_digest)");
    for (size_t i = 1; i < json_object_array_length(order); i++) {
        const char *a = json_object_get_string(json_object_array_get_idx(order, i - 1));
        const char *b = json_object_get_string(json_object_array_get_idx(order, i));

        if (a == NULL || b == NULL || strcmp(a, b) > 0)
            return failed("order is not ascending");
    }
    if (participants_path != NULL)
        return check_participants(draw, order, want, participants_path);
    printf("ok: commitment, draw seed and order hold (give the participants to check every key)\n");
    return 0;
}

int
gk_audit_draw(const char *draw_path, const char *participants_path)
{
    size_t len = 0;
    char *text = slurp(draw_path, &len);
    struct json_object *draw;
    int rc;

    if (text == NULL) {
        fprintf(stderr, "cannot read %s\n", draw_path);
        return 2;
    }
    draw = json_tokener_parse(text);
    free(text);
    if (draw == NULL || !json_object_is_type(draw, json_type_object)) {
        fprintf(stderr, "%s is not a JSON object\n", draw_path);
        json_object_put(draw);
        return 2;
    }
    rc = check_draw(draw, participants_path);
    json_object_put(draw);
    return rc;
}
