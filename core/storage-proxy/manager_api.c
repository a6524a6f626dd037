/* SPDX-License-Identifier: Apache-2.0 */
/* The manager-facing JSON API: volumes, folders, quota scopes, usage, file operations, fstab and mounts. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <sys/stat.h>
#include <time.h>

#include <baic/errors.h>

#include "host/host.h"
#include "log/log.h"
#include "proxy.h"

typedef struct mctx {
    sp_t *sp;
    baic_http_req_t *req;
    sp_volume_t *v;
    json_t *body;                  /* the parsed request */
    json_t *acc;                   /* results built over several ops */
    const char *vfid;
    size_t i, n;
    int flag, exist_ok;
    int64_t num;
} mctx_t;

static void m_free(mctx_t *m) {
    json_decref(m->body);
    json_decref(m->acc);
    free(m);
}

/* Parses the JSON body and finds "volume"; answers the request itself on failure. */
static mctx_t *m_begin(sp_t *sp, baic_http_req_t *req, const char *vol_key) {
    size_t len = 0;
    const char *b = baic_http_body(req, &len);
    json_error_t err;
    json_t *body = len ? json_loadb(b, len, 0, &err) : json_object();
    if (!json_is_object(body)) {
        json_decref(body);
        sp_fail(req, 400, "invalid-api-params", "Missing or invalid API parameters.",
                "body must be a JSON object%s%s", len ? ": " : "", len ? err.text : "");
        return NULL;
    }
    mctx_t *m = calloc(1, sizeof *m);
    if (m == NULL) {
        json_decref(body);
        sp_fail(req, 500, "internal-server-error", "Internal server error.", "out of memory");
        return NULL;
    }
    m->sp = sp;
    m->req = req;
    m->body = body;
    if (vol_key != NULL) {
        const char *vn = json_string_value(json_object_get(body, vol_key));
        m->v = sp_volume_find(sp, vn);
        if (m->v == NULL) {
            sp_fail(req, 404, "object-not-found", "No such volume.", "%s \"%s\" is not served here",
                    vol_key, vn ? vn : "");
            m_free(m);
            return NULL;
        }
    }
    return m;
}

/* json_unpack_ex on the body; answers 400 with jansson's text on failure. */
static int m_unpack(mctx_t *m, const char *fmt, ...) {
    json_error_t err;
    va_list ap;
    va_start(ap, fmt);
    int rc = json_vunpack_ex(m->body, &err, 0, fmt, ap);
    va_end(ap);
    if (rc != 0) {
        sp_fail(m->req, 400, "invalid-api-params", "Missing or invalid API parameters.", "%s",
                err.text);
        m_free(m);
        return -1;
    }
    return 0;
}

#define OPS(m) ((m)->v->ops)
#define ST(m) ((m)->v->plugin->state)
#define VOL(m) ((m)->v->vol)

/* Runs the op call `call`; answers a synchronous error itself. */
static void m_started(mctx_t *m, int rc, const char *what) {
    if (rc != 0) {
        sp_fail_code(m->req, rc, what);
        m_free(m);
    }
}

static void m_done_204(void *arg, int status) {
    mctx_t *m = arg;
    if (status != 0)
        sp_fail_code(m->req, status, baic_http_path(m->req));
    else
        baic_http_respond(m->req, 204, NULL, NULL, 0);
    m_free(m);
}

/* ---- volumes ---- */

static json_t *caps_json(uint32_t caps) {
    static const struct {
        uint32_t bit;
        const char *name;
    } names[] = {
        {BAIC_STORAGE_CAP_QUOTA, "quota"},         {BAIC_STORAGE_CAP_USAGE_FAST, "fast-usage"},
        {BAIC_STORAGE_CAP_CLONE, "clone"},         {BAIC_STORAGE_CAP_FAST_CLONE, "fast-clone"},
        {BAIC_STORAGE_CAP_FILE_OPS, "file-ops"},   {BAIC_STORAGE_CAP_METRIC, "metric"},
    };
    json_t *a = json_array();
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (caps & names[i].bit)
            json_array_append_new(a, json_string(names[i].name));
    return a;
}

