/* SPDX-License-Identifier: Apache-2.0 */
/* Metric store: families by name, series by label set, a hash for the hot path. */
#include "host/metrics.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define NBUCKETS 14
static const double default_le[NBUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                            0.1,    0.25,  0.5,    1,     2.5,  5,    10};

typedef struct series {
    struct series *hnext;    /* hash chain */
    struct series *fnext;    /* next series in the family */
    struct family *family;
    char *labels;
    uint64_t hash;
    double value;
    uint64_t count;
    uint64_t buckets[NBUCKETS]; /* cumulative at walk time, per-bucket while recording */
} series_t;

typedef struct family {
    struct family *next;
    char *name;
    char *help;
    baic_metric_type_t type;
    series_t *first, *last;
} family_t;

#define HSIZE 1024

struct baic_metrics {
    pthread_mutex_t lock;
    family_t *families, *last_family;
    series_t *table[HSIZE];
};

static uint64_t hash2(const char *a, const char *b) {
    uint64_t h = 1469598103934665603ull;
    for (; *a; a++)
        h = (h ^ (unsigned char)*a) * 1099511628211ull;
    h = (h ^ 0xff) * 1099511628211ull;
    for (; b && *b; b++)
        h = (h ^ (unsigned char)*b) * 1099511628211ull;
    return h;
}

int baic_metrics_new(baic_metrics_t **out) {
    baic_metrics_t *m = calloc(1, sizeof *m);
    if (m == NULL)
        return -ENOMEM;
    pthread_mutex_init(&m->lock, NULL);
    *out = m;
    return 0;
}

void baic_metrics_free(baic_metrics_t *m) {
    if (m == NULL)
        return;
    for (family_t *f = m->families, *fn; f; f = fn) {
        fn = f->next;
        for (series_t *s = f->first, *sn; s; s = sn) {
            sn = s->fnext;
            free(s->labels);
            free(s);
        }
        free(f->name);
        free(f->help);
        free(f);
    }
    pthread_mutex_destroy(&m->lock);
    free(m);
}

static int valid_metric_name(const char *s) {
    if (s == NULL || !(*s == '_' || *s == ':' || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')))
        return 0;
    for (s++; *s; s++)
        if (!(*s == '_' || *s == ':' || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              (*s >= '0' && *s <= '9')))
            return 0;
    return 1;
}

/* Finds or creates the series; called with the lock held. */
static int lookup(baic_metrics_t *m, const char *name, const char *help, const char *labels,
                  baic_metric_type_t type, series_t **out) {
    if (labels == NULL)
        labels = "";
    uint64_t h = hash2(name, labels);
    for (series_t *s = m->table[h % HSIZE]; s; s = s->hnext) {
        if (s->hash == h && strcmp(s->family->name, name) == 0 && strcmp(s->labels, labels) == 0) {
            if (s->family->type != type)
                return -EINVAL;
            *out = s;
            return 0;
        }
    }
    if (!valid_metric_name(name))
        return -EINVAL;
    family_t *f = m->families;
    while (f && strcmp(f->name, name) != 0)
        f = f->next;
    if (f == NULL) {
        if ((f = calloc(1, sizeof *f)) == NULL)
            return -ENOMEM;
        f->name = strdup(name);
        f->help = strdup(help ? help : name);
        if (f->name == NULL || f->help == NULL) {
            free(f->name);
            free(f->help);
            free(f);
            return -ENOMEM;
        }
        f->type = type;
        if (m->last_family)
            m->last_family->next = f;
        else
            m->families = f;
        m->last_family = f;
    } else if (f->type != type) {
        return -EINVAL;
    }
    series_t *s = calloc(1, sizeof *s);
    if (s == NULL || (s->labels = strdup(labels)) == NULL) {
        free(s);
        return -ENOMEM;
    }
    s->family = f;
    s->hash = h;
    s->hnext = m->table[h % HSIZE];
    m->table[h % HSIZE] = s;
    if (f->last)
        f->last->fnext = s;
    else
        f->first = s;
    f->last = s;
    *out = s;
    return 0;
}

static int record(baic_metrics_t *m, const char *name, const char *help, const char *labels,
                  baic_metric_type_t type, double v) {
    series_t *s;
    pthread_mutex_lock(&m->lock);
    int rc = lookup(m, name, help, labels, type, &s);
    if (rc == 0) {
        switch (type) {
        case BAIC_METRIC_COUNTER:
            if (v >= 0)
                s->value += v;
            else
                rc = -EINVAL;
            break;
        case BAIC_METRIC_GAUGE:
            s->value = v;
            break;
        case BAIC_METRIC_HISTOGRAM:
            s->value += v;
            s->count++;
            for (int i = 0; i < NBUCKETS; i++) {
                if (v <= default_le[i]) {
                    s->buckets[i]++;
                    break;
                }
            }
            break;
        }
    }
    pthread_mutex_unlock(&m->lock);
    return rc;
}

int baic_metrics_add(baic_metrics_t *m, const char *name, const char *help, const char *labels,
                     double delta) {
    return record(m, name, help, labels, BAIC_METRIC_COUNTER, delta);
}
int baic_metrics_set(baic_metrics_t *m, const char *name, const char *help, const char *labels,
                     double value) {
    return record(m, name, help, labels, BAIC_METRIC_GAUGE, value);
}
int baic_metrics_observe(baic_metrics_t *m, const char *name, const char *help,
                         const char *labels, double value) {
    return record(m, name, help, labels, BAIC_METRIC_HISTOGRAM, value);
}

void baic_metrics_walk(baic_metrics_t *m, baic_metric_walk_cb cb, void *arg) {
    pthread_mutex_lock(&m->lock);
    for (family_t *f = m->families; f; f = f->next) {
        for (series_t *s = f->first; s; s = s->fnext) {
            uint64_t cum[NBUCKETS];
            uint64_t acc = 0;
            for (int i = 0; i < NBUCKETS; i++)
                cum[i] = (acc += s->buckets[i]);
            baic_metric_sample_t smp = {
                .name = f->name,
                .help = f->help,
                .type = f->type,
                .labels = s->labels,
                .value = s->value,
                .count = s->count,
                .nbuckets = f->type == BAIC_METRIC_HISTOGRAM ? NBUCKETS : 0,
                .bucket_le = default_le,
                .bucket_count = cum,
            };
            cb(&smp, arg);
        }
    }
    pthread_mutex_unlock(&m->lock);
}

double baic_metrics_value(baic_metrics_t *m, const char *name, const char *labels) {
    double v = 0;
    uint64_t h = hash2(name, labels ? labels : "");
    pthread_mutex_lock(&m->lock);
    for (series_t *s = m->table[h % HSIZE]; s; s = s->hnext)
        if (s->hash == h && strcmp(s->family->name, name) == 0 &&
            strcmp(s->labels, labels ? labels : "") == 0)
            v = s->value;
    pthread_mutex_unlock(&m->lock);
    return v;
}
