/* SPDX-License-Identifier: Apache-2.0 */
/* The manager side of mounting virtual folders into a session's kernels. */
#ifndef BAIC_MANAGER_VFOLDER_MOUNTS_H
#define BAIC_MANAGER_VFOLDER_MOUNTS_H

#include <jansson.h>

#include "manager.h"

/* mounts: a new reference to the kernel.mounts list
 *   [{"name","vfid","host_path","kernel_path","permission":"ro|rw|wd"}]
 * or NULL when the request was answered (400/403/404/503) or the client went away; either
 * way the caller must not touch req after a NULL. */
typedef void (*baic_vfolder_mounts_cb)(json_t *mounts, void *arg);

/* Resolves config.mounts (folder names or ids), config.mount_map ({name: "/home/work/x" or
 * relative}) and config.mount_options ({name: {"permission": "ro"}}) for the caller, adding
 * the caller's own folders whose names start with '.'. config may be NULL. Each folder must
 * be visible to the caller and allow "mount-in-session" on its host; its host path comes
 * from the storage proxy (POST /folder/mount). cb runs exactly once, possibly later. */
void baic_vfolder_mounts_resolve(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who,
                                 const json_t *config, baic_vfolder_mounts_cb cb, void *arg);

/* Registers the /folders routes (api/vfolder*.c) and reads [volumes]. */
int baic_api_vfolder_init(baic_manager_t *m);

#endif
