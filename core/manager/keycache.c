/* SPDX-License-Identifier: Apache-2.0 */
/* Keypair cache: signed requests must not cost a database round trip each. */
#include "manager.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <openssl/crypto.h>

#include "log/log.h"

#define NSLOTS 4096

typedef struct kc_entry {
    struct kc_entry *next;
    baic_keypair_t kp;
    int negative; /* the key does not exist: cached briefly to blunt key-guessing floods */
} kc_entry_t;

typedef struct kc_waiter {
    struct kc_waiter *next;
    baic_keycache_cb cb;
    void *arg;
} kc_waiter_t;

/* One database lookup in flight per key; later askers wait on it. */
typedef struct kc_fetch {
    struct kc_fetch *next;
    baic_keycache_t *c;
    char *access_key;
    kc_waiter_t *waiters;
    unsigned generation;
} kc_fetch_t;

struct baic_keycache {
    baic_manager_t *m;
    unsigned ttl_ms;
    kc_entry_t *slots[NSLOTS];
    kc_fetch_t *fetches;
    unsigned generation; /* bumped by invalidation so in-flight fetches do not re-cache stale rows */
};

static unsigned slot_of(const char *s) {
    unsigned h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h % NSLOTS;
}

static void kp_free(baic_keypair_t *kp) {
    free(kp->access_key);
    if (kp->secret_key) {
        /* Secrets do not linger in freed memory. */
        memset(kp->secret_key, 0, strlen(kp->secret_key));
        free(kp->secret_key);
    }
    free(kp->user_uuid);
    free(kp->email);
    free(kp->role);
    free(kp->domain);
    free(kp->status);
    OPENSSL_cleanse(&kp->kc, sizeof kp->kc);
}

int baic_keycache_new(baic_manager_t *m, unsigned ttl_ms, baic_keycache_t **out) {
    baic_keycache_t *c = calloc(1, sizeof *c);
    if (c == NULL)
        return -ENOMEM;
    c->m = m;
    c->ttl_ms = ttl_ms;
    *out = c;
    return 0;
}

void baic_keycache_drop(baic_keycache_t *c, const char *access_key) {
    c->generation++;
    for (unsigned i = 0; i < NSLOTS; i++) {
        if (access_key != NULL && i != slot_of(access_key))
            continue;
        kc_entry_t **pp = &c->slots[i];
        while (*pp) {
            kc_entry_t *e = *pp;
            if (access_key == NULL || strcmp(e->kp.access_key, access_key) == 0) {
                *pp = e->next;
                kp_free(&e->kp);
                free(e);
            } else {
                pp = &e->next;
            }
        }
    }
}

void baic_keycache_free(baic_keycache_t *c) {
    if (c == NULL)
        return;
    baic_keycache_drop(c, NULL);
    /* Fetches still in flight hold c; they are detached and free themselves. */
    for (kc_fetch_t *f = c->fetches; f; f = f->next)
        f->c = NULL;
    free(c);
}

static char *dupcol(const baic_db_result_t *r, const char *name) {
    int col = baic_db_result_col(r, name);
    if (col < 0 || baic_db_result_is_null(r, 0, col))
        return NULL;
    return strdup(baic_db_result_get(r, 0, col));
}

