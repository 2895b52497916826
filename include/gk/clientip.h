/* SPDX-License-Identifier: MIT */
/*
 * clientip -- which address a request is from, for per-IP rate limits.
 * The socket peer, unless the peer is a trusted proxy (TRUSTED_PROXIES): then X-Forwarded-For is
 * read from the right, skipping trusted proxies, and the first untrusted entry is the client.
 * Pure code, thread-safe.
 */
#ifndef GK_CLIENTIP_H
#define GK_CLIENTIP_H

#include <stddef.h>
#include <stdint.h>

#include "gk/config.h"

#define GK_IP_BUF 48       /* the longest IPv6 text and NUL */
#define GK_XFF_HOPS_MAX 32 /* entries read from the right; a longer chain is cut there */

/* Writes the client address as canonical text (IPv4 dotted, IPv6 compressed) into out
 * (GK_IP_BUF bytes). xff may be NULL. When all entries are trusted, the left-most is the client;
 * an entry that is not an address ends the walk at the last trusted hop before it. */
void gk_client_ip(const uint8_t peer[16], const char *xff, const struct gk_cidr *trusted, size_t n_trusted,
                  char out[GK_IP_BUF]);

#endif
