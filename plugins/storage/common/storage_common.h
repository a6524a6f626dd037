/* SPDX-License-Identifier: Apache-2.0 */
/* The storage engine every directory-tree storage plugin shares: volumes, folders, file ops,
 * usage bookkeeping, confined paths, the volume cap; a backend adds quotas, fast usage, mounts
 * and health through sc_backend_t. */
#ifndef BAIC_STORAGE_COMMON_H
#define BAIC_STORAGE_COMMON_H

#include <stdint.h>
#include <sys/stat.h>

#include <baic/host.h>
#include <baic/storage.h>

#define SC_SCOPE_MAX 128
#define SC_DEFAULT_SCOPE "_"
#define SC_QUOTA_FILE ".quota"

typedef struct baic_volume sc_volume_t;

/*
 * What a backend adds to the engine. Every hook is optional; a NULL quota_read/quota_write
 * pair means no CAP_QUOTA. Hooks marked "pool" run on a work-queue thread and may block.
 */
typedef struct sc_backend {
    const char *name; /* "vfs", "xfs", ... (logs) */
    uint32_t caps;    /* BAIC_STORAGE_CAP_* beyond FILE_OPS | CLONE | METRIC */
    /* Loop thread, in volume_open before the root is opened: mount, check, enable quotas;
     * may keep its own data in vol->priv. On failure the engine calls nothing else. */
    int (*vol_open)(sc_volume_t *vol, const json_t *conf);
    /* Loop thread, when the volume is freed (every job done). */
    void (*vol_close)(sc_volume_t *vol);
    /* pool: a scope directory was just created (or found) under the root. */
    int (*scope_prepare)(sc_volume_t *vol, const char *scope);
    /* pool: the scope's limit (0 = none); write with limit 0 removes it. */
    int (*quota_read)(sc_volume_t *vol, const char *scope, int64_t *limit);
    int (*quota_write)(sc_volume_t *vol, const char *scope, int64_t limit);
    /* pool: fast usage from the filesystem's own accounting (key: "<scope>/<hex>"). */
    int (*scope_usage)(sc_volume_t *vol, const char *scope, int64_t *bytes, int64_t *files);
    int (*folder_usage)(sc_volume_t *vol, const char *key, int64_t *bytes, int64_t *files);
    int (*volume_used)(sc_volume_t *vol, int64_t *bytes);
    /* pool, at volume_open: make the filesystem itself enforce the volume cap (0 = none);
     * BAIC_ENOT_SUPPORTED leaves it to the engine's checks. */
    int (*volume_cap)(sc_volume_t *vol, int64_t cap);
    /* Loop thread, never blocking: 1 healthy, 0 not (with a reason). */
    int (*health)(sc_volume_t *vol, const char **reason);
} sc_backend_t;

typedef struct sc_state {
    const baic_host_t *host;
    const sc_backend_t *be;
    baic_subscription_t *sub; /* storage_rescan events */
    struct baic_volume *vols; /* open volumes, for the rescan event */
} sc_state_t;

/* A file the proxy opened for writing: its growth is folded into the folder's usage. */
typedef struct sc_writer {
    struct sc_writer *next;
    int fd;            /* our dup of the writer's fd */
    int64_t last_size; /* size already counted */
    int idle_ticks;
} sc_writer_t;

typedef struct sc_scope sc_scope_t;

/* Usage of one folder, kept up to date by the ops that change it. */
typedef struct sc_folder {
    struct sc_folder *next;
    sc_scope_t *scope;
    char key[SC_SCOPE_MAX + 40]; /* "<scope>/<hex>", the folder's path under the root */
    int64_t bytes, files;
    int known; /* bytes/files hold a walk's result plus deltas */
    int walking;
    sc_writer_t *writers;
} sc_folder_t;

struct sc_scope {
    struct sc_scope *next;
    char name[SC_SCOPE_MAX + 1];
    int64_t limit; /* 0 = none */
    int limit_known;
    int listed; /* every folder of the scope has an entry */
};

struct baic_volume {
    struct baic_volume *next;
    sc_state_t *st;
    char *name;
    char *root;
    int rootfd;
    void *priv;     /* the backend's */
    int64_t cap;    /* volume_quota_bytes, 0 = none */
    int cap_native; /* the filesystem enforces cap itself */
    int all_listed; /* every scope was walked (for the volume total) */
    int refs;       /* jobs in flight hold the volume */
    int closing;
    sc_folder_t *folders;
    sc_scope_t *scopes;
    baic_timer_t *tick; /* reconciles writers */
};

