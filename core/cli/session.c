/* SPDX-License-Identifier: Apache-2.0 */
/* `baic session create|ls|info|exec|rm|logs|events`: compute sessions through the manager's signed API. */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <signal.h>
#include <unistd.h>

#include "auth/sign.h"
#include "cli/api.h"
#include "cli/cli.h"

static const char usage[] =
    "usage: baic session <verb> ...\n"
    "  create IMAGE NAME [-r SLOT=AMOUNT]...  create a session and wait until it runs;\n"
    "         [--mount FOLDER[:/home/work/PATH][:ro]]...  with folders mounted\n"
    "  ls [--all]                             your sessions (--all: finished ones too)\n"
    "  info NAME                              one session's fields (GET /session/NAME)\n"
    "  exec NAME CODE                         run CODE (query mode); exits with its code\n"
    "  rm NAME                                terminate a session (returns once TERMINATED)\n"
    "  logs NAME                              the kernel's console output (also after it ended)\n"
    "  upload NAME FILE...                    copy files into the session's home (same paths)\n"
    "  download NAME FILE... [--dest DIR]     copy files out of it (at most 5 per call)\n"
    "  events [NAME] [--timeout S]            session events as they happen (SSE); ends with\n"
    "                                         the session (terminated/cancelled) or after S s\n"
    "Reads BACKEND_ENDPOINT, BACKEND_ACCESS_KEY, BACKEND_SECRET_KEY.\n";

static int path_for(char *out, size_t n, const char *fmt, const char *name) {
    char esc[300];
    cli_api_escape(name, esc, sizeof esc);
    int w = snprintf(out, n, fmt, esc);
    return w < 0 || (size_t)w >= n ? -1 : 0;
}

static int do_ls(const cli_api_t *api, int all) {
    int status;
    json_t *ans;
    if (cli_api_json(api, "GET", all ? "/session?all=true" : "/session", NULL, 30000, &status,
                     &ans) != 0)
        return 1;
    if (status != 200) {
        cli_api_print_error("list sessions", status, ans);
        json_decref(ans);
        return 1;
    }
    printf("%-36s  %-24s  %-12s  %s\n", "ID", "NAME", "STATUS", "IMAGE");
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(ans, "sessions"), i, s) {
        printf("%-36s  %-24s  %-12s  %s\n", json_string_value(json_object_get(s, "id")) ?: "",
               json_string_value(json_object_get(s, "name")) ?: "",
               json_string_value(json_object_get(s, "status")) ?: "",
               json_string_value(json_object_get(s, "image")) ?: "");
    }
    json_decref(ans);
    return 0;
}

static int do_info(const cli_api_t *api, const char *name) {
    char path[400];
    if (path_for(path, sizeof path, "/session/%s", name) != 0)
        return 2;
    int status;
    json_t *ans;
    if (cli_api_json(api, "GET", path, NULL, 30000, &status, &ans) != 0)
        return 1;
    if (status != 200) {
        cli_api_print_error("session info", status, ans);
        json_decref(ans);
        return 1;
    }
    const char *keys[] = {"sessionId", "sessionName", "status", "statusInfo", "image",
                          "architecture", "creationTime", "terminationTime", "occupiedSlots",
                          "requestedSlots", "numQueriesExecuted"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        json_t *v = json_object_get(ans, keys[i]);
        if (v == NULL)
            continue;
        char *t = json_is_string(v) ? NULL : json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
        printf("%-20s %s\n", keys[i], t ? t : json_string_value(v));
        free(t);
    }
    json_decref(ans);
    return 0;
}

static int do_logs(const cli_api_t *api, const char *name) {
    char path[400];
    if (path_for(path, sizeof path, "/session/%s/logs", name) != 0)
        return 2;
    int status;
    json_t *ans;
    if (cli_api_json(api, "GET", path, NULL, 30000, &status, &ans) != 0)
        return 1;
    const char *t = json_string_value(json_object_get(ans, "type"));
    if (status == 404 && t && strstr(t, "url-not-found")) {
        fprintf(stderr, "baic: this manager does not serve kernel logs (GET /session/{ref}/logs)\n");
        json_decref(ans);
        return 1;
    }
    if (status != 200) {
        cli_api_print_error("session logs", status, ans);
        json_decref(ans);
        return 1;
    }
    const char *logs = json_string_value(json_object_get(json_object_get(ans, "result"), "logs"));
    fputs(logs ? logs : "", stdout);
    json_decref(ans);
    return 0;
}

static void on_alarm(int sig) {
    (void)sig;
}

