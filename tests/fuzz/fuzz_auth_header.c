/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: the Authorization header, date, Content-Type and version parsers. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Compiled in rather than taken from libbaic-core: only this file gets libFuzzer's coverage
 * instrumentation, and a parser the fuzzer cannot see into is fuzzed blind. */
#include "../../core/auth/sign.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* Exact-size heap copies so ASan sees any read past the given length. */
    char *buf = malloc(size ? size : 1);
    if (buf == NULL)
        return 0;
    memcpy(buf, data, size);

    baic_auth_hdr_t h;
    if (baic_auth_parse_header(buf, size, &h) == 0) {
        /* What parsed must be usable as C strings and a known hash. */
        if (!baic_auth_hash_supported(h.hash) || strlen(h.access_key) == 0 ||
            strlen(h.signature) == 0 || h.reason != NULL)
            abort();
    } else if (h.reason == NULL) {
        abort();
    }

    int64_t t, us;
    int off;
    if (baic_auth_parse_date(buf, size, &t, &off) == 0) {
        char ymd[9];
        if (off <= -24 * 60 || off >= 24 * 60)
            abort();
        if (baic_auth_parse_date_us(buf, size, &us, &off) != 0 ||
            t != us / 1000000 - (us % 1000000 < 0))
            abort();
        /* The local date of any accepted time is representable (years 1..9999 with the
         * offset applied may step one day outside; that must fail cleanly). */
        (void)baic_auth_date_yyyymmdd(t, off, ymd);
    }

    /* NUL-terminated users of the same bytes. */
    char *z = malloc(size + 1);
    if (z != NULL) {
        memcpy(z, data, size);
        z[size] = '\0';
        char mime[64];
        (void)baic_auth_content_mime(z, mime, sizeof(mime));
        (void)baic_auth_version_parse(z, NULL, NULL);
        (void)baic_auth_version_supported(z);
        baic_auth_fail_t why;
        (void)baic_auth_check_date(z, 1726403696789LL, &why);
        free(z);
    }
    free(buf);
    return 0;
}
