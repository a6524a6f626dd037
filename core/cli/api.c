/* SPDX-License-Identifier: Apache-2.0 */
/* Signed, blocking manager calls for the `baic` client verbs: core/http's client on a private loop, core/auth's signature. */
#include "cli/api.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <uv.h>

#include "auth/sign.h"
#include "http/client.h"

static int env_copy(const char *name, char *out, size_t n) {
    const char *v = getenv(name);
    if (v == NULL || *v == '\0') {
        fprintf(stderr, "baic: %s is not set (source the user.env that `baic up` wrote)\n", name);
        return -1;
    }
    int w = snprintf(out, n, "%s", v);
    if (w < 0 || (size_t)w >= n) {
        fprintf(stderr, "baic: %s is too long\n", name);
        return -1;
    }
    return 0;
}

int cli_api_from_env(cli_api_t *api) {
    memset(api, 0, sizeof *api);
    if (env_copy("BACKEND_ENDPOINT", api->endpoint, sizeof api->endpoint) != 0 ||
        env_copy("BACKEND_ACCESS_KEY", api->access_key, sizeof api->access_key) != 0 ||
        env_copy("BACKEND_SECRET_KEY", api->secret_key, sizeof api->secret_key) != 0)
        return -1;
    size_t n = strlen(api->endpoint);
    while (n > 0 && api->endpoint[n - 1] == '/')
        api->endpoint[--n] = '\0';
    if (strncmp(api->endpoint, "http://", 7) != 0) {
        fprintf(stderr, "baic: BACKEND_ENDPOINT must be an http:// URL (got %s)\n", api->endpoint);
        return -1;
    }
    const char *h = api->endpoint + 7;
    const char *slash = strchr(h, '/');
    size_t hl = slash ? (size_t)(slash - h) : strlen(h);
    if (hl == 0 || hl >= sizeof api->hostport - 8) {
        fprintf(stderr, "baic: BACKEND_ENDPOINT has no host\n");
        return -1;
    }
    /* core/http's client always sends host:port; sign exactly that. */
    memcpy(api->hostport, h, hl);
    api->hostport[hl] = '\0';
    const char *close = strrchr(api->hostport, ']');
    const char *colon = strrchr(api->hostport, ':');
    if (colon == NULL || (close != NULL && colon < close))
        strcat(api->hostport, ":80");
    return 0;
}

typedef struct wait {
    cli_resp_t *r;
    int done;
} wait_t;

static void on_answer(int status, const baic_http_header_t *headers, const char *body,
                      size_t len, int err, void *arg) {
    wait_t *w = arg;
    w->done = 1;
    w->r->status = status;
    w->r->err = err;
    if (err == 0) {
        w->r->body = malloc(len + 1);
        if (w->r->body) {
            memcpy(w->r->body, body, len);
            w->r->body[len] = '\0';
            w->r->len = len;
        }
        const char *ct = baic_http_header_find(headers, "Content-Type");
        w->r->content_type = ct ? strdup(ct) : NULL;
    }
}

int cli_api_sign(const cli_api_t *api, const char *method, const char *path, const char *ctype,
                 char date[40], char authz[512]) {
    char ymd[9], sig[BAIC_AUTH_HEX_SIZE], mime[128];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, 40, "%Y-%m-%dT%H:%M:%S+00:00", &tm);
    strftime(ymd, sizeof ymd, "%Y%m%d", &tm);
    if (baic_auth_content_mime(ctype, mime, sizeof mime) != 0 ||
        baic_auth_sign("sha256", api->secret_key, strlen(api->secret_key), method, path, date, ymd,
                       api->hostport, mime, "x-backendai-version", BAIC_AUTH_API_VERSION, sig,
                       sizeof sig) != 0)
        return -EINVAL;
    int w = snprintf(authz, 512, "BackendAI signMethod=HMAC-SHA256, credential=%s:%s",
                     api->access_key, sig);
    return w < 0 || w >= 512 ? -ENAMETOOLONG : 0;
}

int cli_api_call(const cli_api_t *api, const char *method, const char *path, const void *body,
                 size_t len, const char *ctype, unsigned timeout_ms, cli_resp_t *r) {
    memset(r, 0, sizeof *r);
    if (ctype == NULL)
        ctype = "application/json";
    char date[40], authz[512], url[2048];
    if (cli_api_sign(api, method, path, ctype, date, authz) != 0) {
        r->err = -EINVAL;
        return r->err;
    }
    int w2 = snprintf(url, sizeof url, "%s%s", api->endpoint, path);
    if (w2 < 0 || (size_t)w2 >= sizeof url) {
        r->err = -ENAMETOOLONG;
        return r->err;
    }
    baic_http_header_t hdrs[] = {
        {"Date", date},
        {"Content-Type", ctype},
        {"X-BackendAI-Version", BAIC_AUTH_API_VERSION},
        {"Authorization", authz},
        {"User-Agent", "baic-cli/" BAIC_VERSION},
        {NULL, NULL},
    };
    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0) {
        r->err = -ENOMEM;
        return r->err;
    }
    wait_t w = {.r = r};
    baic_http_client_req_t req = {
        .method = method,
        .url = url,
        .headers = hdrs,
        .body = body,
        .body_len = len,
        .timeout_ms = timeout_ms,
    };
    int rc = baic_http_client_request(&loop, &req, on_answer, &w);
    if (rc == 0)
        uv_run(&loop, UV_RUN_DEFAULT);
    else
        r->err = rc;
    uv_loop_close(&loop);
    return r->err;
}