/* SSE over a blocking socket (HTTP/1.0, so the stream is close-delimited). */
static int do_events(const cli_api_t *api, const char *name, int timeout_s) {
    char path[400], date[40], authz[512];
    if (path_for(path, sizeof path, "/events/session?sessionName=%s", name ? name : "*") != 0)
        return 2;
    if (cli_api_sign(api, "GET", path, "application/json", date, authz) != 0)
        return 1;
    char host[300], port[16] = "80";
    snprintf(host, sizeof host, "%s", api->hostport);
    char *colon = strrchr(host, ':');
    if (colon) {
        snprintf(port, sizeof port, "%s", colon + 1);
        *colon = '\0';
    }
    if (host[0] == '[') {
        memmove(host, host + 1, strlen(host));
        char *b = strchr(host, ']');
        if (b)
            *b = '\0';
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
    if (getaddrinfo(host, port, &hints, &ai) != 0 || ai == NULL) {
        fprintf(stderr, "baic: cannot resolve %s\n", host);
        return 1;
    }
    int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        fprintf(stderr, "baic: cannot connect to %s: %s\n", api->endpoint, strerror(errno));
        freeaddrinfo(ai);
        if (fd >= 0)
            close(fd);
        return 1;
    }
    freeaddrinfo(ai);
    if (timeout_s > 0) {
        /* keep-alive comments would reset a receive timeout: a whole-stream deadline. */
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_alarm; /* no SA_RESTART: the blocked read returns EINTR */
        sigaction(SIGALRM, &sa, NULL);
        alarm((unsigned)timeout_s);
    }
    char reqbuf[2048];
    int n = snprintf(reqbuf, sizeof reqbuf,
                     "GET %s HTTP/1.0\r\nHost: %s\r\nDate: %s\r\nContent-Type: application/json\r\n"
                     "X-BackendAI-Version: %s\r\nAuthorization: %s\r\nAccept: text/event-stream\r\n\r\n",
                     path, api->hostport, date, BAIC_AUTH_API_VERSION, authz);
    if (n < 0 || (size_t)n >= sizeof reqbuf || write(fd, reqbuf, (size_t)n) != n) {
        close(fd);
        return 1;
    }
    FILE *f = fdopen(fd, "r");
    if (f == NULL) {
        close(fd);
        return 1;
    }
    char line[65536], event[128] = "";
    int status = 0, in_body = 0, rc = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        size_t l = strlen(line);
        while (l && (line[l - 1] == '\n' || line[l - 1] == '\r'))
            line[--l] = '\0';
        if (!in_body) {
            if (status == 0 && sscanf(line, "HTTP/%*d.%*d %d", &status) != 1)
                status = -1;
            if (l == 0) {
                in_body = 1;
                if (status != 200) {
                    fprintf(stderr, "baic: events: HTTP %d: ", status);
                    while (fgets(line, sizeof line, f) != NULL)
                        fputs(line, stderr);
                    fputc('\n', stderr);
                    rc = 1;
                    break;
                }
            }
            continue;
        }
        if (strncmp(line, "event:", 6) == 0) {
            snprintf(event, sizeof event, "%s", line + 6 + (line[6] == ' '));
        } else if (strncmp(line, "data:", 5) == 0) {
            printf("%s %s\n", event, line + 5 + (line[5] == ' '));
            fflush(stdout);
            if (name != NULL && (strcmp(event, "session_terminated") == 0 ||
                                 strcmp(event, "session_cancelled") == 0))
                break;
            if (strcmp(event, "session_failure") == 0)
                rc = 1;
            if (name != NULL &&
                (strcmp(event, "session_success") == 0 || strcmp(event, "session_failure") == 0))
                break;
        }
    }
    fclose(f);
    return rc;
}

int cli_cmd_session(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *verb = argv[1];
    cli_api_t api;
    if (cli_api_from_env(&api) != 0)
        return 2;
    if (strcmp(verb, "create") == 0 && argc >= 4) {
        json_t *res = json_object(), *config = json_object();
        for (int i = 4; i < argc; i += 2) {
            char *eq = i + 1 < argc ? strchr(argv[i + 1], '=') : NULL;
            if (i + 1 < argc && strcmp(argv[i], "--mount") == 0) {
                if (cli_mount_parse(config, argv[i + 1]) == 0)
                    continue;
            } else if (strcmp(argv[i], "-r") == 0 && eq != NULL) {
                *eq = '\0';
                json_object_set_new(res, argv[i + 1], json_string(eq + 1));
                continue;
            } else {
                fputs(usage, stderr);
            }
            json_decref(res);
            json_decref(config);
            return 2;
        }
        int rc = cli_session_create_ex(&api, argv[2], argv[3], res, config);
        json_decref(res);
        json_decref(config);
        if (rc == 0)
            printf("session %s is RUNNING\n", argv[3]);
        return rc;
    }
    if (strcmp(verb, "ls") == 0)
        return do_ls(&api, argc > 2 && strcmp(argv[2], "--all") == 0);
    if (strcmp(verb, "info") == 0 && argc == 3)
        return do_info(&api, argv[2]);
    if (strcmp(verb, "exec") == 0 && argc == 4)
        return cli_exec_code(&api, argv[2], "query", argv[3]);
    if (strcmp(verb, "rm") == 0 && argc == 3) {
        int rc = cli_session_delete(&api, argv[2]);
        if (rc == 0)
            printf("session %s terminated\n", argv[2]);
        return rc;
    }
    if (strcmp(verb, "logs") == 0 && argc == 3)
        return do_logs(&api, argv[2]);
    if (strcmp(verb, "upload") == 0 || strcmp(verb, "download") == 0)
        return cli_session_transfer(&api, argc - 1, argv + 1);
    if (strcmp(verb, "events") == 0) {
        const char *name = NULL;
        int timeout = 0;
        for (int i = 2; i < argc; i++) {
            if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc)
                timeout = atoi(argv[++i]);
            else
                name = argv[i];
        }
        return do_events(&api, name, timeout);
    }
    fputs(usage, stderr);
    return 2;
}
