/* SPDX-License-Identifier: Apache-2.0 */
/* Allocation records kept by compute plugins: creation, release and the live list. */
#include "compute_common.h"

#include <string.h>

int compute_alloc_new(const baic_host_t *host, size_t size, size_t max_parts,
                      const char *kernel_id, compute_alloc_t **out) {
    compute_alloc_t *a = host->calloc(1, size);
    if (a == NULL)
        return UV_ENOMEM;
    a->parts = host->calloc(max_parts + 1, sizeof *a->parts);
    a->kernel_id = compute_strdup(host, kernel_id ? kernel_id : "");
    if (a->parts == NULL || a->kernel_id == NULL) {
        compute_alloc_release(host, a);
        return UV_ENOMEM;
    }
    a->pub.size = sizeof a->pub;
    a->pub.kernel_id = a->kernel_id;
    a->pub.parts = a->parts;
    a->pub.priv = a;
    *out = a;
    return 0;
}

void compute_alloc_release(const baic_host_t *host, compute_alloc_t *a) {
    host->free(a->parts);
    host->free(a->kernel_id);
    host->free(a);
}

void compute_alloc_link(compute_alloc_t **list, compute_alloc_t *a, baic_compute_alloc_t **out) {
    a->next = *list;
    *list = a;
    *out = &a->pub;
}

compute_alloc_t *compute_alloc_unlink(compute_alloc_t **list, const baic_compute_alloc_t *pub) {
    for (compute_alloc_t **pp = list; *pp != NULL; pp = &(*pp)->next) {
        compute_alloc_t *a = *pp;
        if (&a->pub == pub) {
            *pp = a->next;
            return a;
        }
    }
    return NULL;
}

int compute_device_allowed(const baic_compute_request_t *req, const char *id, const char *alt) {
    if (req->device_ids == NULL)
        return 1;
    for (size_t i = 0; i < req->n_device_ids; i++) {
        const char *want = req->device_ids[i];
        if (want != NULL &&
            (strcmp(want, id) == 0 || (alt != NULL && alt[0] && strcmp(want, alt) == 0)))
            return 1;
    }
    return 0;
}
