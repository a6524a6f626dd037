/* SPDX-License-Identifier: Apache-2.0 */
/* Resource slot vectors ("cpu", "mem", "cuda.shares", ...) shared by every kind header. */
#ifndef BAIC_SLOTS_H
#define BAIC_SLOTS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "errors.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * How a slot counts, as in GET /config/resource-slots:
 *   COUNT   a quantity of things ("cpu", "cuda.device", "cuda.shares"); may be
 *           fractional when the declaring plugin says so
 *   BYTES   an amount of memory ("mem", "cuda.mem")
 *   UNIQUE  a named thing that is either held or not (one per kernel)
 */
typedef enum baic_slot_type {
    BAIC_SLOT_COUNT = 0,
    BAIC_SLOT_BYTES = 1,
    BAIC_SLOT_UNIQUE = 2,
} baic_slot_type_t;

/*
 * Values are exact integers, never floating point, so "0.5" + "0.25" + "0.25" is 1
 * and a device is never over- or under-booked by rounding:
 *   COUNT and UNIQUE slots: fixed point, BAIC_SLOT_UNIT per whole unit
 *                           ("0.5" cuda.shares = 500000, "4" cpu = 4000000);
 *   BYTES slots:            plain bytes ("1073741824" mem = 1073741824).
 * Bytes are not scaled because 1e-6 units would overflow int64 at 9.2 TB, which a
 * resource group's summed memory can pass. Comparisons and sums of one slot never
 * mix scales (a slot name has one type), so plugins that only add, subtract, compare
 * and divide values of the same slot need not care; only parsing and printing the
 * API's decimal strings does, which the host does.
 */
#define BAIC_SLOT_UNIT INT64_C(1000000)
#define BAIC_SLOT_SCALE(type) ((type) == BAIC_SLOT_BYTES ? INT64_C(1) : BAIC_SLOT_UNIT)

/* One slot amount. name is borrowed from whoever built the vector. */
typedef struct baic_slot {
    const char *name;
    int64_t value;
} baic_slot_t;

/*
 * A slot vector: count entries, names unique. A name that is absent means 0. The
 * host hands vectors over sorted by strcmp of name; plugins must not rely on
 * order in vectors built by other plugins. Borrowed for the duration of a call
 * unless an op says otherwise.
 */
typedef struct baic_slots {
    const baic_slot_t *v;
    size_t count;
} baic_slots_t;

/* Looks up name: *out = its value, or 0 when absent. Returns 0, or BAIC_ENOT_FOUND
 * when the vector has no such entry (*out is still set to 0). The host passes the
 * same pointer for a name in all the vectors of one call, so a pointer match is
 * tried before the string compare. */
static inline int baic_slots_get(const baic_slots_t *s, const char *name, int64_t *out) {
    for (size_t i = 0; s != NULL && i < s->count; i++) {
        if (s->v[i].name == name || strcmp(s->v[i].name, name) == 0) {
            *out = s->v[i].value;
            return 0;
        }
    }
    *out = 0;
    return BAIC_ENOT_FOUND;
}

/*
 * Whether need fits beside used within capacity: for every slot in need with a
 * positive value, used + need <= capacity (absent = 0; used may be NULL).
 * Returns 0 when it fits, BAIC_ENO_RESOURCES when some slot does not.
 */
static inline int baic_slots_fit(const baic_slots_t *need, const baic_slots_t *capacity,
                                 const baic_slots_t *used) {
    for (size_t i = 0; need != NULL && i < need->count; i++) {
        int64_t cap, u;
        if (need->v[i].value <= 0)
            continue;
        baic_slots_get(capacity, need->v[i].name, &cap);
        baic_slots_get(used, need->v[i].name, &u);
        if (u > cap || need->v[i].value > cap - u)
            return BAIC_ENO_RESOURCES;
    }
    return 0;
}

#ifdef __cplusplus
}
#endif

#endif /* BAIC_SLOTS_H */
