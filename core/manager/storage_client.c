/* SPDX-License-Identifier: Apache-2.0 */
/* Manager -> storage proxy client: the [volumes] config and JSON calls on the proxies' manager API.
 */
#include "storage_client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/client.h"
#include "log/log.h"

typedef struct proxy {
    char *name, *manager_api, *client_api, *secret;
} proxy_t;

static proxy_t *proxies;
static size_t nproxies;
static char *default_host;

static char *dup_trim(const char *s) {
    char *d = strdup(s);
    if (d == NULL)
        return NULL;
    size_t n = strlen(d);
    while (n > 0 && d[n - 1] == '/')
        d[--n] = '\0';
    return d;
}

void baic_storage_fini(void) {
    for (size_t i = 0; i < nproxies; i++) {
        free(proxies[i].name);
        free(proxies[i].manager_api);
        free(proxies[i].client_api);
        free(proxies[i].secret);
    }
    free(proxies);
    proxies = NULL;
    nproxies = 0;
    free(default_host);
    default_host = NULL;
}

int baic_storage_init(baic_manager_t *m) {
    baic_storage_fini();
    const json_t *vol = json_object_get(m->config, "volumes");
    if (vol == NULL)
        return 0;
    if (!json_is_object(vol)) {
        BAIC_LOG_E("config_error", "msg=\"[volumes] must be a table\"");
        return -EINVAL;
    }
    const json_t *dh = json_object_get(vol, "default_host");
    if (dh != NULL) {
        if (!json_is_string(dh)) {
            BAIC_LOG_E("config_error", "msg=\"volumes.default_host must be a string\"");
            return -EINVAL;
        }
        default_host = strdup(json_string_value(dh));
    }
    const json_t *px = json_object_get(vol, "proxies");
    if (px == NULL)
        return 0;
    if (!json_is_object(px)) {
        BAIC_LOG_E("config_error", "msg=\"[volumes.proxies] must be a table of tables\"");
        return -EINVAL;
    }
    proxies = calloc(json_object_size(px) + 1, sizeof *proxies);
    if (proxies == NULL)
        return -ENOMEM;
    const char *name;
    json_t *t;
    json_object_foreach((json_t *)px, name, t) {
        const char *mapi = json_string_value(json_object_get(t, "manager_api"));
        const char *capi = json_string_value(json_object_get(t, "client_api"));
        const char *sec = json_string_value(json_object_get(t, "secret"));
        if (!json_is_object(t) || mapi == NULL || sec == NULL || strchr(name, ':') != NULL ||
            strncmp(mapi, "http://", 7) != 0 || (capi != NULL && strncmp(capi, "http", 4) != 0)) {
            BAIC_LOG_E("config_error",
                       "msg=\"volumes.proxies.%s needs manager_api (http://...) and secret; "
                       "proxy names have no ':'\"",
                       name);
            baic_storage_fini();
            return -EINVAL;
        }
        proxy_t *p = &proxies[nproxies++];
        p->name = strdup(name);
        p->manager_api = dup_trim(mapi);
        p->client_api = capi ? dup_trim(capi) : NULL;
        p->secret = strdup(sec);
        BAIC_LOG_I("storage_proxy_configured", "proxy=%s manager_api=%s", name, p->manager_api);
    }
    return 0;
}

const char *baic_storage_default_host(void) {
    return default_host;
}
size_t baic_storage_nproxies(void) {
    return nproxies;
}
const char *baic_storage_proxy_name(size_t i) {
    return i < nproxies ? proxies[i].name : NULL;
}

static proxy_t *find_proxy(const char *name, size_t len) {
    for (size_t i = 0; i < nproxies; i++)
        if (strlen(proxies[i].name) == len && strncmp(proxies[i].name, name, len) == 0)
            return &proxies[i];
    return NULL;
}

/* host "proxy:volume" -> proxy and volume; NULL when malformed or unknown. */
static proxy_t *split_host(const char *host, const char **volume) {
    const char *c = host ? strchr(host, ':') : NULL;
    if (c == NULL || c == host || c[1] == '\0' || strchr(c + 1, ':') != NULL)
        return NULL;
    *volume = c + 1;
    return find_proxy(host, (size_t)(c - host));
}

