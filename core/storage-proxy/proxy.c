/* SPDX-License-Identifier: Apache-2.0 */
/* Storage proxy start-up and shutdown: config, storage plugins and volumes, the manager and client listeners. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <baic/errors.h>

#include "config/config.h"
#include "config/daemon.h"
#include "log/log.h"
#include "proxy.h"
#include "registry/registry.h"
#include "util/strerror.h"

#define SP_CLIENT_CONNS 1024

sp_volume_t *sp_volume_find(sp_t *sp, const char *name) {
    for (size_t i = 0; name != NULL && i < sp->nvols; i++)
        if (strcmp(sp->vols[i].name, name) == 0 && sp->vols[i].vol != NULL)
            return &sp->vols[i];
    return NULL;
}

void sp_http_date(int64_t ms, char *out, size_t n) {
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    if (strftime(out, n, "%a, %d %b %Y %H:%M:%S GMT", &tm) == 0 && n > 0)
        out[0] = '\0';
}

int sp_fail(baic_http_req_t *req, int status, const char *slug, const char *title,
            const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0)
        msg[0] = '\0';
    return baic_http_respond_problem(req, status, slug, title, msg, NULL);
}

int sp_fail_code(baic_http_req_t *req, int code, const char *what) {
    const char *why = baic_strerror(code);
    switch (code) {
    case BAIC_ENOT_FOUND:
        return sp_fail(req, 404, "storage/file-not-found", "No such file or folder.", "%s: %s",
                       what, why);
    case BAIC_EPERMISSION:
        return sp_fail(req, 403, "generic-forbidden", "Forbidden operation.",
                       "%s: the path leaves the folder or crosses a symlink", what);
    case BAIC_EEXISTS:
        return sp_fail(req, 409, "storage/already-exists", "Already exists.", "%s: %s", what, why);
    case BAIC_EQUOTA:
        return sp_fail(req, 412, "quota-exceeded", "Quota exceeded.", "%s: %s", what, why);
    case BAIC_EBAD_INPUT:
    case UV_EINVAL:
        return sp_fail(req, 400, "invalid-api-params", "Missing or invalid API parameters.",
                       "%s: %s", what, why);
    case BAIC_ENOT_SUPPORTED:
        return sp_fail(req, 400, "not-implemented", "Not implemented.", "%s: %s", what, why);
    case UV_ENOTEMPTY:
        return sp_fail(req, 400, "vfolder-operation-failed", "Virtual folder operation failed.",
                       "%s: directory not empty (use recursive)", what);
    default:
        return sp_fail(req, 500, "storage-proxy-error", "Storage proxy error.", "%s: %s", what,
                       why);
    }
}

/* ---- config ---- */

static int read_config(sp_t *sp) {
    const json_t *c = sp->config;
    long long max_up = 0;
    char err[256];
    if (baic_cfg_str(c, "storage-proxy.listen_manager", "127.0.0.1:6021", &sp->listen_manager) ||
        baic_cfg_str(c, "storage-proxy.listen_client", "127.0.0.1:6022", &sp->listen_client) ||
        baic_cfg_str(c, "storage-proxy.manager_secret", NULL, &sp->manager_secret) ||
        baic_cfg_str(c, "storage-proxy.jwt_secret", NULL, &sp->jwt_secret) ||
        baic_cfg_str(c, "storage-proxy.client_url", NULL, &sp->client_url))
        return BAIC_ECONFIG_TYPE;
    if (baic_config_get_int(c, "storage-proxy.max_upload_size", 1LL << 40, &max_up, err,
                            sizeof err) != 0) {
        BAIC_LOG_E("config_error", "msg=\"%s\"", err);
        return BAIC_ECONFIG_TYPE;
    }
    sp->max_upload = max_up;
    if (sp->manager_secret == NULL || strlen(sp->manager_secret) < 16 || sp->jwt_secret == NULL ||
        strlen(sp->jwt_secret) < 16) {
        BAIC_LOG_E("config_error", "msg=\"[storage-proxy] manager_secret and jwt_secret are "
                                   "required (16 characters or more each)\"");
        return BAIC_ECONFIG_MISSING;
    }
    return 0;
}