static void on_volumes(baic_http_req_t *req, void *arg) {
    sp_t *sp = arg;
    json_t *vols = json_array();
    for (size_t i = 0; i < sp->nvols; i++) {
        sp_volume_t *v = &sp->vols[i];
        json_t *vc = json_object_get(json_object_get(sp->config, "volume"), v->name);
        /* health (ABI 1.2, optional): what the plugin's background probe saw last. */
        int healthy = v->vol != NULL;
        const char *why = NULL;
        if (v->vol != NULL && v->ops->health != NULL &&
            v->ops->health(v->plugin->state, v->vol, &healthy, &why) != 0)
            healthy = 0;
        json_array_append_new(vols, json_pack("{s:s, s:s, s:s?, s:o, s:b, s:b, s:s?}", "name",
                                              v->name, "backend", v->backend, "path",
                                              json_string_value(json_object_get(vc, "path")),
                                              "capabilities", caps_json(v->caps), "available",
                                              v->vol != NULL, "healthy", healthy, "health_reason",
                                              healthy ? NULL : why));
    }
    baic_http_respond_json(req, 200, json_pack("{s:o}", "volumes", vols));
}

static void vusage_done(void *arg, int status, int64_t cap, int64_t used) {
    mctx_t *m = arg;
    if (status != 0)
        sp_fail_code(m->req, status, "volume usage");
    else
        baic_http_respond_json(m->req, 200, json_pack("{s:I, s:I}", "capacity_bytes",
                                                      (json_int_t)cap, "used_bytes",
                                                      (json_int_t)used));
    m_free(m);
}

static void on_volume_usage(baic_http_req_t *req, void *arg) {
    mctx_t *m = m_begin(arg, req, "volume");
    if (m == NULL)
        return;
    if (OPS(m)->volume_usage == NULL) {
        m_started(m, BAIC_ENOT_SUPPORTED, "volume usage");
        return;
    }
    m_started(m, OPS(m)->volume_usage(ST(m), VOL(m), vusage_done, m), "volume usage");
}

/* ---- folders ---- */

static void on_folder_create(baic_http_req_t *req, void *arg) {
    mctx_t *m = m_begin(arg, req, "volume");
    json_int_t quota = 0;
    if (m == NULL || m_unpack(m, "{s:s, s?{s?I}}", "vfid", &m->vfid, "options", "quota", &quota))
        return;
    m_started(m, OPS(m)->folder_create(ST(m), VOL(m), m->vfid, quota, m_done_204, m),
              "folder create");
}

static void on_folder_delete(baic_http_req_t *req, void *arg) {
    mctx_t *m = m_begin(arg, req, "volume");
    if (m == NULL || m_unpack(m, "{s:s}", "vfid", &m->vfid))
        return;
    m_started(m, OPS(m)->folder_delete(ST(m), VOL(m), m->vfid, m_done_204, m), "folder delete");
}

static void on_folder_clone(baic_http_req_t *req, void *arg) {
    sp_t *sp = arg;
    mctx_t *m = m_begin(sp, req, "src_volume");
    const char *dst_vol = NULL, *dst_vfid = NULL;
    if (m == NULL || m_unpack(m, "{s:s, s?s, s:s}", "src_vfid", &m->vfid, "dst_volume", &dst_vol,
                              "dst_vfid", &dst_vfid))
        return;
    sp_volume_t *dv = dst_vol ? sp_volume_find(sp, dst_vol) : m->v;
    if (dv == NULL || dv->plugin != m->v->plugin) {
        m_started(m, dv == NULL ? BAIC_ENOT_FOUND : BAIC_ENOT_SUPPORTED, "folder clone");
        return;
    }
    if (OPS(m)->folder_clone == NULL) {
        m_started(m, BAIC_ENOT_SUPPORTED, "folder clone");
        return;
    }
    m_started(m, OPS(m)->folder_clone(ST(m), VOL(m), m->vfid, dv->vol, dst_vfid, m_done_204, m),
              "folder clone");
}

/* POST /folder/mount: the absolute host path of a folder, for the agent's bind mount. Only
 * backends that keep folders as directories under the volume path (vfs) can answer. */
