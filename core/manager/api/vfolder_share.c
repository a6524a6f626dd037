/* SPDX-License-Identifier: Apache-2.0 */
/* /folders: invitations, project folder shares, leaving a shared folder. */
#include "vfolder_int.h"

int baic_api_vfolder_share_init(baic_manager_t *m) {
    (void)m;
    return 0;
}
