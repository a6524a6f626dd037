/* SPDX-License-Identifier: Apache-2.0 */
/* Usage bookkeeping: per-folder byte and file counts kept current by deltas, walks only when
 * unknown or asked. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <baic/errors.h>

#include "storage_common.h"

void sc_vol_ref(sc_volume_t *vol) {
    vol->refs++;
}

sc_scope_t *sc_scope_get(sc_volume_t *vol, const char *name) {
    for (sc_scope_t *s = vol->scopes; s != NULL; s = s->next)
        if (strcmp(s->name, name) == 0)
            return s;
    sc_scope_t *s = vol->st->host->calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    snprintf(s->name, sizeof s->name, "%s", name);
    s->next = vol->scopes;
    vol->scopes = s;
    return s;
}

sc_folder_t *sc_folder_get(sc_volume_t *vol, const char *key) {
    for (sc_folder_t *f = vol->folders; f != NULL; f = f->next)
        if (strcmp(f->key, key) == 0)
            return f;
    char scope[SC_SCOPE_MAX + 1];
    const char *slash = strchr(key, '/');
    size_t sl = slash ? (size_t)(slash - key) : 0;
    if (sl == 0 || sl > SC_SCOPE_MAX)
        return NULL;
    memcpy(scope, key, sl);
    scope[sl] = '\0';
    sc_scope_t *s = sc_scope_get(vol, scope);
    sc_folder_t *f = s ? vol->st->host->calloc(1, sizeof *f) : NULL;
    if (f == NULL)
        return NULL;
    snprintf(f->key, sizeof f->key, "%s", key);
    f->scope = s;
    f->next = vol->folders;
    vol->folders = f;
    return f;
}

void sc_writers_free(sc_folder_t *f) {
    sc_writer_t *w, *next;
    for (w = f->writers; w != NULL; w = next) {
        next = w->next;
        close(w->fd);
        free(w);
    }
    f->writers = NULL;
}

void sc_folder_forget(sc_volume_t *vol, const char *key) {
    for (sc_folder_t **pp = &vol->folders; *pp != NULL; pp = &(*pp)->next) {
        if (strcmp((*pp)->key, key) == 0) {
            sc_folder_t *f = *pp;
            *pp = f->next;
            sc_writers_free(f);
            vol->st->host->free(f);
            return;
        }
    }
}

void sc_writer_add(sc_volume_t *vol, sc_folder_t *f, int fd, int64_t before, int64_t after,
                   int created) {
    (void)vol;
    struct stat nst, wst;
    sc_writer_t *same = NULL;
    if (fstat(fd, &nst) == 0) {
        /* One watcher per file: a second writer of the same inode (a resumed upload)
         * must not count the growth twice. */
        for (sc_writer_t *w = f->writers; w != NULL && same == NULL; w = w->next)
            if (fstat(w->fd, &wst) == 0 && wst.st_ino == nst.st_ino && wst.st_dev == nst.st_dev)
                same = w;
    }
    if (same != NULL && f->known)
        f->bytes += before - same->last_size; /* what it grew by up to this open */
    if (f->known) {
        f->bytes += after - before;
        f->files += created;
    }
    if (same != NULL) {
        same->last_size = after;
        same->idle_ticks = 0;
        return;
    }
    int64_t size = after;
    sc_writer_t *w = calloc(1, sizeof *w);
    int dup = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (w == NULL || dup < 0) {
        free(w);
        if (dup >= 0)
            close(dup);
        return; /* usage drifts until the next rescan: not worth failing the open */
    }
    w->fd = dup;
    w->last_size = size;
    w->next = f->writers;
    f->writers = w;
}

/* 1 when an fd of this process other than ours refers to the inode: the writer is
 * still open. Our own process is the only one writing through the proxy. */
static int inode_open_elsewhere(sc_volume_t *vol, const struct stat *ref) {
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return 1; /* cannot tell: keep watching */
    int found = 0, dfd = dirfd(d);
    struct dirent *e;
    while (!found && (e = readdir(d)) != NULL) {
        char *end;
        long n = strtol(e->d_name, &end, 10);
        if (*end != '\0' || e->d_name[0] == '.' || n == dfd)
            continue;
        int ours = 0;
        for (sc_folder_t *f = vol->folders; f && !ours; f = f->next)
            for (sc_writer_t *w = f->writers; w && !ours; w = w->next)
                ours = w->fd == n;
        struct stat st;
        if (!ours && fstat((int)n, &st) == 0 && st.st_ino == ref->st_ino &&
            st.st_dev == ref->st_dev)
            found = 1;
    }
    closedir(d);
    return found;
}

