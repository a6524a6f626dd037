/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target for the TOML config reader: parse untrusted bytes, dump what parses. */

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[256];
    json_t *root = NULL;
    /* Copy so ASan sees the exact extent: the parser must never read past len. */
    char *text = malloc(size ? size : 1);
    if (!text)
        return 0;
    if (size)
        memcpy(text, data, size);
    int rc = baic_config_parse_string(text, size, "<fuzz>", &root, err, sizeof(err));
    free(text);
    if (rc == 0) {
        char *dump = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
        free(dump);
        /* Lookups walk the same tree with paths taken from the input's own keys. */
        const char *key;
        json_t *v;
        json_object_foreach(root, key, v) {
            const char *s;
            long long n;
            int b;
            baic_config_get_string(root, key, NULL, &s, err, sizeof(err));
            baic_config_get_int(root, key, 0, &n, err, sizeof(err));
            baic_config_get_bool(root, key, 0, &b, err, sizeof(err));
        }
        json_decref(root);
    } else if (root != NULL || strncmp(err, "<fuzz>", 6) != 0) {
        abort(); /* an error must clear out and name its source */
    }
    return 0;
}
