/* SPDX-License-Identifier: MIT */
/*
 * main.c -- gatekeeper-audit: checks what Gatekeeper publishes, from the outside.
 *   gatekeeper-audit draw <draw.json> [participants.txt]
 *     recomputes a scheduled event's draw (docs/EVENTS.md) from the answer of
 *     GET /events/{id}/draw and, when given, the participants' user ids (one per line, as
 *     GET /events/{id}/participants lists them): the commitment, the digest, the draw seed and
 *     every draw key in order. Exit 0 when every step holds, 1 naming the first that fails, 2 on
 *     bad usage or unreadable input.
 *   gatekeeper-audit log --business <id>
 *     walks the business's activity-log hash chain in the database at DATABASE_URL (log.c): exit
 *     0 when intact, 1 naming the first row that does not chain, 2 when it cannot be read.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"

static int
usage(void)
{
    fprintf(stderr, "usage: gatekeeper-audit draw <draw.json> [participants.txt]\n"
                    "       gatekeeper-audit log --business <id>   (reads DATABASE_URL)\n");
    return 2;
}

int
main(int argc, char **argv)
{
    if (argc >= 3 && argc <= 4 && strcmp(argv[1], "draw") == 0)
        return gk_audit_draw(argv[2], argc == 4 ? argv[3] : NULL);
    if (argc == 4 && strcmp(argv[1], "log") == 0 && strcmp(argv[2], "--business") == 0)
        return gk_audit_log(argv[3], getenv("DATABASE_URL"));
    return usage();
}