void cli_resp_free(cli_resp_t *r) {
    free(r->body);
    free(r->content_type);
    r->body = NULL;
    r->content_type = NULL;
}

int cli_api_json(const cli_api_t *api, const char *method, const char *path, json_t *body,
                 unsigned timeout_ms, int *status, json_t **out) {
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    cli_resp_t r;
    int rc = cli_api_call(api, method, path, text, text ? strlen(text) : 0, NULL, timeout_ms, &r);
    free(text);
    *status = r.status;
    *out = NULL;
    if (rc == 0 && r.len > 0)
        *out = json_loadb(r.body, r.len, 0, NULL);
    cli_resp_free(&r);
    if (rc != 0)
        fprintf(stderr, "baic: %s %s: %s\n", method, path, uv_strerror(rc));
    return rc;
}

void cli_api_print_error(const char *what, int status, const json_t *answer) {
    const char *title = json_string_value(json_object_get(answer, "title"));
    const char *msg = json_string_value(json_object_get(answer, "msg"));
    fprintf(stderr, "baic: %s: %d %s%s%s\n", what, status, title ? title : "(no details)",
            msg ? " " : "", msg ? msg : "");
}

void cli_api_escape(const char *s, char *out, size_t n) {
    static const char hx[] = "0123456789ABCDEF";
    size_t w = 0;
    for (; *s && w + 4 < n; s++) {
        unsigned char c = (unsigned char)*s;
        if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
            out[w++] = (char)c;
        } else {
            out[w++] = '%';
            out[w++] = hx[c >> 4];
            out[w++] = hx[c & 15];
        }
    }
    out[w] = '\0';
}

/* Prints console items; returns nothing. */
static void print_console(const json_t *console) {
    size_t i;
    json_t *item;
    json_array_foreach(console, i, item) {
        const char *type = json_string_value(json_array_get(item, 0));
        json_t *data = json_array_get(item, 1);
        if (type == NULL)
            continue;
        if (strcmp(type, "stdout") == 0 && json_is_string(data)) {
            fwrite(json_string_value(data), 1, json_string_length(data), stdout);
            fflush(stdout);
        } else if (strcmp(type, "stderr") == 0 && json_is_string(data)) {
            fwrite(json_string_value(data), 1, json_string_length(data), stderr);
            fflush(stderr);
        } else if (strcmp(type, "media") == 0) {
            fprintf(stderr, "[media: %s]\n", json_string_value(json_array_get(data, 0)) ?: "?");
        } else if (json_is_string(data)) {
            fprintf(stderr, "[%s] %s\n", type, json_string_value(data));
        }
    }
}

int cli_exec_code(const cli_api_t *api, const char *session, const char *mode, const char *code) {
    char esc[300], path[400];
    cli_api_escape(session, esc, sizeof esc);
    snprintf(path, sizeof path, "/session/%s", esc);
    char run_id[80] = "";
    const char *m = mode;
    const char *c = code;
    char line[65536];
    for (;;) {
        json_t *body = json_pack("{s:s, s:s, s:o, s:{}}", "mode", m, "code", c, "runId",
                                 run_id[0] ? json_string(run_id) : json_null(), "options");
        int status;
        json_t *ans;
        int rc = cli_api_json(api, "POST", path, body, 120000, &status, &ans);
        json_decref(body);
        if (rc != 0)
            return 1;
        if (status != 200) {
            cli_api_print_error("execute", status, ans);
            json_decref(ans);
            return 1;
        }
        json_t *res = json_object_get(ans, "result");
        const char *rid = json_string_value(json_object_get(res, "runId"));
        if (rid)
            snprintf(run_id, sizeof run_id, "%s", rid);
        print_console(json_object_get(res, "console"));
        const char *st = json_string_value(json_object_get(res, "status"));
        if (st == NULL)
            st = "finished";
        if (strcmp(st, "finished") == 0 || strcmp(st, "exec-timeout") == 0) {
            json_t *ec = json_object_get(res, "exitCode");
            int code_out = json_is_integer(ec) ? (int)json_integer_value(ec)
                                               : strcmp(st, "finished") == 0 ? 0 : 124;
            json_decref(ans);
            return code_out;
        }
        if (strcmp(st, "waiting-input") == 0) {
            if (fgets(line, sizeof line, stdin) == NULL)
                line[0] = '\0';
            size_t n = strlen(line);
            if (n && line[n - 1] == '\n')
                line[n - 1] = '\0';
            m = "input";
            c = line;
        } else {
            m = "continue";
            c = "";
        }
        json_decref(ans);
    }
}
