/* SPDX-License-Identifier: Apache-2.0 */
/* Plugin loading in the order of plugin-abi.md, each refusal with its own code and message. */
#include "registry/registry.h"
#include "registry/kinds.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ltdl.h>

#include "log/log.h"
#include "util/strerror.h"

typedef struct reg_entry {
    baic_plugin_t pub;
    lt_dlhandle handle;
} reg_entry_t;

struct baic_registry {
    char **paths;
    size_t npaths;
    reg_entry_t **plugins;
    size_t nplugins;
    baic_registry_host_factory factory;
    baic_registry_host_free free_host;
    void *arg;
};

static int ltdl_refs;

static int ltdl_acquire(void) {
    if (ltdl_refs++ == 0 && lt_dlinit() != 0) {
        ltdl_refs = 0;
        return BAIC_EPLUGIN_OPEN;
    }
    return 0;
}

static void ltdl_release(void) {
    if (ltdl_refs > 0 && --ltdl_refs == 0)
        lt_dlexit();
}

static int fail(char *err, size_t n, int code, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int fail(char *err, size_t n, int code, const char *path, const char *fmt, ...) {
    if (err != NULL && n > 0) {
        int k = snprintf(err, n, "%s: refused: ", path);
        if (k >= 0 && (size_t)k < n) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(err + k, n - (size_t)k, fmt, ap);
            va_end(ap);
        }
    }
    return code;
}

int baic_registry_new(baic_registry_host_factory factory, baic_registry_host_free free_host,
                      void *arg, baic_registry_t **out) {
    baic_registry_t *reg = calloc(1, sizeof *reg);
    if (reg == NULL)
        return -ENOMEM;
    if (ltdl_acquire() != 0) {
        free(reg);
        return BAIC_EPLUGIN_OPEN;
    }
    reg->factory = factory;
    reg->free_host = free_host;
    reg->arg = arg;
    *out = reg;
    return 0;
}

static void entry_unload(baic_registry_t *reg, reg_entry_t *e) {
    if (e->pub.desc != NULL && e->pub.desc->fini != NULL)
        e->pub.desc->fini(e->pub.state);
    if (e->pub.host != NULL && reg->free_host != NULL)
        reg->free_host(reg->arg, e->pub.host);
    const char *keep = getenv("BAIC_NO_DLCLOSE");
    if (e->handle != NULL && !(keep != NULL && strcmp(keep, "1") == 0))
        lt_dlclose(e->handle);
    free((void *)e->pub.ops);
    free(e->pub.path);
    free(e->pub.id);
    free(e);
}

void baic_registry_free(baic_registry_t *reg) {
    if (reg == NULL)
        return;
    for (size_t i = reg->nplugins; i-- > 0;) {
        BAIC_LOG_D("plugin_unload", "plugin=%s", reg->plugins[i]->pub.id);
        entry_unload(reg, reg->plugins[i]);
    }
    free(reg->plugins);
    for (size_t i = 0; i < reg->npaths; i++)
        free(reg->paths[i]);
    free(reg->paths);
    free(reg);
    ltdl_release();
}

int baic_registry_add_path(baic_registry_t *reg, const char *dir) {
    char **p = realloc(reg->paths, (reg->npaths + 1) * sizeof *p);
    if (p == NULL)
        return -ENOMEM;
    reg->paths = p;
    if ((p[reg->npaths] = strdup(dir)) == NULL)
        return -ENOMEM;
    reg->npaths++;
    return 0;
}

