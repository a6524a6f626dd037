/* SPDX-License-Identifier: Apache-2.0 */
/* The storage engine: folders as directories <root>/<quota-scope>/<folder-hex>, file ops, usage,
 * the volume cap; quotas, fast usage, mounts and health come from the plugin's sc_backend_t. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <baic/errors.h>
#include <baic/host.h>
#include <baic/storage.h>

#include "storage_common.h"

#define SC_TICK_MS 5000

typedef enum {
    J_CREATE,
    J_DELETE,
    J_CLONE,
    J_QGET,
    J_QSET,
    J_USAGE,
    J_VUSAGE,
    J_MKDIR,
    J_LIST,
    J_RENAME,
    J_RM,
    J_STAT,
    J_OPEN,
    J_FUSAGE,
} job_kind_t;

typedef struct sc_job {
    job_kind_t kind;
    sc_volume_t *vol, *dst_vol;
    char scope[SC_SCOPE_MAX + 1];
    char key[SC_SCOPE_MAX + 40], key2[SC_SCOPE_MAX + 40];
    char *path, *path2; /* normalised, malloc'd */
    char **paths;
    size_t npaths;
    int flag;    /* parents, recursive, open flags */
    int64_t num; /* quota */
    int status;
    int fd;
    int created;            /* open made a new file */
    int64_t dbytes, dfiles; /* usage change the op made */
    int64_t size_before, size_after;
    int64_t cap, used;
    int capchk; /* 1: ask the backend for the volume total, 2: vol_used */
    int64_t vol_used;
    baic_file_stat_t st;
    char stname[256];
    baic_file_stat_t *ents;
    const baic_file_stat_t **eptrs;
    char *names;
    size_t nents;
    void *cb;
    void *arg;
} sc_job_t;

/* ---- plugin state and volumes ---- */

static void on_rescan_event(const char *name, const json_t *body, void *arg) {
    sc_state_t *st = arg;
    (void)name;
    const char *vname = json_string_value(json_object_get(body, "volume"));
    const char *vfid = json_string_value(json_object_get(body, "vfid"));
    for (sc_volume_t *v = st->vols; v != NULL; v = v->next) {
        if (vname != NULL && strcmp(vname, v->name) != 0)
            continue;
        char scope[SC_SCOPE_MAX + 1], key[SC_SCOPE_MAX + 40];
        if (vfid != NULL && sc_parse_folder(vfid, scope, key) == 0)
            sc_rescan(v, key);
        else if (vfid == NULL)
            sc_rescan(v, NULL);
    }
}

int sc_init(const baic_host_t *host, const json_t *conf, const sc_backend_t *be, void **state) {
    (void)conf;
    sc_state_t *st = host->calloc(1, sizeof *st);
    if (st == NULL)
        return -ENOMEM;
    st->host = host;
    st->be = be;
    if (host->event_subscribe(host, "storage_rescan", on_rescan_event, st, &st->sub) != 0)
        st->sub = NULL;
    *state = st;
    return 0;
}

void sc_fini(void *state) {
    sc_state_t *st = state;
    if (st->sub != NULL)
        st->host->event_unsubscribe(st->host, st->sub);
    st->host->free(st);
}

static void vol_free(sc_volume_t *vol) {
    const baic_host_t *h = vol->st->host;
    if (vol->priv != NULL && vol->st->be->vol_close != NULL)
        vol->st->be->vol_close(vol);
    while (vol->folders != NULL)
        sc_folder_forget(vol, vol->folders->key);
    sc_scope_t *s, *next;
    for (s = vol->scopes; s != NULL; s = next) {
        next = s->next;
        h->free(s);
    }
    if (vol->rootfd >= 0)
        close(vol->rootfd);
    h->free(vol->name);
    h->free(vol->root);
    h->free(vol);
}

void sc_vol_unref(sc_volume_t *vol) {
    if (--vol->refs == 0 && vol->closing)
        vol_free(vol);
}

static char *dupstr(const baic_host_t *h, const char *s) {
    size_t n = strlen(s) + 1;
    char *d = h->alloc(n);
    if (d != NULL)
        memcpy(d, s, n);
    return d;
}

