/* SPDX-License-Identifier: Apache-2.0 */
/* storage/nfs, the parts without side effects: volume options, the mount command line, the health
 * state machine. */
#ifndef BAIC_NFS_LOGIC_H
#define BAIC_NFS_LOGIC_H

#include <stdint.h>

#include <jansson.h>

#define NFS_DEFAULT_OPTIONS "soft,timeo=50,retrans=2"
#define NFS_DEFAULT_HEALTH_INTERVAL_MS 10000
#define NFS_DEFAULT_HEALTH_TIMEOUT_MS 5000
#define NFS_DEFAULT_MOUNT_TIMEOUT_MS 30000

typedef struct nfs_conf {
    char server[256]; /* "" = path is mounted by someone else (fstab) */
    char export_path[1024];
    char options[512];
    char source[1300]; /* "server:/export" ("[v6]:/export") */
    int64_t health_interval_ms, health_timeout_ms, mount_timeout_ms;
} nfs_conf_t;

/* Reads and checks a [volume.<name>] table; on failure returns a BAIC_ECONFIG_* code with
 * a message in err. A server name, an export or options that could smuggle in other mount
 * options or arguments (commas, spaces, control characters, a leading '-') are refused. */
int nfs_conf_parse(const json_t *conf, nfs_conf_t *out, char *err, size_t errlen);

/* The argv of the mount command (NULL-terminated, pointing into c and path). */
void nfs_mount_argv(const nfs_conf_t *c, const char *path, const char *argv[8]);

/* Health: one probe (statfs of the mount point) in flight at a time. */
typedef struct nfs_health {
    int healthy;
    int inflight;
    int64_t started_ms; /* of the probe in flight */
    char reason[256];
} nfs_health_t;

/* At each tick: 1 when a new probe should start now. A probe that has not answered within
 * timeout_ms marks the volume unhealthy (and no second probe is started beside it). */
int nfs_health_tick(nfs_health_t *h, int64_t now_ms, int64_t timeout_ms);
void nfs_health_started(nfs_health_t *h, int64_t now_ms);
/* A probe answered: rc 0 or -errno of statfs, fstype its f_type. */
void nfs_health_result(nfs_health_t *h, int rc, unsigned long fstype);

#define NFS_SUPER_MAGIC_ 0x6969

#endif
