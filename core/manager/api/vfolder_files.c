/* SPDX-License-Identifier: Apache-2.0 */
/* /folders/{name}: file operations and upload/download tokens, through the folder's storage proxy.
 */
#include "vfolder_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log/log.h"

#define S(o, k) json_string_value(json_object_get((o), (k)))

/* Optional boolean member: 0 (value in *out) or -1 answered. */
static int opt_bool(vf_t *v, const char *key, int dflt, int *out) {
    json_t *x = json_object_get(v->body, key);
    *out = dflt;
    if (x == NULL || json_is_null(x))
        return 0;
    if (!json_is_boolean(x)) {
        char msg[128];
        snprintf(msg, sizeof msg, "'%s' must be a boolean.", key);
        baic_api_invalid_params(v->req, msg);
        return -1;
    }
    *out = json_is_true(x);
    return 0;
}

/* Passes a proxy answer through: 204 becomes 200 {} as the reference manager answers. */
static void passthrough(vf_t *v, int status, json_t *answer) {
    if (status == 204 || answer == NULL) {
        vf_reply(v, 200, json_object());
        return;
    }
    vf_reply(v, status, json_incref(answer));
}

/* ---- mkdir ---- */

static void mkdir_found(vf_t *v) {
    json_t *b = json_pack("{s:O, s:b, s:b}", "relpath", json_object_get(v->body, "path"), "parents",
                          v->flag & 1, "exist_ok", (v->flag & 2) != 0);
    vf_storage(v, v->host, "/folder/file/mkdir", b, 1, 0, 60000, passthrough);
}

static void post_mkdir(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    vf_t *v = vf_new(req, m, who, 1);
    if (v == NULL)
        return;
    json_t *path = json_object_get(v->body, "path");
    int parents, exist_ok;
    if (opt_bool(v, "parents", 1, &parents) || opt_bool(v, "exist_ok", 0, &exist_ok))
        goto fail;
    if (json_is_array(path)) {
        if (json_array_size(path) == 0 || json_array_size(path) > 50) {
            baic_api_invalid_params(req, "'path' takes 1 to 50 paths.");
            goto fail;
        }
        size_t i;
        json_t *e;
        json_array_foreach(path, i, e) if (vf_relpath_ok(v, e, "path") != 0) goto fail;
    } else if (vf_relpath_ok(v, path, "path") != 0) {
        goto fail;
    }
    v->flag = parents | (exist_ok << 1);
    vf_resolve_param(v, VF_RW, mkdir_found);
    return;
fail:
    vf_free(v);
}

/* ---- rename-file, move-file, delete-files ---- */

static void rename_found(vf_t *v) {
    json_t *b = json_pack("{s:O, s:O}", "relpath", json_object_get(v->body, "target_path"),
                          "new_name", json_object_get(v->body, "new_name"));
    vf_storage(v, v->host, "/folder/file/rename", b, 1, 0, 60000, passthrough);
}

static void post_rename_file(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    vf_t *v = vf_new(req, m, who, 1);
    if (v == NULL)
        return;
    const char *nn = S(v->body, "new_name");
    if (vf_relpath_ok(v, json_object_get(v->body, "target_path"), "target_path") != 0)
        goto fail;
    if (nn == NULL || *nn == '\0' || strchr(nn, '/') != NULL || strcmp(nn, ".") == 0 ||
        strcmp(nn, "..") == 0 || strlen(nn) > 255 ||
        json_string_length(json_object_get(v->body, "new_name")) != strlen(nn)) {
        baic_api_invalid_params(req, "'new_name' must be a file name without '/'.");
        goto fail;
    }
    vf_resolve_param(v, VF_RW, rename_found);
    return;
fail:
    vf_free(v);
}

static void move_found(vf_t *v) {
    json_t *b = json_pack("{s:O, s:O}", "src_relpath", json_object_get(v->body, "src"),
                          "dst_relpath", json_object_get(v->body, "dst"));
    vf_storage(v, v->host, "/folder/file/move", b, 1, 0, 60000, passthrough);
}

