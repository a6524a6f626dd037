/* SPDX-License-Identifier: Apache-2.0 */
/* Resource slots: what the compute plugins offer, and the API's decimal strings for amounts. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "log/log.h"
#include "util/strerror.h"

/*
 * Parsed by hand rather than with strtod: amounts are exact fixed point, and a
 * double would turn "0.1" into 99999 units once scaled and truncated.
 */
int agent_slot_parse(const char *s, baic_slot_type_t type, int64_t *out) {
    int64_t scale = BAIC_SLOT_SCALE(type);
    int64_t whole = 0, frac = 0, fscale = 1;
    const char *p = s;
    if (p == NULL || *p == '\0')
        return BAIC_EBAD_INPUT;
    if (*p < '0' || *p > '9')
        return BAIC_EBAD_INPUT;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (whole > (INT64_MAX / 10 - 9) / scale)
            return BAIC_EBAD_INPUT;
        whole = whole * 10 + (*p - '0');
    }
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return BAIC_EBAD_INPUT;
        for (; *p >= '0' && *p <= '9'; p++) {
            /* Digits below the slot's resolution must be zero: "1.5" bytes is no amount. */
            if (fscale >= scale) {
                if (*p != '0')
                    return BAIC_EBAD_INPUT;
                continue;
            }
            frac = frac * 10 + (*p - '0');
            fscale *= 10;
        }
    }
    if (*p != '\0')
        return BAIC_EBAD_INPUT;
    *out = whole * scale + frac * (scale / fscale);
    return 0;
}

void agent_slot_format(int64_t v, baic_slot_type_t type, char *buf, size_t len) {
    int64_t scale = BAIC_SLOT_SCALE(type);
    if (scale == 1 || v % scale == 0) {
        snprintf(buf, len, "%" PRId64, v / scale);
        return;
    }
    char frac[16];
    snprintf(frac, sizeof frac, "%06" PRId64, (v < 0 ? -v : v) % scale);
    for (size_t n = strlen(frac); n > 0 && frac[n - 1] == '0'; n--)
        frac[n - 1] = '\0';
    snprintf(buf, len, "%s%" PRId64 ".%s", v < 0 ? "-" : "", (v < 0 ? -v : v) / scale, frac);
}

const agent_slot_t *agent_slot_find(const agent_t *a, const char *name) {
    for (size_t i = 0; i < a->nslots; i++)
        if (strcmp(a->slots[i].name, name) == 0)
            return &a->slots[i];
    return NULL;
}

static int slot_cmp(const void *x, const void *y) {
    return strcmp(((const agent_slot_t *)x)->name, ((const agent_slot_t *)y)->name);
}

int agent_slots_collect(agent_t *a) {
    size_t cap = 0;
    for (size_t p = 0; p < a->ncompute; p++) {
        const baic_compute_ops_t *ops = a->compute[p]->ops;
        const baic_slot_decl_t *const *decls = NULL;
        const baic_device_t *const *devs = NULL;
        size_t nd = 0, ndev = 0;
        int rc = ops->list_slots(a->compute[p]->state, &decls, &nd);
        if (rc == 0)
            rc = ops->list_devices(a->compute[p]->state, &devs, &ndev);
        if (rc != 0) {
            BAIC_LOG_E("slots_failed", "plugin=%s error=\"%s\"", a->compute[p]->id,
                       baic_strerror(rc));
            return rc;
        }
        for (size_t i = 0; i < nd; i++) {
            if (agent_slot_find(a, decls[i]->name) != NULL) {
                BAIC_LOG_E("slot_declared_twice", "slot=%s plugin=%s", decls[i]->name,
                           a->compute[p]->id);
                return BAIC_EBAD_INPUT;
            }
            if (a->nslots == cap) {
                cap = cap ? cap * 2 : 8;
                agent_slot_t *n = realloc(a->slots, cap * sizeof *n);
                if (n == NULL)
                    return -ENOMEM;
                a->slots = n;
            }
            agent_slot_t *s = &a->slots[a->nslots++];
            *s = (agent_slot_t){decls[i]->name, decls[i]->type, 0, p};
            for (size_t d = 0; d < ndev; d++)
                if (devs[d]->slot != NULL && strcmp(devs[d]->slot, s->name) == 0)
                    s->capacity += devs[d]->capacity;
            char v[32];
            agent_slot_format(s->capacity, s->type, v, sizeof v);
            BAIC_LOG_I("slot", "name=%s capacity=%s plugin=%s", s->name, v, a->compute[p]->id);
        }
    }
    qsort(a->slots, a->nslots, sizeof *a->slots, slot_cmp);
    return 0;
}