int baic_registry_add_default_paths(baic_registry_t *reg) {
    const char *env = getenv("BAIC_PLUGIN_DIR");
    int rc;
    if (env != NULL && *env != '\0') {
        char *copy = strdup(env), *save = NULL;
        if (copy == NULL)
            return -ENOMEM;
        for (char *tok = strtok_r(copy, ":", &save); tok; tok = strtok_r(NULL, ":", &save)) {
            if ((rc = baic_registry_add_path(reg, tok)) != 0) {
                free(copy);
                return rc;
            }
        }
        free(copy);
    }
    /* A binary running from the build tree uses that tree's plugins and nothing
     * installed; an installed binary uses the plugins installed beside it (found from
     * its own path, so an install moved with --prefix still works), then the
     * configured install directory. Neither ever mixes in the other's plugins. */
    struct stat st;
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = '\0';
    size_t blen = strlen(BAIC_BUILD_DIR);
    if (n > 0 && strncmp(exe, BAIC_BUILD_DIR, blen) == 0 && exe[blen] == '/') {
        if (stat(BAIC_BUILD_PLUGIN_DIR, &st) == 0)
            return baic_registry_add_path(reg, BAIC_BUILD_PLUGIN_DIR);
        return 0;
    }
    if (n > 0) {
        char *slash = strrchr(exe, '/');
        if (slash != NULL) {
            *slash = '\0';
            char rel[4200];
            snprintf(rel, sizeof rel, "%s/../lib/baic/plugins", exe);
            char *real = realpath(rel, NULL);
            if (real != NULL) {
                rc = baic_registry_add_path(reg, real);
                free(real);
                if (rc != 0)
                    return rc;
            }
        }
    }
    if (stat(BAIC_INSTALL_PLUGIN_DIR, &st) == 0) {
        for (size_t i = 0; i < reg->npaths; i++)
            if (strcmp(reg->paths[i], BAIC_INSTALL_PLUGIN_DIR) == 0)
                return 0;
        return baic_registry_add_path(reg, BAIC_INSTALL_PLUGIN_DIR);
    }
    return 0;
}

static int valid_name(const char *s) {
    if (s == NULL || *s == '\0' || strlen(s) > 63)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return 0;
    return 1;
}

/* Steps 1-3 and 5: open, entry point, descriptor checks, ops checks. On success, handle
 * stays open and desc and ops are set (ops is a zero-filled copy the caller owns). */
