/* SPDX-License-Identifier: Apache-2.0 */
/* The plugin registry: finds, validates, initialises and unloads plugins (libltdl). */
#ifndef BAIC_CORE_REGISTRY_H
#define BAIC_CORE_REGISTRY_H

#include <stddef.h>

#include <baic/host.h>

typedef struct baic_registry baic_registry_t;

/* A loaded plugin. Owned by the registry; valid until baic_registry_free(). */
typedef struct baic_plugin {
    char *path;                     /* file it came from */
    char *id;                       /* "kind/name" */
    const char *name;               /* points into id */
    baic_plugin_kind_t kind;
    const baic_plugin_desc_t *desc; /* inside the plugin's mapping */
    const void *ops;  /* zero-filled copy of the kind's full ops size; unknown ops are NULL */
    void *state;      /* from init */
    baic_host_t *host; /* the host table this plugin got */
} baic_plugin_t;

/* What a file declares, without running its init (for baic-plugins). */
typedef struct baic_plugin_info {
    char kind[16];
    char name[64];
    char version[32];
    unsigned abi_major, abi_minor;
} baic_plugin_info_t;

/*
 * Makes a host table for a plugin about to be initialised; the registry frees it
 * with free_host after fini. Lets each daemon supply its own host services.
 */
typedef baic_host_t *(*baic_registry_host_factory)(void *arg, const char *plugin_id);
typedef void (*baic_registry_host_free)(void *arg, baic_host_t *host);

/* Creates an empty registry. factory may be NULL (then plugins get a NULL host:
 * only useful for probing). Returns 0 or -ENOMEM. Loop thread. */
int baic_registry_new(baic_registry_host_factory factory, baic_registry_host_free free_host,
                      void *arg, baic_registry_t **out);
/* Unloads every plugin: fini in reverse load order, then lt_dlclose (skipped when
 * BAIC_NO_DLCLOSE=1, so valgrind can still symbolise plugin frames). */
void baic_registry_free(baic_registry_t *reg);

/* Appends a directory to the search path. */
int baic_registry_add_path(baic_registry_t *reg, const char *dir);

/*
 * Loads "kind/name" from the first search-path directory holding <kind>_<name>.so.
 * conf is the plugin's own config table (borrowed; must outlive the plugin) or NULL.
 * Returns 0 or a BAIC_EPLUGIN_* code with a message naming the file in err.
 */
int baic_registry_load(baic_registry_t *reg, const char *id, const json_t *conf, char *err,
                       size_t errlen);
/* The same for an explicit file; kind/name must match what the file declares. */
int baic_registry_load_file(baic_registry_t *reg, const char *path, const char *id,
                            const json_t *conf, char *err, size_t errlen);

/*
 * Reads the [plugins] section of a daemon config: `path` (string or array of
 * directories, searched before the ones already on the path) and `load` (array of
 * "kind/name").
 * Each plugin's own table is root.plugin."kind/name". Stops at the first failure.
 */
int baic_registry_load_config(baic_registry_t *reg, const json_t *root, char *err, size_t errlen);

/* Puts the [plugins] path directories (string or array) at the front of the search
 * path. Returns 0 or BAIC_ECONFIG_TYPE with a message. */
int baic_registry_config_paths(baic_registry_t *reg, const json_t *root, char *err, size_t errlen);

/* Adds the default search path: $BAIC_PLUGIN_DIR (colon-separated), then the
 * install directory, then the build tree's plugin directory. */
int baic_registry_add_default_paths(baic_registry_t *reg);

/* Runs load steps 1-5 on a file without init (nothing stays loaded). */
int baic_registry_probe(const char *path, baic_plugin_info_t *info, char *err, size_t errlen);

const baic_plugin_t *baic_registry_find(const baic_registry_t *reg, baic_plugin_kind_t kind,
                                        const char *name);
/* i-th loaded plugin in load order, or NULL past the end. */
const baic_plugin_t *baic_registry_at(const baic_registry_t *reg, size_t i);
size_t baic_registry_count(const baic_registry_t *reg);
size_t baic_registry_npaths(const baic_registry_t *reg);
const char *baic_registry_path_at(const baic_registry_t *reg, size_t i);

/* "scheduler" etc., or NULL for an unknown kind; and the reverse. */
const char *baic_plugin_kind_name(baic_plugin_kind_t kind);
int baic_plugin_kind_parse(const char *s, size_t len, baic_plugin_kind_t *out);

#endif
