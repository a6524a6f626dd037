/* SPDX-License-Identifier: Apache-2.0 */
/* A process-wide metric store (counters, gauges, histograms) that monitor plugins walk. */
#ifndef BAIC_CORE_METRICS_H
#define BAIC_CORE_METRICS_H

#include <baic/host.h>

typedef struct baic_metrics baic_metrics_t;

int baic_metrics_new(baic_metrics_t **out);
void baic_metrics_free(baic_metrics_t *m);

/*
 * Record a sample. name must match [a-zA-Z_:][a-zA-Z0-9_:]*; labels is a rendered
 * label set without braces or NULL. The first use of a name fixes type and help;
 * a later use with another type returns -EINVAL. Thread-safe.
 */
int baic_metrics_add(baic_metrics_t *m, const char *name, const char *help, const char *labels,
                     double delta);
int baic_metrics_set(baic_metrics_t *m, const char *name, const char *help, const char *labels,
                     double value);
int baic_metrics_observe(baic_metrics_t *m, const char *name, const char *help,
                         const char *labels, double value);
/* Visits every series, grouped by name in first-use order. Thread-safe (holds the lock). */
void baic_metrics_walk(baic_metrics_t *m, baic_metric_walk_cb cb, void *arg);
/* Current value of a counter or gauge (histogram: sum), or 0 when absent. */
double baic_metrics_value(baic_metrics_t *m, const char *name, const char *labels);

#endif
