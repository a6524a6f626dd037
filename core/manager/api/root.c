/* SPDX-License-Identifier: Apache-2.0 */
/* GET / : the unauthenticated version probe every client starts with. */
#include "manager.h"

static void get_root(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    (void)m;
    (void)who;
    /* Pre-rendered: this is the hottest unauthenticated path (client version probes). */
    static const char body[] =
        "{\"version\": \"" BAIC_API_VERSION "\", \"manager\": \"" BAIC_MANAGER_VERSION "\"}";
    baic_http_respond(req, 200, "application/json", body, sizeof body - 1);
}

int baic_api_root_init(baic_manager_t *m) {
    int rc = baic_api_route(m, "GET", "/", BAIC_ROUTE_PUBLIC, get_root, 0);
    if (rc == 0)
        rc = baic_api_route(m, "GET", "/func/", BAIC_ROUTE_PUBLIC, get_root, 0);
    return rc;
}
