/* SPDX-License-Identifier: MIT */
/*
 * fuzz_clientip -- X-Forwarded-For through gk_client_ip, as the queue handlers call it.
 * Input: one byte choosing the socket peer (from a few trusted and untrusted addresses, IPv4,
 * IPv6 and IPv4-mapped), then the header value (cut at a NUL, as MHD hands it over). The trusted
 * networks are fixed, as TRUSTED_PROXIES would give them. Checks: the answer is always a
 * canonical address that parses back; an untrusted peer is always the answer, whatever the
 * header says; and the answer is the peer or one of the header's entries.
 */
#include <arpa/inet.h>

#include "fuzz/fuzz.h"
#include "gk/clientip.h"

static const char *const trusted_text[] = {"10.0.0.0/8", "192.168.1.0/24",  "127.0.0.1",
                                           "fd00::/8",   "2001:db8:1::/48", "::1/128"};
static const char *const peers[] = {
    "10.1.2.3",    "127.0.0.1",     "192.168.1.77",    "fd12::5",        "::1",         "2001:db8:1::9",
    "203.0.113.9", "2001:db8:2::1", "::ffff:10.9.9.9", "::ffff:8.8.8.8", "192.168.2.1", "0.0.0.0"};
static struct gk_cidr trusted[GK_ARRAY_LEN(trusted_text)];

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    for (size_t i = 0; i < GK_ARRAY_LEN(trusted_text); i++)
        FUZZ_CHECK(gk_cidr_parse(trusted_text[i], &trusted[i]) == GK_OK);
    return 0;
}

/* True when the address text out is one of xff's comma-separated entries (spaces trimmed), in
 * the same canonical form. */
static bool
in_header(const char *xff, const uint8_t addr[16])
{
    char item[GK_IP_BUF];
    uint8_t a[16];

    for (const char *p = xff; *p != '\0';) {
        size_t len = strcspn(p, ","), b = 0, e = len;

        while (b < e && p[b] == ' ')
            b++;
        while (e > b && p[e - 1] == ' ')
            e--;
        if (e - b < sizeof(item)) {
            memcpy(item, p + b, e - b);
            item[e - b] = '\0';
            if (gk_ip_parse(item, a) == GK_OK && memcmp(a, addr, 16) == 0)
                return true;
        }
        p += len + (p[len] == ',');
    }
    return false;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t peer[16], got[16];
    char out[GK_IP_BUF], *xff;

    if (size == 0)
        return 0;
    FUZZ_CHECK(gk_ip_parse(peers[data[0] % GK_ARRAY_LEN(peers)], peer) == GK_OK);
    xff = fuzz_cstr(data + 1, size - 1);
    memset(out, 'X', sizeof(out));
    gk_client_ip(peer, (data[0] & 0x80) ? NULL : xff, trusted, GK_ARRAY_LEN(trusted), out);
    FUZZ_CHECK(memchr(out, '\0', sizeof(out)) != NULL);
    FUZZ_CHECK(gk_ip_parse(out, got) == GK_OK);
    if (!gk_cidr_match(trusted, GK_ARRAY_LEN(trusted), peer) || (data[0] & 0x80))
        FUZZ_CHECK(memcmp(got, peer, 16) == 0);
    else
        FUZZ_CHECK(memcmp(got, peer, 16) == 0 || in_header(xff, got));
    free(xff);
    return 0;
}
