/* SPDX-License-Identifier: MIT */
/*
 * fuzz_event -- POST /events bodies through gk_sched_parse, and the input as one RFC 3339 time
 * through gk_sched_parse_time. Beyond "no crash": a refused body names its field; an accepted one
 * has a name of 1-200 characters, times in order and overrides within their config ranges; a
 * parsed time prints back as a time that parses to the same instant.
 */
#include "fuzz/fuzz.h"
#include "gk/bizconf.h"
#include "gk/schedule.h"

static const enum gk_bc_field conf_fields[GK_SC_N] = {GK_BC_ADMISSION_LIMIT, GK_BC_ADMISSION_FREQUENCY,
                                                      GK_BC_MAX_ACTIVE_USERS, GK_BC_READY_TTL_SECONDS};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct gk_sched_event ev;
    char field[32], msg[160], t[GK_SCHED_TIME_BUF], *s = fuzz_cstr(data, size);
    bool json_error = false;
    int64_t ms, again;

    if (gk_sched_parse((const char *)data, size, &ev, &json_error, field, sizeof(field), msg, sizeof(msg)) ==
        GK_OK) {
        FUZZ_CHECK(ev.name[0] != '\0' && memchr(ev.name, '\0', sizeof(ev.name)) != NULL);
        FUZZ_CHECK(ev.prequeue_ms < ev.opens_ms && (ev.ends_ms == 0 || ev.opens_ms < ev.ends_ms));
        for (int i = 0; i < GK_SC_N; i++)
            FUZZ_CHECK(!ev.conf_set[i] || gk_bizconf_value_ok(conf_fields[i], ev.conf[i]));
    } else {
        FUZZ_CHECK(json_error || field[0] != '\0');
    }
    if (gk_sched_parse_time(s, &ms) == GK_OK) {
        gk_sched_time_str(ms, t);
        FUZZ_CHECK(gk_sched_parse_time(t, &again) == GK_OK && again == ms);
    }
    free(s);
    return 0;
}
