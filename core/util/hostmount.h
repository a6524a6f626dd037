/* SPDX-License-Identifier: Apache-2.0 */
/* The parameter rules of host mounts (POST/DELETE /folders/_/mounts on the manager,
 * /rpc/mounts and /rpc/umounts on the agent), shared so both refuse the same input. */
#ifndef BAIC_CORE_HOSTMOUNT_H
#define BAIC_CORE_HOSTMOUNT_H

#include <jansson.h>
#include <stddef.h>

#define BAIC_HOSTMOUNT_NAME_MAX 64
#define BAIC_HOSTMOUNT_FSTYPE_MAX 32
#define BAIC_HOSTMOUNT_LOCATION_MAX 1024
#define BAIC_HOSTMOUNT_OPTIONS_MAX 1024
#define BAIC_HOSTMOUNT_PATH_MAX 1024

/* The parameters of one mount or umount request, borrowed from the JSON body. */
typedef struct baic_hostmount_req {
    const char *name;          /* one path component under the mount prefix */
    const char *fs_location;   /* mount only */
    const char *fs_type;       /* mount only; "nfs" when absent */
    const char *options;       /* mount only; NULL when absent or null */
    const char *scaling_group; /* manager only; NULL when absent or null */
    const char *fstab_path;    /* NULL when absent or null */
    int edit_fstab;            /* JSON boolean or "true"/"false" */
} baic_hostmount_req_t;

/* Reads and checks body (an object) for a mount (mount = 1) or an umount. Returns 0, or -1
 * with a message for the client in msg. */
int baic_hostmount_parse(const json_t *body, int mount, baic_hostmount_req_t *out, char *msg,
                         size_t msglen);

#endif