static void fetch_done(const baic_db_result_t *res, int err, const char *errmsg, void *arg) {
    kc_fetch_t *f = arg;
    baic_keycache_t *c = f->c;
    kc_entry_t *e = NULL;
    if (err != 0) {
        BAIC_LOG_W("keypair_lookup_failed", "error=\"%s\"", errmsg ? errmsg : "?");
    } else if ((e = calloc(1, sizeof *e)) != NULL) {
        if (baic_db_result_rows(res) == 0) {
            e->negative = 1;
            e->kp.access_key = strdup(f->access_key);
        } else {
            e->kp.access_key = dupcol(res, "access_key");
            e->kp.secret_key = dupcol(res, "secret_key");
            e->kp.user_uuid = dupcol(res, "user_uuid");
            e->kp.email = dupcol(res, "email");
            e->kp.role = dupcol(res, "role");
            e->kp.domain = dupcol(res, "domain_name");
            e->kp.status = dupcol(res, "status");
            const char *v = baic_db_result_get_by_name(res, 0, "is_active");
            e->kp.is_active = v && v[0] == 't';
            v = baic_db_result_get_by_name(res, 0, "is_admin");
            e->kp.is_admin = v && v[0] == 't';
            v = baic_db_result_get_by_name(res, 0, "rate_limit");
            e->kp.rate_limit = v ? atoll(v) : 0;
        }
        e->kp.loaded_ms = c ? uv_now(c->m->uv) : 0;
    }
    for (kc_waiter_t *w = f->waiters, *n; w; w = n) {
        n = w->next;
        if (err != 0)
            w->cb(NULL, err, w->arg);
        else if (e == NULL)
            w->cb(NULL, -ENOMEM, w->arg);
        else
            w->cb(e->negative ? NULL : &e->kp, 0, w->arg);
        free(w);
    }
    if (e != NULL) {
        if (c != NULL && f->generation == c->generation && e->kp.access_key != NULL) {
            unsigned s = slot_of(e->kp.access_key);
            e->next = c->slots[s];
            c->slots[s] = e;
        } else {
            kp_free(&e->kp);
            free(e);
        }
    }
    if (c != NULL) {
        kc_fetch_t **pp = &c->fetches;
        while (*pp && *pp != f)
            pp = &(*pp)->next;
        if (*pp)
            *pp = f->next;
    }
    free(f->access_key);
    free(f);
}

static const char *const KEYPAIR_SQL =
    "SELECT k.access_key, k.secret_key, k.is_active, k.is_admin, k.rate_limit,"
    " u.uuid::text AS user_uuid, u.email, u.role, u.domain_name, u.status"
    " FROM keypairs k JOIN users u ON u.uuid = k.\"user\" WHERE k.access_key = $1";

void baic_keycache_get(baic_keycache_t *c, const char *access_key, baic_keycache_cb cb,
                       void *arg) {
    unsigned s = slot_of(access_key);
    uint64_t now = uv_now(c->m->uv);
    kc_entry_t **pp = &c->slots[s];
    while (*pp) {
        kc_entry_t *e = *pp;
        if (strcmp(e->kp.access_key, access_key) == 0) {
            /* Negative entries live a fraction of the TTL so a new key works soon. */
            uint64_t ttl = e->negative ? c->ttl_ms / 10 : c->ttl_ms;
            if (now - e->kp.loaded_ms < ttl) {
                cb(e->negative ? NULL : &e->kp, 0, arg);
                return;
            }
            *pp = e->next;
            kp_free(&e->kp);
            free(e);
            break;
        }
        pp = &e->next;
    }
    kc_waiter_t *w = calloc(1, sizeof *w);
    if (w == NULL) {
        cb(NULL, -ENOMEM, arg);
        return;
    }
    w->cb = cb;
    w->arg = arg;
    for (kc_fetch_t *f = c->fetches; f; f = f->next) {
        if (strcmp(f->access_key, access_key) == 0) {
            w->next = f->waiters;
            f->waiters = w;
            return;
        }
    }
    kc_fetch_t *f = calloc(1, sizeof *f);
    if (f == NULL || (f->access_key = strdup(access_key)) == NULL) {
        free(f);
        free(w);
        cb(NULL, -ENOMEM, arg);
        return;
    }
    f->c = c;
    f->waiters = w;
    f->generation = c->generation;
    f->next = c->fetches;
    c->fetches = f;
    const char *params[1] = {access_key};
    int rc = baic_db_query(c->m->db, KEYPAIR_SQL, 1, params, fetch_done, f);
    if (rc != 0) {
        c->fetches = f->next;
        free(f->access_key);
        free(f);
        free(w);
        cb(NULL, rc, arg);
    }
}

static void published(redisReply *reply, int err, const char *errmsg, void *arg) {
    (void)errmsg;
    (void)reply;
    (void)arg;
    if (err != 0)
        BAIC_LOG_W("keypair_invalidate_publish_failed",
                   "hint=\"other managers drop the key when its cache entry expires\"");
}

void baic_keycache_invalidate(baic_keycache_t *c, const char *access_key) {
    baic_keycache_drop(c, access_key);
    const char *argv[3] = {"PUBLISH", BAIC_KEYCACHE_CHANNEL, access_key ? access_key : "*"};
    size_t lens[3] = {7, strlen(argv[1]), strlen(argv[2])};
    if (baic_redis_cmd_argv(c->m->redis, 3, argv, lens, published, NULL) != 0)
        published(NULL, -1, NULL, NULL);
}