static int mount_hex(const char *s, char out[33]) {
    size_t n = strlen(s), o = 0;
    if (n != 32 && n != 36)
        return -1;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (n == 36 && (i == 8 || i == 13 || i == 18 || i == 23)) {
            if (c != '-')
                return -1;
            continue;
        }
        if (c >= 'A' && c <= 'F')
            c = (char)(c - 'A' + 'a');
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) || o >= 32)
            return -1;
        out[o++] = c;
    }
    out[o] = '\0';
    return o == 32 ? 0 : -1;
}

static void on_folder_mount(baic_http_req_t *req, void *arg) {
    sp_t *sp = arg;
    mctx_t *m = m_begin(sp, req, "volume");
    if (m == NULL || m_unpack(m, "{s:s}", "vfid", &m->vfid))
        return;
    json_t *vc = json_object_get(json_object_get(sp->config, "volume"), m->v->name);
    const char *root = json_string_value(json_object_get(vc, "path"));
    if (strcmp(m->v->backend, "vfs") != 0 || root == NULL) {
        m_started(m, BAIC_ENOT_SUPPORTED, "folder mount");
        return;
    }
    const char *slash = strchr(m->vfid, '/');
    const char *scope = slash ? m->vfid : "_";
    size_t sl = slash ? (size_t)(slash - m->vfid) : 1;
    char hex[33];
    int scope_ok = sl > 0 && sl <= 128 && scope[0] != '.';
    for (size_t i = 0; scope_ok && i < sl; i++) {
        char c = scope[i];
        scope_ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   c == '-' || c == '_' || c == ':' || c == '.';
    }
    if (!scope_ok || mount_hex(slash ? slash + 1 : m->vfid, hex) != 0) {
        m_started(m, BAIC_EBAD_INPUT, "folder mount");
        return;
    }
    char real[PATH_MAX], path[PATH_MAX + 200];
    if (realpath(root, real) == NULL) {
        m_started(m, BAIC_ENOT_FOUND, "folder mount");
        return;
    }
    int n = snprintf(path, sizeof path, "%s/%.*s/%s", real, (int)sl, scope, hex);
    struct stat st;
    if (n < 0 || (size_t)n >= sizeof path || lstat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        m_started(m, BAIC_ENOT_FOUND, "folder mount");
        return;
    }
    baic_http_respond_json(req, 200, json_pack("{s:s}", "path", path));
    m_free(m);
}

static void usage_done(void *arg, int status, int64_t used, int64_t files) {
    mctx_t *m = arg;
    if (status != 0)
        sp_fail_code(m->req, status, "usage");
    else
        baic_http_respond_json(m->req, 200, json_pack("{s:I, s:I}", "file_count",
                                                      (json_int_t)files, "used_bytes",
                                                      (json_int_t)used));
    m_free(m);
}

static void on_folder_usage(baic_http_req_t *req, void *arg) {
    sp_t *sp = arg;
    mctx_t *m = m_begin(sp, req, "volume");
    int rescan = 0;
    if (m == NULL || m_unpack(m, "{s:s, s?b}", "vfid", &m->vfid, "rescan", &rescan))
        return;
    if (rescan) {
        /* Plugins that keep figures incrementally walk the tree again, in the background. */
        json_t *ev = json_pack("{s:s, s:s}", "volume", m->v->name, "vfid", m->vfid);
        baic_host_ctx_dispatch(sp->host, "storage_rescan", ev);
        json_decref(ev);
    }
    m_started(m, OPS(m)->usage(ST(m), VOL(m), m->vfid, usage_done, m), "usage");
}

/* ---- quota scopes ---- */

static void qget_usage(void *arg, int status, int64_t used, int64_t files) {
    mctx_t *m = arg;
    (void)files;
    if (status != 0)
        sp_fail_code(m->req, status, "quota scope usage");
    else
        baic_http_respond_json(m->req, 200, json_pack("{s:I, s:I}", "used_bytes",
                                                      (json_int_t)used, "limit_bytes",
                                                      (json_int_t)m->num));
    m_free(m);
}

