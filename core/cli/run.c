/* SPDX-License-Identifier: Apache-2.0 */
/* `baic run IMAGE (-c CODE | FILE) [--rm]`: create a session, run code in it, print its output, exit with its code. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/api.h"
#include "cli/cli.h"

static const char usage[] =
    "usage: baic run IMAGE (-c CODE | FILE) [--batch] [--rm] [--name NAME] [-r SLOT=AMOUNT]...\n"
    "                [--mount FOLDER[:/home/work/PATH][:ro]]...\n"
    "  Creates a session of IMAGE (waits until it runs), executes CODE (or FILE's text) in\n"
    "  query mode, prints stdout/stderr as they arrive and exits with the code's exit code.\n"
    "  --batch instead creates a batch session whose startup command is CODE (FILE's text,\n"
    "  run by the image's shell): the session ends with it; its console log is printed and\n"
    "  its exit code is baic's. --rm deletes the session afterwards and waits until it is\n"
    "  TERMINATED (batch sessions end by themselves).\n"
    "  Reads BACKEND_ENDPOINT, BACKEND_ACCESS_KEY, BACKEND_SECRET_KEY.\n";

/* A session in one of these has ended: nothing of it runs or is held any more. */
static int status_ended(const char *st) {
    return st != NULL && (strcmp(st, "TERMINATED") == 0 || strcmp(st, "ERROR") == 0 ||
                          strcmp(st, "CANCELLED") == 0);
}