/* ---- sc_engine.c ---- */

/* The ops table every engine-based plugin exports, and its init/fini: init with the
 * plugin's backend. */
extern const baic_storage_ops_t sc_ops;
int sc_init(const baic_host_t *host, const json_t *conf, const sc_backend_t *be, void **state);
void sc_fini(void *state);
/* Reads an optional non-negative integer (or "10G"-style string) from conf. */
int sc_conf_bytes(const json_t *conf, const char *key, int64_t *out);

/* ---- sc_quotafile.c: scope limits kept in <scope>/.quota (enforced by the proxy) ---- */

int sc_quotafile_read(sc_volume_t *vol, const char *scope, int64_t *limit);
int sc_quotafile_write(sc_volume_t *vol, const char *scope, int64_t limit);

/* ---- sc_path.c ---- */

/* A parsed id: "<scope>/<uuid>" or "<uuid>" (default scope) names a folder; any other
 * valid scope name names a quota scope. Returns 0 or BAIC_EBAD_INPUT. */
int sc_parse_folder(const char *id, char scope[SC_SCOPE_MAX + 1], char key[SC_SCOPE_MAX + 40]);
int sc_parse_scope(const char *id, char scope[SC_SCOPE_MAX + 1]);
/* Lexically normalises a path relative to a folder: "" or components without "." and
 * "..". An absolute path or a ".." above the root gives BAIC_EPERMISSION. out has room
 * for strlen(in) + 1. */
int sc_norm_path(const char *in, char *out);
/* Opens path (normalised, "" = dirfd itself) beneath dirfd without following any
 * symlink or leaving dirfd. flags as for openat (O_CLOEXEC added). Returns the fd or a
 * negative code (BAIC_EPERMISSION for an escape or a symlink). Blocking. */
int sc_open_beneath(int dirfd, const char *path, int flags, mode_t mode);
/* Opens the parent directory of path beneath dirfd and points *last at its last
 * component. path must be normalised and non-empty. Returns the fd or a code. */
int sc_open_parent(int dirfd, const char *path, const char **last);
/* Decides between openat2 and the component walk. */
void sc_probe_openat2(int rootfd);
/* errno to a baic/uv code. */
int sc_errno(int e);

/* ---- sc_tree.c (blocking; pool threads) ---- */

/* Sums regular-file bytes and counts files below dirfd (not following symlinks). */
int sc_tree_usage(int dirfd, int64_t *bytes, int64_t *files);
/* Removes name in dirfd and, if a directory, everything inside; adds what was freed. */
int sc_tree_remove(int dirfd, const char *name, int64_t *bytes, int64_t *files);
/* Copies the tree of srcfd into the empty directory dstfd. */
int sc_tree_copy(int srcfd, int dstfd, int64_t *bytes, int64_t *files);

/* ---- sc_usage.c (loop thread) ---- */

sc_scope_t *sc_scope_get(sc_volume_t *vol, const char *name);
sc_folder_t *sc_folder_get(sc_volume_t *vol, const char *key);
void sc_folder_forget(sc_volume_t *vol, const char *key);
/* Folds the growth of files open for writing into their folders' usage. */
void sc_writers_reconcile(sc_volume_t *vol, sc_folder_t *f);
/* Accounts an open for writing (the file had before bytes, has after now, created: new)
 * and remembers fd to fold in later growth. */
void sc_writer_add(sc_volume_t *vol, sc_folder_t *f, int fd, int64_t before, int64_t after,
                   int created);
void sc_writers_free(sc_folder_t *f);
void sc_tick(baic_timer_t *t, void *arg);
/* Ensures the folder's (or with f NULL, every folder of scope's) usage is known, then
 * calls done(arg, status). Runs the walks on the work queue. */
int sc_usage_ensure(sc_volume_t *vol, sc_scope_t *scope, sc_folder_t *f,
                    void (*done)(void *arg, int status), void *arg);
/* Starts a full rescan of one folder (or all known folders when key is NULL). */
void sc_rescan(sc_volume_t *vol, const char *key);
int64_t sc_scope_bytes(sc_volume_t *vol, sc_scope_t *s, int64_t *files);
/* Ensures every folder of the volume has known usage (walks the scopes not listed yet). */
int sc_usage_ensure_all(sc_volume_t *vol, void (*done)(void *arg, int status), void *arg);
/* The sum over every known folder (writers reconciled). */
int64_t sc_volume_bytes(sc_volume_t *vol);

void sc_vol_ref(sc_volume_t *vol);
void sc_vol_unref(sc_volume_t *vol);

#endif
