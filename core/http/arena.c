/* SPDX-License-Identifier: Apache-2.0 */
/* Request arenas: bump allocation in pooled blocks so a request costs no malloc. */
#include <stdlib.h>
#include <string.h>

#include "http/internal.h"

#define ALIGN16(n) (((n) + 15) & ~(size_t)15)

http_block_t *http_block_get(http_blockpool_t *p) {
    http_block_t *b;
    if (p != NULL && p->free != NULL) {
        b = p->free;
        p->free = b->next;
        p->nfree--;
    } else {
        b = malloc(sizeof(*b) + BAIC_HTTP_BLOCK_SIZE);
        if (b == NULL)
            return NULL;
        b->size = BAIC_HTTP_BLOCK_SIZE;
    }
    b->next = NULL;
    b->used = 0;
    return b;
}

static void block_put(http_blockpool_t *p, http_block_t *b) {
    /* Keep a bounded number around: enough for the working set of a busy server,
     * without holding memory forever after a burst. */
    if (p != NULL && p->nfree < BAIC_HTTP_POOL_MAX) {
        b->next = p->free;
        p->free = b;
        p->nfree++;
    } else {
        free(b);
    }
}

void *http_arena_alloc(http_arena_t *a, size_t n) {
    n = ALIGN16(n ? n : 1);
    if (n > BAIC_HTTP_BLOCK_SIZE / 4) {
        /* Large allocations (bodies) get their own block so they don't waste the rest
         * of a standard one. */
        http_block_t *b = malloc(sizeof(*b) + n);
        if (b == NULL)
            return NULL;
        b->size = n;
        b->used = n;
        b->next = a->big;
        a->big = b;
        return b->data;
    }
    http_block_t *b = a->cur;
    if (b == NULL || b->size - b->used < n) {
        b = http_block_get(a->pool);
        if (b == NULL)
            return NULL;
        b->next = a->cur;
        a->cur = b;
    }
    void *p = b->data + b->used;
    b->used += n;
    return p;
}

int http_arena_append(http_arena_t *a, char **buf, size_t *len, size_t *cap, const char *data,
                      size_t n) {
    if (*buf == NULL || *len + n + 1 > *cap) {
        size_t ncap = *cap ? *cap : 64;
        while (ncap < *len + n + 1)
            ncap *= 2;
        char *nb = http_arena_alloc(a, ncap);
        if (nb == NULL)
            return UV_ENOMEM;
        if (*len)
            memcpy(nb, *buf, *len);
        *buf = nb;
        *cap = ncap;
    }
    memcpy(*buf + *len, data, n);
    *len += n;
    (*buf)[*len] = '\0';
    return 0;
}

void http_arena_free(http_arena_t *a) {
    http_block_t *b, *next;
    for (b = a->big; b != NULL; b = next) {
        next = b->next;
        free(b);
    }
    for (b = a->cur; b != NULL; b = next) {
        next = b->next;
        block_put(a->pool, b);
    }
    a->cur = a->big = NULL;
}

void http_blockpool_drain(http_blockpool_t *p) {
    http_block_t *b, *next;
    for (b = p->free; b != NULL; b = next) {
        next = b->next;
        free(b);
    }
    p->free = NULL;
    p->nfree = 0;
}
