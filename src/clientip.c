/* SPDX-License-Identifier: MIT */
/* clientip.c -- see gk/clientip.h for the contract. */
#include "gk/clientip.h"

#include <arpa/inet.h>
#include <string.h>

/* Canonical text, so one client never counts as two (::ffff:1.2.3.4 is 1.2.3.4). */
static void
format_ip(const uint8_t a[16], char out[GK_IP_BUF])
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

    if (memcmp(a, mapped, sizeof(mapped)) == 0)
        inet_ntop(AF_INET, a + 12, out, GK_IP_BUF);
    else
        inet_ntop(AF_INET6, a, out, GK_IP_BUF);
}

/* Parses xff[start..end) trimmed of spaces as an address. */
static bool
parse_entry(const char *start, const char *end, uint8_t out[16])
{
    char buf[GK_IP_BUF];

    while (start < end && *start == ' ')
        start++;
    while (end > start && end[-1] == ' ')
        end--;
    if (end == start || (size_t)(end - start) >= sizeof(buf))
        return false;
    memcpy(buf, start, (size_t)(end - start));
    buf[end - start] = '\0';
    return gk_ip_parse(buf, out) == GK_OK;
}

void
gk_client_ip(const uint8_t peer[16], const char *xff, const struct gk_cidr *trusted, size_t n_trusted,
             char out[GK_IP_BUF])
{
    uint8_t client[16], hop[16];
    const char *end;

    memcpy(client, peer, 16);
    if (xff == NULL || !gk_cidr_match(trusted, n_trusted, peer)) {
        format_ip(client, out);
        return;
    }
    end = xff + strlen(xff);
    for (int hops = 0; hops < GK_XFF_HOPS_MAX && end > xff; hops++) {
        const char *start = end;

        while (start > xff && start[-1] != ',')
            start--;
        if (!parse_entry(start, end, hop))
            break;
        memcpy(client, hop, 16);
        if (!gk_cidr_match(trusted, n_trusted, hop))
            break;
        end = start > xff ? start - 1 : xff;
    }
    format_ip(client, out);
}
