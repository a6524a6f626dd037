/* SPDX-License-Identifier: Apache-2.0 */
/* baic-plugins: shows operators what each file on a plugin search path is. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry/registry.h"
#include "util/strerror.h"

static void usage(FILE *f) {
    fprintf(f, "usage: baic-plugins [--path DIR]...\n"
               "Lists every *.so on the search path: kind/name, version and ABI, or why it\n"
               "is refused. Without --path: $BAIC_PLUGIN_DIR, then the built-in directories.\n");
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
            printf("refused  %s\n", err);
            refused++;
        }
        (*seen)++;
        free(names[i]);
    }
    free(names);
    return refused;
}

int main(int argc, char **argv) {
    baic_registry_t *reg;
    if (baic_registry_new(NULL, NULL, NULL, &reg) != 0) {
        fprintf(stderr, "baic-plugins: cannot initialise libltdl\n");
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--path") == 0 && i + 1 < argc) {
            baic_registry_add_path(reg, argv[++i]);
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
    for (size_t i = 0; i < baic_registry_npaths(reg); i++)
        refused += list_dir(baic_registry_path_at(reg, i), &seen);
    if (seen == 0)
        printf("no plugins found\n");
    baic_registry_free(reg);
    return refused ? 1 : 0;
}