static int sc_volume_open(void *state, const char *name, const json_t *conf, baic_volume_t **out) {
    sc_state_t *st = state;
    const baic_host_t *h = st->host;
    const char *path = json_string_value(json_object_get(conf, "path"));
    if (path == NULL || path[0] != '/') {
        h->log(h, BAIC_LOG_ERROR, "config_error",
               "volume=%s msg=\"path must be an absolute "
               "directory\"",
               name);
        return BAIC_ECONFIG_MISSING;
    }
    int64_t cap = 0;
    if (sc_conf_bytes(conf, "volume_quota_bytes", &cap) != 0) {
        h->log(h, BAIC_LOG_ERROR, "config_error",
               "volume=%s msg=\"volume_quota_bytes must be a "
               "non-negative integer or a size such as \\\"10G\\\"\"",
               name);
        return BAIC_ECONFIG_TYPE;
    }
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        return sc_errno(errno);
    sc_volume_t *vol = h->calloc(1, sizeof *vol);
    if (vol == NULL)
        return -ENOMEM;
    vol->st = st;
    vol->rootfd = -1;
    vol->cap = cap;
    vol->name = dupstr(h, name);
    vol->root = dupstr(h, path);
    if (vol->name == NULL || vol->root == NULL) {
        vol_free(vol);
        return -ENOMEM;
    }
    const sc_backend_t *be = st->be;
    int rc = be->vol_open != NULL ? be->vol_open(vol, conf) : 0;
    if (rc != 0) {
        h->log(h, BAIC_LOG_ERROR, "volume_open_failed", "volume=%s backend=%s error=\"%s\"", name,
               be->name, h->strerror(rc));
        vol->priv = NULL; /* the backend cleaned up after itself */
        vol_free(vol);
        return rc;
    }
    vol->rootfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (vol->rootfd < 0) {
        rc = sc_errno(errno);
        vol_free(vol);
        return rc;
    }
    if (cap > 0 && be->volume_cap != NULL) {
        rc = be->volume_cap(vol, cap);
        if (rc != 0 && rc != BAIC_ENOT_SUPPORTED) {
            h->log(h, BAIC_LOG_ERROR, "volume_open_failed",
                   "volume=%s backend=%s msg=\"cannot set "
                   "the volume cap\" error=\"%s\"",
                   name, be->name, h->strerror(rc));
            vol_free(vol);
            return rc;
        }
        vol->cap_native = rc == 0;
    }
    sc_probe_openat2(vol->rootfd);
    if (h->timer_start(h, SC_TICK_MS, SC_TICK_MS, sc_tick, vol, &vol->tick) != 0)
        vol->tick = NULL;
    vol->refs = 1;
    vol->next = st->vols;
    st->vols = vol;
    h->log(h, BAIC_LOG_INFO, "volume_opened", "volume=%s backend=%s path=%s cap=%lld%s", name,
           be->name, path, (long long)cap, vol->cap_native ? " cap_enforced_by=filesystem" : "");
    *out = vol;
    return 0;
}

static int sc_volume_close(void *state, baic_volume_t *vol) {
    sc_state_t *st = state;
    for (sc_volume_t **pp = &st->vols; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == vol) {
            *pp = vol->next;
            break;
        }
    }
    if (vol->tick != NULL)
        st->host->timer_stop(st->host, vol->tick);
    vol->tick = NULL;
    vol->closing = 1;
    sc_vol_unref(vol); /* freed when the last job finishes */
    return 0;
}

static int sc_capabilities(void *state, baic_volume_t *vol, uint32_t *caps) {
    sc_state_t *st = state;
    (void)vol;
    const sc_backend_t *be = st->be;
    *caps = BAIC_STORAGE_CAP_CLONE | BAIC_STORAGE_CAP_FILE_OPS | BAIC_STORAGE_CAP_METRIC | be->caps;
    if (be->quota_read != NULL && be->quota_write != NULL)
        *caps |= BAIC_STORAGE_CAP_QUOTA;
    if (be->folder_usage != NULL && be->scope_usage != NULL)
        *caps |= BAIC_STORAGE_CAP_USAGE_FAST;
    return 0;
}

static int sc_health(void *state, baic_volume_t *vol, int *healthy, const char **reason) {
    sc_state_t *st = state;
    if (vol == NULL || healthy == NULL)
        return BAIC_EBAD_INPUT;
    const char *why = NULL;
    *healthy = st->be->health != NULL ? st->be->health(vol, &why) : 1;
    if (reason != NULL)
        *reason = *healthy ? NULL : (why != NULL ? why : "unhealthy");
    return 0;
}

/* An unhealthy volume (a network filesystem whose server went away) fails fast instead of
 * parking pool threads on a dead mount. */
static int vol_check(sc_volume_t *vol) {
    const sc_backend_t *be = vol->st->be;
    const char *why = NULL;
    if (be->health != NULL && !be->health(vol, &why))
        return BAIC_EBACKEND;
    return 0;
}

int sc_conf_bytes(const json_t *conf, const char *key, int64_t *out) {
    const json_t *v = json_object_get(conf, key);
    *out = 0;
    if (v == NULL || json_is_null(v))
        return 0;
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return *out < 0 ? BAIC_ECONFIG_TYPE : 0;
    }
    const char *s = json_string_value(v);
    if (s == NULL || !(*s >= '0' && *s <= '9'))
        return BAIC_ECONFIG_TYPE;
    char *end;
    errno = 0;
    unsigned long long n = strtoull(s, &end, 10);
    int shift = 0;
    switch (*end) {
    case 'k':
    case 'K':
        shift = 10;
        end++;
        break;
    case 'm':
    case 'M':
        shift = 20;
        end++;
        break;
    case 'g':
    case 'G':
        shift = 30;
        end++;
        break;
    case 't':
    case 'T':
        shift = 40;
        end++;
        break;
    case 'p':
    case 'P':
        shift = 50;
        end++;
        break;
    default:
        break;
    }
    if (shift != 0 && (*end == 'i' || *end == 'I'))
        end++;
    if (shift != 0 && (*end == 'b' || *end == 'B'))
        end++;
    if (errno != 0 || *end != '\0' || n > ((unsigned long long)INT64_MAX >> shift))
        return BAIC_ECONFIG_TYPE;
    *out = (int64_t)(n << shift);
    return 0;
}

