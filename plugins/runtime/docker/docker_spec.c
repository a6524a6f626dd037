/* SPDX-License-Identifier: Apache-2.0 */
/* runtime/docker: turns a baic container spec into the body of POST /containers/create. */
#include <inttypes.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>
#include <uv.h>

#include "docker.h"

/* A path that Binds' "src:dst:mode" syntax can carry unambiguously. */
static int dk_bind_path_ok(const char *p) {
    return p != NULL && p[0] == '/' && strchr(p, ':') == NULL && strchr(p, ',') == NULL;
}

static json_t *dk_strv(const char *const *v, size_t from) {
    json_t *a = json_array();
    for (size_t i = from; a != NULL && v != NULL && v[i] != NULL; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

static json_t *dk_labels(const baic_container_spec_t *spec, char *why, size_t whylen) {
    json_t *l = json_object();
    json_t *order = json_array();
    for (size_t i = 0; spec->labels != NULL && spec->labels[i] != NULL; i++) {
        const char *kv = spec->labels[i];
        const char *eq = strchr(kv, '=');
        if (eq == NULL || eq == kv || strncmp(kv, DK_LABEL_MANAGED, strlen(DK_LABEL_MANAGED)) == 0) {
            snprintf(why, whylen, "label %.64s: key=value without the reserved prefix expected", kv);
            json_decref(l);
            json_decref(order);
            return NULL;
        }
        char key[256];
        size_t kl = (size_t)(eq - kv);
        if (kl >= sizeof key) {
            snprintf(why, whylen, "label key too long");
            json_decref(l);
            json_decref(order);
            return NULL;
        }
        memcpy(key, kv, kl);
        key[kl] = '\0';
        json_object_set_new(l, key, json_string(eq + 1));
        json_array_append_new(order, json_string(kv));
    }
    char *ord = json_dumps(order, JSON_COMPACT);
    json_decref(order);
    if (ord == NULL) {
        json_decref(l);
        return NULL;
    }
    json_object_set_new(l, DK_LABEL_MANAGED, json_string("1"));
    json_object_set_new(l, DK_LABEL_KERNEL, json_string(spec->id));
    json_object_set_new(l, DK_LABEL_SPEC, json_string(ord));
    free(ord);
    return l;
}

/* Binds for bind mounts, Tmpfs for tmpfs; anything else is refused. */
static int dk_mounts(const baic_container_spec_t *spec, json_t *hc, char *why, size_t whylen) {
    json_t *binds = json_array(), *tmpfs = json_object();
    for (size_t i = 0; i < spec->n_mounts; i++) {
        const baic_rt_mount_t *m = spec->mounts[i];
        if (m == NULL || m->target == NULL || m->target[0] != '/' || m->type == NULL) {
            snprintf(why, whylen, "mount %zu: absolute target and a type needed", i);
            goto fail;
        }
        if (strcmp(m->type, "bind") == 0) {
            if (!dk_bind_path_ok(m->source) || !dk_bind_path_ok(m->target)) {
                snprintf(why, whylen, "mount %.200s: absolute paths without ':' or ',' needed",
                         m->target);
                goto fail;
            }
            char b[8192];
            int k = snprintf(b, sizeof b, "%s:%s:%s", m->source, m->target, m->readonly ? "ro" : "rw");
            if (k < 0 || (size_t)k >= sizeof b) {
                snprintf(why, whylen, "mount paths too long");
                goto fail;
            }
            json_array_append_new(binds, json_string(b));
        } else if (strcmp(m->type, "tmpfs") == 0) {
            char o[1024];
            int k = snprintf(o, sizeof o, "%s%s%s", m->readonly ? "ro" : "",
                             m->readonly && m->options != NULL && m->options[0] ? "," : "",
                             m->options != NULL ? m->options : "");
            if (k < 0 || (size_t)k >= sizeof o) {
                snprintf(why, whylen, "tmpfs options too long");
                goto fail;
            }
            json_object_set_new(tmpfs, m->target, json_string(o));
        } else {
            snprintf(why, whylen, "mount %.200s: type %.32s not supported", m->target, m->type);
            goto fail;
        }
    }
    json_object_set_new(hc, "Binds", binds);
    json_object_set_new(hc, "Tmpfs", tmpfs);
    return 0;
fail:
    json_decref(binds);
    json_decref(tmpfs);
    return BAIC_EBAD_INPUT;
}

static int dk_devices(const baic_container_spec_t *spec, json_t *hc, char *why, size_t whylen) {
    json_t *devs = json_array(), *rules = json_array();
    for (size_t i = 0; i < spec->n_devices; i++) {
        const baic_rt_device_t *d = spec->devices[i];
        if (d == NULL || d->host_path == NULL || d->host_path[0] != '/') {
            snprintf(why, whylen, "device %zu: absolute host path needed", i);
            goto fail;
        }
        json_array_append_new(
            devs, json_pack("{s:s, s:s, s:s}", "PathOnHost", d->host_path, "PathInContainer",
                            d->container_path != NULL ? d->container_path : d->host_path,
                            "CgroupPermissions", d->access != NULL ? d->access : "rwm"));
    }
    for (size_t i = 0; i < spec->n_cgroup_rules; i++) {
        const baic_rt_cgroup_rule_t *r = spec->cgroup_rules[i];
        if (r == NULL || (r->type != 'c' && r->type != 'b')) {
            snprintf(why, whylen, "cgroup rule %zu: type c or b needed", i);
            goto fail;
        }
        char maj[24] = "*", min[24] = "*", rule[96];
        if (r->major >= 0)
            snprintf(maj, sizeof maj, "%" PRId64, r->major);
        if (r->minor >= 0)
            snprintf(min, sizeof min, "%" PRId64, r->minor);
        int k = snprintf(rule, sizeof rule, "%c %s:%s %.8s", r->type, maj, min,
                         r->access != NULL ? r->access : "rwm");
        if (k < 0 || (size_t)k >= sizeof rule)
            goto fail;
        json_array_append_new(rules, json_string(rule));
    }
    json_object_set_new(hc, "Devices", devs);
    json_object_set_new(hc, "DeviceCgroupRules", rules);
    return 0;
fail:
    json_decref(devs);
    json_decref(rules);
    return BAIC_EBAD_INPUT;
}

char *dk_spec_build(const dk_conf_t *c, const baic_container_spec_t *spec, int *err, char *why,
                    size_t whylen) {
    *err = BAIC_EBAD_INPUT;
    const char *mode;
    switch (spec->net_mode) {
    case BAIC_RT_NET_PRIVATE:
        mode = c->private_network;
        break;
    case BAIC_RT_NET_NONE:
        mode = "none";
        break;
    case BAIC_RT_NET_HOST:
        mode = "host";
        break;
    default:
        /* Docker joins only another container's namespace, never a path. */
        snprintf(why, whylen, "net_mode %d not supported by docker", (int)spec->net_mode);
        return NULL;
    }
    if (spec->memory_bytes < 0 || spec->shm_bytes < 0 || spec->pids_max < 0 || spec->cpu_limit < 0) {
        snprintf(why, whylen, "negative limit");
        return NULL;
    }
    json_t *labels = dk_labels(spec, why, whylen);
    if (labels == NULL)
        return NULL;
    json_t *caps = json_array();
    for (size_t i = 0; i < c->n_cap_add; i++)
        json_array_append_new(caps, json_string(c->cap_add[i]));
    json_t *hc = json_pack("{s:s, s:[s], s:o, s:[s], s:b}", "NetworkMode", mode, "CapDrop", "ALL",
                           "CapAdd", caps, "SecurityOpt", "no-new-privileges", "ReadonlyRootfs",
                           spec->readonly_rootfs != 0);
    char user[32];
    snprintf(user, sizeof user, "%" PRIu32 ":%" PRIu32, spec->uid, spec->gid);
    /* The image's entrypoint must not wrap the kernel runner: argv runs as given. */
    json_t *body = json_pack("{s:s, s:[s], s:o, s:o, s:s, s:o, s:b, s:b, s:b, s:b}", "Image",
                             spec->image, "Entrypoint", spec->argv[0], "Cmd", dk_strv(spec->argv, 1),
                             "Env", dk_strv(spec->env, 0), "User", user, "Labels", labels,
                             "AttachStdin", 0, "AttachStdout", 0, "AttachStderr", 0, "Tty", 0);
    if (hc == NULL || body == NULL) {
        json_decref(hc);
        json_decref(body);
        *err = UV_ENOMEM;
        return NULL;
    }
    if (spec->cwd != NULL)
        json_object_set_new(body, "WorkingDir", json_string(spec->cwd));
    if (spec->hostname != NULL)
        json_object_set_new(body, "Hostname", json_string(spec->hostname));
    if (spec->memory_bytes > 0) {
        json_object_set_new(hc, "Memory", json_integer(spec->memory_bytes));
        /* Equal to Memory: no swap on top of the limit. */
        json_object_set_new(hc, "MemorySwap", json_integer(spec->memory_bytes));
    }
    if (spec->cpu_limit > 0)
        json_object_set_new(hc, "NanoCpus", json_integer(spec->cpu_limit * 1000));
    if (spec->cpuset != NULL && spec->cpuset[0] != '\0')
        json_object_set_new(hc, "CpusetCpus", json_string(spec->cpuset));
    if (spec->pids_max > 0)
        json_object_set_new(hc, "PidsLimit", json_integer(spec->pids_max));
    if (spec->shm_bytes > 0)
        json_object_set_new(hc, "ShmSize", json_integer(spec->shm_bytes));
    if (spec->n_extra_gids > 0) {
        json_t *g = json_array();
        for (size_t i = 0; i < spec->n_extra_gids; i++) {
            char s[16];
            snprintf(s, sizeof s, "%" PRIu32, spec->extra_gids[i]);
            json_array_append_new(g, json_string(s));
        }
        json_object_set_new(hc, "GroupAdd", g);
    }
    if (dk_mounts(spec, hc, why, whylen) != 0 || dk_devices(spec, hc, why, whylen) != 0) {
        json_decref(hc);
        json_decref(body);
        return NULL;
    }
    json_object_set_new(body, "HostConfig", hc);
    char *s = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (s == NULL)
        *err = UV_ENOMEM;
    return s;
}
