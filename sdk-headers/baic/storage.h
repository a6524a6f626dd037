/* SPDX-License-Identifier: Apache-2.0 */
/* Storage plugins: volumes of virtual folders, their quotas and the files inside them. */
#ifndef BAIC_STORAGE_H
#define BAIC_STORAGE_H

#include "host.h"
#include "plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The storage proxy opens one volume per [volume.<name>] in storage-proxy.toml
 * with the plugin its `backend` names; one plugin instance may serve several
 * volumes. A folder is named by its UUID (lower-case, with dashes); where it lives
 * on the volume is the plugin's business. File paths are relative to the folder
 * root ("a/b.txt"); the plugin confines them to the folder: an absolute path, a
 * ".." that leaves the root, or a symlink that resolves outside it fails with
 * BAIC_EPERMISSION, never touches anything outside.
 *
 * Every op that touches the disk completes through a callback that runs later on
 * the loop thread, exactly once, and never when the op returned an error itself;
 * the plugin does the blocking part with host->queue_work.
 */

typedef struct baic_volume baic_volume_t; /* opaque, owned by the plugin */

/* Capability bits (GET /folders/_/hosts "capabilities" are derived from them). */
#define BAIC_STORAGE_CAP_QUOTA 0x01u      /* quota_get/set/unset work */
#define BAIC_STORAGE_CAP_USAGE_FAST 0x02u /* usage is O(1) (fs accounting, not a walk) */
#define BAIC_STORAGE_CAP_CLONE 0x04u      /* folder_clone works */
#define BAIC_STORAGE_CAP_FAST_CLONE 0x08u /* clone is copy-on-write (reflink, snapshot) */
#define BAIC_STORAGE_CAP_FILE_OPS 0x10u   /* mkdir/list/rename/delete/stat/open work */
#define BAIC_STORAGE_CAP_METRIC 0x20u     /* volume_usage works */

typedef enum baic_file_type {
    BAIC_FILE_REGULAR = 0,
    BAIC_FILE_DIRECTORY = 1,
    BAIC_FILE_SYMLINK = 2,
    BAIC_FILE_OTHER = 3,
} baic_file_type_t;

typedef struct baic_file_stat {
    uint32_t size;            /* sizeof at plugin build time */
    const char *name;         /* last path component */
    baic_file_type_t type;
    int64_t bytes;
    uint32_t mode;            /* permission bits */
    int64_t mtime_ms;         /* wall clock */
    int64_t ctime_ms;
} baic_file_stat_t;

/* open flags */
#define BAIC_OPEN_READ 0x01u
#define BAIC_OPEN_WRITE 0x02u
#define BAIC_OPEN_CREATE 0x04u /* with WRITE: create if missing (mode 0644) */
#define BAIC_OPEN_TRUNC 0x08u  /* with WRITE: truncate */
#define BAIC_OPEN_EXCL 0x10u   /* with CREATE: fail with BAIC_EEXISTS if present */

/* Completions. Loop thread; anything passed is borrowed for the call. */
typedef void (*baic_storage_done_cb)(void *arg, int status);
/* quota: limit_bytes 0 = no quota. */
typedef void (*baic_storage_quota_cb)(void *arg, int status, int64_t limit_bytes);
typedef void (*baic_storage_usage_cb)(void *arg, int status, int64_t used_bytes,
                                      int64_t file_count);
typedef void (*baic_storage_volume_usage_cb)(void *arg, int status, int64_t capacity_bytes,
                                             int64_t used_bytes);
typedef void (*baic_storage_list_cb)(void *arg, int status, const baic_file_stat_t *const *ents,
                                     size_t n);
typedef void (*baic_storage_stat_cb)(void *arg, int status, const baic_file_stat_t *st);
/* open: fd is the caller's on success (it closes it), -1 on failure. */
typedef void (*baic_storage_open_cb)(void *arg, int status, int fd);

