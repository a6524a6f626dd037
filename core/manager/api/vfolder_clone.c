/* SPDX-License-Identifier: Apache-2.0 */
/* /folders/{name}/clone as a background task, and /events/background-task. */
#include "vfolder_int.h"

int baic_api_vfolder_clone_init(baic_manager_t *m) {
    (void)m;
    return 0;
}