int baic_storage_host_ok(const char *host) {
    const char *v;
    return split_host(host, &v) != NULL;
}

const char *baic_storage_client_api(const char *host) {
    const char *v;
    proxy_t *p = split_host(host, &v);
    return p ? p->client_api : NULL;
}

typedef struct call {
    baic_storage_cb cb;
    void *arg;
} call_t;

static void on_answer(int status, const baic_http_header_t *headers, const char *body, size_t len,
                      int err, void *arg) {
    call_t *c = arg;
    (void)headers;
    json_t *j = NULL;
    if (err == 0 && len > 0)
        j = json_loadb(body, len, 0, NULL);
    c->cb(err == 0 ? status : 0, j, err, c->arg);
    json_decref(j);
    free(c);
}

static int do_call(baic_manager_t *m, proxy_t *p, const char *method, const char *path,
                   json_t *body, unsigned timeout_ms, baic_storage_cb cb, void *arg) {
    char url[1024];
    int n = snprintf(url, sizeof url, "%s%s", p->manager_api, path);
    if (n < 0 || (size_t)n >= sizeof url)
        return -EINVAL;
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    baic_http_header_t hdr[] = {
        {"X-BackendAI-Storage-Auth-Token", p->secret},
        {"Content-Type", "application/json"},
        {NULL, NULL},
    };
    baic_http_client_req_t r = {
        .method = method,
        .url = url,
        .headers = hdr,
        .body = text,
        .body_len = text ? strlen(text) : 0,
        .timeout_ms = timeout_ms,
    };
    call_t *c = malloc(sizeof *c);
    if (c == NULL) {
        free(text);
        return -ENOMEM;
    }
    c->cb = cb;
    c->arg = arg;
    int rc = baic_http_client_request(m->uv, &r, on_answer, c);
    free(text);
    if (rc != 0) {
        free(c);
        return rc;
    }
    return 0;
}

int baic_storage_call(baic_manager_t *m, const char *host, const char *path, json_t *body,
                      unsigned timeout_ms, baic_storage_cb cb, void *arg) {
    const char *vol;
    proxy_t *p = split_host(host, &vol);
    if (p == NULL)
        return -ENOENT;
    json_t *b = body ? json_deep_copy(body) : json_object();
    json_object_set_new(b, "volume", json_string(vol));
    int rc = do_call(m, p, "POST", path, b, timeout_ms, cb, arg);
    json_decref(b);
    return rc;
}

int baic_storage_proxy_call(baic_manager_t *m, const char *proxy, const char *method,
                            const char *path, json_t *body, unsigned timeout_ms, baic_storage_cb cb,
                            void *arg) {
    proxy_t *p = find_proxy(proxy, strlen(proxy));
    if (p == NULL)
        return -ENOENT;
    return do_call(m, p, method, path, body, timeout_ms, cb, arg);
}

void baic_storage_fail(baic_http_req_t *req, int status, const json_t *answer, int err) {
    if (err != 0 || status == 0) {
        baic_api_unavailable(req, "The storage proxy is not reachable.");
        return;
    }
    const char *type = json_string_value(json_object_get(answer, "type"));
    const char *title = json_string_value(json_object_get(answer, "title"));
    const char *msg = json_string_value(json_object_get(answer, "msg"));
    const char *slug = NULL;
    if (type && strstr(type, "/probs/") != NULL)
        slug = strstr(type, "/probs/") + 7;
    if (status == 401 || status >= 500 || slug == NULL) {
        BAIC_LOG_W("storage_proxy_error", "status=%d type=%s msg=\"%s\"", status, type ? type : "-",
                   msg ? msg : "");
        baic_http_respond_problem(req, status == 401 || status < 500 ? 500 : status,
                                  "storage-proxy-error", "Storage proxy error.",
                                  msg ? msg : "The storage proxy refused the operation.", NULL);
        return;
    }
    baic_http_respond_problem(req, status, slug, title ? title : "Storage error.", msg, NULL);
}
