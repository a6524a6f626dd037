/* SPDX-License-Identifier: Apache-2.0 */
/* One key=value line per event, written with a single write so lines never interleave. */
#include "log/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static int log_level = -1;
static FILE *log_stream;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

int baic_log_parse_level(const char *s, baic_log_level_t *out) {
    for (int i = 0; i < 4; i++) {
        if (s != NULL && strcmp(s, level_names[i]) == 0) {
            *out = (baic_log_level_t)i;
            return 0;
        }
    }
    return -EINVAL;
}

baic_log_level_t baic_log_get_level(void) {
    if (log_level < 0) {
        baic_log_level_t l = BAIC_LOG_INFO;
        (void)baic_log_parse_level(getenv("BAIC_LOG_LEVEL"), &l);
        log_level = (int)l;
    }
    return (baic_log_level_t)log_level;
}

void baic_log_set_level(baic_log_level_t level) { log_level = (int)level; }
void baic_log_set_stream(FILE *f) { log_stream = f; }

void baic_logv_src(baic_log_level_t level, const char *source, const char *event,
                   const char *fmt, va_list ap) {
    if ((int)level > (int)baic_log_get_level())
        return;
    char line[4096];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, (long)(tv.tv_usec / 1000),
                     level_names[(unsigned)level < 4 ? level : 3]);
    if (source != NULL && n < (int)sizeof line)
        n += snprintf(line + n, sizeof line - (size_t)n, " plugin=%s", source);
    if (n < (int)sizeof line)
        n += snprintf(line + n, sizeof line - (size_t)n, " event=%s", event ? event : "-");
    if (fmt != NULL && *fmt != '\0' && n < (int)sizeof line - 1) {
        line[n++] = ' ';
        n += vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    }
    if (n >= (int)sizeof line - 1)
        n = (int)sizeof line - 2;
    line[n++] = '\n';
    FILE *f = log_stream ? log_stream : stderr;
    fflush(f);
    ssize_t w = write(fileno(f), line, (size_t)n);
    (void)w;
}

void baic_log(baic_log_level_t level, const char *event, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    baic_logv_src(level, NULL, event, fmt, ap);
    va_end(ap);
}