static int open_volumes(sp_t *sp) {
    const json_t *vols = json_object_get(sp->config, "volume");
    if (!json_is_object(vols) || json_object_size(vols) == 0) {
        BAIC_LOG_E("config_error", "msg=\"no [volume.<name>] table\"");
        return BAIC_ECONFIG_MISSING;
    }
    sp->vols = calloc(json_object_size(vols), sizeof *sp->vols);
    if (sp->vols == NULL)
        return -ENOMEM;
    const char *name;
    const json_t *vc;
    json_object_foreach((json_t *)vols, name, vc) {
        const char *backend = json_string_value(json_object_get(vc, "backend"));
        if (backend == NULL) {
            BAIC_LOG_E("config_error", "msg=\"volume.%s.backend is required (e.g. \\\"vfs\\\")\"",
                       name);
            return BAIC_ECONFIG_MISSING;
        }
        sp_volume_t *v = &sp->vols[sp->nvols++];
        v->name = strdup(name);
        v->backend = backend;
        if (v->name == NULL)
            return -ENOMEM;
        v->plugin = baic_registry_find(sp->reg, BAIC_KIND_STORAGE, backend);
        if (v->plugin == NULL) {
            char id[128], err[1024];
            int n = snprintf(id, sizeof id, "storage/%s", backend);
            if (n < 0 || (size_t)n >= sizeof id)
                return BAIC_ECONFIG_TYPE;
            const json_t *pc = json_object_get(json_object_get(sp->config, "plugin"), id);
            int rc = baic_registry_load(sp->reg, id, pc, err, sizeof err);
            if (rc != 0) {
                BAIC_LOG_E("plugin_load_failed", "volume=%s msg=\"%s\"", name, err);
                return rc;
            }
            v->plugin = baic_registry_find(sp->reg, BAIC_KIND_STORAGE, backend);
            if (v->plugin == NULL)
                return BAIC_EPLUGIN_NOT_FOUND;
        }
        v->ops = v->plugin->ops;
        int rc = v->ops->volume_open(v->plugin->state, name, vc, &v->vol);
        if (rc != 0) {
            /* Reported unavailable; the other volumes still serve. */
            BAIC_LOG_E("volume_unavailable", "volume=%s backend=%s error=\"%s\"", name, backend,
                       baic_strerror(rc));
            v->vol = NULL;
            continue;
        }
        v->ops->capabilities(v->plugin->state, v->vol, &v->caps);
        BAIC_LOG_I("volume_ready", "volume=%s backend=%s caps=0x%x", name, backend, v->caps);
    }
    return 0;
}

/* Loop thread, at shutdown: the plugin frees each volume once its last job is done. */
static void close_volumes(sp_t *sp) {
    for (size_t i = 0; i < sp->nvols; i++) {
        sp_volume_t *v = &sp->vols[i];
        if (v->vol != NULL)
            v->ops->volume_close(v->plugin->state, v->vol);
        v->vol = NULL;
    }
}

static void free_volumes(sp_t *sp) {
    for (size_t i = 0; i < sp->nvols; i++)
        free(sp->vols[i].name);
    free(sp->vols);
    sp->vols = NULL;
    sp->nvols = 0;
}

/* ---- manager API authentication ---- */

static int manager_mw(baic_http_req_t *req, void *arg) {
    sp_t *sp = arg;
    const char *why = NULL;
    if (sp_auth_check(sp, req, &why) != 0) {
        BAIC_LOG_W("manager_auth_failed", "remote=%s path=%s reason=%s", baic_http_remote_addr(req),
                   baic_http_path(req), why);
        sp_fail(req, 401, "auth-failed", "Authentication failed.", "%s", why);
        return 1;
    }
    return 0;
}

static void access_log(const baic_http_req_t *req, const char *pattern, int status,
                       uint64_t duration_us, void *arg) {
    (void)arg;
    BAIC_LOG_D("http_request", "method=%s route=%s status=%d us=%llu", baic_http_method(req),
               pattern ? pattern : "-", status, (unsigned long long)duration_us);
}

/* ---- start and stop ---- */

static void finish(sp_t *sp) {
    if (sp->closing == 2)
        return;
    sp->closing = 2;
    if (sp->mgr_http)
        baic_http_server_close(sp->mgr_http, NULL, NULL);
    if (sp->cli_http)
        baic_http_server_close(sp->cli_http, NULL, NULL);
    sp->mgr_http = sp->cli_http = NULL;
    /* Transfers aborted by the close above touch no volume after this (sp->closing). */
    close_volumes(sp);
}

