/* SPDX-License-Identifier: MIT */
/*
 * i18n.c -- see gk/i18n.h for the contract.
 *
 * Accept-Language is read in one pass without allocation: each range with its q-value, the best
 * (highest q, first on a tie) that names a catalogue wins. Only the first GK_I18N_ACCEPT_MAX bytes
 * are looked at, so a long header costs no more than a short one.
 */
#include "gk/i18n.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "gk/jsonutil.h"
#include "gk/util.h"

#define GK_I18N_ACCEPT_MAX 1024
#define RANGE_MAX 32

/* Defined in the generated files of scripts/embed-file. */
#define CATALOGUE(name) extern const char gk_file_web_i18n_##name##_json[];
CATALOGUE(en)
CATALOGUE(es)
CATALOGUE(fr)
CATALOGUE(de)
CATALOGUE(pt)
CATALOGUE(it)
CATALOGUE(ja)
CATALOGUE(zh_CN)
CATALOGUE(ar)
#undef CATALOGUE

/* English first: the fallback. */
static const struct gk_lang langs[] = {
    {"en", "ltr", gk_file_web_i18n_en_json}, {"es", "ltr", gk_file_web_i18n_es_json},
    {"fr", "ltr", gk_file_web_i18n_fr_json}, {"de", "ltr", gk_file_web_i18n_de_json},
    {"pt", "ltr", gk_file_web_i18n_pt_json}, {"it", "ltr", gk_file_web_i18n_it_json},
    {"ja", "ltr", gk_file_web_i18n_ja_json}, {"zh-CN", "ltr", gk_file_web_i18n_zh_CN_json},
    {"ar", "rtl", gk_file_web_i18n_ar_json},
};

size_t
gk_i18n_count(void)
{
    return GK_ARRAY_LEN(langs);
}

const struct gk_lang *
gk_i18n_at(size_t i)
{
    GK_ASSERT(i < GK_ARRAY_LEN(langs));
    return &langs[i];
}

const struct gk_lang *
gk_i18n_find(const char *s)
{
    for (size_t i = 0; i < GK_ARRAY_LEN(langs); i++) {
        if (strcasecmp(s, langs[i].code) == 0)
            return gk_i18n_at(i);
    }
    return NULL;
}

bool
gk_i18n_setting_ok(const char *s)
{
    return strcmp(s, "auto") == 0 || gk_i18n_find(s) != NULL;
}

/* The catalogue a language range names: its exact code, else by its primary subtag (the part
 * before the first '-'): "pt-BR" -> pt, "zh-Hant" -> zh-CN, the only Chinese catalogue. */
static const struct gk_lang *
match_range(const char *r, size_t n)
{
    char tag[RANGE_MAX + 1];
    const struct gk_lang *exact;
    size_t primary;

    if (n == 0 || n > RANGE_MAX)
        return NULL;
    memcpy(tag, r, n);
    tag[n] = '\0';
    exact = gk_i18n_find(tag);
    if (exact != NULL)
        return exact;
    primary = strcspn(tag, "-");
    for (size_t i = 0; i < GK_ARRAY_LEN(langs); i++) {
        const char *c = langs[i].code;

        if (strncasecmp(c, tag, primary) == 0 && (c[primary] == '\0' || c[primary] == '-'))
            return gk_i18n_at(i);
    }
    return NULL;
}

/* q of one range's parameters (";q=0.5"), as thousandths; 1000 when absent, -1 when malformed. */
static int
parse_q(const char *p, const char *end)
{
    int q = 1000;

    while (p < end) {
        while (p < end && (*p == ' ' || *p == ';'))
            p++;
        if (end - p >= 2 && (p[0] == 'q' || p[0] == 'Q') && p[1] == '=') {
            int digits = 0;

            p += 2;
            if (p >= end || (*p != '0' && *p != '1'))
                return -1;
            q = (*p++ - '0') * 1000;
            if (p < end && *p == '.') {
                int scale = 100;

                for (p++; p < end && *p >= '0' && *p <= '9' && digits < 3; p++, digits++, scale /= 10)
                    q += (*p - '0') * scale;
            }
            return q > 1000 ? -1 : q;
        }
        while (p < end && *p != ';')
            p++;
    }
    return q;
}

const struct gk_lang *
gk_i18n_pick(const char *setting, const char *accept_language)
{
    const struct gk_lang *best = NULL;
    int best_q = 0;
    size_t len;
    const char *p, *end;

    if (setting != NULL && strcmp(setting, "auto") != 0 && gk_i18n_find(setting) != NULL)
        return gk_i18n_find(setting);
    if (accept_language == NULL)
        return gk_i18n_at(0);
    len = strnlen(accept_language, GK_I18N_ACCEPT_MAX);
    p = accept_language;
    end = p + len;
    while (p < end) {
        const char *item_end = memchr(p, ',', (size_t)(end - p));
        const char *range, *range_end;
        const struct gk_lang *l;
        int q;

        if (item_end == NULL)
            item_end = end;
        range = p;
        while (range < item_end && *range == ' ')
            range++;
        range_end = range;
        while (range_end < item_end && *range_end != ';' && *range_end != ' ')
            range_end++;
        q = parse_q(range_end, item_end);
        l = match_range(range, (size_t)(range_end - range));
        if (l != NULL && q > best_q) {
            best = l;
            best_q = q;
        }
        p = item_end + (item_end < end);
    }
    return best != NULL ? best : gk_i18n_at(0);
}

char *
gk_i18n_string(const struct gk_lang *lang, const char *key)
{
    struct json_object *o = gk_json_parse_object(lang->catalogue, strlen(lang->catalogue));
    struct json_object *v = NULL;
    char *s = NULL;

    if (o != NULL && json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string))
        s = gk_xstrdup(json_object_get_string(v));
    json_object_put(o);
    return s;
}
