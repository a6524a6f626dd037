/* SPDX-License-Identifier: Apache-2.0 */
/* runtime/oci: the image store: pull with skopeo, unpack once per image with umoci, share the rootfs. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "oci.h"

/*
 * Store layout under image_dir:
 *   oci/               one OCI image layout holding every pulled image, tagged by key
 *   rootfs/<key>/      umoci's bundle of the image; rootfs/<key>/rootfs is the lower dir
 *                      every kernel of that image shares read-only through its overlay
 * A finished unpack is renamed into place, so a half-unpacked image is never used and a
 * crash mid-pull leaves only a *.tmp that the next pull replaces.
 */

typedef struct img_waiter {
    oci_image_cb cb;
    void *arg;
    struct img_waiter *next;
} img_waiter_t;

typedef struct img_pull {
    oci_image_store_t *store;
    char ref[1024];
    char key[256];
    char rootfs[OCI_PATH_MAX];
    int phase;              /* 0 pulling, 1 unpacking */
    int status;
    char err[512];
    uint64_t t0_ms;
    int64_t pull_ms, unpack_ms;
    img_waiter_t *waiters;
    struct img_pull *next;
} img_pull_t;

struct oci_image_store {
    const baic_host_t *host;
    const oci_conf_t *conf;
    img_pull_t *pulls;      /* in flight; loop thread only */
};

static uint64_t img_now(const oci_image_store_t *s) {
    if (BAIC_HOST_HAS(s->host, now_ms))
        return s->host->now_ms(s->host);
    return (uint64_t)oci_wall_ms();
}

/* A tag-safe name for ref: the OCI layout only allows [A-Za-z0-9._-] in tags. */
static void img_key(const char *ref, char *key, size_t n) {
    size_t k = 0;
    for (const char *p = ref; *p != '\0' && k + 1 < n; p++) {
        char ch = *p;
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                 ch == '.' || ch == '-';
        key[k++] = ok ? ch : '_';
    }
    key[k] = '\0';
}

/* Plain HTTP for loopback registries (the local docker-registry) or when configured. */
static int img_insecure(const oci_conf_t *c, const char *ref) {
    if (c->registry_insecure)
        return 1;
    return strncmp(ref, "127.", 4) == 0 || strncmp(ref, "localhost", 9) == 0 ||
           strncmp(ref, "[::1]", 5) == 0;
}

int oci_image_store_new(const baic_host_t *host, const oci_conf_t *conf,
                        oci_image_store_t **out) {
    oci_image_store_t *s = host->calloc(1, sizeof *s);
    if (s == NULL)
        return UV_ENOMEM;
    s->host = host;
    s->conf = conf;
    *out = s;
    return 0;
}

void oci_image_store_free(oci_image_store_t *s) {
    if (s == NULL)
        return;
    /* Pulls still in flight own their record until their work completes. */
    for (img_pull_t *p = s->pulls; p != NULL; p = p->next)
        p->store = NULL;
    s->host->free(s);
}

static void img_publish(img_pull_t *p, const char *phase) {
    oci_image_store_t *s = p->store;
    json_t *body = json_pack("{s:s, s:s, s:I}", "image", p->ref, "phase", phase, "elapsed_ms",
                             (json_int_t)(img_now(s) - p->t0_ms));
    if (p->status != 0)
        json_object_set_new(body, "error", json_string(p->err));
    s->host->event_publish(s->host, "image_pull", body);
    json_decref(body);
}

static void img_pull_work(void *arg) {
    img_pull_t *p = arg;
    const oci_conf_t *c = p->store->conf;
    char layout[OCI_PATH_MAX], src[1200], dst[OCI_PATH_MAX + 300];
    int st = 0;
    int64_t t0 = oci_wall_ms();
    snprintf(layout, sizeof layout, "%s/oci", c->image_dir);
    if ((p->status = oci_mkdirs(layout, 0700)) != 0) {
        snprintf(p->err, sizeof p->err, "mkdir %s: %s", layout, strerror(-p->status));
        return;
    }
    snprintf(src, sizeof src, "docker://%s", p->ref);
    snprintf(dst, sizeof dst, "oci:%s:%s", layout, p->key);
    const char *argv[] = {c->skopeo, "copy", "--quiet",
                          img_insecure(c, p->ref) ? "--src-tls-verify=false" : "--src-tls-verify=true",
                          src, dst, NULL};
    p->status = oci_proc_run(argv, p->err, sizeof p->err, -1, 30 * 60 * 1000, &st);
    if (p->status == 0 && st != 0)
        p->status = BAIC_EBACKEND;
    p->pull_ms = oci_wall_ms() - t0;
}