static void post_move_file(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    vf_t *v = vf_new(req, m, who, 1);
    if (v == NULL)
        return;
    if (vf_relpath_ok(v, json_object_get(v->body, "src"), "src") != 0 ||
        vf_relpath_ok(v, json_object_get(v->body, "dst"), "dst") != 0) {
        vf_free(v);
        return;
    }
    vf_resolve_param(v, VF_RW, move_found);
}

static void delete_found(vf_t *v) {
    json_t *b = json_pack("{s:O, s:b}", "relpaths", json_object_get(v->body, "files"), "recursive",
                          v->flag);
    vf_storage(v, v->host, "/folder/file/delete", b, 1, 0, 300000, passthrough);
}

static void delete_files(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    vf_t *v = vf_new(req, m, who, 1);
    if (v == NULL)
        return;
    json_t *files = json_object_get(v->body, "files");
    int rec;
    if (opt_bool(v, "recursive", 0, &rec))
        goto fail;
    if (!json_is_array(files) || json_array_size(files) == 0 || json_array_size(files) > 1000) {
        baic_api_invalid_params(req, "'files' must be a list of 1 to 1000 paths.");
        goto fail;
    }
    size_t i;
    json_t *e;
    json_array_foreach(files, i, e) {
        if (vf_relpath_ok(v, e, "files") != 0)
            goto fail;
        const char *s = json_string_value(e);
        if (*s == '\0' || strcmp(s, ".") == 0 || strcmp(s, "./") == 0) {
            baic_api_invalid_params(req, "The folder's root cannot be deleted this way.");
            goto fail;
        }
    }
    v->flag = rec;
    vf_resolve_param(v, VF_RW, delete_found);
    return;
fail:
    vf_free(v);
}

/* ---- files ---- */

static void listed(vf_t *v, int status, json_t *answer) {
    (void)status;
    json_t *items = json_object_get(answer, "items");
    if (!json_is_array(items))
        items = json_array();
    else
        json_incref(items);
    /* The legacy "files" string: what the session file listing gives. */
    json_t *legacy = json_array();
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it) {
        json_array_append_new(
            legacy,
            json_pack("{s:O?, s:O?, s:O?, s:O?, s:O?, s:O?}", "filename",
                      json_object_get(it, "name"), "size", json_object_get(it, "size"), "mode",
                      json_object_get(it, "mode"), "type", json_object_get(it, "type"), "ctime",
                      json_object_get(it, "created"), "mtime", json_object_get(it, "modified")));
    }
    char *txt = json_dumps(legacy, JSON_COMPACT);
    json_decref(legacy);
    json_t *out = json_pack("{s:o, s:s}", "items", items, "files", txt ? txt : "[]");
    free(txt);
    vf_reply(v, 200, out);
}

static void files_found(vf_t *v) {
    json_t *b = json_pack("{s:O}", "relpath", json_object_get(v->aux, "path"));
    vf_storage(v, v->host, "/folder/file/list", b, 1, 0, 60000, listed);
}

static void get_files(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    vf_t *v = vf_new(req, m, who, 1);
    if (v == NULL)
        return;
    json_t *path = json_object_get(v->body, "path");
    const char *q = baic_http_query(req, "path");
    json_t *p = path ? json_incref(path) : json_string(q ? q : ".");
    if (p == NULL) {
        baic_api_invalid_params(req, "'path' must be valid UTF-8.");
        vf_free(v);
        return;
    }
    if (vf_relpath_ok(v, p, "path") != 0) {
        json_decref(p);
        vf_free(v);
        return;
    }
    v->aux = json_pack("{s:o}", "path", p);
    vf_resolve_param(v, VF_RO, files_found);
}

/* ---- request-upload, request-download ---- */

static void token_issued(vf_t *v, int status, json_t *answer) {
    (void)status;
    const char *tok = S(answer, "token"), *url = S(answer, "url");
    const char *capi = baic_storage_client_api(v->host);
    char buf[1024];
    if (tok == NULL || url == NULL) {
        baic_http_respond_problem(v->req, 502, "storage-proxy-error", "Storage proxy error.",
                                  "The storage proxy gave no token.", NULL);
        vf_free(v);
        return;
    }
    if (capi != NULL) {
        int n = snprintf(buf, sizeof buf, "%s/%s", capi, v->flag ? "upload" : "download");
        if (n > 0 && (size_t)n < sizeof buf)
            url = buf;
    }
    BAIC_LOG_I("vfolder_transfer_token", "id=%s op=%s by=%s", v->id,
               v->flag ? "upload" : "download", v->who->access_key);
    vf_reply(v, 200, json_pack("{s:s, s:s}", "token", tok, "url", url));
}

