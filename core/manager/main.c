/* SPDX-License-Identifier: Apache-2.0 */
/* baic-manager: serve the API, upgrade the schema, populate fixtures. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/rand.h>

#include <baic/auth.h>

#include "config/config.h"
#include "config/daemon.h"
#include "fixtures.h"
#include "util/file.h"
#include "host/host.h"
#include "log/log.h"
#include "reconcile.h"
#include "schema.h"
#include "server.h"
#include "util/strerror.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: baic-manager [-c FILE] [serve]\n"
            "       baic-manager [-c FILE] schema upgrade|status\n"
            "       baic-manager [-c FILE] fixture populate [--keys-out FILE]\n"
            "       baic-manager [-c FILE] reconcile [--dry-run] [--grace SECONDS]\n"
            "\n"
            "FILE defaults to $BAIC_MANAGER_CONFIG, else ./manager.toml, else\n"
            "/etc/baic/manager.toml. $BAIC_DB_DSN overrides [db] dsn.\n");
}

/* A password for a fixture user: 18 random bytes as URL-safe text. */
static void random_password(char out[32]) {
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned char raw[24];
    RAND_bytes(raw, sizeof raw);
    for (int i = 0; i < 24; i++)
        out[i] = alphabet[raw[i] & 63];
    out[24] = '\0';
}

/* Hashes a password with the configured auth plugin (the same one that checks logins). */
static int hash_with_plugin(json_t *config, const char *password, char **out) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    baic_host_ctx_t *ctx = NULL;
    baic_registry_t *reg = NULL;
    char err[1024];
    int rc = baic_host_ctx_new(&loop, config, &ctx);
    if (rc == 0)
        rc = baic_host_registry_new(ctx, &reg);
    const char *name = NULL;
    if (rc == 0)
        rc = baic_config_get_string(config, "manager.auth", "password", &name, err, sizeof err);
    /* Only the auth plugin: the others (a metrics listener, say) have no business in a
     * one-shot command and could collide with a running manager. */
    char id[96];
    const baic_plugin_t *p = NULL;
    if (rc == 0) {
        snprintf(id, sizeof id, "auth/%s", name);
        const json_t *conf = json_object_get(json_object_get(config, "plugin"), id);
        if ((rc = baic_registry_config_paths(reg, config, err, sizeof err)) != 0 ||
            (rc = baic_registry_load(reg, id, conf, err, sizeof err)) != 0)
            fprintf(stderr, "baic-manager: %s\n", err);
        else
            p = baic_registry_find(reg, BAIC_KIND_AUTH, name);
    }
    if (rc == 0) {
        const baic_auth_ops_t *ops = p->ops;
        char *h = NULL;
        rc = ops->hash_password(p->state, password, &h);
        if (rc == 0) {
            *out = strdup(h);
            p->host->free(h);
        }
    }
    baic_registry_free(reg);
    baic_host_ctx_free(ctx);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return rc;
}

static int write_private_file(const char *path, const char *text) {
    return baic_file_replace(path, text, strlen(text), 0600);
}

static int cmd_fixture(json_t *config, int argc, char **argv) {
    const char *keys_out = NULL;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--keys-out") == 0 && i + 1 < argc)
            keys_out = argv[++i];
        else {
            usage(stderr);
            return 2;
        }
    }
    const char *dsn = baic_manager_dsn(config);
    if (dsn == NULL)
        return 2;
    char pw_admin[32], pw_user[32];
    random_password(pw_admin);
    random_password(pw_user);
    char *h_admin = NULL, *h_user = NULL;
    if (hash_with_plugin(config, pw_admin, &h_admin) != 0 ||
        hash_with_plugin(config, pw_user, &h_user) != 0) {
        free(h_admin);
        return 1;
    }
    json_t *keys = NULL;
    char err[1024];
    int rc = baic_fixture_populate(dsn, h_admin, h_user, &keys, err, sizeof err);
    free(h_admin);
    free(h_user);
    if (rc != 0) {
        fprintf(stderr, "baic-manager: fixture populate: %s\n", err);
        return 1;
    }
    /* Passwords are only known now, for users this run created; existing users keep theirs. */
    const char *role;
    json_t *v;
    json_object_foreach(keys, role, v) {
        if (json_is_true(json_object_get(v, "created")))
            json_object_set_new(v, "password",
                                json_string(strcmp(role, "admin") == 0 ? pw_admin : pw_user));
    }
    if (keys_out != NULL) {
        char *text = json_dumps(keys, JSON_INDENT(2));
        rc = text ? write_private_file(keys_out, text) : -ENOMEM;
        free(text);
        if (rc != 0) {
            fprintf(stderr, "baic-manager: cannot write %s: %s\n", keys_out, baic_strerror(rc));
            json_decref(keys);
            return 1;
        }
    }
    json_object_foreach(keys, role, v) {
        printf("fixture: %s user %s access_key=%s%s\n", role,
               json_string_value(json_object_get(v, "email")),
               json_string_value(json_object_get(v, "access_key")),
               json_is_true(json_object_get(v, "created")) ? " (created)" : " (exists)");
    }
    if (keys_out != NULL)
        printf("fixture: secrets written to %s (mode 0600)\n", keys_out);
    json_decref(keys);
    return 0;
}

int main(int argc, char **argv) {
    const char *config_path = NULL;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc) {
            config_path = argv[++i];
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("baic-manager %s (API %s)\n", BAIC_MANAGER_VERSION, BAIC_API_VERSION);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (config_path == NULL)
        config_path = baic_daemon_config_path("BAIC_MANAGER_CONFIG", "manager.toml");
    json_t *config = NULL;
    if (baic_daemon_config_load("baic-manager", config_path, "manager", &config) != 0)
        return 2;
    char err[1024];
    int rc;

    const char *cmd = i < argc ? argv[i++] : "serve";
    int status;
    if (strcmp(cmd, "serve") == 0) {
        status = baic_manager_serve(config);
    } else if (strcmp(cmd, "schema") == 0 && i < argc) {
        const char *dsn = baic_manager_dsn(config);
        if (dsn == NULL) {
            status = 2;
        } else if (strcmp(argv[i], "upgrade") == 0) {
            rc = baic_schema_upgrade(dsn, err, sizeof err);
            if (rc != 0)
                fprintf(stderr, "baic-manager: schema upgrade: %s\n", err);
            status = rc == 0 ? 0 : 1;
        } else if (strcmp(argv[i], "status") == 0) {
            status = baic_schema_status(dsn, stdout) == 0 ? 0 : 1;
        } else {
            usage(stderr);
            status = 2;
        }
    } else if (strcmp(cmd, "fixture") == 0 && i < argc && strcmp(argv[i], "populate") == 0) {
        status = cmd_fixture(config, argc - i - 1, argv + i + 1);
    } else if (strcmp(cmd, "reconcile") == 0) {
        status = baic_reconcile_cli(config, argc - i, argv + i);
    } else {
        usage(stderr);
        status = 2;
    }
    json_decref(config);
    return status;
}
