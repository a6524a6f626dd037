/* SPDX-License-Identifier: Apache-2.0 */
/* Shared declarations of the runtime/oci plugin's files (internal, not an SDK header). */
#ifndef BAIC_PLUGIN_RUNTIME_OCI_H
#define BAIC_PLUGIN_RUNTIME_OCI_H

#include <stddef.h>
#include <stdint.h>

#include <baic/errors.h>
#include <baic/host.h>
#include <baic/runtime.h>

#define OCI_PATH_MAX 4096
/* Configured directories are refused beyond this length (init), so every path built
 * from one with a short leaf fits OCI_PATH_MAX and messages may truncate harmlessly. */
#define OCI_DIR_MAX 1024

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

typedef struct oci_image_store oci_image_store_t;

/* The plugin's settings, read once at init and immutable afterwards, so pool threads
 * may read them without locks. */
typedef struct oci_conf {
    char runtime[16];          /* "crun" or "runc" */
    char runtime_path[OCI_PATH_MAX];
    char runtime_root[OCI_PATH_MAX]; /* --root of the runtime: our containers only */
    char state_dir[OCI_PATH_MAX];
    char image_dir[OCI_PATH_MAX];
    char skopeo[OCI_PATH_MAX];
    char umoci[OCI_PATH_MAX];
    char kernel_runner[OCI_PATH_MAX];        /* host path, "" = none */
    char kernel_runner_target[OCI_PATH_MAX]; /* where it appears in the container */
    char name_prefix[64];
    char cgroup_parent[128];
    int hybrid_workaround;     /* run crun in a private mount ns without cgroup2 */
    int cgroup_v2;             /* the host's cgroup hierarchy is unified */
    int registry_insecure;     /* plain HTTP / no TLS verify for every registry */
    uint64_t cmd_timeout_ms;   /* bound on one runtime command */
} oci_conf_t;

/* ---- oci_proc.c: child processes, run on a pool thread ---- */

/*
 * Runs argv (argv[0] an absolute path or found on PATH) to completion with uv_spawn
 * on a private loop, so only the calling pool thread waits. stdin is /dev/null.
 *   out/out_max  stdout+stderr kept (NUL-terminated, truncated) when out != NULL;
 *                otherwise the output goes to out_fd (or /dev/null when out_fd < 0)
 *   timeout_ms   0 = none; on expiry the child gets SIGKILL and BAIC_ETIMEOUT returns
 *   status       exit code 0..255, or 128+signal
 * Returns 0 when the child ran (whatever its status), or a negative code.
 */
int oci_proc_run(const char *const *argv, char *out, size_t out_max, int out_fd,
                 uint64_t timeout_ms, int *status);

/* Prefixes argv of a runtime command with the runtime (and, for crun on a hybrid
 * host, the private-mount-namespace wrapper). dst has room for n entries; returns the
 * number used, NULL-terminated, or -1 when too small. */
int oci_runtime_argv(const oci_conf_t *c, const char **dst, size_t n,
                     const char *const *args);

/* mkdir -p; 0 or -errno. */
int oci_mkdirs(const char *path, unsigned mode);
/* rm -rf of path; 0 or -errno (a missing path is 0). Never crosses mount points. */
int oci_rmtree(const char *path);
/* Writes data to path atomically (tmp + rename). */
int oci_write_file(const char *path, const char *data, size_t len);
/* Reads a small file into buf (NUL-terminated); returns bytes read or -errno. */
long oci_read_file(const char *path, char *buf, size_t max);
int64_t oci_wall_ms(void);

/* ---- oci_spec.c: config.json ---- */

typedef struct oci_spec_paths {
    const char *rootfs;       /* merged overlay dir */
    const char *home;         /* per-kernel /home/work source, or NULL when a mount has it */
    const char *cgroups_path; /* "/baic/<name>/c" */
} oci_spec_paths_t;

/* Builds the OCI runtime config for spec; returns a malloc'd JSON string or NULL with
 * *err set (BAIC_EBAD_INPUT with a reason in errbuf). */
char *oci_spec_build(const oci_conf_t *c, const baic_container_spec_t *spec,
                     const oci_spec_paths_t *p, int *err, char *errbuf, size_t errlen);

/* ---- oci_cgroup.c: the per-kernel parent cgroup the plugin owns ---- */

/* The limits live on a cgroup the plugin creates and the runtime's cgroup nests in,
 * so the OOM counters outlive the runtime's cleanup of its own cgroup. */
int oci_cgroup_create(const oci_conf_t *c, const char *name, int64_t memory_bytes);
int oci_cgroup_remove(const oci_conf_t *c, const char *name);
/* v1: an eventfd signalled on every OOM of the kernel's cgroup, or -1 (v2, failure). */
int oci_cgroup_oom_watch(const oci_conf_t *c, const char *name);
/* 1 when an OOM happened since the last call (*seen tracks the count), else 0. */
int oci_cgroup_oom_check(const oci_conf_t *c, const char *name, int efd, int64_t *seen);
/* Times the memory limit was hit, -1 when unknown (backs up a missed notification). */
int64_t oci_cgroup_failcnt(const oci_conf_t *c, const char *name);
void oci_cgroup_stats(const oci_conf_t *c, const char *name, baic_rt_stats_t *st);

/* ---- oci_image.c: pull with skopeo, unpack once with umoci ---- */

typedef void (*oci_image_cb)(void *arg, int status, const char *rootfs);

int oci_image_store_new(const baic_host_t *host, const oci_conf_t *conf,
                        oci_image_store_t **out);
void oci_image_store_free(oci_image_store_t *s);
/*
 * Makes ref (registry/repo:tag) available as an unpacked rootfs. cb runs once, later,
 * on the loop thread, with the rootfs path (borrowed for the call). Concurrent calls
 * for one ref share one pull. Progress is published as "image_pull" events.
 */
int oci_image_get(oci_image_store_t *s, const char *ref, oci_image_cb cb, void *arg);

#endif