static void qget_done(void *arg, int status, int64_t limit) {
    mctx_t *m = arg;
    if (status != 0) {
        sp_fail_code(m->req, status, "quota get");
        m_free(m);
        return;
    }
    m->num = limit;
    int rc = OPS(m)->usage(ST(m), VOL(m), m->vfid, qget_usage, m);
    if (rc != 0) {
        sp_fail_code(m->req, rc, "quota scope usage");
        m_free(m);
    }
}

static int quota_supported(mctx_t *m) {
    if (!(m->v->caps & BAIC_STORAGE_CAP_QUOTA) || OPS(m)->quota_get == NULL) {
        m_started(m, BAIC_ENOT_SUPPORTED, "quota");
        return 0;
    }
    return 1;
}

static void on_qs_get(baic_http_req_t *req, void *arg) {
    mctx_t *m = m_begin(arg, req, "volume");
    if (m == NULL || m_unpack(m, "{s:s}", "qsid", &m->vfid) || !quota_supported(m))
        return;
    m_started(m, OPS(m)->quota_get(ST(m), VOL(m), m->vfid, qget_done, m), "quota get");
}

static void on_qs_set(baic_http_req_t *req, void *arg) {
    mctx_t *m = m_begin(arg, req, "volume");
    json_int_t limit = -1, limit2 = -1;
    if (m == NULL || m_unpack(m, "{s:s, s?I, s?{s?I}}", "qsid", &m->vfid, "limit_bytes", &limit,
                              "options", "limit_bytes", &limit2) ||
        !quota_supported(m))
        return;
    if (limit < 0)
        limit = limit2;
    if (limit <= 0) {
        m_started(m, BAIC_EBAD_INPUT, "quota set (limit_bytes must be > 0)");
        return;
    }
    m_started(m, OPS(m)->quota_set(ST(m), VOL(m), m->vfid, limit, m_done_204, m), "quota set");
}

static void on_qs_unset(baic_http_req_t *req, void *arg) {
    mctx_t *m = m_begin(arg, req, "volume");
    if (m == NULL || m_unpack(m, "{s:s}", "qsid", &m->vfid) || !quota_supported(m))
        return;
    m_started(m, OPS(m)->quota_unset(ST(m), VOL(m), m->vfid, m_done_204, m), "quota unset");
}

/* ---- file operations ---- */

static const char *type_name(baic_file_type_t t) {
    switch (t) {
    case BAIC_FILE_DIRECTORY: return "DIRECTORY";
    case BAIC_FILE_SYMLINK: return "SYMLINK";
    case BAIC_FILE_REGULAR: return "FILE";
    default: return "OTHER";
    }
}

static json_t *stat_json(const baic_file_stat_t *st) {
    char mode[8], c[40], mo[40];
    time_t ct = (time_t)(st->ctime_ms / 1000), mt = (time_t)(st->mtime_ms / 1000);
    struct tm tm;
    snprintf(mode, sizeof mode, "%03o", st->mode & 0777);
    gmtime_r(&ct, &tm);
    strftime(c, sizeof c, "%Y-%m-%dT%H:%M:%S+00:00", &tm);
    gmtime_r(&mt, &tm);
    strftime(mo, sizeof mo, "%Y-%m-%dT%H:%M:%S+00:00", &tm);
    return json_pack("{s:s, s:s, s:I, s:s, s:s, s:s}", "name", st->name ? st->name : "", "type",
                     type_name(st->type), "size", (json_int_t)st->bytes, "mode", mode, "created",
                     c, "modified", mo);
}

static void list_done(void *arg, int status, const baic_file_stat_t *const *ents, size_t n) {
    mctx_t *m = arg;
    if (status != 0) {
        sp_fail_code(m->req, status, "list");
    } else {
        json_t *items = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(items, stat_json(ents[i]));
        baic_http_respond_json(m->req, 200, json_pack("{s:o}", "items", items));
    }
    m_free(m);
}

static void on_file_list(baic_http_req_t *req, void *arg) {
    mctx_t *m = m_begin(arg, req, "volume");
    const char *rel = "";
    if (m == NULL || m_unpack(m, "{s:s, s?s}", "vfid", &m->vfid, "relpath", &rel))
        return;
    if (strcmp(rel, ".") == 0)
        rel = "";
    m_started(m, OPS(m)->list(ST(m), VOL(m), m->vfid, rel, list_done, m), "list");
}

