/* SPDX-License-Identifier: Apache-2.0 */
/* storage/nfs: option checks, the mount command line and the health state machine (no I/O here). */
#include <stdio.h>
#include <string.h>

#include <baic/errors.h>

#include "nfs_logic.h"

static int host_ok(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n >= 256 || s[0] == '-')
        return 0;
    if (s[0] == '[') { /* an IPv6 literal */
        if (s[n - 1] != ']' || n < 3)
            return 0;
        for (size_t i = 1; i + 1 < n; i++)
            if (!strchr("0123456789abcdefABCDEF:.", s[i]))
                return 0;
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-'))
            return 0;
    }
    return 1;
}

static int export_ok(const char *s) {
    if (s[0] != '/' || strlen(s) >= 1024)
        return 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p <= ' ' || *p == ',' || *p == 0x7f)
            return 0;
    return 1;
}

static int options_ok(const char *s) {
    if (s[0] == '-' || strlen(s) >= 512)
        return 0;
    for (const char *p = s; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              strchr("=,._:-", c)))
            return 0;
    }
    return 1;
}

static int get_ms(const json_t *conf, const char *key, int64_t def, int64_t *out, char *err,
                  size_t errlen) {
    const json_t *v = json_object_get(conf, key);
    *out = def;
    if (v == NULL)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 100 || json_integer_value(v) > 3600000) {
        snprintf(err, errlen, "%s must be an integer from 100 to 3600000 (milliseconds)", key);
        return BAIC_ECONFIG_TYPE;
    }
    *out = json_integer_value(v);
    return 0;
}

int nfs_conf_parse(const json_t *conf, nfs_conf_t *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    const json_t *sv = json_object_get(conf, "server");
    const json_t *ev = json_object_get(conf, "export");
    const json_t *ov = json_object_get(conf, "mount_options");
    if (sv != NULL && !json_is_string(sv)) {
        snprintf(err, errlen, "server must be a string (a host name or an address)");
        return BAIC_ECONFIG_TYPE;
    }
    if (sv != NULL) {
        const char *s = json_string_value(sv);
        if (!host_ok(s)) {
            snprintf(err, errlen, "server \"%.64s\" is not a host name or an address", s);
            return BAIC_ECONFIG_TYPE;
        }
        if (ev == NULL) {
            snprintf(err, errlen, "export (the path the server exports) is required with server");
            return BAIC_ECONFIG_MISSING;
        }
        if (!json_is_string(ev) || !export_ok(json_string_value(ev))) {
            snprintf(err, errlen, "export must be an absolute path without spaces or commas");
            return BAIC_ECONFIG_TYPE;
        }
        snprintf(out->server, sizeof out->server, "%s", s);
        snprintf(out->export_path, sizeof out->export_path, "%s", json_string_value(ev));
        int n = snprintf(out->source, sizeof out->source, "%s:%s", out->server, out->export_path);
        if (n < 0 || (size_t)n >= sizeof out->source) {
            snprintf(err, errlen, "server:export is too long");
            return BAIC_ECONFIG_TYPE;
        }
    } else if (ev != NULL) {
        snprintf(err, errlen, "export needs server");
        return BAIC_ECONFIG_MISSING;
    }
    if (ov != NULL && (!json_is_string(ov) || !options_ok(json_string_value(ov)))) {
        snprintf(err, errlen, "mount_options must be a comma-separated list of name[=value]");
        return BAIC_ECONFIG_TYPE;
    }
    snprintf(out->options, sizeof out->options, "%s",
             ov != NULL ? json_string_value(ov) : NFS_DEFAULT_OPTIONS);
    int rc = get_ms(conf, "health_interval_ms", NFS_DEFAULT_HEALTH_INTERVAL_MS,
                    &out->health_interval_ms, err, errlen);
    if (rc == 0)
        rc = get_ms(conf, "health_timeout_ms", NFS_DEFAULT_HEALTH_TIMEOUT_MS,
                    &out->health_timeout_ms, err, errlen);
    if (rc == 0)
        rc = get_ms(conf, "mount_timeout_ms", NFS_DEFAULT_MOUNT_TIMEOUT_MS, &out->mount_timeout_ms,
                    err, errlen);
    return rc;
}

void nfs_mount_argv(const nfs_conf_t *c, const char *path, const char *argv[8]) {
    argv[0] = "mount";
    argv[1] = "-t";
    argv[2] = "nfs";
    argv[3] = "-o";
    argv[4] = c->options;
    argv[5] = c->source;
    argv[6] = path;
    argv[7] = NULL;
}

int nfs_health_tick(nfs_health_t *h, int64_t now_ms, int64_t timeout_ms) {
    if (!h->inflight)
        return 1;
    if (now_ms - h->started_ms > timeout_ms && h->healthy) {
        h->healthy = 0;
        snprintf(h->reason, sizeof h->reason,
                 "statfs of the mount did not answer within %lld ms (NFS server unreachable?)",
                 (long long)timeout_ms);
    }
    return 0;
}

void nfs_health_started(nfs_health_t *h, int64_t now_ms) {
    h->inflight = 1;
    h->started_ms = now_ms;
}

void nfs_health_result(nfs_health_t *h, int rc, unsigned long fstype) {
    h->inflight = 0;
    if (rc != 0) {
        h->healthy = 0;
        snprintf(h->reason, sizeof h->reason, "statfs of the mount failed: %s", strerror(-rc));
    } else if (fstype != NFS_SUPER_MAGIC_) {
        h->healthy = 0;
        snprintf(h->reason, sizeof h->reason, "the mount point is no longer an NFS mount");
    } else {
        h->healthy = 1;
        h->reason[0] = '\0';
    }
}
