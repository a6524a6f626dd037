/* SPDX-License-Identifier: Apache-2.0 */
/* What the compute plugin tests share: a loaded plugin, a fake /dev, slot and booking calls. */
#ifndef BAIC_TEST_COMPUTE_FIXTURE_H
#define BAIC_TEST_COMPUTE_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <baic/compute.h>

#include "baic_check.h"
#include "plugins/mock_host.h"

/* One compute plugin loaded into its own mock host, with an optional fake /dev. */
typedef struct cf_cut {
    baic_mock_host_t *m;
    const baic_compute_ops_t *ops;
    void *st;
    char dev[64]; /* mkdtemp'd fake /dev, or "" */
} cf_cut_t;

/* Writes BAIC_BUILD_DIR/rel (a fake vendor library) into buf and checks it is there. */
static inline void cf_fake_lib(char *buf, size_t len, const char *rel) {
    const char *b = getenv("BAIC_BUILD_DIR");
    ck_assert_msg(b != NULL, "BAIC_BUILD_DIR not set (run through ctest)");
    snprintf(buf, len, "%s/%s", b, rel);
    ck_assert_msg(access(buf, R_OK) == 0, "%s missing: build the fake GPU library", buf);
}

/* Loads compute/<name> with the JSON config conf_txt into a new mock host. */
static inline void cf_load(cf_cut_t *c, const char *name, const char *conf_txt) {
    json_error_t e;
    json_t *conf = json_loads(conf_txt, 0, &e);
    ck_assert_msg(conf != NULL, "%s", e.text);
    c->m = baic_mock_host_new(NULL);
    const baic_plugin_desc_t *d;
    int rc = baic_mock_host_load_named(c->m, "compute", name, conf, &d, &c->st);
    json_decref(conf);
    ck_assert_msg(rc == 0, "load: %s", baic_mock_host_last_error(c->m));
    c->ops = d->ops;
}

/* Frees the host (and so the plugin) and removes the fake /dev. */
static inline void cf_free(cf_cut_t *c) {
    baic_mock_host_free(c->m);
    if (c->dev[0] != '\0') {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf %s", c->dev);
        ck_assert_int_eq(system(cmd), 0);
    }
}

static inline size_t cf_nslots(cf_cut_t *c) {
    const baic_slot_decl_t *const *decls;
    size_t n = 99;
    ck_assert_int_eq(c->ops->list_slots(c->st, &decls, &n), 0);
    return n;
}

/* Asks for amount of slot for kernel "k" of session "s". */
static inline int cf_alloc(cf_cut_t *c, const char *slot, int64_t amount,
                           baic_compute_alloc_t **out) {
    baic_slot_t s = {slot, amount};
    baic_compute_request_t req = {.size = sizeof req, .kernel_id = "k", .session_id = "s",
                                  .requested = {&s, 1}};
    return c->ops->allocate(c->st, &req, out);
}

#endif