static void info_done(void *arg, int status, const baic_file_stat_t *st) {
    mctx_t *m = arg;
    if (status != 0)
        sp_fail_code(m->req, status, "info");
    else
        baic_http_respond_json(m->req, 200, json_pack("{s:o}", "item", stat_json(st)));
    m_free(m);
}

static void on_file_info(baic_http_req_t *req, void *arg) {
    mctx_t *m = m_begin(arg, req, "volume");
    const char *rel;
    if (m == NULL || m_unpack(m, "{s:s, s:s}", "vfid", &m->vfid, "relpath", &rel))
        return;
    m_started(m, OPS(m)->stat(ST(m), VOL(m), m->vfid, rel, info_done, m), "info");
}

/* mkdir of one or many paths: {"results": {"success": [...], "failed": [...]}}, 207 when some failed. */
static void mkdir_next(mctx_t *m);

static const char *mkdir_msg(int status) {
    if (status == BAIC_EPERMISSION)
        return "the path leaves the folder or crosses a symlink";
    if (status == BAIC_EEXISTS)
        return "already exists";
    if (status == BAIC_ENOT_FOUND)
        return "a parent directory is missing (use parents)";
    return "failed";
}

static void mkdir_one_done(void *arg, int status) {
    mctx_t *m = arg;
    json_t *paths = json_object_get(m->body, "relpath");
    json_t *item = json_is_array(paths) ? json_array_get(paths, m->i) : paths;
    if (status == BAIC_EEXISTS && m->exist_ok)
        status = 0;
    json_t *res = json_object_get(m->acc, status == 0 ? "success" : "failed");
    json_array_append_new(res, json_pack("{s:O, s:s?}", "item", item, "msg",
                                         status == 0 ? NULL : mkdir_msg(status)));
    m->i++;
    mkdir_next(m);
}

static void mkdir_next(mctx_t *m) {
    json_t *paths = json_object_get(m->body, "relpath");
    while (m->i < m->n) {
        json_t *item = json_is_array(paths) ? json_array_get(paths, m->i) : paths;
        const char *p = json_string_value(item);
        int rc = p ? OPS(m)->mkdir(ST(m), VOL(m), m->vfid, p, m->flag, mkdir_one_done, m)
                   : BAIC_EBAD_INPUT;
        if (rc == 0)
            return;
        json_array_append_new(json_object_get(m->acc, "failed"),
                              json_pack("{s:O, s:s}", "item", item, "msg",
                                        rc == BAIC_EPERMISSION ? mkdir_msg(rc) : "invalid path"));
        m->i++;
    }
    int failed = json_array_size(json_object_get(m->acc, "failed")) > 0;
    baic_http_respond_json(m->req, failed ? 207 : 200,
                           json_pack("{s:O}", "results", m->acc));
    m_free(m);
}

static void on_file_mkdir(baic_http_req_t *req, void *arg) {
    mctx_t *m = m_begin(arg, req, "volume");
    json_t *paths;
    if (m == NULL || m_unpack(m, "{s:s, s:o, s?b, s?b}", "vfid", &m->vfid, "relpath", &paths,
                              "parents", &m->flag, "exist_ok", &m->exist_ok))
        return;
    m->n = json_is_array(paths) ? json_array_size(paths) : 1;
    if (m->n == 0 || m->n > 50) {
        m_started(m, BAIC_EBAD_INPUT, "mkdir (1 to 50 paths)");
        return;
    }
    m->acc = json_pack("{s:[], s:[]}", "success", "failed");
    mkdir_next(m);
}

