/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers the in-tree schedulers share: candidate ordering and the group-level fit test. */
#ifndef BAIC_PLUGINS_SCHED_COMMON_H
#define BAIC_PLUGINS_SCHED_COMMON_H

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <baic/scheduler.h>

typedef struct sched_ref {
    const baic_sched_session_t *s;
    size_t index; /* into the host's candidate array */
} sched_ref_t;

/* Higher priority first, then older enqueue time, then creation time, then id. */
static inline int sched_cmp_oldest(const void *a, const void *b) {
    const baic_sched_session_t *x = ((const sched_ref_t *)a)->s;
    const baic_sched_session_t *y = ((const sched_ref_t *)b)->s;
    if (x->priority != y->priority)
        return x->priority > y->priority ? -1 : 1;
    if (x->enqueued_at_ms != y->enqueued_at_ms)
        return x->enqueued_at_ms < y->enqueued_at_ms ? -1 : 1;
    if (x->created_at_ms != y->created_at_ms)
        return x->created_at_ms < y->created_at_ms ? -1 : 1;
    return strcmp(x->id ? x->id : "", y->id ? y->id : "");
}

/* Higher priority first, then newest enqueue time first. */
static inline int sched_cmp_newest(const void *a, const void *b) {
    const baic_sched_session_t *x = ((const sched_ref_t *)a)->s;
    const baic_sched_session_t *y = ((const sched_ref_t *)b)->s;
    if (x->priority != y->priority)
        return x->priority > y->priority ? -1 : 1;
    if (x->enqueued_at_ms != y->enqueued_at_ms)
        return x->enqueued_at_ms > y->enqueued_at_ms ? -1 : 1;
    if (x->created_at_ms != y->created_at_ms)
        return x->created_at_ms > y->created_at_ms ? -1 : 1;
    return strcmp(y->id ? y->id : "", x->id ? x->id : "");
}

/* Whether the host promises cands in queue order (ABI 1.3; an older host does not). */
static inline int sched_queue_ordered(const baic_sched_context_t *ctx) {
    return ctx->size >= offsetof(baic_sched_context_t, queue_order) + sizeof ctx->queue_order &&
           ctx->queue_order;
}

/* Sorted references to the candidates; *out is malloc'd, or NULL when n == 0 or when
 * ordered says the host gave them in sched_cmp_oldest's order (sched_queue_ordered) and
 * that is the order asked for: then cands is the order (sched_at, sched_index). */
static inline int sched_sorted(const baic_sched_session_t *const *cands, size_t n,
                               int (*cmp)(const void *, const void *), int ordered,
                               sched_ref_t **out) {
    *out = NULL;
    if (n == 0 || (ordered && cmp == sched_cmp_oldest))
        return 0;
    sched_ref_t *refs = malloc(n * sizeof *refs);
    if (refs == NULL)
        return UV_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        refs[i].s = cands[i];
        refs[i].index = i;
    }
    /* The host usually hands them over in this order already (one check, no sort). */
    size_t i = 1;
    while (i < n && cmp(&refs[i - 1], &refs[i]) <= 0)
        i++;
    if (i < n)
        qsort(refs, n, sizeof *refs, cmp);
    *out = refs;
    return 0;
}

/* The i-th candidate in the order sched_sorted gave, and its index into cands. */
static inline const baic_sched_session_t *sched_at(const baic_sched_session_t *const *cands,
                                                   const sched_ref_t *refs, size_t i) {
    return refs != NULL ? refs[i].s : cands[i];
}

static inline size_t sched_index(const sched_ref_t *refs, size_t i) {
    return refs != NULL ? refs[i].index : i;
}

/* 0 when s could run on the group's free slots now and was not tried in this pass. */
static inline int sched_can_start(const baic_sched_context_t *ctx, const baic_sched_session_t *s) {
    if (s->flags & BAIC_SCHED_CAND_TRIED)
        return BAIC_ENO_RESOURCES;
    return baic_slots_fit(&s->requested, &ctx->capacity, &ctx->occupied);
}

#endif