typedef struct baic_storage_ops {
    /* ---- ABI 1.0 ---- */

    /*
     * volume_open (mandatory): prepares a volume (checks or mounts its path,
     * enables quotas).
     *   name  the volume's name; conf its [volume.<name>] table (borrowed; copy what
     *         you keep), with at least "path"
     *   out   the volume, owned by the plugin until volume_close
     * Returns 0 or a code (the volume is then reported unavailable). Loop thread;
     * may block briefly (it runs at start-up only).
     */
    int (*volume_open)(void *state, const char *name, const json_t *conf, baic_volume_t **out);
    /* volume_close (mandatory): releases the volume. Loop thread. */
    int (*volume_close)(void *state, baic_volume_t *vol);
    /* capabilities (mandatory): BAIC_STORAGE_CAP_* bits of this volume. Loop thread. */
    int (*capabilities)(void *state, baic_volume_t *vol, uint32_t *caps);

    /*
     * folder_create (mandatory): creates an empty folder, with a quota when
     * quota_bytes > 0 and the volume has CAP_QUOTA. BAIC_EEXISTS when present.
     */
    int (*folder_create)(void *state, baic_volume_t *vol, const char *folder_id,
                         int64_t quota_bytes, baic_storage_done_cb cb, void *arg);
    /* folder_delete (mandatory): removes the folder and all inside it. */
    int (*folder_delete)(void *state, baic_volume_t *vol, const char *folder_id,
                         baic_storage_done_cb cb, void *arg);
    /*
     * folder_clone (optional, CAP_CLONE): copies src into a new folder dst on dst_vol
     * (NULL = the same volume). BAIC_ENOT_SUPPORTED for a volume pair it cannot do.
     */
    int (*folder_clone)(void *state, baic_volume_t *vol, const char *src_id,
                        baic_volume_t *dst_vol, const char *dst_id, baic_storage_done_cb cb,
                        void *arg);

    /* Quotas (optional, CAP_QUOTA). set replaces any limit; unset removes it. */
    int (*quota_get)(void *state, baic_volume_t *vol, const char *folder_id,
                     baic_storage_quota_cb cb, void *arg);
    int (*quota_set)(void *state, baic_volume_t *vol, const char *folder_id,
                     int64_t limit_bytes, baic_storage_done_cb cb, void *arg);
    int (*quota_unset)(void *state, baic_volume_t *vol, const char *folder_id,
                       baic_storage_done_cb cb, void *arg);

    /* usage (mandatory): bytes and files in the folder. */
    int (*usage)(void *state, baic_volume_t *vol, const char *folder_id,
                 baic_storage_usage_cb cb, void *arg);
    /* volume_usage (optional, CAP_METRIC): the volume's capacity and use. */
    int (*volume_usage)(void *state, baic_volume_t *vol, baic_storage_volume_usage_cb cb,
                        void *arg);

    /* File ops (mandatory; confined to the folder, see above). */
    /* mkdir: parents != 0 creates missing parents and accepts an existing dir. */
    int (*mkdir)(void *state, baic_volume_t *vol, const char *folder_id, const char *path,
                 int parents, baic_storage_done_cb cb, void *arg);
    /* list: the entries of directory path ("" = the folder root), unsorted. */
    int (*list)(void *state, baic_volume_t *vol, const char *folder_id, const char *path,
                baic_storage_list_cb cb, void *arg);
    /* rename: moves from to to within the folder; BAIC_EEXISTS if to exists. */
    int (*rename)(void *state, baic_volume_t *vol, const char *folder_id, const char *from,
                  const char *to, baic_storage_done_cb cb, void *arg);
    /* delete: removes n paths; a directory needs recursive != 0 unless empty. */
    int (*delete_files)(void *state, baic_volume_t *vol, const char *folder_id,
                        const char *const *paths, size_t n, int recursive,
                        baic_storage_done_cb cb, void *arg);
    /* stat: one entry. */
    int (*stat)(void *state, baic_volume_t *vol, const char *folder_id, const char *path,
                baic_storage_stat_cb cb, void *arg);
    /*
     * open: an fd for streaming a download or an upload (tus), opened with the
     * BAIC_OPEN_* flags and O_CLOEXEC; the host reads/writes and closes it.
     */
    int (*open)(void *state, baic_volume_t *vol, const char *folder_id, const char *path,
                uint32_t flags, baic_storage_open_cb cb, void *arg);

    /* ---- ABI 1.2 ---- */

    /*
     * health (optional): *healthy 1 when the volume's backend answers now, 0 when it
     * does not (a network filesystem whose server went away), with *reason a short text
     * the plugin owns until its next call. Loop thread; never blocks: the plugin
     * probes in the background and answers from what it last saw.
     */
    int (*health)(void *state, baic_volume_t *vol, int *healthy, const char **reason);
} baic_storage_ops_t;

#define BAIC_STORAGE_OPS_MIN_SIZE                                                       \
    (offsetof(baic_storage_ops_t, open) + sizeof(((baic_storage_ops_t *)0)->open))

#define BAIC_STORAGE_MANDATORY_OPS(X)                                                   \
    X(volume_open) X(volume_close) X(capabilities) X(folder_create) X(folder_delete)    \
    X(usage) X(mkdir) X(list) X(rename) X(delete_files) X(stat) X(open)

#ifdef __cplusplus
}
#endif

#endif /* BAIC_STORAGE_H */