static void on_file_rename(baic_http_req_t *req, void *arg) {
    mctx_t *m = m_begin(arg, req, "volume");
    const char *rel, *new_name;
    if (m == NULL || m_unpack(m, "{s:s, s:s, s:s}", "vfid", &m->vfid, "relpath", &rel,
                              "new_name", &new_name))
        return;
    if (strchr(new_name, '/') != NULL || *new_name == '\0') {
        m_started(m, BAIC_EBAD_INPUT, "rename (new_name must be one path component)");
        return;
    }
    const char *slash = strrchr(rel, '/');
    size_t dl = slash ? (size_t)(slash - rel) + 1 : 0;
    char *to = baic_http_alloc(req, dl + strlen(new_name) + 1);
    if (to == NULL) {
        m_started(m, -ENOMEM, "rename");
        return;
    }
    memcpy(to, rel, dl);
    strcpy(to + dl, new_name);
    m_started(m, OPS(m)->rename(ST(m), VOL(m), m->vfid, rel, to, m_done_204, m), "rename");
}

static void on_file_move(baic_http_req_t *req, void *arg) {
    mctx_t *m = m_begin(arg, req, "volume");
    const char *src, *dst;
    if (m == NULL || m_unpack(m, "{s:s, s:s, s:s}", "vfid", &m->vfid, "src_relpath", &src,
                              "dst_relpath", &dst))
        return;
    m_started(m, OPS(m)->rename(ST(m), VOL(m), m->vfid, src, dst, m_done_204, m), "move");
}

static void on_file_delete(baic_http_req_t *req, void *arg) {
    mctx_t *m = m_begin(arg, req, "volume");
    json_t *paths;
    if (m == NULL || m_unpack(m, "{s:s, s:o, s?b}", "vfid", &m->vfid, "relpaths", &paths,
                              "recursive", &m->flag))
        return;
    size_t n = json_array_size(paths);
    const char **pv = baic_http_alloc(req, (n ? n : 1) * sizeof *pv);
    if (!json_is_array(paths) || n == 0 || pv == NULL) {
        m_started(m, BAIC_EBAD_INPUT, "delete (relpaths must be a non-empty array)");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        pv[i] = json_string_value(json_array_get(paths, i));
        if (pv[i] == NULL) {
            m_started(m, BAIC_EBAD_INPUT, "delete (relpaths must be strings)");
            return;
        }
    }
    m_started(m, OPS(m)->delete_files(ST(m), VOL(m), m->vfid, pv, n, m->flag, m_done_204, m),
              "delete");
}

/* Tokens for the client-facing API, for a manager that lets the proxy sign them. */
static void issue(baic_http_req_t *req, sp_t *sp, const char *op) {
    mctx_t *m = m_begin(sp, req, "volume");
    const char *rel;
    json_int_t size = -1, ttl = 3600;
    int archive = 0;
    if (m == NULL || m_unpack(m, "{s:s, s:s, s?I, s?b, s?I}", "vfid", &m->vfid, "relpath", &rel,
                              "size", &size, "archive", &archive, "ttl", &ttl))
        return;
    if (strcmp(op, "upload") == 0 && size < 0) {
        m_started(m, BAIC_EBAD_INPUT, "upload token (size is required)");
        return;
    }
    if (ttl <= 0 || ttl > SP_TOKEN_MAX_AGE_S)
        ttl = 3600;
    json_t *claims = json_pack("{s:s, s:s, s:s, s:s}", "op", op, "volume", m->v->name, "vfid",
                               m->vfid, "relpath", rel);
    if (size >= 0)
        json_object_set_new(claims, "size", json_integer(size));
    if (archive)
        json_object_set_new(claims, "archive", json_true());
    char *tok = sp_token_issue(sp, claims, ttl);
    json_decref(claims);
    if (tok == NULL) {
        m_started(m, -ENOMEM, "token");
        return;
    }
    char url[512];
    int n = snprintf(url, sizeof url, "%s/%s", sp->client_url ? sp->client_url : "",
                     strcmp(op, "upload") == 0 ? "upload" : "download");
    if (sp->client_url == NULL)
        n = snprintf(url, sizeof url, "http://%s/%s", sp->listen_client,
                     strcmp(op, "upload") == 0 ? "upload" : "download");
    baic_http_respond_json(req, 200, json_pack("{s:s, s:s?}", "token", tok, "url",
                                               n > 0 && (size_t)n < sizeof url ? url : NULL));
    free(tok);
    m_free(m);
}

