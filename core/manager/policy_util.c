/* SPDX-License-Identifier: Apache-2.0 */
/* Pure helpers of the scheduling policies: limit fits, start times, dependency states. */
#include "policy.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int baic_policy_fits(const baic_slots_t *limit, int unlimited_default, const baic_slots_t *used,
                     const baic_slots_t *need, const char **slot) {
    for (size_t i = 0; need != NULL && i < need->count; i++) {
        const char *name = need->v[i].name;
        int64_t want = need->v[i].value, lim, u;
        if (want <= 0)
            continue;
        if (baic_slots_get(limit, name, &lim) != 0) {
            if (unlimited_default)
                continue;
            lim = 0;
        }
        if (lim < 0)
            continue;
        baic_slots_get(used, name, &u);
        if (u < 0)
            u = 0;
        if (u > lim || want > lim - u) {
            if (slot)
                *slot = name;
            return 0;
        }
    }
    return 1;
}

int baic_policy_parse_duration(const char *text, int64_t *out_ms) {
    if (text == NULL)
        return -1;
    const char *s = text;
    while (*s == ' ')
        s++;
    if (*s == '\0')
        return -1;
    int64_t total = 0;
    int parts = 0;
    while (*s != '\0' && *s != ' ') {
        if (!isdigit((unsigned char)*s))
            return -1;
        int64_t v = 0;
        int digits = 0;
        for (; isdigit((unsigned char)*s); s++) {
            if (++digits > 9)
                return -1;
            v = v * 10 + (*s - '0');
        }
        int64_t unit;
        switch (*s) {
        case 'w': unit = 7 * 86400000LL; s++; break;
        case 'd': unit = 86400000LL; s++; break;
        case 'h': unit = 3600000LL; s++; break;
        case 'm': unit = 60000LL; s++; break;
        case 's': unit = 1000LL; s++; break;
        case '\0':
        case ' ':
            if (parts > 0)
                return -1; /* "1h30" is ambiguous */
            unit = 1000LL;
            break;
        default:
            return -1;
        }
        total += v * unit;
        if (total > 366 * 86400000LL)
            return -1;
        parts++;
    }
    while (*s == ' ')
        s++;
    if (*s != '\0')
        return -1;
    *out_ms = total;
    return 0;
}

static int digits(const char **p, int n, int *out) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i]))
            return -1;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

static int parse_iso(const char *s, int64_t *out_ms) {
    struct tm tm = {0};
    int y, mo, d, h = 0, mi = 0, sec = 0, ms = 0;
    if (digits(&s, 4, &y) || *s++ != '-' || digits(&s, 2, &mo) || *s++ != '-' ||
        digits(&s, 2, &d))
        return -1;
    if (*s == 'T' || *s == 't' || *s == ' ') {
        s++;
        if (digits(&s, 2, &h) || *s++ != ':' || digits(&s, 2, &mi))
            return -1;
        if (*s == ':') {
            s++;
            if (digits(&s, 2, &sec))
                return -1;
            if (*s == '.' || *s == ',') {
                s++;
                if (!isdigit((unsigned char)*s))
                    return -1;
                int scale = 100;
                for (; isdigit((unsigned char)*s); s++) {
                    ms += (*s - '0') * scale;
                    scale /= 10;
                }
            }
        }
    }
    int64_t off_min = 0;
    if (*s == 'Z' || *s == 'z') {
        s++;
    } else if (*s == '+' || *s == '-') {
        int sign = *s++ == '-' ? -1 : 1, oh, om = 0;
        if (digits(&s, 2, &oh))
            return -1;
        if (*s == ':')
            s++;
        if (isdigit((unsigned char)*s) && digits(&s, 2, &om))
            return -1;
        if (oh > 23 || om > 59)
            return -1;
        off_min = sign * (oh * 60 + om);
    }
    if (*s != '\0')
        return -1;
    if (y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 ||
        sec > 60)
        return -1;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    time_t t = timegm(&tm);
    /* timegm normalises 31 February into March: refuse dates that moved. */
    struct tm back;
    if (gmtime_r(&t, &back) == NULL || back.tm_mday != d || back.tm_mon != mo - 1)
        return -1;
    *out_ms = (int64_t)t * 1000 + ms - off_min * 60000;
    return 0;
}

int baic_policy_parse_starts_at(const char *text, int64_t now_ms, int64_t *out_ms) {
    if (text == NULL || strlen(text) > 64)
        return -1;
    int64_t d;
    if (baic_policy_parse_duration(text, &d) == 0) {
        *out_ms = now_ms + d;
        return 0;
    }
    return parse_iso(text, out_ms);
}

void baic_policy_format_iso(int64_t ms, char *buf, size_t n) {
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL) {
        snprintf(buf, n, "1970-01-01T00:00:00.000Z");
        return;
    }
    char day[32];
    strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, n, "%s.%03dZ", day, (int)(ms % 1000));
}

static void append(char *buf, size_t n, const char *name, const char *id) {
    if (buf == NULL || n == 0)
        return;
    size_t len = strlen(buf);
    if (len >= n - 1)
        return;
    snprintf(buf + len, n - len, "%s%s (%s)", len ? ", " : "", name ? name : "", id ? id : "");
}

int baic_policy_deps_state(const json_t *deps, char *which, size_t n) {
    char wait[512] = "", failed[512] = "";
    int nwait = 0, nfailed = 0;
    size_t i;
    json_t *d;
    json_array_foreach(deps, i, d) {
        const char *id = json_string_value(json_array_get(d, 0));
        const char *name = json_string_value(json_array_get(d, 1));
        const char *st = json_string_value(json_array_get(d, 2));
        const char *res = json_string_value(json_array_get(d, 3));
        if (st == NULL)
            continue;
        int final = strcmp(st, "TERMINATED") == 0 || strcmp(st, "ERROR") == 0 ||
                    strcmp(st, "CANCELLED") == 0;
        if (!final) {
            append(wait, sizeof wait, name, id);
            nwait++;
        } else if (strcmp(st, "TERMINATED") != 0 || res == NULL || strcmp(res, "SUCCESS") != 0) {
            append(failed, sizeof failed, name, id);
            nfailed++;
        }
    }
    int state = nfailed ? BAIC_DEPS_FAILED : nwait ? BAIC_DEPS_WAIT : BAIC_DEPS_READY;
    if (which && n) {
        int w = snprintf(which, n, "%s", nfailed ? failed : wait);
        (void)w;
    }
    return state;
}