static int open_and_check(const char *path, lt_dlhandle *handle, const baic_plugin_desc_t **descp,
                          void **opsp, char *err, size_t n) {
    *handle = NULL;
    *descp = NULL;
    if (opsp)
        *opsp = NULL;

    /* 1. open */
    lt_dladvise advise;
    if (lt_dladvise_init(&advise) != 0)
        return fail(err, n, BAIC_EPLUGIN_OPEN, path, "cannot open: %s", lt_dlerror());
    lt_dladvise_local(&advise);
    lt_dladvise_ext(&advise);
    lt_dlhandle h = lt_dlopenadvise(path, advise);
    lt_dladvise_destroy(&advise);
    if (h == NULL) {
        const char *why = lt_dlerror();
        struct stat st;
        if (stat(path, &st) != 0)
            return fail(err, n, BAIC_EPLUGIN_OPEN, path, "cannot open: %s", strerror(errno));
        /* libltdl says "file not found" also when a dependency is missing; ask the
         * dynamic linker for the real reason so the operator sees which library. */
        void *raw = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (raw == NULL) {
            const char *real = dlerror();
            return fail(err, n, BAIC_EPLUGIN_OPEN, path,
                        "cannot open: %s (check the plugin's shared-library dependencies "
                        "with ldd)",
                        real ? real : why);
        }
        dlclose(raw);
        return fail(err, n, BAIC_EPLUGIN_OPEN, path,
                    "cannot open: %s (check the plugin's shared-library dependencies with ldd)",
                    why ? why : "unknown reason");
    }

    /* 2. entry point; libltdl tries the kind_name_LTX_ prefixed symbol first */
    baic_plugin_entry_fn entry;
    void *sym = lt_dlsym(h, "baic_plugin_entry");
    memcpy(&entry, &sym, sizeof entry);
    if (sym == NULL) {
        lt_dlclose(h);
        return fail(err, n, BAIC_EPLUGIN_NO_ENTRY, path,
                    "not a baic plugin: no baic_plugin_entry symbol");
    }
    const baic_plugin_desc_t *d = entry();
    int rc;

    /* 3. magic, ABI major, ABI minor, descriptor size, build signature. Only the
     * first four members are read before desc_size has been checked. */
    if (d == NULL || d->magic != BAIC_PLUGIN_MAGIC) {
        rc = fail(err, n, BAIC_EPLUGIN_BAD_MAGIC, path, "bad magic 0x%08x (expected 0x%08x)",
                  d ? d->magic : 0u, BAIC_PLUGIN_MAGIC);
        goto out;
    }
    if (d->abi_major != BAIC_ABI_MAJOR) {
        rc = fail(err, n, BAIC_EPLUGIN_ABI_MAJOR, path,
                  "built for ABI %u.%u, this host is %u.%u: the major must match",
                  d->abi_major, d->abi_minor, BAIC_ABI_MAJOR, BAIC_ABI_MINOR);
        goto out;
    }
    if (d->abi_minor > BAIC_ABI_MINOR) {
        rc = fail(err, n, BAIC_EPLUGIN_ABI_NEWER, path,
                  "plugin needs a newer host: built for ABI %u.%u, this host is %u.%u",
                  d->abi_major, d->abi_minor, BAIC_ABI_MAJOR, BAIC_ABI_MINOR);
        goto out;
    }
    if (d->desc_size < BAIC_PLUGIN_DESC_MIN_SIZE) {
        rc = fail(err, n, BAIC_EPLUGIN_DESC_SHORT, path,
                  "descriptor too short: %u bytes, at least %zu needed", d->desc_size,
                  (size_t)BAIC_PLUGIN_DESC_MIN_SIZE);
        goto out;
    }
    if (d->build_sig != BAIC_BUILD_SIG) {
        rc = fail(err, n, BAIC_EPLUGIN_BUILD_SIG, path,
                  "is not binary compatible: build signature 0x%08x, host 0x%08x "
                  "(pointer/off_t size, libuv or jansson major differ)",
                  d->build_sig, (unsigned)BAIC_BUILD_SIG);
        goto out;
    }
    const baic_kind_info_t *ki = baic__kind_info((baic_plugin_kind_t)d->kind);
    if (ki == NULL) {
        rc = fail(err, n, BAIC_EPLUGIN_BAD_KIND, path, "unknown plugin kind %u", d->kind);
        goto out;
    }
    if (!valid_name(d->name)) {
        rc = fail(err, n, BAIC_EPLUGIN_BAD_KIND, path, "invalid plugin name");
        goto out;
    }

    /* 5. ops size and mandatory ops */
    if (d->ops == NULL || d->ops_size < ki->min_size) {
        rc = fail(err, n, BAIC_EPLUGIN_OPS_SHORT, path,
                  "%s ops table too short: %u bytes, at least %zu needed", ki->name,
                  d->ops ? d->ops_size : 0u, ki->min_size);
        goto out;
    }
    void *ops = calloc(1, ki->full_size);
    if (ops == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    memcpy(ops, d->ops, d->ops_size < ki->full_size ? d->ops_size : ki->full_size);
    for (size_t i = 0; i < ki->nmandatory; i++) {
        void *fp;
        memcpy(&fp, (char *)ops + ki->mandatory[i].offset, sizeof fp);
        if (fp == NULL) {
            free(ops);
            rc = fail(err, n, BAIC_EPLUGIN_OPS_MISSING, path, "mandatory %s op '%s' missing",
                      ki->name, ki->mandatory[i].name);
            goto out;
        }
    }
    *handle = h;
    *descp = d;
    if (opsp)
        *opsp = ops;
    else
        free(ops);
    return 0;
out:
    lt_dlclose(h);
    return rc;
}

int baic_registry_probe(const char *path, baic_plugin_info_t *info, char *err, size_t n) {
    if (ltdl_acquire() != 0)
        return fail(err, n, BAIC_EPLUGIN_OPEN, path, "libltdl init failed");
    lt_dlhandle h;
    const baic_plugin_desc_t *d;
    int rc = open_and_check(path, &h, &d, NULL, err, n);
    if (rc == 0) {
        memset(info, 0, sizeof *info);
        snprintf(info->kind, sizeof info->kind, "%s", baic_plugin_kind_name(d->kind));
        snprintf(info->name, sizeof info->name, "%s", d->name);
        snprintf(info->version, sizeof info->version, "%s", d->version ? d->version : "?");
        info->abi_major = d->abi_major;
        info->abi_minor = d->abi_minor;
        lt_dlclose(h);
    }
    ltdl_release();
    return rc;
}

static int parse_id(const char *id, baic_plugin_kind_t *kind, const char **name) {
    const char *slash = id ? strchr(id, '/') : NULL;
    if (slash == NULL || baic_plugin_kind_parse(id, (size_t)(slash - id), kind) != 0 ||
        !valid_name(slash + 1))
        return BAIC_EBAD_INPUT;
    *name = slash + 1;
    return 0;
}

const baic_plugin_t *baic_registry_find(const baic_registry_t *reg, baic_plugin_kind_t kind,
                                        const char *name) {
    for (size_t i = 0; i < reg->nplugins; i++)
        if (reg->plugins[i]->pub.kind == kind && strcmp(reg->plugins[i]->pub.name, name) == 0)
            return &reg->plugins[i]->pub;
    return NULL;
}

int baic_registry_load_file(baic_registry_t *reg, const char *path, const char *id,
                            const json_t *conf, char *err, size_t n) {
    baic_plugin_kind_t want_kind;
    const char *want_name;
    if (parse_id(id, &want_kind, &want_name) != 0)
        return fail(err, n, BAIC_EBAD_INPUT, path,
                    "'%s' is not a plugin id of the form kind/name", id ? id : "");

    lt_dlhandle h;
    const baic_plugin_desc_t *d;
    void *ops;
    int rc = open_and_check(path, &h, &d, &ops, err, n);
    if (rc != 0)
        return rc;

    /* 4. kind/name as asked, and not loaded already */
    if (d->kind != (uint32_t)want_kind || strcmp(d->name, want_name) != 0) {
        rc = fail(err, n, BAIC_EPLUGIN_NAME_MISMATCH, path, "declares %s/%s, config asked for %s",
                  baic_plugin_kind_name(d->kind), d->name, id);
        goto out;
    }
    if (baic_registry_find(reg, want_kind, want_name) != NULL) {
        rc = fail(err, n, BAIC_EPLUGIN_DUPLICATE, path, "duplicate: %s is already loaded", id);
        goto out;
    }

    reg_entry_t *e = calloc(1, sizeof *e);
    reg_entry_t **grown = realloc(reg->plugins, (reg->nplugins + 1) * sizeof *grown);
    if (grown != NULL)
        reg->plugins = grown;
    if (e == NULL || grown == NULL || (e->pub.path = strdup(path)) == NULL ||
        (e->pub.id = strdup(id)) == NULL) {
        if (e) {
            free(e->pub.path);
            free(e);
        }
        rc = -ENOMEM;
        goto out;
    }
    e->pub.name = e->pub.id + (want_name - id);
    e->pub.kind = want_kind;
    e->pub.desc = d;
    e->pub.ops = ops;
    e->handle = h;
    e->pub.host = reg->factory ? reg->factory(reg->arg, id) : NULL;

    /* 6. init; a failing init means no fini */
    rc = d->init ? d->init(e->pub.host, conf, &e->pub.state) : 0;
    if (rc != 0) {
        if (e->pub.host && reg->free_host)
            reg->free_host(reg->arg, e->pub.host);
        free(e->pub.path);
        free(e->pub.id);
        free(e);
        rc = fail(err, n, BAIC_EPLUGIN_INIT, path, "init failed: %s (%d)", baic_strerror(rc), rc);
        goto out;
    }
    reg->plugins[reg->nplugins++] = e;
    BAIC_LOG_I("plugin_loaded", "plugin=%s version=%s abi=%u.%u file=%s", id,
               d->version ? d->version : "?", d->abi_major, d->abi_minor, path);
    return 0;
out:
    free(ops);
    lt_dlclose(h);
    return rc;
}

int baic_registry_load(baic_registry_t *reg, const char *id, const json_t *conf, char *err,
                       size_t n) {
    baic_plugin_kind_t kind;
    const char *name;
    if (parse_id(id, &kind, &name) != 0) {
        snprintf(err, n, "'%s' is not a plugin id of the form kind/name", id ? id : "");
        return BAIC_EBAD_INPUT;
    }
    char path[4096];
    for (size_t i = 0; i < reg->npaths; i++) {
        snprintf(path, sizeof path, "%s/%s_%s.so", reg->paths[i], baic_plugin_kind_name(kind),
                 name);
        struct stat st;
        if (stat(path, &st) == 0)
            return baic_registry_load_file(reg, path, id, conf, err, n);
    }
    int k = snprintf(err, n, "%s: plugin not found on the search path (", id);
    for (size_t i = 0; i < reg->npaths && k >= 0 && (size_t)k < n; i++)
        k += snprintf(err + k, n - (size_t)k, "%s%s", i ? ":" : "", reg->paths[i]);
    if (k >= 0 && (size_t)k < n)
        snprintf(err + k, n - (size_t)k, ")");
    return BAIC_EPLUGIN_NOT_FOUND;
}

/* Inserts dir at position pos of the search path. */
static int insert_path(baic_registry_t *reg, size_t pos, const char *dir) {
    int rc = baic_registry_add_path(reg, dir);
    if (rc != 0)
        return rc;
    char *last = reg->paths[reg->npaths - 1];
    memmove(&reg->paths[pos + 1], &reg->paths[pos], (reg->npaths - 1 - pos) * sizeof *reg->paths);
    reg->paths[pos] = last;
    return 0;
}

int baic_registry_config_paths(baic_registry_t *reg, const json_t *root, char *err, size_t n) {
    const json_t *sec = root ? json_object_get(root, "plugins") : NULL;
    if (sec == NULL)
        return 0;
    if (!json_is_object(sec)) {
        snprintf(err, n, "[plugins] must be a table");
        return BAIC_ECONFIG_TYPE;
    }
    /* The operator's directories come before the built-in ones, in the order given. */
    const json_t *paths = json_object_get(sec, "path");
    int rc;
    if (json_is_string(paths))
        return insert_path(reg, 0, json_string_value(paths));
    if (json_is_array(paths)) {
        size_t i;
        const json_t *p;
        json_array_foreach(paths, i, p) {
            if (!json_is_string(p)) {
                snprintf(err, n, "plugins.path[%zu] must be a string", i);
                return BAIC_ECONFIG_TYPE;
            }
            if ((rc = insert_path(reg, i, json_string_value(p))) != 0)
                return rc;
        }
        return 0;
    }
    if (paths != NULL) {
        snprintf(err, n, "plugins.path must be a string or an array of strings");
        return BAIC_ECONFIG_TYPE;
    }
    return 0;
}

int baic_registry_load_config(baic_registry_t *reg, const json_t *root, char *err, size_t n) {
    int rc = baic_registry_config_paths(reg, root, err, n);
    if (rc != 0)
        return rc;
    const json_t *sec = root ? json_object_get(root, "plugins") : NULL;
    if (sec == NULL)
        return 0;
    const json_t *load = json_object_get(sec, "load");
    if (load == NULL)
        return 0;
    if (!json_is_array(load)) {
        snprintf(err, n, "plugins.load must be an array of \"kind/name\" strings");
        return BAIC_ECONFIG_TYPE;
    }
    const json_t *confs = json_object_get(root, "plugin");
    size_t i;
    const json_t *v;
    json_array_foreach(load, i, v) {
        if (!json_is_string(v)) {
            snprintf(err, n, "plugins.load[%zu] must be a string", i);
            return BAIC_ECONFIG_TYPE;
        }
        const char *id = json_string_value(v);
        const json_t *conf = json_is_object(confs) ? json_object_get(confs, id) : NULL;
        if ((rc = baic_registry_load(reg, id, conf, err, n)) != 0)
            return rc;
    }
    return 0;
}

const baic_plugin_t *baic_registry_at(const baic_registry_t *reg, size_t i) {
    return i < reg->nplugins ? &reg->plugins[i]->pub : NULL;
}
size_t baic_registry_count(const baic_registry_t *reg) { return reg->nplugins; }
size_t baic_registry_npaths(const baic_registry_t *reg) { return reg->npaths; }
const char *baic_registry_path_at(const baic_registry_t *reg, size_t i) {
    return i < reg->npaths ? reg->paths[i] : NULL;
}
