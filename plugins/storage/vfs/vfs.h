/* SPDX-License-Identifier: Apache-2.0 */
/* Shared declarations of the storage/vfs plugin's files (volume, folder cache, confined paths). */
#ifndef BAIC_VFS_H
#define BAIC_VFS_H

#include <stdint.h>
#include <sys/stat.h>

#include <baic/host.h>
#include <baic/storage.h>

#define VFS_SCOPE_MAX 128
#define VFS_DEFAULT_SCOPE "_"
#define VFS_QUOTA_FILE ".quota"

typedef struct vfs_state {
    const baic_host_t *host;
    baic_subscription_t *sub;      /* storage_rescan events */
    struct baic_volume *vols;      /* open volumes, for the rescan event */
} vfs_state_t;

/* A file the proxy opened for writing: its growth is folded into the folder's usage. */
typedef struct vfs_writer {
    struct vfs_writer *next;
    int fd;                        /* our dup of the writer's fd */
    int64_t last_size;             /* size already counted */
    int idle_ticks;
} vfs_writer_t;

typedef struct vfs_scope vfs_scope_t;

/* Usage of one folder, kept up to date by the ops that change it. */
typedef struct vfs_folder {
    struct vfs_folder *next;
    vfs_scope_t *scope;
    char key[VFS_SCOPE_MAX + 40];  /* "<scope>/<hex>", the folder's path under the root */
    int64_t bytes, files;
    int known;                     /* bytes/files hold a walk's result plus deltas */
    int walking;
    vfs_writer_t *writers;
} vfs_folder_t;

struct vfs_scope {
    struct vfs_scope *next;
    char name[VFS_SCOPE_MAX + 1];
    int64_t limit;                 /* 0 = none */
    int limit_known;
    int listed;                    /* every folder of the scope has an entry */
};

struct baic_volume {
    struct baic_volume *next;
    vfs_state_t *st;
    char *name;
    char *root;
    int rootfd;
    int refs;                      /* jobs in flight hold the volume */
    int closing;
    vfs_folder_t *folders;
    vfs_scope_t *scopes;
    baic_timer_t *tick;            /* reconciles writers */
};

typedef struct baic_volume vfs_volume_t;

/* ---- vfs_path.c ---- */

/* A parsed id: "<scope>/<uuid>" or "<uuid>" (default scope) names a folder; any other
 * valid scope name names a quota scope. Returns 0 or BAIC_EBAD_INPUT. */
int vfs_parse_folder(const char *id, char scope[VFS_SCOPE_MAX + 1], char key[VFS_SCOPE_MAX + 40]);
int vfs_parse_scope(const char *id, char scope[VFS_SCOPE_MAX + 1]);
/* Lexically normalises a path relative to a folder: "" or components without "." and
 * "..". An absolute path or a ".." above the root gives BAIC_EPERMISSION. out has room
 * for strlen(in) + 1. */
int vfs_norm_path(const char *in, char *out);
/* Opens path (normalised, "" = dirfd itself) beneath dirfd without following any
 * symlink or leaving dirfd. flags as for openat (O_CLOEXEC added). Returns the fd or a
 * negative code (BAIC_EPERMISSION for an escape or a symlink). Blocking. */
int vfs_open_beneath(int dirfd, const char *path, int flags, mode_t mode);
/* Opens the parent directory of path beneath dirfd and points *last at its last
 * component. path must be normalised and non-empty. Returns the fd or a code. */
int vfs_open_parent(int dirfd, const char *path, const char **last);
/* Decides between openat2 and the component walk. */
void vfs_probe_openat2(int rootfd);
/* errno to a baic/uv code. */
int vfs_errno(int e);

/* ---- vfs_tree.c (blocking; pool threads) ---- */

/* Sums regular-file bytes and counts files below dirfd (not following symlinks). */
int vfs_tree_usage(int dirfd, int64_t *bytes, int64_t *files);
/* Removes name in dirfd and, if a directory, everything inside; adds what was freed. */
int vfs_tree_remove(int dirfd, const char *name, int64_t *bytes, int64_t *files);
/* Copies the tree of srcfd into the empty directory dstfd. */
int vfs_tree_copy(int srcfd, int dstfd, int64_t *bytes, int64_t *files);

/* ---- vfs_usage.c (loop thread) ---- */

vfs_scope_t *vfs_scope_get(vfs_volume_t *vol, const char *name);
vfs_folder_t *vfs_folder_get(vfs_volume_t *vol, const char *key);
void vfs_folder_forget(vfs_volume_t *vol, const char *key);
/* Folds the growth of files open for writing into their folders' usage. */
void vfs_writers_reconcile(vfs_volume_t *vol, vfs_folder_t *f);
/* Accounts an open for writing (the file had before bytes, has after now, created: new)
 * and remembers fd to fold in later growth. */
void vfs_writer_add(vfs_volume_t *vol, vfs_folder_t *f, int fd, int64_t before, int64_t after,
                    int created);
void vfs_writers_free(vfs_folder_t *f);
void vfs_tick(baic_timer_t *t, void *arg);
/* Ensures the folder's (or with f NULL, every folder of scope's) usage is known, then
 * calls done(arg, status). Runs the walks on the work queue. */
int vfs_usage_ensure(vfs_volume_t *vol, vfs_scope_t *scope, vfs_folder_t *f,
                     void (*done)(void *arg, int status), void *arg);
/* Starts a full rescan of one folder (or all known folders when key is NULL). */
void vfs_rescan(vfs_volume_t *vol, const char *key);
int64_t vfs_scope_bytes(vfs_volume_t *vol, vfs_scope_t *s, int64_t *files);

void vfs_vol_ref(vfs_volume_t *vol);
void vfs_vol_unref(vfs_volume_t *vol);

#endif
