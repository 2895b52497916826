/* SPDX-License-Identifier: MIT */
/*
 * fuzz -- what every libFuzzer target under tests/fuzz/ shares: the entry points libFuzzer
 * calls, a check that stays on in fuzz builds (a failed one is a crash libFuzzer reports and
 * saves), and a NUL-terminated copy of the input (header values and bodies reach the parsers as
 * C strings). Each target is one fuzz_<name>.c; `make fuzz` builds and runs them.
 */
#ifndef GK_FUZZ_H
#define GK_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gk/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FUZZ_CHECK(c)                                                                                        \
    do {                                                                                                     \
        if (!(c)) {                                                                                          \
            fprintf(stderr, "fuzz check failed: %s at %s:%d\n", #c, __FILE__, __LINE__);                     \
            abort();                                                                                         \
        }                                                                                                    \
    } while (0)

/* data[0..size) followed by a NUL, in a buffer of exactly size + 1 bytes (so ASan sees any read
 * past the terminator). Caller frees. Bytes after an embedded NUL are simply not seen. */
static inline char *
fuzz_cstr(const uint8_t *data, size_t size)
{
    char *s = gk_xmalloc(size + 1);

    if (size > 0)
        memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

#endif