static void reconcile_folder(sc_volume_t *vol, sc_folder_t *f, int tick) {
    for (sc_writer_t **pp = &f->writers; *pp != NULL;) {
        sc_writer_t *w = *pp;
        struct stat st;
        int drop = 0;
        if (fstat(w->fd, &st) != 0 || st.st_nlink == 0) {
            /* Removed: whoever removed it through an op already took its size off. */
            drop = 1;
        } else {
            int64_t delta = st.st_size - w->last_size;
            if (f->known)
                f->bytes += delta;
            w->last_size = st.st_size;
            if (tick) {
                w->idle_ticks = delta == 0 ? w->idle_ticks + 1 : 0;
                if (w->idle_ticks >= 2 && !inode_open_elsewhere(vol, &st))
                    drop = 1;
            }
        }
        if (drop) {
            *pp = w->next;
            close(w->fd);
            free(w);
        } else {
            pp = &w->next;
        }
    }
}

void sc_writers_reconcile(sc_volume_t *vol, sc_folder_t *f) {
    if (f != NULL) {
        reconcile_folder(vol, f, 0);
        return;
    }
    for (sc_folder_t *g = vol->folders; g != NULL; g = g->next)
        reconcile_folder(vol, g, 0);
}

void sc_tick(baic_timer_t *t, void *arg) {
    sc_volume_t *vol = arg;
    (void)t;
    for (sc_folder_t *f = vol->folders; f != NULL; f = f->next)
        if (f->writers != NULL)
            reconcile_folder(vol, f, 1);
}

int64_t sc_scope_bytes(sc_volume_t *vol, sc_scope_t *s, int64_t *files) {
    int64_t b = 0, n = 0;
    for (sc_folder_t *f = vol->folders; f != NULL; f = f->next) {
        if (f->scope != s)
            continue;
        reconcile_folder(vol, f, 0);
        b += f->bytes;
        n += f->files;
    }
    if (files)
        *files = n;
    return b;
}

/* ---- walks on the work queue ---- */

typedef struct walk_res {
    char key[SC_SCOPE_MAX + 40];
    int64_t bytes, files;
} walk_res_t;

typedef struct ens_job {
    sc_volume_t *vol;
    char scope[SC_SCOPE_MAX + 1];
    char key[SC_SCOPE_MAX + 40]; /* one folder, or "" */
    int list_scope;              /* walk every folder of scope */
    int all;                     /* walk every scope of the volume */
    int force;                   /* replace known figures (rescan) */
    walk_res_t *res;
    size_t nres, cap;
    int status;
    void (*done)(void *arg, int status);
    void *arg;
} ens_job_t;

static int res_add(ens_job_t *j, const char *key, int64_t b, int64_t f) {
    if (j->nres == j->cap) {
        size_t ncap = j->cap ? j->cap * 2 : 8;
        walk_res_t *n = realloc(j->res, ncap * sizeof *n);
        if (n == NULL)
            return -ENOMEM;
        j->res = n;
        j->cap = ncap;
    }
    walk_res_t *r = &j->res[j->nres++];
    snprintf(r->key, sizeof r->key, "%s", key);
    r->bytes = b;
    r->files = f;
    return 0;
}

