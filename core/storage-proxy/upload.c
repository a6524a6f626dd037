/* SPDX-License-Identifier: Apache-2.0 */
/* Client uploads: the tus 1.0.0 subset aiotusclient uses (PATCH, HEAD, OPTIONS), streamed to disk. */
#include "proxy.h"

int sp_upload_init(sp_t *sp) {
    (void)sp;
    return 0;
}
