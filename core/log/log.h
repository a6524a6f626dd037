/* SPDX-License-Identifier: Apache-2.0 */
/* Logging: one line per event, `ts=... level=... event=... key=value ...`. */
#ifndef BAIC_CORE_LOG_H
#define BAIC_CORE_LOG_H

#include <stdarg.h>
#include <stdio.h>

#include <baic/host.h>

/* Sets the threshold; lines above it are dropped. Default: BAIC_LOG_INFO, or
 * BAIC_LOG_LEVEL=error|warn|info|debug from the environment. */
void baic_log_set_level(baic_log_level_t level);
baic_log_level_t baic_log_get_level(void);
/* Parses "error", "warn", "info", "debug"; returns 0 or -EINVAL. */
int baic_log_parse_level(const char *s, baic_log_level_t *out);
/* Where lines go (default stderr). Not thread-safe against concurrent logging. */
void baic_log_set_stream(FILE *f);

/* Writes one line. fmt produces further `key=value` pairs or is NULL. Any thread. */
void baic_log(baic_log_level_t level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The same, with a `plugin=<source>` field after the level (source may be NULL). */
void baic_logv_src(baic_log_level_t level, const char *source, const char *event,
                   const char *fmt, va_list ap);

#define BAIC_LOG_E(ev, ...) baic_log(BAIC_LOG_ERROR, ev, __VA_ARGS__)
#define BAIC_LOG_W(ev, ...) baic_log(BAIC_LOG_WARN, ev, __VA_ARGS__)
#define BAIC_LOG_I(ev, ...) baic_log(BAIC_LOG_INFO, ev, __VA_ARGS__)
#define BAIC_LOG_D(ev, ...) baic_log(BAIC_LOG_DEBUG, ev, __VA_ARGS__)

#endif