static int walk_one(ens_job_t *j, const char *key) {
    int fd = openat(j->vol->rootfd, key, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return sc_errno(errno);
    int64_t b = 0, f = 0;
    int rc = sc_tree_usage(fd, &b, &f);
    close(fd);
    return rc == 0 ? res_add(j, key, b, f) : rc;
}

/* Walks every folder directory of one scope. */
static int list_scope(ens_job_t *j, const char *scope) {
    int sfd = openat(j->vol->rootfd, scope, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (sfd < 0)
        return errno == ENOENT ? 0 : sc_errno(errno); /* a scope with no folders yet */
    DIR *d = fdopendir(sfd);
    if (d == NULL) {
        close(sfd);
        return sc_errno(errno);
    }
    struct dirent *e;
    int status = 0;
    while ((e = readdir(d)) != NULL) {
        char key[SC_SCOPE_MAX + 40], s2[SC_SCOPE_MAX + 1];
        char id[SC_SCOPE_MAX + 40];
        int n = snprintf(id, sizeof id, "%s/%s", scope, e->d_name);
        if (n < 0 || (size_t)n >= sizeof id || sc_parse_folder(id, s2, key) != 0 ||
            strcmp(key, id) != 0)
            continue; /* not a folder directory (.quota, upload leftovers) */
        int rc = walk_one(j, key);
        if (rc != 0 && rc != BAIC_ENOT_FOUND) {
            status = rc;
            break;
        }
    }
    closedir(d);
    return status;
}

static void ens_work(void *arg) {
    ens_job_t *j = arg;
    if (j->key[0] != '\0') {
        j->status = walk_one(j, j->key);
        return;
    }
    if (j->list_scope) {
        j->status = list_scope(j, j->scope);
        return;
    }
    if (!j->all)
        return;
    int rfd = fcntl(j->vol->rootfd, F_DUPFD_CLOEXEC, 0);
    DIR *d = rfd < 0 ? NULL : fdopendir(rfd);
    if (d == NULL) {
        if (rfd >= 0)
            close(rfd);
        j->status = sc_errno(errno);
        return;
    }
    struct dirent *e;
    while (j->status == 0 && (e = readdir(d)) != NULL) {
        char scope[SC_SCOPE_MAX + 1];
        struct stat st;
        if (e->d_name[0] == '.' || sc_parse_scope(e->d_name, scope) != 0 ||
            strcmp(scope, e->d_name) != 0 ||
            fstatat(j->vol->rootfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
            !S_ISDIR(st.st_mode))
            continue;
        j->status = list_scope(j, scope);
    }
    closedir(d);
}

static void ens_done(void *arg, int status) {
    ens_job_t *j = arg;
    sc_volume_t *vol = j->vol;
    if (status == 0)
        status = j->status;
    if (status == 0 || status == BAIC_ENOT_FOUND) {
        for (size_t i = 0; i < j->nres; i++) {
            sc_folder_t *f = sc_folder_get(vol, j->res[i].key);
            if (f == NULL)
                continue;
            f->walking = 0;
            if (!f->known || j->force) {
                f->bytes = j->res[i].bytes;
                f->files = j->res[i].files;
                f->known = 1;
                /* The walk saw what the writers wrote so far. */
                for (sc_writer_t *w = f->writers; w; w = w->next) {
                    struct stat st;
                    if (fstat(w->fd, &st) == 0)
                        w->last_size = st.st_size;
                }
            }
        }
        if (j->list_scope && status == 0) {
            sc_scope_t *s = sc_scope_get(vol, j->scope);
            if (s != NULL)
                s->listed = 1;
        }
        if (j->all && status == 0) {
            vol->all_listed = 1;
            for (sc_scope_t *s = vol->scopes; s != NULL; s = s->next)
                s->listed = 1;
        }
    }
    if (j->key[0] != '\0') {
        sc_folder_t *f = sc_folder_get(vol, j->key);
        if (f != NULL)
            f->walking = 0;
    }
    if (j->done)
        j->done(j->arg, status);
    free(j->res);
    free(j);
    sc_vol_unref(vol);
}

static int ens_start(sc_volume_t *vol, const char *scope, const char *key, int list, int force,
                     void (*done)(void *, int), void *arg) {
    ens_job_t *j = calloc(1, sizeof *j);
    if (j == NULL)
        return -ENOMEM;
    j->vol = vol;
    j->all = list < 0;
    if (list < 0)
        list = 0;
    snprintf(j->scope, sizeof j->scope, "%s", scope ? scope : "");
    snprintf(j->key, sizeof j->key, "%s", key ? key : "");
    j->list_scope = list;
    j->force = force;
    j->done = done;
    j->arg = arg;
    int rc = vol->st->host->queue_work(vol->st->host, ens_work, ens_done, j);
    if (rc != 0) {
        free(j);
        return rc;
    }
    sc_vol_ref(vol);
    return 0;
}

int sc_usage_ensure(sc_volume_t *vol, sc_scope_t *scope, sc_folder_t *f,
                    void (*done)(void *arg, int status), void *arg) {
    /* A rescan under way (sc_rescan: files written behind the proxy's back): the answer
     * waits for a fresh walk of its own instead of reading the figures it will replace. */
    if (f != NULL && f->walking)
        return ens_start(vol, f->scope->name, f->key, 0, 1, done, arg);
    if (f != NULL)
        return ens_start(vol, f->scope->name, f->known ? NULL : f->key, 0, 0, done, arg);
    return ens_start(vol, scope->name, NULL, !scope->listed, 0, done, arg);
}

void sc_rescan(sc_volume_t *vol, const char *key) {
    if (key != NULL) {
        sc_folder_t *f = sc_folder_get(vol, key);
        if (f != NULL && !f->walking &&
            ens_start(vol, f->scope->name, f->key, 0, 1, NULL, NULL) == 0)
            f->walking = 1;
        return;
    }
    for (sc_folder_t *f = vol->folders; f != NULL; f = f->next)
        if (!f->walking && ens_start(vol, f->scope->name, f->key, 0, 1, NULL, NULL) == 0)
            f->walking = 1;
}

int sc_usage_ensure_all(sc_volume_t *vol, void (*done)(void *arg, int status), void *arg) {
    /* Once every scope was walked, folders made since are known from their creation. */
    return ens_start(vol, NULL, NULL, vol->all_listed ? 0 : -1, 0, done, arg);
}

int64_t sc_volume_bytes(sc_volume_t *vol) {
    int64_t b = 0;
    for (sc_folder_t *f = vol->folders; f != NULL; f = f->next) {
        if (!f->known)
            continue;
        reconcile_folder(vol, f, 0);
        b += f->bytes;
    }
    return b;
}