static void img_unpack_work(void *arg) {
    img_pull_t *p = arg;
    const oci_conf_t *c = p->store->conf;
    char image[OCI_PATH_MAX + 300], tmp[OCI_PATH_MAX], fin[OCI_PATH_MAX];
    int st = 0;
    int64_t t0 = oci_wall_ms();
    snprintf(image, sizeof image, "%s/oci:%s", c->image_dir, p->key);
    snprintf(tmp, sizeof tmp, "%s/rootfs/%s.tmp", c->image_dir, p->key);
    snprintf(fin, sizeof fin, "%s/rootfs/%s", c->image_dir, p->key);
    oci_rmtree(tmp);
    snprintf(p->rootfs, sizeof p->rootfs, "%s/rootfs", c->image_dir);
    if ((p->status = oci_mkdirs(p->rootfs, 0700)) != 0) {
        snprintf(p->err, sizeof p->err, "mkdir %s: %s", p->rootfs, strerror(-p->status));
        return;
    }
    const char *argv[] = {c->umoci, "unpack", "--image", image, tmp, NULL};
    p->status = oci_proc_run(argv, p->err, sizeof p->err, -1, 30 * 60 * 1000, &st);
    if (p->status == 0 && st != 0)
        p->status = BAIC_EBACKEND;
    if (p->status == 0) {
        /* A concurrent agent instance may have won: keep theirs. */
        oci_rmtree(fin);
        if (rename(tmp, fin) != 0) {
            p->status = -errno;
            snprintf(p->err, sizeof p->err, "rename %s: %s", tmp, strerror(errno));
        }
    } else {
        oci_rmtree(tmp);
    }
    snprintf(p->rootfs, sizeof p->rootfs, "%s/rootfs", fin);
    p->unpack_ms = oci_wall_ms() - t0;
}

static void img_finish(img_pull_t *p) {
    oci_image_store_t *s = p->store;
    if (s != NULL) {
        for (img_pull_t **pp = &s->pulls; *pp != NULL; pp = &(*pp)->next) {
            if (*pp == p) {
                *pp = p->next;
                break;
            }
        }
        img_publish(p, p->status == 0 ? "ready" : "failed");
        if (p->status == 0) {
            s->host->log(s->host, BAIC_LOG_INFO, "image_ready", "image=%s pull_ms=%lld unpack_ms=%lld",
                         p->ref, (long long)p->pull_ms, (long long)p->unpack_ms);
            s->host->metric_observe(s->host, "baic_oci_image_pull_seconds",
                                    "Time to pull and unpack one image", NULL,
                                    (double)(p->pull_ms + p->unpack_ms) / 1000.0);
        } else {
            /* First line of the tool's output is the reason; keep the log line single. */
            char *nl = strchr(p->err, '\n');
            if (nl != NULL)
                *nl = '\0';
            s->host->log(s->host, BAIC_LOG_ERROR, "image_pull_failed", "image=%s phase=%s error=\"%s\"",
                         p->ref, p->phase == 0 ? "pull" : "unpack", p->err);
        }
    }
    img_waiter_t *w = p->waiters;
    while (w != NULL) {
        img_waiter_t *next = w->next;
        if (s != NULL)
            w->cb(w->arg, p->status != 0 ? p->status : 0, p->status == 0 ? p->rootfs : NULL);
        free(w);
        w = next;
    }
    free(p);
}

static void img_unpack_done(void *arg, int status) {
    img_pull_t *p = arg;
    if (status != 0 && p->status == 0)
        p->status = status;
    img_finish(p);
}

static void img_pull_done(void *arg, int status) {
    img_pull_t *p = arg;
    if (status != 0 && p->status == 0)
        p->status = status;
    if (p->status != 0 || p->store == NULL) {
        img_finish(p);
        return;
    }
    p->phase = 1;
    img_publish(p, "unpacking");
    int rc = p->store->host->queue_work(p->store->host, img_unpack_work, img_unpack_done, p);
    if (rc != 0) {
        p->status = rc;
        img_finish(p);
    }
}

/* The image is already unpacked: answer later, as the contract wants. */
static void img_ready_work(void *arg) {
    (void)arg;
}

int oci_image_get(oci_image_store_t *s, const char *ref, oci_image_cb cb, void *arg) {
    if (ref == NULL || ref[0] == '\0' || strlen(ref) >= 1000 || strchr(ref, '/') == NULL)
        return BAIC_EBAD_INPUT;
    img_waiter_t *w = calloc(1, sizeof *w);
    if (w == NULL)
        return UV_ENOMEM;
    w->cb = cb;
    w->arg = arg;
    for (img_pull_t *p = s->pulls; p != NULL; p = p->next) {
        if (strcmp(p->ref, ref) == 0) {
            w->next = p->waiters;
            p->waiters = w;
            s->host->log(s->host, BAIC_LOG_DEBUG, "image_pull_joined", "image=%s", ref);
            return 0;
        }
    }
    img_pull_t *p = calloc(1, sizeof *p);
    if (p == NULL) {
        free(w);
        return UV_ENOMEM;
    }
    p->store = s;
    snprintf(p->ref, sizeof p->ref, "%s", ref);
    img_key(ref, p->key, sizeof p->key);
    p->waiters = w;
    p->t0_ms = img_now(s);
    snprintf(p->rootfs, sizeof p->rootfs, "%s/rootfs/%s/rootfs", s->conf->image_dir, p->key);
    struct stat st;
    int rc;
    if (stat(p->rootfs, &st) == 0 && S_ISDIR(st.st_mode)) {
        p->phase = 1;
        rc = s->host->queue_work(s->host, img_ready_work, img_unpack_done, p);
    } else {
        s->host->log(s->host, BAIC_LOG_INFO, "image_pulling", "image=%s", ref);
        rc = s->host->queue_work(s->host, img_pull_work, img_pull_done, p);
        if (rc == 0)
            img_publish(p, "pulling");
    }
    if (rc != 0) {
        free(w);
        free(p);
        return rc;
    }
    p->next = s->pulls;
    s->pulls = p;
    return 0;
}