static void shutdown_cb(baic_loop_t *loop, int signum, void *arg) {
    sp_t *sp = arg;
    (void)loop;
    if (sp->closing)
        return;
    sp->closing = 1;
    BAIC_LOG_I("storage_proxy_stopping", "signal=%d", signum);
    finish(sp);
}

int sp_serve(json_t *config) {
    sp_t proxy, *sp = &proxy;
    memset(sp, 0, sizeof *sp);
    sp->config = config;
    char err[1024];
    int rc = read_config(sp);
    if (rc != 0)
        return 2;
    if ((rc = baic_loop_new(shutdown_cb, sp, &sp->loop)) != 0) {
        BAIC_LOG_E("loop_init_failed", "error=\"%s\"", baic_strerror(rc));
        return 1;
    }
    sp->uv = baic_loop_uv(sp->loop);
    if ((rc = baic_host_ctx_new(sp->uv, config, &sp->host)) != 0 ||
        (rc = baic_host_registry_new(sp->host, &sp->reg)) != 0)
        goto fail;
    if ((rc = baic_registry_load_config(sp->reg, config, err, sizeof err)) != 0) {
        BAIC_LOG_E("plugin_load_failed", "msg=\"%s\"", err);
        goto fail;
    }
    if ((rc = open_volumes(sp)) != 0)
        goto fail;
    baic_http_config_t mc = {.listen = sp->listen_manager, .max_connections = 256,
                             .server_name = "baic-storage-proxy"};
    if ((rc = baic_http_server_new(sp->uv, &mc, &sp->mgr_http)) != 0) {
        BAIC_LOG_E("listen_failed", "addr=%s error=\"%s\"", sp->listen_manager, baic_strerror(rc));
        goto fail;
    }
    /* An upload on a plain connection holds its socket, a duplicate of it, the file and
     * four pipes (eleven descriptors): room for every client connection doing one. */
    if (baic_daemon_open_files(SP_CLIENT_CONNS * 11 + 1024) != 0)
        BAIC_LOG_W("open_files_limit", "want=%d: uploads past the limit read through buffers",
                   SP_CLIENT_CONNS * 11 + 1024);
    baic_http_config_t cc = {.listen = sp->listen_client, .max_connections = SP_CLIENT_CONNS,
                             .server_name = "baic-storage-proxy", .read_timeout_ms = 60000};
    if ((rc = baic_http_server_new(sp->uv, &cc, &sp->cli_http)) != 0) {
        BAIC_LOG_E("listen_failed", "addr=%s error=\"%s\"", sp->listen_client, baic_strerror(rc));
        goto fail;
    }
    baic_http_set_middleware(sp->mgr_http, manager_mw, sp);
    baic_http_set_observer(sp->mgr_http, access_log, sp);
    baic_http_set_observer(sp->cli_http, access_log, sp);
    if ((rc = sp_manager_api_init(sp)) != 0 || (rc = sp_upload_init(sp)) != 0 ||
        (rc = sp_download_init(sp)) != 0) {
        BAIC_LOG_E("route_init_failed", "error=\"%s\"", baic_strerror(rc));
        goto fail;
    }
    BAIC_LOG_I("storage_proxy_started", "manager=%s manager_port=%d client=%s client_port=%d volumes=%zu pid=%d version=%s",
               sp->listen_manager, baic_http_server_port(sp->mgr_http), sp->listen_client,
               baic_http_server_port(sp->cli_http), sp->nvols, (int)getpid(), SP_VERSION);
    baic_loop_run(sp->loop);
    rc = 0;
    goto done;
fail:
    rc = rc ? rc : 1;
    if (sp->loop != NULL)
        baic_loop_stop(sp->loop); /* closes the signal handles and runs shutdown_cb */
done:
    /* The loop ran dry: no plugin job is pending any more, so plugins may go. */
    if (sp->loop != NULL)
        uv_run(sp->uv, UV_RUN_DEFAULT);
    free_volumes(sp);
    if (sp->reg)
        baic_registry_free(sp->reg);
    sp->reg = NULL;
    if (sp->loop != NULL)
        baic_loop_free(sp->loop);
    baic_host_ctx_free(sp->host);
    BAIC_LOG_I("storage_proxy_stopped", "status=%d", rc);
    return rc == 0 ? 0 : 1;
}
