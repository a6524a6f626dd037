/* SPDX-License-Identifier: Apache-2.0 */
/* scheduler/drf: dominant resource fairness between access keys in a resource group. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <baic/host.h>
#include <baic/scheduler.h>

#include "../sched_common.h"

typedef struct drf_state {
    const baic_host_t *host;
} drf_state_t;

/* A share as an exact fraction num/den (den > 0), so ties are real ties. */
typedef struct drf_share {
    int64_t num, den;
} drf_share_t;

/* -1, 0, 1 as a < b, a == b, a > b. Products fit in 128 bits. */
static int drf_share_cmp(drf_share_t a, drf_share_t b) {
    __int128 l = (__int128)a.num * b.den;
    __int128 r = (__int128)b.num * a.den;
    return l < r ? -1 : l > r ? 1 : 0;
}

static const baic_slots_t *drf_occupancy(const baic_sched_context_t *ctx, const char *key) {
    for (size_t i = 0; i < ctx->n_keypairs; i++) /* the host's pointers, mostly the same */
        if (ctx->keypairs[i]->access_key == key)
            return &ctx->keypairs[i]->occupied;
    for (size_t i = 0; i < ctx->n_keypairs; i++)
        if (key != NULL && strcmp(ctx->keypairs[i]->access_key, key) == 0)
            return &ctx->keypairs[i]->occupied;
    return NULL;
}

/*
 * The dominant share the session's access key would have if the session ran:
 * max over the group's slots of (held by the key + requested) / capacity.
 */
static drf_share_t drf_dominant_share(const baic_sched_context_t *ctx,
                                      const baic_sched_session_t *s) {
    const baic_slots_t *held = drf_occupancy(ctx, s->access_key);
    drf_share_t best = {0, 1};
    for (size_t i = 0; i < ctx->capacity.count; i++) {
        const baic_slot_t *cap = &ctx->capacity.v[i];
        if (cap->value <= 0)
            continue;
        int64_t h, r;
        baic_slots_get(held, cap->name, &h);
        baic_slots_get(&s->requested, cap->name, &r);
        drf_share_t sh = {h + r, cap->value};
        if (drf_share_cmp(sh, best) > 0)
            best = sh;
    }
    return best;
}

/*
 * Within one pick a candidate's fit and share depend only on its access key and request,
 * and a page holds few distinct pairs (sizes x keys) among thousands of candidates: each
 * pair is computed once per pick. Open addressing; when full, the rest is computed.
 */
#define DRF_MEMO 256

typedef struct drf_memo {
    const char *access_key; /* NULL: empty */
    const baic_slots_t *req;
    int fits;
    drf_share_t share;
} drf_memo_t;

static int drf_same_request(const baic_slots_t *a, const baic_slots_t *b) {
    if (a->count != b->count)
        return 0;
    for (size_t i = 0; i < a->count; i++)
        if (a->v[i].value != b->v[i].value ||
            (a->v[i].name != b->v[i].name && strcmp(a->v[i].name, b->v[i].name) != 0))
            return 0;
    return 1;
}

static drf_memo_t *drf_memo_find(drf_memo_t *m, const baic_sched_session_t *s) {
    uint64_t h = (uint64_t)(uintptr_t)s->access_key * 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < s->requested.count; i++)
        h = (h ^ (uint64_t)s->requested.v[i].value) * 0x100000001b3ull;
    for (size_t k = 0; k < DRF_MEMO; k++) {
        drf_memo_t *e = &m[(h + k) % DRF_MEMO];
        if (e->access_key == NULL || (e->access_key == s->access_key &&
                                      drf_same_request(e->req, &s->requested)))
            return e;
    }
    return NULL;
}

static int drf_init(const baic_host_t *host, const json_t *conf, void **state) {
    drf_state_t *st = host->calloc(1, sizeof *st);
    if (st == NULL)
        return UV_ENOMEM;
    st->host = host;
    *state = st;
    return 0;
}

static void drf_fini(void *state) {
    drf_state_t *st = state;
    st->host->free(st);
}

/* Among sessions that fit: highest priority, then lowest dominant share, then the
 * earliest enqueued (the walk is in that order and only a strictly lower share wins). */
static int drf_pick(void *state, const baic_sched_context_t *ctx,
                    const baic_sched_session_t *const *cands, size_t n, size_t *picked) {
    drf_state_t *st = state;
    sched_ref_t *refs;
    *picked = BAIC_SCHED_NONE;
    int rc = sched_sorted(cands, n, sched_cmp_oldest, sched_queue_ordered(ctx), &refs);
    if (rc != 0)
        return rc;
    const baic_sched_session_t *best = NULL;
    drf_share_t best_share = {0, 1};
    drf_memo_t memo[DRF_MEMO] = {{0}};
    for (size_t i = 0; i < n; i++) {
        const baic_sched_session_t *s = sched_at(cands, refs, i);
        if (s->flags & BAIC_SCHED_CAND_TRIED)
            continue;
        drf_memo_t *e = s->access_key ? drf_memo_find(memo, s) : NULL;
        if (e != NULL && e->access_key == NULL) {
            e->access_key = s->access_key;
            e->req = &s->requested;
            e->fits = sched_can_start(ctx, s) == 0;
            e->share = e->fits ? drf_dominant_share(ctx, s) : (drf_share_t){0, 1};
        }
        if (e != NULL ? !e->fits : sched_can_start(ctx, s) != 0)
            continue;
        if (best != NULL && s->priority < best->priority)
            break; /* sorted: every later candidate has lower priority */
        drf_share_t sh = e != NULL ? e->share : drf_dominant_share(ctx, s);
        if (best == NULL || drf_share_cmp(sh, best_share) < 0) {
            best = s;
            best_share = sh;
            *picked = sched_index(refs, i);
        }
    }
    if (best != NULL)
        st->host->log(st->host, BAIC_LOG_DEBUG, "picked", "session=%s access_key=%s share=%.6f",
                      best->id, best->access_key,
                      (double)best_share.num / (double)best_share.den);
    free(refs);
    return 0;
}

static const baic_scheduler_ops_t drf_ops = {
    .pick = drf_pick,
};

BAIC_PLUGIN_DEFINE(scheduler, drf, "1.0.0", drf_init, drf_fini, &drf_ops)