static void on_issue_upload(baic_http_req_t *req, void *arg) { issue(req, arg, "upload"); }
static void on_issue_download(baic_http_req_t *req, void *arg) { issue(req, arg, "download"); }

/* ---- admin: fstab and mounts ---- */

static json_t *read_lines(const char *path, const char *filter) {
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return NULL;
    json_t *a = json_array();
    char line[4096];
    while (fgets(line, sizeof line, f) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        if (filter == NULL || strstr(line, filter) != NULL)
            json_array_append_new(a, json_string(line));
    }
    fclose(f);
    return a;
}

static void on_fstab(baic_http_req_t *req, void *arg) {
    (void)arg;
    json_t *lines = read_lines("/etc/fstab", NULL);
    if (lines == NULL) {
        sp_fail_code(req, BAIC_ENOT_FOUND, "/etc/fstab");
        return;
    }
    baic_http_respond_json(req, 200, json_pack("{s:o}", "lines", lines));
}

static void on_mounts(baic_http_req_t *req, void *arg) {
    sp_t *sp = arg;
    json_t *out = json_object();
    for (size_t i = 0; i < sp->nvols; i++) {
        json_t *vc = json_object_get(json_object_get(sp->config, "volume"), sp->vols[i].name);
        const char *path = json_string_value(json_object_get(vc, "path"));
        json_t *lines = read_lines("/proc/self/mounts", NULL);
        json_t *mine = json_array();
        size_t j, best = 0;
        json_t *l, *pick = NULL;
        /* The mount that holds the volume: the longest mount point that prefixes it. */
        json_array_foreach(lines, j, l) {
            char dev[256], mnt[1024];
            if (path && sscanf(json_string_value(l), "%255s %1023s", dev, mnt) == 2) {
                size_t ml = strlen(mnt);
                if (strncmp(path, mnt, ml) == 0 && (path[ml] == '/' || path[ml] == '\0' ||
                                                    strcmp(mnt, "/") == 0) &&
                    ml >= best) {
                    best = ml;
                    pick = l;
                }
            }
        }
        if (pick)
            json_array_append(mine, pick);
        json_decref(lines);
        json_object_set_new(out, sp->vols[i].name, mine);
    }
    baic_http_respond_json(req, 200, json_pack("{s:o}", "mounts", out));
}

static void on_status(baic_http_req_t *req, void *arg) {
    (void)arg;
    baic_http_respond_json(req, 200, json_pack("{s:s, s:s}", "status", "ok", "version",
                                               SP_VERSION));
}

int sp_manager_api_init(sp_t *sp) {
    static const struct {
        const char *method, *path;
        baic_http_handler_t h;
    } routes[] = {
        {"GET", "/", on_status},
        {"GET", "/status", on_status},
        {"GET", "/volumes", on_volumes},
        {"POST", "/volume/usage", on_volume_usage},
        {"GET", "/volume/fstab", on_fstab},
        {"GET", "/volume/mounts", on_mounts},
        {"POST", "/folder/create", on_folder_create},
        {"POST", "/folder/delete", on_folder_delete},
        {"POST", "/folder/clone", on_folder_clone},
        {"POST", "/folder/usage", on_folder_usage},
        {"POST", "/folder/mount", on_folder_mount},
        {"POST", "/quota-scope/get", on_qs_get},
        {"POST", "/quota-scope/set", on_qs_set},
        {"POST", "/quota-scope/unset", on_qs_unset},
        {"POST", "/folder/file/list", on_file_list},
        {"POST", "/folder/file/info", on_file_info},
        {"POST", "/folder/file/mkdir", on_file_mkdir},
        {"POST", "/folder/file/rename", on_file_rename},
        {"POST", "/folder/file/move", on_file_move},
        {"POST", "/folder/file/delete", on_file_delete},
        {"POST", "/folder/file/upload", on_issue_upload},
        {"POST", "/folder/file/download", on_issue_download},
    };
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        int rc = baic_http_route(sp->mgr_http, routes[i].method, routes[i].path, routes[i].h, sp,
                                 1 << 20);
        if (rc != 0)
            return rc;
    }
    return 0;
}