static void upload_found(vf_t *v) {
    if (!vf_host_allows(v, "upload-file")) {
        baic_api_forbidden(v->req, "Uploads are not allowed on this folder's host.");
        vf_free(v);
        return;
    }
    json_t *b = json_pack("{s:O, s:O}", "relpath", json_object_get(v->body, "path"), "size",
                          json_object_get(v->body, "size"));
    vf_storage(v, v->host, "/folder/file/upload", b, 1, 0, 30000, token_issued);
}

static void post_request_upload(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    vf_t *v = vf_new(req, m, who, 1);
    if (v == NULL)
        return;
    json_t *size = json_object_get(v->body, "size");
    if (vf_relpath_ok(v, json_object_get(v->body, "path"), "path") != 0)
        goto fail;
    const char *p = S(v->body, "path");
    if (*p == '\0' || p[strlen(p) - 1] == '/') {
        baic_api_invalid_params(req, "'path' must name a file.");
        goto fail;
    }
    if (!json_is_integer(size) || json_integer_value(size) < 0) {
        baic_api_invalid_params(req, "'size' must be a non-negative integer.");
        goto fail;
    }
    v->flag = 1;
    vf_resolve_param(v, VF_RW, upload_found);
    return;
fail:
    vf_free(v);
}

static void download_found(vf_t *v) {
    if (!vf_host_allows(v, "download-file")) {
        baic_api_forbidden(v->req, "Downloads are not allowed on this folder's host.");
        vf_free(v);
        return;
    }
    json_t *b = json_pack("{s:O, s:b}", "relpath", json_object_get(v->aux, "path"), "archive",
                          json_is_true(json_object_get(v->body, "archive")));
    vf_storage(v, v->host, "/folder/file/download", b, 1, 0, 30000, token_issued);
}

static void post_request_download(baic_http_req_t *req, baic_manager_t *m,
                                  const baic_caller_t *who) {
    vf_t *v = vf_new(req, m, who, 1);
    if (v == NULL)
        return;
    json_t *path = json_object_get(v->body, "path");
    if (path == NULL)
        path = json_object_get(v->body, "file");
    json_t *ar = json_object_get(v->body, "archive");
    if (vf_relpath_ok(v, path, "path") != 0)
        goto fail;
    if (ar != NULL && !json_is_null(ar) && !json_is_boolean(ar)) {
        baic_api_invalid_params(req, "'archive' must be a boolean.");
        goto fail;
    }
    v->aux = json_pack("{s:O}", "path", path);
    v->flag = 0;
    vf_resolve_param(v, VF_RO, download_found);
    return;
fail:
    vf_free(v);
}

int baic_api_vfolder_files_init(baic_manager_t *m) {
    static const struct {
        const char *method, *path;
        baic_api_fn fn;
    } r[] = {
        {"POST", "/folders/{name}/mkdir", post_mkdir},
        {"POST", "/folders/{name}/rename-file", post_rename_file},
        {"POST", "/folders/{name}/rename_file", post_rename_file},
        {"POST", "/folders/{name}/move-file", post_move_file},
        {"POST", "/folders/{name}/delete-files", delete_files},
        {"DELETE", "/folders/{name}/delete-files", delete_files},
        {"POST", "/folders/{name}/delete_files", delete_files},
        {"DELETE", "/folders/{name}/delete_files", delete_files},
        {"GET", "/folders/{name}/files", get_files},
        {"POST", "/folders/{name}/request-upload", post_request_upload},
        {"POST", "/folders/{name}/request-download", post_request_download},
    };
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < sizeof r / sizeof r[0]; i++)
        rc = baic_api_route(m, r[i].method, r[i].path, BAIC_ROUTE_USER, r[i].fn, 0);
    return rc;
}