/* ---- jobs ---- */

static void job_free(sc_job_t *j) {
    free(j->path);
    free(j->path2);
    for (size_t i = 0; i < j->npaths; i++)
        free(j->paths[i]);
    free(j->paths);
    free(j->ents);
    free(j->eptrs);
    free(j->names);
    free(j);
}

static sc_job_t *job_new(job_kind_t kind, sc_volume_t *vol, void *cb, void *arg) {
    sc_job_t *j = calloc(1, sizeof *j);
    if (j == NULL)
        return NULL;
    j->kind = kind;
    j->vol = vol;
    j->cb = cb;
    j->arg = arg;
    j->fd = -1;
    return j;
}

static int job_folder(sc_job_t *j, const char *id) {
    return sc_parse_folder(id, j->scope, j->key);
}

static int job_path(char **dst, const char *path) {
    if (path == NULL)
        return BAIC_EBAD_INPUT;
    char *p = malloc(strlen(path) + 1);
    if (p == NULL)
        return -ENOMEM;
    int rc = sc_norm_path(path, p);
    if (rc != 0) {
        free(p);
        return rc;
    }
    *dst = p;
    return 0;
}

static int folder_fd(sc_job_t *j) {
    int fd = openat(j->vol->rootfd, j->key, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    return fd < 0 ? sc_errno(errno) : fd;
}

static void fill_stat(baic_file_stat_t *out, const struct stat *st, const char *name) {
    memset(out, 0, sizeof *out);
    out->size = sizeof *out;
    out->name = name;
    out->type = S_ISREG(st->st_mode)   ? BAIC_FILE_REGULAR
                : S_ISDIR(st->st_mode) ? BAIC_FILE_DIRECTORY
                : S_ISLNK(st->st_mode) ? BAIC_FILE_SYMLINK
                                       : BAIC_FILE_OTHER;
    out->bytes = st->st_size;
    out->mode = st->st_mode & 07777;
    out->mtime_ms = (int64_t)st->st_mtim.tv_sec * 1000 + st->st_mtim.tv_nsec / 1000000;
    out->ctime_ms = (int64_t)st->st_ctim.tv_sec * 1000 + st->st_ctim.tv_nsec / 1000000;
}

/* pool: makes sure the scope directory exists and the backend prepared it. */
static int scope_dir(sc_volume_t *vol, const char *scope) {
    if (mkdirat(vol->rootfd, scope, 0755) != 0 && errno != EEXIST)
        return sc_errno(errno);
    const sc_backend_t *be = vol->st->be;
    return be->scope_prepare != NULL ? be->scope_prepare(vol, scope) : 0;
}

/* pool: the volume cap. extra bytes are about to be added (a clone); an open for writing
 * (extra 0) is refused once the volume is full. */
static int cap_check(sc_job_t *j, sc_volume_t *vol, int64_t extra) {
    int64_t used = j->vol_used;
    if (j->capchk == 1) {
        int rc = vol->st->be->volume_used(vol, &used);
        if (rc != 0)
            return rc;
    }
    if (extra > 0 ? used + extra > vol->cap : used >= vol->cap)
        return BAIC_EQUOTA;
    return 0;
}

static int do_rm(sc_job_t *j, int ffd) {
    for (size_t i = 0; i < j->npaths; i++) {
        const char *last;
        if (j->paths[i][0] == '\0')
            return BAIC_EPERMISSION; /* the folder root goes with folder_delete only */
        int pfd = sc_open_parent(ffd, j->paths[i], &last);
        if (pfd < 0)
            return pfd;
        struct stat st;
        int rc = 0;
        if (fstatat(pfd, last, &st, AT_SYMLINK_NOFOLLOW) != 0) {
            rc = sc_errno(errno);
        } else if (S_ISDIR(st.st_mode) && !j->flag) {
            if (unlinkat(pfd, last, AT_REMOVEDIR) != 0)
                rc = sc_errno(errno);
        } else {
            rc = sc_tree_remove(pfd, last, &j->dbytes, &j->dfiles);
        }
        close(pfd);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int do_list(sc_job_t *j, int ffd) {
    int dfd = sc_open_beneath(ffd, j->path, O_RDONLY | O_DIRECTORY, 0);
    if (dfd < 0)
        return dfd;
    int fd2 = fcntl(dfd, F_DUPFD_CLOEXEC, 0);
    DIR *d = fd2 < 0 ? NULL : fdopendir(fd2);
    if (d == NULL) {
        if (fd2 >= 0)
            close(fd2);
        close(dfd);
        return sc_errno(errno);
    }
    size_t cap = 0, ncap = 0, nlen = 0;
    struct dirent *e;
    size_t *offs = NULL;
    int rc = 0;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        struct stat st;
        if (fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
            continue;
        size_t l = strlen(e->d_name) + 1;
        if (j->nents == cap) {
            cap = cap ? cap * 2 : 32;
            baic_file_stat_t *ne = realloc(j->ents, cap * sizeof *ne);
            size_t *no = realloc(offs, cap * sizeof *no);
            if (ne != NULL)
                j->ents = ne;
            if (no != NULL)
                offs = no;
            if (ne == NULL || no == NULL) {
                rc = -ENOMEM;
                break;
            }
        }
        if (nlen + l > ncap) {
            ncap = (ncap + l) * 2;
            char *nn = realloc(j->names, ncap);
            if (nn == NULL) {
                rc = -ENOMEM;
                break;
            }
            j->names = nn;
        }
        memcpy(j->names + nlen, e->d_name, l);
        offs[j->nents] = nlen;
        nlen += l;
        fill_stat(&j->ents[j->nents], &st, NULL);
        j->nents++;
    }
    closedir(d);
    close(dfd);
    if (rc == 0 && j->nents > 0) {
        j->eptrs = calloc(j->nents, sizeof *j->eptrs);
        if (j->eptrs == NULL)
            rc = -ENOMEM;
        for (size_t i = 0; rc == 0 && i < j->nents; i++) {
            j->ents[i].name = j->names + offs[i];
            j->eptrs[i] = &j->ents[i];
        }
    }
    free(offs);
    return rc;
}

static int do_open(sc_job_t *j, int ffd) {
    int fl = 0;
    uint32_t f = (uint32_t)j->flag;
    if ((f & BAIC_OPEN_READ) && (f & BAIC_OPEN_WRITE))
        fl = O_RDWR;
    else if (f & BAIC_OPEN_WRITE)
        fl = O_WRONLY;
    else
        fl = O_RDONLY;
    if (f & BAIC_OPEN_WRITE) {
        if (j->path[0] == '\0')
            return BAIC_EPERMISSION;
        if (f & BAIC_OPEN_CREATE)
            fl |= O_CREAT;
        if (f & BAIC_OPEN_TRUNC)
            fl |= O_TRUNC;
        if ((f & BAIC_OPEN_EXCL) && (f & BAIC_OPEN_CREATE))
            fl |= O_EXCL;
        /* What the file held before counts against the delta. */
        const char *last;
        int pfd = sc_open_parent(ffd, j->path, &last);
        if (pfd < 0)
            return pfd;
        struct stat st;
        if (fstatat(pfd, last, &st, AT_SYMLINK_NOFOLLOW) == 0)
            j->size_before = S_ISREG(st.st_mode) ? st.st_size : 0;
        else
            j->created = 1;
        close(pfd);
    }
    int fd = sc_open_beneath(ffd, j->path, fl, 0644);
    if (fd < 0)
        return fd;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return sc_errno(errno);
    }
    if ((f & BAIC_OPEN_WRITE) && !S_ISREG(st.st_mode)) {
        close(fd);
        return BAIC_EPERMISSION;
    }
    j->size_after = st.st_size;
    j->fd = fd;
    return 0;
}

static void job_work(void *arg) {
    sc_job_t *j = arg;
    sc_volume_t *vol = j->vol;
    const sc_backend_t *be = vol->st->be;
    int ffd = -1, rc = 0;
    switch (j->kind) {
    case J_CREATE:
        rc = scope_dir(vol, j->scope);
        if (rc != 0)
            break;
        if (mkdirat(vol->rootfd, j->key, 0755) != 0)
            rc = sc_errno(errno);
        else if (j->num > 0 && be->quota_write != NULL)
            rc = be->quota_write(vol, j->scope, j->num);
        break;
    case J_DELETE: {
        int sfd = openat(vol->rootfd, j->scope, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sfd < 0) {
            rc = sc_errno(errno);
            break;
        }
        rc = sc_tree_remove(sfd, strchr(j->key, '/') + 1, &j->dbytes, &j->dfiles);
        close(sfd);
        break;
    }
    case J_CLONE: {
        int src = folder_fd(j);
        if (src < 0) {
            rc = src;
            break;
        }
        sc_volume_t *dv = j->dst_vol;
        if (j->capchk) {
            int64_t sb = 0, sf = 0;
            rc = sc_tree_usage(src, &sb, &sf);
            if (rc == 0)
                rc = cap_check(j, dv, sb);
            if (rc != 0) {
                close(src);
                break;
            }
        }
        if ((rc = scope_dir(dv, j->path2)) != 0)
            ;
        else if (mkdirat(dv->rootfd, j->key2, 0755) != 0)
            rc = sc_errno(errno);
        if (rc == 0) {
            int dst = openat(dv->rootfd, j->key2, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            rc = dst < 0 ? sc_errno(errno) : sc_tree_copy(src, dst, &j->dbytes, &j->dfiles);
            if (dst >= 0)
                close(dst);
            if (rc != 0) {
                /* No half clone left behind. */
                int sfd =
                    openat(dv->rootfd, j->path2, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                int64_t b = 0, f = 0;
                if (sfd >= 0) {
                    sc_tree_remove(sfd, strchr(j->key2, '/') + 1, &b, &f);
                    close(sfd);
                }
            }
        }
        close(src);
        break;
    }
    case J_QGET:
        rc = be->quota_read(vol, j->scope, &j->num);
        break;
    case J_QSET:
        rc = scope_dir(vol, j->scope);
        if (rc == 0)
            rc = be->quota_write(vol, j->scope, j->num);
        break;
    case J_FUSAGE:
        if (j->key[0] != '\0')
            rc = be->folder_usage(vol, j->key, &j->used, &j->dfiles);
        else
            rc = be->scope_usage(vol, j->scope, &j->used, &j->dfiles);
        break;
    case J_VUSAGE: {
        struct statvfs sv;
        if (fstatvfs(vol->rootfd, &sv) != 0) {
            rc = sc_errno(errno);
            break;
        }
        j->cap = (int64_t)sv.f_blocks * (int64_t)sv.f_frsize;
        j->used = (int64_t)(sv.f_blocks - sv.f_bfree) * (int64_t)sv.f_frsize;
        if (vol->cap > 0) {
            /* A capped volume reports its cap and what its folders hold. */
            if (vol->cap < j->cap)
                j->cap = vol->cap;
            if (j->capchk == 1)
                rc = be->volume_used(vol, &j->used);
            else
                j->used = j->vol_used;
        }
        break;
    }
    case J_USAGE:
        break; /* the figures live on the loop thread */
    default:
        ffd = folder_fd(j);
        if (ffd < 0) {
            rc = ffd;
            break;
        }
        switch (j->kind) {
        case J_MKDIR:
            if (j->path[0] == '\0') {
                rc = j->flag ? 0 : BAIC_EEXISTS;
            } else if (j->flag) {
                /* Each existing component must be a real directory: opened beneath. */
                char *p = j->path;
                for (char *s = p;; s++) {
                    if (*s != '/' && *s != '\0')
                        continue;
                    char c = *s;
                    *s = '\0';
                    const char *last;
                    int pfd = sc_open_parent(ffd, p, &last);
                    if (pfd < 0) {
                        rc = pfd;
                    } else {
                        if (mkdirat(pfd, last, 0755) != 0 && errno != EEXIST)
                            rc = sc_errno(errno);
                        close(pfd);
                    }
                    *s = c;
                    if (rc != 0 || c == '\0')
                        break;
                }
                if (rc == 0) {
                    int t = sc_open_beneath(ffd, p, O_RDONLY | O_DIRECTORY, 0);
                    if (t < 0)
                        rc = t;
                    else
                        close(t);
                }
            } else {
                const char *last;
                int pfd = sc_open_parent(ffd, j->path, &last);
                if (pfd < 0) {
                    rc = pfd;
                } else {
                    if (mkdirat(pfd, last, 0755) != 0)
                        rc = sc_errno(errno);
                    close(pfd);
                }
            }
            break;
        case J_LIST:
            rc = do_list(j, ffd);
            break;
        case J_RENAME: {
            const char *l1, *l2;
            if (j->path[0] == '\0' || j->path2[0] == '\0') {
                rc = BAIC_EPERMISSION;
                break;
            }
            int p1 = sc_open_parent(ffd, j->path, &l1);
            int p2 = p1 < 0 ? p1 : sc_open_parent(ffd, j->path2, &l2);
            if (p1 < 0 || p2 < 0)
                rc = p1 < 0 ? p1 : p2;
            else if (renameat2(p1, l1, p2, l2, RENAME_NOREPLACE) != 0)
                rc = sc_errno(errno);
            if (p1 >= 0)
                close(p1);
            if (p2 >= 0)
                close(p2);
            break;
        }
        case J_RM:
            rc = do_rm(j, ffd);
            break;
        case J_STAT: {
            struct stat st;
            const char *last = "";
            if (j->path[0] == '\0') {
                if (fstat(ffd, &st) != 0)
                    rc = sc_errno(errno);
            } else {
                int pfd = sc_open_parent(ffd, j->path, &last);
                if (pfd < 0) {
                    rc = pfd;
                } else {
                    if (fstatat(pfd, last, &st, AT_SYMLINK_NOFOLLOW) != 0)
                        rc = sc_errno(errno);
                    close(pfd);
                }
            }
            if (rc == 0) {
                snprintf(j->stname, sizeof j->stname, "%s", last);
                fill_stat(&j->st, &st, j->stname);
            }
            break;
        }
        case J_OPEN:
            if (j->capchk && (j->flag & BAIC_OPEN_WRITE) && (rc = cap_check(j, vol, 0)) != 0)
                break;
            rc = do_open(j, ffd);
            break;
        default:
            break;
        }
        close(ffd);
    }
    j->status = rc;
}

static void usage_ready(void *arg, int status);

static void job_done(void *arg, int status) {
    sc_job_t *j = arg;
    sc_volume_t *vol = j->vol;
    if (status == 0)
        status = j->status;
    sc_folder_t *f = NULL;
    if (j->key[0] != '\0' && j->kind != J_DELETE && j->kind != J_QGET && j->kind != J_QSET &&
        j->kind != J_FUSAGE)
        f = sc_folder_get(vol, j->key);
    switch (j->kind) {
    case J_CREATE:
        if (status == 0 && f != NULL) {
            f->known = 1;
            f->bytes = f->files = 0;
        }
        if (status == 0 && j->num > 0) {
            sc_scope_t *s = sc_scope_get(vol, j->scope);
            if (s) {
                s->limit = j->num;
                s->limit_known = 1;
            }
        }
        ((baic_storage_done_cb)j->cb)(j->arg, status);
        break;
    case J_DELETE:
        if (status == 0)
            sc_folder_forget(vol, j->key);
        ((baic_storage_done_cb)j->cb)(j->arg, status);
        break;
    case J_CLONE:
        if (status == 0) {
            sc_folder_t *g = sc_folder_get(j->dst_vol, j->key2);
            if (g != NULL) {
                g->known = 1;
                g->bytes = j->dbytes;
                g->files = j->dfiles;
            }
        }
        ((baic_storage_done_cb)j->cb)(j->arg, status);
        sc_vol_unref(j->dst_vol);
        break;
    case J_FUSAGE:
        ((baic_storage_usage_cb)j->cb)(j->arg, status, status == 0 ? j->used : 0,
                                       status == 0 ? j->dfiles : 0);
        break;
    case J_QGET: {
        sc_scope_t *s = status == 0 ? sc_scope_get(vol, j->scope) : NULL;
        if (s) {
            s->limit = j->num;
            s->limit_known = 1;
        }
        ((baic_storage_quota_cb)j->cb)(j->arg, status, j->num);
        break;
    }
    case J_QSET: {
        sc_scope_t *s = status == 0 ? sc_scope_get(vol, j->scope) : NULL;
        if (s) {
            s->limit = j->num;
            s->limit_known = 1;
        }
        ((baic_storage_done_cb)j->cb)(j->arg, status);
        break;
    }
    case J_VUSAGE:
        ((baic_storage_volume_usage_cb)j->cb)(j->arg, status, j->cap, j->used);
        break;
    case J_USAGE:
        usage_ready(j, status);
        return; /* frees j itself */
    case J_MKDIR:
    case J_RENAME:
        ((baic_storage_done_cb)j->cb)(j->arg, status);
        break;
    case J_RM:
        if (f != NULL && f->known) {
            /* Partial removals count too: what went is gone. */
            f->bytes -= j->dbytes;
            f->files -= j->dfiles;
        }
        ((baic_storage_done_cb)j->cb)(j->arg, status);
        break;
    case J_LIST:
        ((baic_storage_list_cb)j->cb)(j->arg, status, status == 0 ? j->eptrs : NULL,
                                      status == 0 ? j->nents : 0);
        break;
    case J_STAT:
        ((baic_storage_stat_cb)j->cb)(j->arg, status, status == 0 ? &j->st : NULL);
        break;
    case J_OPEN:
        if (status == 0 && (j->flag & BAIC_OPEN_WRITE) && f != NULL)
            sc_writer_add(vol, f, j->fd, j->size_before, j->size_after, j->created);
        ((baic_storage_open_cb)j->cb)(j->arg, status, status == 0 ? j->fd : -1);
        break;
    }
    job_free(j);
    sc_vol_unref(vol);
}

static int job_submit(sc_job_t *j) {
    int rc = vol_check(j->vol);
    if (rc == 0)
        rc = j->vol->st->host->queue_work(j->vol->st->host, job_work, job_done, j);
    if (rc != 0) {
        job_free(j);
        return rc;
    }
    sc_vol_ref(j->vol);
    return 0;
}

/* The volume total is known on the loop thread now: hand the job to the pool. */
static void cap_ready(void *arg, int status) {
    sc_job_t *j = arg;
    sc_volume_t *vol = j->vol;
    if (status == 0) {
        j->vol_used = sc_volume_bytes(vol);
        j->capchk = 2;
        status = vol_check(vol);
    }
    if (status == 0)
        status = vol->st->host->queue_work(vol->st->host, job_work, job_done, j);
    if (status != 0)
        job_done(j, status); /* completes through the callback, drops our reference */
}

/* Submits a job that needs the volume total: the backend counts it on the pool thread, or
 * the engine's per-folder figures are made complete first. */
static int total_submit(sc_job_t *j) {
    sc_volume_t *vol = j->vol;
    if (vol->st->be->volume_used != NULL) {
        j->capchk = 1;
        return job_submit(j);
    }
    int rc = vol_check(vol);
    if (rc == 0)
        rc = sc_usage_ensure_all(vol, cap_ready, j);
    if (rc != 0) {
        job_free(j);
        return rc;
    }
    sc_vol_ref(vol);
    return 0;
}

/* A job the volume cap applies to (unless the filesystem enforces it itself). */
static int cap_submit(sc_job_t *j) {
    if (j->vol->cap <= 0 || j->vol->cap_native)
        return job_submit(j);
    return total_submit(j);
}

/* Prepares a job on a folder path: parses the id and normalises the path. */
static int job_prep(job_kind_t kind, baic_volume_t *vol, const char *folder_id, const char *path,
                    void *cb, void *arg, sc_job_t **out) {
    if (vol == NULL || cb == NULL)
        return BAIC_EBAD_INPUT;
    sc_job_t *j = job_new(kind, vol, cb, arg);
    if (j == NULL)
        return -ENOMEM;
    int rc = job_folder(j, folder_id);
    if (rc == 0 && path != NULL)
        rc = job_path(&j->path, path);
    if (rc != 0) {
        job_free(j);
        return rc;
    }
    *out = j;
    return 0;
}

/* ---- ops ---- */

static int sc_folder_create(void *state, baic_volume_t *vol, const char *folder_id,
                            int64_t quota_bytes, baic_storage_done_cb cb, void *arg) {
    (void)state;
    sc_job_t *j;
    int rc = job_prep(J_CREATE, vol, folder_id, NULL, cb, arg, &j);
    if (rc != 0)
        return rc;
    j->num = quota_bytes;
    return job_submit(j);
}

static int sc_folder_delete(void *state, baic_volume_t *vol, const char *folder_id,
                            baic_storage_done_cb cb, void *arg) {
    (void)state;
    sc_job_t *j;
    int rc = job_prep(J_DELETE, vol, folder_id, NULL, cb, arg, &j);
    return rc != 0 ? rc : job_submit(j);
}

static int sc_folder_clone(void *state, baic_volume_t *vol, const char *src_id,
                           baic_volume_t *dst_vol, const char *dst_id, baic_storage_done_cb cb,
                           void *arg) {
    (void)state;
    sc_job_t *j;
    int rc = job_prep(J_CLONE, vol, src_id, NULL, cb, arg, &j);
    if (rc != 0)
        return rc;
    char dscope[SC_SCOPE_MAX + 1];
    j->dst_vol = dst_vol ? dst_vol : vol;
    rc = sc_parse_folder(dst_id, dscope, j->key2);
    if (rc == 0 && strcmp(j->key, j->key2) == 0 && j->dst_vol == vol)
        rc = BAIC_EEXISTS;
    if (rc == 0 && (j->path2 = strdup(dscope)) == NULL)
        rc = -ENOMEM;
    if (rc != 0) {
        job_free(j);
        return rc;
    }
    sc_vol_ref(j->dst_vol);
    if (j->dst_vol == vol)
        rc = cap_submit(j);
    else if (j->dst_vol->cap > 0 && !j->dst_vol->cap_native)
        rc = BAIC_ENOT_SUPPORTED; /* into another capped volume: its total is not counted here */
    else
        rc = job_submit(j);
    if (rc != 0)
        sc_vol_unref(vol == dst_vol || dst_vol == NULL ? vol : dst_vol);
    return rc;
}

static int quota_job(job_kind_t kind, baic_volume_t *vol, const char *id, int64_t limit, void *cb,
                     void *arg) {
    if (vol == NULL || cb == NULL || limit < 0)
        return BAIC_EBAD_INPUT;
    if (vol->st->be->quota_read == NULL || vol->st->be->quota_write == NULL)
        return BAIC_ENOT_SUPPORTED;
    sc_job_t *j = job_new(kind, vol, cb, arg);
    if (j == NULL)
        return -ENOMEM;
    int rc = sc_parse_scope(id, j->scope);
    if (rc != 0) {
        job_free(j);
        return rc;
    }
    j->num = limit;
    return job_submit(j);
}

static int sc_quota_get(void *state, baic_volume_t *vol, const char *id, baic_storage_quota_cb cb,
                        void *arg) {
    (void)state;
    return quota_job(J_QGET, vol, id, 0, (void *)cb, arg);
}

static int sc_quota_set(void *state, baic_volume_t *vol, const char *id, int64_t limit,
                        baic_storage_done_cb cb, void *arg) {
    (void)state;
    if (limit <= 0)
        return BAIC_EBAD_INPUT;
    return quota_job(J_QSET, vol, id, limit, (void *)cb, arg);
}

static int sc_quota_unset(void *state, baic_volume_t *vol, const char *id, baic_storage_done_cb cb,
                          void *arg) {
    (void)state;
    return quota_job(J_QSET, vol, id, 0, (void *)cb, arg);
}

/*
 * usage: a folder id gives that folder's figures; a bare quota-scope id gives the sum
 * over the scope's folders (what the quota is checked against).
 */
static void usage_ready(void *arg, int status) {
    sc_job_t *j = arg;
    sc_volume_t *vol = j->vol;
    int64_t bytes = 0, files = 0;
    if (status == 0) {
        if (j->key[0] != '\0') {
            sc_folder_t *f = sc_folder_get(vol, j->key);
            if (f == NULL) {
                status = -ENOMEM;
            } else {
                sc_writers_reconcile(vol, f);
                bytes = f->bytes;
                files = f->files;
            }
        } else {
            sc_scope_t *s = sc_scope_get(vol, j->scope);
            if (s == NULL)
                status = -ENOMEM;
            else
                bytes = sc_scope_bytes(vol, s, &files);
        }
    }
    ((baic_storage_usage_cb)j->cb)(j->arg, status, bytes, files);
    job_free(j);
    sc_vol_unref(vol);
}

static int sc_usage(void *state, baic_volume_t *vol, const char *id, baic_storage_usage_cb cb,
                    void *arg) {
    (void)state;
    if (vol == NULL || cb == NULL)
        return BAIC_EBAD_INPUT;
    sc_job_t *j = job_new(J_USAGE, vol, (void *)cb, arg);
    if (j == NULL)
        return -ENOMEM;
    int rc;
    sc_folder_t *f = NULL;
    sc_scope_t *s = NULL;
    const sc_backend_t *be = vol->st->be;
    if (job_folder(j, id) == 0) {
        if (be->folder_usage != NULL) {
            j->kind = J_FUSAGE;
            return job_submit(j);
        }
        f = sc_folder_get(vol, j->key);
    } else {
        j->key[0] = '\0';
        rc = sc_parse_scope(id, j->scope);
        if (rc != 0) {
            job_free(j);
            return rc;
        }
        if (be->scope_usage != NULL) {
            j->kind = J_FUSAGE;
            return job_submit(j);
        }
        s = sc_scope_get(vol, j->scope);
    }
    if (f == NULL && s == NULL) {
        job_free(j);
        return -ENOMEM;
    }
    rc = vol_check(vol);
    if (rc == 0)
        rc = sc_usage_ensure(vol, s, f, usage_ready, j);
    if (rc != 0) {
        job_free(j);
        return rc;
    }
    sc_vol_ref(vol);
    return 0;
}

static int sc_volume_usage(void *state, baic_volume_t *vol, baic_storage_volume_usage_cb cb,
                           void *arg) {
    (void)state;
    if (vol == NULL || cb == NULL)
        return BAIC_EBAD_INPUT;
    sc_job_t *j = job_new(J_VUSAGE, vol, (void *)cb, arg);
    if (j == NULL)
        return -ENOMEM;
    return vol->cap > 0 ? total_submit(j) : job_submit(j);
}

static int sc_mkdir(void *state, baic_volume_t *vol, const char *folder_id, const char *path,
                    int parents, baic_storage_done_cb cb, void *arg) {
    (void)state;
    sc_job_t *j;
    int rc = job_prep(J_MKDIR, vol, folder_id, path, (void *)cb, arg, &j);
    if (rc != 0)
        return rc;
    j->flag = parents;
    return job_submit(j);
}

static int sc_list(void *state, baic_volume_t *vol, const char *folder_id, const char *path,
                   baic_storage_list_cb cb, void *arg) {
    (void)state;
    sc_job_t *j;
    int rc = job_prep(J_LIST, vol, folder_id, path ? path : "", (void *)cb, arg, &j);
    return rc != 0 ? rc : job_submit(j);
}

static int sc_rename(void *state, baic_volume_t *vol, const char *folder_id, const char *from,
                     const char *to, baic_storage_done_cb cb, void *arg) {
    (void)state;
    sc_job_t *j;
    int rc = job_prep(J_RENAME, vol, folder_id, from, (void *)cb, arg, &j);
    if (rc != 0)
        return rc;
    rc = job_path(&j->path2, to);
    if (rc != 0) {
        job_free(j);
        return rc;
    }
    return job_submit(j);
}

static int sc_delete_files(void *state, baic_volume_t *vol, const char *folder_id,
                           const char *const *paths, size_t n, int recursive,
                           baic_storage_done_cb cb, void *arg) {
    (void)state;
    sc_job_t *j;
    if (paths == NULL || n == 0)
        return BAIC_EBAD_INPUT;
    int rc = job_prep(J_RM, vol, folder_id, NULL, (void *)cb, arg, &j);
    if (rc != 0)
        return rc;
    j->paths = calloc(n, sizeof *j->paths);
    if (j->paths == NULL) {
        job_free(j);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        rc = job_path(&j->paths[i], paths[i]);
        if (rc != 0) {
            job_free(j);
            return rc;
        }
        j->npaths++;
    }
    j->flag = recursive;
    /* Sizes taken off at removal must include what writers added so far. */
    sc_folder_t *f = sc_folder_get(vol, j->key);
    if (f != NULL)
        sc_writers_reconcile(vol, f);
    return job_submit(j);
}

static int sc_stat(void *state, baic_volume_t *vol, const char *folder_id, const char *path,
                   baic_storage_stat_cb cb, void *arg) {
    (void)state;
    sc_job_t *j;
    int rc = job_prep(J_STAT, vol, folder_id, path ? path : "", (void *)cb, arg, &j);
    return rc != 0 ? rc : job_submit(j);
}

static int sc_open(void *state, baic_volume_t *vol, const char *folder_id, const char *path,
                   uint32_t flags, baic_storage_open_cb cb, void *arg) {
    (void)state;
    sc_job_t *j;
    if ((flags & (BAIC_OPEN_READ | BAIC_OPEN_WRITE)) == 0)
        return BAIC_EBAD_INPUT;
    int rc = job_prep(J_OPEN, vol, folder_id, path, (void *)cb, arg, &j);
    if (rc != 0)
        return rc;
    j->flag = (int)flags;
    return (flags & BAIC_OPEN_WRITE) ? cap_submit(j) : job_submit(j);
}

const baic_storage_ops_t sc_ops = {
    .volume_open = sc_volume_open,
    .volume_close = sc_volume_close,
    .capabilities = sc_capabilities,
    .folder_create = sc_folder_create,
    .folder_delete = sc_folder_delete,
    .folder_clone = sc_folder_clone,
    .quota_get = sc_quota_get,
    .quota_set = sc_quota_set,
    .quota_unset = sc_quota_unset,
    .usage = sc_usage,
    .volume_usage = sc_volume_usage,
    .mkdir = sc_mkdir,
    .list = sc_list,
    .rename = sc_rename,
    .delete_files = sc_delete_files,
    .stat = sc_stat,
    .open = sc_open,
    .health = sc_health,
};
