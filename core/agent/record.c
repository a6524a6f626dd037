/* SPDX-License-Identifier: Apache-2.0 */
/* Kernel records on disk (data_dir/kernels/<id>.json), the agent's memory across its own restarts. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "log/log.h"
#include "util/strerror.h"

static int mkdir_p(const char *path) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0700) != 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(buf, 0700) != 0 && errno != EEXIST)
        return -errno;
    return 0;
}

int agent_record_dirs(agent_t *a) {
    char p[4096];
    int rc;
    snprintf(p, sizeof p, "%s/kernels", a->data_dir);
    if ((rc = mkdir_p(p)) != 0)
        return rc;
    snprintf(p, sizeof p, "%s/bundles", a->data_dir);
    return mkdir_p(p);
}

void agent_bundle_path(const agent_t *a, const char *id, char *buf, size_t len) {
    snprintf(buf, len, "%s/bundles/%s", a->data_dir, id);
}

static void record_path(const agent_t *a, const char *id, const char *suffix, char *buf,
                        size_t len) {
    snprintf(buf, len, "%s/kernels/%s.json%s", a->data_dir, id, suffix);
}

/*
 * Written with a temporary file and rename, so a kill at any instant leaves the old
 * or the new record, never half of one. No fsync: the records must survive the
 * agent's death, which the page cache covers; a host crash takes the containers too.
 */
int agent_record_save(agent_kernel_t *k) {
    agent_t *a = k->a;
    json_t *allocs = json_object();
    for (size_t p = 0; p < a->ncompute; p++) {
        const baic_compute_ops_t *ops = a->compute[p]->ops;
        json_t *desc = NULL;
        if (k->allocs[p] == NULL)
            continue;
        if (ops->alloc_to_json == NULL ||
            ops->alloc_to_json(a->compute[p]->state, k->allocs[p], &desc) != 0)
            desc = json_null(); /* recovery allocates the requested slots again */
        json_object_set_new(allocs, a->compute[p]->id, desc);
    }
    json_t *rec = json_pack("{s:s, s:s, s:s, s:s, s:O, s:o, s:b, s:b, s:b}", "kernel_id", k->id,
                            "session_id", k->session_id, "image", k->image, "status",
                            agent_kstate_name(k->state), "resource_slots", k->slots, "allocs",
                            allocs, "created", k->created, "runner", k->use_runner,
                            "started", k->started_sent);
    if (rec != NULL && k->create != NULL)
        json_object_set(rec, "create", k->create); /* restart after an agent restart */
    if (rec == NULL)
        return -ENOMEM;
    char path[4096], tmp[4200];
    record_path(a, k->id, "", path, sizeof path);
    record_path(a, k->id, ".tmp", tmp, sizeof tmp);
    int rc = json_dump_file(rec, tmp, JSON_COMPACT) == 0 ? 0 : -EIO;
    json_decref(rec);
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -errno;
    if (rc != 0)
        BAIC_LOG_E("record_write_failed", "kernel=%s path=%s error=\"%s\"", k->id, path,
                   baic_strerror(rc));
    return rc;
}

void agent_record_remove(agent_t *a, const char *id) {
    char path[4096];
    record_path(a, id, "", path, sizeof path);
    if (unlink(path) != 0 && errno != ENOENT)
        BAIC_LOG_W("record_remove_failed", "kernel=%s error=\"%s\"", id, baic_strerror(-errno));
    agent_runner_dir_remove(a, id);
    agent_bundle_path(a, id, path, sizeof path);
    rmdir(path); /* the runtime emptied it; a non-empty one is kept for inspection */
}

json_t *agent_record_load_all(agent_t *a) {
    char dir[4096], path[4400];
    json_t *all = json_object();
    snprintf(dir, sizeof dir, "%s/kernels", a->data_dir);
    DIR *d = opendir(dir);
    if (d == NULL)
        return all;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (n > 4 && strcmp(e->d_name + n - 4, ".tmp") == 0) {
            unlink(path); /* a write the agent died in the middle of */
            continue;
        }
        if (n <= 5 || strcmp(e->d_name + n - 5, ".json") != 0)
            continue;
        json_error_t jerr;
        json_t *rec = json_load_file(path, 0, &jerr);
        const char *id = json_string_value(json_object_get(rec, "kernel_id"));
        if (rec == NULL || id == NULL ||
            !json_is_string(json_object_get(rec, "session_id")) ||
            strncmp(e->d_name, id, n - 5) != 0 || strlen(id) != n - 5) {
            BAIC_LOG_E("record_unreadable", "path=%s msg=\"%s\"", path,
                       rec ? "fields missing" : jerr.text);
            json_decref(rec);
            unlink(path);
            continue;
        }
        json_object_set_new(all, id, rec);
    }
    closedir(d);
    return all;
}
