/* SPDX-License-Identifier: Apache-2.0 */
/* Building container needs: comma-separated env lists and device nodes with cgroup rules. */
#include "compute_common.h"

#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

void compute_list_init(compute_list_t *l, char *buf, size_t cap) {
    *l = (compute_list_t){buf, cap, 0, 0};
    buf[0] = '\0';
}

int compute_list_add(compute_list_t *l, const char *fmt, ...) {
    if (l->len >= l->cap)
        return BAIC_EBAD_INPUT;
    if (l->items > 0)
        l->len += (size_t)snprintf(l->buf + l->len, l->cap - l->len, ",");
    if (l->len >= l->cap)
        return BAIC_EBAD_INPUT;
    va_list ap;
    va_start(ap, fmt);
    l->len += (size_t)vsnprintf(l->buf + l->len, l->cap - l->len, fmt, ap);
    va_end(ap);
    l->items++;
    return l->len >= l->cap ? BAIC_EBAD_INPUT : 0;
}

int compute_add_dev_node(const baic_needs_builder_t *b, const char *dev_root, const char *name,
                         int64_t major, int64_t minor) {
    char host_path[384], ctr_path[128];
    struct stat sb;
    snprintf(host_path, sizeof host_path, "%s/%s", dev_root, name);
    snprintf(ctr_path, sizeof ctr_path, "/dev/%s", name);
    if (stat(host_path, &sb) != 0)
        return 0;
    int rc = b->add_device(b->needs, host_path, ctr_path, "rwm");
    if (rc != 0)
        return rc;
    if (S_ISCHR(sb.st_mode)) {
        major = major(sb.st_rdev);
        minor = minor(sb.st_rdev);
    }
    return major < 0 ? 0 : b->add_cgroup_rule(b->needs, 'c', major, minor, "rwm");
}
