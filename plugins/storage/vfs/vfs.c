/* SPDX-License-Identifier: Apache-2.0 */
/* storage/vfs: folders as plain directories under the volume root, scope limits in <scope>/.quota
 * (enforced by the proxy). */
#include <baic/plugin.h>
#include <baic/storage.h>

#include "storage_common.h"

static const sc_backend_t vfs_backend = {
    .name = "vfs",
    .quota_read = sc_quotafile_read,
    .quota_write = sc_quotafile_write,
};

static int vfs_init(const baic_host_t *host, const json_t *conf, void **state) {
    return sc_init(host, conf, &vfs_backend, state);
}

BAIC_PLUGIN_DEFINE(storage, vfs, "0.2.0", vfs_init, sc_fini, &sc_ops)
