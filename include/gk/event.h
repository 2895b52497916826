/* SPDX-License-Identifier: MIT */
/*
 * event -- one activity-log event, as it travels from a Redis stream to the activity_log table.
 *
 * The queue scripts append events to the stream gk:{<business>}:events in the same atomic script
 * that changes the queue, so an event exists if and only if its change happened. Stream fields:
 * type, user (may be "") or users (up to 100 space-separated ids sharing the other fields, one
 * event each: an admission tick's), ts (ms since the epoch, Redis's clock), ip (may be ""),
 * details (a JSON object text). The event id in PostgreSQL is "<business>/<stream entry id>",
 * or "<business>/<stream entry id>/<index>" for the users of a packed entry, unique across
 * businesses, so a redelivered event is written once.
 */
#ifndef GK_EVENT_H
#define GK_EVENT_H

#include <stdbool.h>
#include <stdint.h>

#include "gk/util.h"

#define GK_EVENT_ID_BUF (GK_ID_BUF + 48)
#define GK_EVENT_TYPE_BUF 24
#define GK_EVENT_IP_BUF 48
#define GK_EVENT_DETAILS_BUF 512     /* longer details are replaced by "{}" on read */
#define GK_EVENTS_STREAM_MAX 1000000 /* per business; past it new events are dropped and counted */

/* Event types, exactly as stored in activity_log.event. */
#define GK_EV_ENQUEUE "enqueue"
#define GK_EV_ADMIT "admit"
#define GK_EV_VERIFY "verify"
#define GK_EV_FINISH "finish"
#define GK_EV_LEAVE "leave"
#define GK_EV_EXPIRE "expire"
#define GK_EV_EVICT "evict"
#define GK_EV_RATE_LIMITED "rate_limited"
#define GK_EV_CONFIG_CHANGE "config_change"
#define GK_EV_BUSINESS_CREATED "business_created"
#define GK_EV_PREQUEUE "prequeue" /* joined a scheduled event's pre-queue */
#define GK_EV_DRAW "draw"         /* placed in line by a scheduled event's draw */

struct gk_event {
    char id[GK_EVENT_ID_BUF]; /* "<business>/<stream id>[/<index>]" */
    char business[GK_ID_BUF];
    char user[GK_ID_BUF];               /* "" when the event concerns no single user */
    char type[GK_EVENT_TYPE_BUF];       /* one of GK_EV_* */
    int64_t ts_ms;                      /* when it happened, ms since the epoch */
    char ip[GK_EVENT_IP_BUF];           /* client IP, "" when none */
    char details[GK_EVENT_DETAILS_BUF]; /* JSON object text */
    bool last;                          /* the last event of its stream entry, which is
                                         * acknowledged once this one is written */
};

#endif
