/* SPDX-License-Identifier: Apache-2.0 */
/* Decimal slot amounts ("0.25", 2) to and from fixed-point slot units, exactly. */
#include "compute_common.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

int compute_parse_amount(const json_t *v, int64_t scale, int64_t *out) {
    char buf[64];
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i < 0 || i > INT64_MAX / scale)
            return BAIC_EBAD_INPUT;
        *out = (int64_t)i * scale;
        return 0;
    }
    if (json_is_real(v))
        snprintf(buf, sizeof buf, "%.6f", json_real_value(v));
    else if (json_is_string(v))
        snprintf(buf, sizeof buf, "%s", json_string_value(v));
    else
        return BAIC_EBAD_INPUT;
    /* Whole and fraction parsed apart, so "0.1" is exactly a tenth of scale. */
    const char *p = buf;
    int64_t whole = 0, frac = 0, step = scale;
    if (*p < '0' || *p > '9')
        return BAIC_EBAD_INPUT;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (whole > (INT64_MAX / scale - 9) / 10)
            return BAIC_EBAD_INPUT;
        whole = whole * 10 + (*p - '0');
    }
    if (*p == '.') {
        for (p++; *p >= '0' && *p <= '9'; p++) {
            step /= 10;
            if (step == 0 && *p != '0')
                return BAIC_EBAD_INPUT; /* finer than the slot's resolution */
            frac += (*p - '0') * step;
        }
    }
    if (*p != '\0')
        return BAIC_EBAD_INPUT;
    *out = whole * scale + frac;
    return 0;
}

void compute_format_amount(int64_t v, int64_t scale, char *buf, size_t len) {
    int64_t whole = v / scale, frac = v % scale;
    if (frac == 0) {
        snprintf(buf, len, "%" PRId64, whole);
        return;
    }
    char fr[24];
    snprintf(fr, sizeof fr, "%06" PRId64, frac);
    for (size_t n = strlen(fr); n > 0 && fr[n - 1] == '0'; n--)
        fr[n - 1] = '\0';
    snprintf(buf, len, "%" PRId64 ".%s", whole, fr);
}

int compute_conf_fail(const baic_host_t *host, const char *key, const char *why) {
    host->log(host, BAIC_LOG_ERROR, "bad_config", "key=%s reason=\"%s\"", key, why);
    return BAIC_ECONFIG_TYPE;
}

char *compute_strdup(const baic_host_t *host, const char *s) {
    size_t n = strlen(s) + 1;
    char *p = host->alloc(n);
    if (p != NULL)
        memcpy(p, s, n);
    return p;
}

json_t *compute_parts_to_json(const baic_compute_alloc_t *alloc, int64_t scale) {
    json_t *per = json_object();
    for (size_t i = 0; per != NULL && i < alloc->n_parts; i++) {
        char amt[32];
        compute_format_amount(alloc->parts[i].amount, scale, amt, sizeof amt);
        if (json_object_set_new(per, alloc->parts[i].device_id, json_string(amt)) != 0) {
            json_decref(per);
            per = NULL;
        }
    }
    return per;
}

int compute_slot_parts_to_json(const char *slot, const baic_compute_alloc_t *alloc,
                               int64_t scale, json_t **out) {
    json_t *per = compute_parts_to_json(alloc, scale), *root = json_object();
    if (per == NULL || root == NULL) {
        json_decref(per);
        json_decref(root);
        return UV_ENOMEM;
    }
    if (json_object_set_new(root, slot, per) != 0) { /* takes per even when it fails */
        json_decref(root);
        return UV_ENOMEM;
    }
    *out = root;
    return 0;
}