/* A batch session: create, wait until it ended, print its logs; its exit code (or 1). */
static int run_batch(const cli_api_t *api, const char *image, const char *name, json_t *res,
                     json_t *config, const char *code) {
    json_t *cfg = json_deep_copy(config); /* mounts from --mount, and the resources */
    json_object_set(cfg, "resources", res);
    json_t *body = json_pack("{s:s, s:s, s:s, s:s, s:o, s:b, s:i}", "image", image, "name", name,
                             "type", "batch", "startupCommand", code, "config", cfg,
                             "enqueueOnly", 0, "maxWaitSeconds", 0);
    int status;
    json_t *ans;
    if (cli_api_json(api, "POST", "/session", body, 600000, &status, &ans) != 0) {
        json_decref(body);
        return 1;
    }
    json_decref(body);
    if (status / 100 != 2) {
        cli_api_print_error("create batch session", status, ans);
        json_decref(ans);
        return 1;
    }
    json_decref(ans);
    char esc[300], path[400];
    cli_api_escape(name, esc, sizeof esc);
    snprintf(path, sizeof path, "/session/%s", esc);
    int exit_code = -1;
    const char *st = NULL;
    for (;;) {
        if (cli_api_json(api, "GET", path, NULL, 30000, &status, &ans) != 0)
            return 1;
        if (status != 200) {
            cli_api_print_error("session status", status, ans);
            json_decref(ans);
            return 1;
        }
        st = json_string_value(json_object_get(ans, "status"));
        if (status_ended(st)) {
            json_t *ec = json_object_get(
                json_object_get(json_object_get(ans, "statusData"), "kernel"), "exit_code");
            exit_code = json_is_integer(ec) ? (int)json_integer_value(ec) : -1;
            if (exit_code < 0)
                fprintf(stderr, "baic run: the session ended %s (%s) without an exit code\n", st,
                        json_string_value(json_object_get(ans, "statusInfo")) ?: "");
            json_decref(ans);
            break;
        }
        json_decref(ans);
        struct timespec ts = {0, 300 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    snprintf(path, sizeof path, "/session/%s/logs", esc);
    if (cli_api_json(api, "GET", path, NULL, 30000, &status, &ans) == 0 && status == 200) {
        const char *logs =
            json_string_value(json_object_get(json_object_get(ans, "result"), "logs"));
        fputs(logs ? logs : "", stdout);
        fflush(stdout);
    }
    json_decref(ans);
    return exit_code < 0 ? 1 : exit_code;
}

static char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    size_t cap = 4096, n = 0;
    char *s = malloc(cap);
    size_t r;
    while (s && (r = fread(s + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (cap - n - 1 == 0) {
            char *ns = realloc(s, cap * 2);
            if (ns == NULL) {
                free(s);
                s = NULL;
                break;
            }
            s = ns;
            cap *= 2;
        }
    }
    fclose(f);
    if (s)
        s[n] = '\0';
    return s;
}

/* Creates (or reuses) a session and waits for RUNNING; 0 or 1 (printed). */
int cli_session_create(const cli_api_t *api, const char *image, const char *name,
                       json_t *resources) {
    return cli_session_create_ex(api, image, name, resources, NULL);
}

int cli_session_create_ex(const cli_api_t *api, const char *image, const char *name,
                          json_t *resources, json_t *config) {
    json_t *body = json_pack("{s:s, s:s, s:{s:O}, s:b, s:i, s:s}", "image", image, "name", name,
                             "config", "resources", resources ? resources : json_object(),
                             "enqueueOnly", 0, "maxWaitSeconds", 0, "type", "interactive");
    if (config != NULL)
        json_object_update_missing(json_object_get(body, "config"), config);
    int status;
    json_t *ans;
    int rc = cli_api_json(api, "POST", "/session", body, 600000, &status, &ans);
    json_decref(body);
    if (rc != 0)
        return 1;
    const char *st = json_string_value(json_object_get(ans, "status"));
    if (status / 100 != 2) {
        cli_api_print_error("create session", status, ans);
        json_decref(ans);
        return 1;
    }
    if (st == NULL || strcmp(st, "RUNNING") != 0) {
        fprintf(stderr, "baic: session %s is %s, not RUNNING\n", name, st ? st : "unknown");
        json_decref(ans);
        return 1;
    }
    json_decref(ans);
    return 0;
}

int cli_session_delete(const cli_api_t *api, const char *name) {
    char esc[300], path[400];
    cli_api_escape(name, esc, sizeof esc);
    snprintf(path, sizeof path, "/session/%s", esc);
    int status;
    json_t *ans;
    if (cli_api_json(api, "DELETE", path, NULL, 60000, &status, &ans) != 0)
        return 1;
    if (status != 200) {
        cli_api_print_error("delete session", status, ans);
        json_decref(ans);
        return 1;
    }
    json_decref(ans);
    /* The answer comes while the session is TERMINATING: what it held (its folders' mounts,
     * its name) is free once it is TERMINATED, so that is what this waits for (at most
     * 10 s; then it says so). */
    for (int i = 0; i < 200; i++) {
        if (cli_api_json(api, "GET", path, NULL, 30000, &status, &ans) != 0)
            return 1;
        int gone = status == 404 ||
                   (status == 200 && status_ended(json_string_value(json_object_get(ans, "status"))));
        json_decref(ans);
        if (gone)
            return 0;
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    fprintf(stderr, "baic: session %s is still terminating after 10 s\n", name);
    return 0;
}

int cli_cmd_run(int argc, char **argv) {
    const char *image = NULL, *code = NULL, *file = NULL, *name = NULL;
    int rm = 0, batch = 0;
    json_t *res = json_object(), *config = json_object();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(usage, stdout);
            json_decref(res);
            json_decref(config);
            return 0;
        } else if (strcmp(a, "--rm") == 0) {
            rm = 1;
        } else if (strcmp(a, "--batch") == 0) {
            batch = 1;
        } else if ((strcmp(a, "-c") == 0 || strcmp(a, "--code") == 0) && i + 1 < argc) {
            code = argv[++i];
        } else if ((strcmp(a, "--name") == 0 || strcmp(a, "-t") == 0) && i + 1 < argc) {
            name = argv[++i];
        } else if ((strcmp(a, "-r") == 0 || strcmp(a, "--resources") == 0) && i + 1 < argc) {
            char *kv = argv[++i], *eq = strchr(kv, '=');
            if (eq == NULL) {
                fprintf(stderr, "baic run: -r wants SLOT=AMOUNT\n");
                json_decref(res);
                json_decref(config);
                return 2;
            }
            *eq = '\0';
            json_object_set_new(res, kv, json_string(eq + 1));
        } else if (strcmp(a, "--mount") == 0 && i + 1 < argc) {
            if (cli_mount_parse(config, argv[++i]) != 0) {
                json_decref(res);
                json_decref(config);
                return 2;
            }
        } else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "baic run: unknown option %s\n%s", a, usage);
            json_decref(res);
            json_decref(config);
            return 2;
        } else if (image == NULL) {
            image = a;
        } else if (file == NULL) {
            file = a;
        } else {
            fprintf(stderr, "%s", usage);
            json_decref(res);
            json_decref(config);
            return 2;
        }
    }
    if (image == NULL || (code == NULL) == (file == NULL)) {
        fprintf(stderr, "%s", usage);
        json_decref(res);
        json_decref(config);
        return 2;
    }
    cli_api_t api;
    if (cli_api_from_env(&api) != 0) {
        json_decref(res);
        json_decref(config);
        return 2;
    }
    char *text = NULL;
    if (file != NULL) {
        text = read_file(file);
        if (text == NULL) {
            fprintf(stderr, "baic run: cannot read %s: %s\n", file, strerror(errno));
            json_decref(res);
            json_decref(config);
            return 2;
        }
        code = text;
    }
    char gen[64];
    if (name == NULL) {
        srand((unsigned)(time(NULL) ^ getpid()));
        snprintf(gen, sizeof gen, "baic-run-%08x", (unsigned)rand());
        name = gen;
    }
    if (batch) {
        int ec = run_batch(&api, image, name, res, config, code);
        json_decref(res);
        json_decref(config);
        free(text);
        return ec;
    }
    int rc = cli_session_create_ex(&api, image, name, res, config);
    json_decref(res);
    json_decref(config);
    if (rc != 0) {
        free(text);
        return 1;
    }
    int exit_code = cli_exec_code(&api, name, "query", code);
    free(text);
    if (rm && cli_session_delete(&api, name) != 0 && exit_code == 0)
        exit_code = 1;
    return exit_code;
}
