/* SPDX-License-Identifier: Apache-2.0 */
/* baic-plugins: shows operators what each file on a plugin search path is. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "host/host.h"
#include "registry/registry.h"
#include "util/strerror.h"

static void usage(FILE *f) {
    fprintf(f, "usage: baic-plugins [--path DIR]... [--load KIND/NAME]...\n"
               "Lists every *.so on the search path: kind/name, version and ABI, or why it\n"
               "is refused. Without --path: $BAIC_PLUGIN_DIR, then the built-in directories.\n"
               "--load initialises the named plugins with a real host and unloads them\n"
               "again, to check that they start.\n");
}

static int cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Lists one directory in name order; returns the number of refused files. */
static int list_dir(const char *dir, int *seen) {
    DIR *d = opendir(dir);
    if (d == NULL) {
        printf("%s: cannot read directory\n", dir);
        return 1;
    }
    char **names = NULL;
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (len > 3 && strcmp(de->d_name + len - 3, ".so") == 0) {
            char **g = realloc(names, (n + 1) * sizeof *g);
            if (g == NULL)
                break;
            names = g;
            names[n++] = strdup(de->d_name);
        }
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp);
    int refused = 0;
    for (size_t i = 0; i < n; i++) {
        char path[4096], err[1024];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        baic_plugin_info_t info;
        if (baic_registry_probe(path, &info, err, sizeof err) == 0) {
            char id[96];
            snprintf(id, sizeof id, "%s/%s", info.kind, info.name);
            printf("%-24s version=%-8s abi=%u.%u  %s\n", id, info.version, info.abi_major,
                   info.abi_minor, path);
        } else {
            /* err reads "<path>: refused: <reason>"; the line already says refused. */
            const char *why = strstr(err, ": refused: ");
            if (why != NULL)
                printf("refused  %s: %s\n", path, why + strlen(": refused: "));
            else
                printf("refused  %s\n", err);
            refused++;
        }
        (*seen)++;
        free(names[i]);
    }
    free(names);
    return refused;
}

/* Loads each id with a real host on a private loop, then unloads everything. */
static int load_ids(baic_registry_t *probe_reg, char **ids, int nids) {
    uv_loop_t loop;
    baic_host_ctx_t *ctx = NULL;
    baic_registry_t *reg = NULL;
    int failed = 0;
    uv_loop_init(&loop);
    if (baic_host_ctx_new(&loop, NULL, &ctx) != 0 ||
        baic_registry_new(NULL, NULL, NULL, &reg) != 0) {
        fprintf(stderr, "baic-plugins: out of memory\n");
        return 1;
    }
    baic_registry_free(reg);
    if (baic_host_registry_new(ctx, &reg) != 0)
        return 1;
    /* The directories given with --path are searched first, then the defaults. */
    for (int i = 0; i < nids; i++) {
        char err[1024];
        int rc = BAIC_EPLUGIN_NOT_FOUND;
        for (size_t p = 0; p < baic_registry_npaths(probe_reg) && rc == BAIC_EPLUGIN_NOT_FOUND; p++) {
            const char *slash = strchr(ids[i], '/');
            char path[4096];
            if (slash == NULL)
                break;
            snprintf(path, sizeof path, "%s/%.*s_%s.so", baic_registry_path_at(probe_reg, p),
                     (int)(slash - ids[i]), ids[i], slash + 1);
            if (access(path, F_OK) == 0)
                rc = baic_registry_load_file(reg, path, ids[i], NULL, err, sizeof err);
        }
        if (rc == BAIC_EPLUGIN_NOT_FOUND)
            rc = baic_registry_load(reg, ids[i], NULL, err, sizeof err);
        if (rc == 0) {
            printf("loaded   %s\n", ids[i]);
        } else {
            printf("failed   %s\n", err);
            failed++;
        }
    }
    baic_registry_free(reg);
    baic_host_ctx_free(ctx);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return failed;
}

int main(int argc, char **argv) {
    baic_registry_t *reg;
    char *ids[64];
    int nids = 0;
    if (baic_registry_new(NULL, NULL, NULL, &reg) != 0) {
        fprintf(stderr, "baic-plugins: cannot initialise libltdl\n");
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--path") == 0 && i + 1 < argc) {
            baic_registry_add_path(reg, argv[++i]);
        } else if (strcmp(argv[i], "--load") == 0 && i + 1 < argc && nids < 64) {
            ids[nids++] = argv[++i];
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            baic_registry_free(reg);
            return 0;
        } else {
            usage(stderr);
            baic_registry_free(reg);
            return 2;
        }
    }
    if (baic_registry_npaths(reg) == 0)
        baic_registry_add_default_paths(reg);
    int refused = 0, seen = 0;
    if (nids > 0) {
        refused = load_ids(reg, ids, nids);
    } else {
        for (size_t i = 0; i < baic_registry_npaths(reg); i++)
            refused += list_dir(baic_registry_path_at(reg, i), &seen);
        if (seen == 0)
            printf("no plugins found\n");
    }
    baic_registry_free(reg);
    return refused ? 1 : 0;
}
