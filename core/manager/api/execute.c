/* SPDX-License-Identifier: Apache-2.0 */
/* Code execution and files of a running session, relayed to the agent that holds its main kernel. */
#include "manager.h"
#include "util/hex.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "log/log.h"

/* ---- finding the main kernel of a live session ---- */

static const char KREF_SQL[] =
    "SELECT s.id::text, s.name, s.status, k.id::text, k.status, k.agent_addr"
    " FROM sessions s LEFT JOIN kernels k ON k.session_id = s.id AND k.cluster_idx = 0"
    " WHERE s.access_key = $2 AND (s.name = $1 OR s.id::text = lower($1))"
    " AND s.status NOT IN " BAIC_FINAL_STATUSES " ORDER BY s.created_at DESC LIMIT 1";

typedef struct kref_q {
    baic_kref_cb cb;
    void *arg;
} kref_q_t;

static void copy(char *dst, size_t n, const char *s) {
    int w = snprintf(dst, n, "%s", s ? s : "");
    if (w < 0 || (size_t)w >= n)
        dst[n - 1] = '\0';
}

static void kref_done(const baic_db_result_t *res, int err, const char *errmsg, void *arg) {
    kref_q_t *q = arg;
    if (err != 0) {
        BAIC_LOG_W("kernel_lookup_failed", "error=\"%s\"", errmsg ? errmsg : "");
        q->cb(NULL, err, q->arg);
    } else if (baic_db_result_rows(res) == 0) {
        q->cb(NULL, 0, q->arg);
    } else {
        baic_kref_t k;
        memset(&k, 0, sizeof k);
        copy(k.session_id, sizeof k.session_id, baic_db_result_get(res, 0, 0));
        copy(k.session_name, sizeof k.session_name, baic_db_result_get(res, 0, 1));
        copy(k.status, sizeof k.status, baic_db_result_get(res, 0, 2));
        copy(k.kernel_id, sizeof k.kernel_id, baic_db_result_get(res, 0, 3));
        copy(k.kstatus, sizeof k.kstatus, baic_db_result_get(res, 0, 4));
        copy(k.addr, sizeof k.addr, baic_db_result_get(res, 0, 5));
        q->cb(&k, 0, q->arg);
    }
    free(q);
}

int baic_kernel_lookup(baic_manager_t *m, const char *ref, const char *access_key,
                       baic_kref_cb cb, void *arg) {
    if (ref == NULL || strlen(ref) >= 80)
        return -EINVAL;
    kref_q_t *q = calloc(1, sizeof *q);
    if (q == NULL)
        return -ENOMEM;
    q->cb = cb;
    q->arg = arg;
    const char *p[2] = {ref, access_key};
    int rc = baic_db_query(m->db, KREF_SQL, 2, p, kref_done, q);
    if (rc != 0)
        free(q);
    return rc;
}

const char *baic_api_owner_key(baic_http_req_t *req, const baic_caller_t *who) {
    const char *o = baic_http_query(req, "owner_access_key");
    if (o == NULL || *o == '\0')
        o = baic_http_query(req, "ownerAccessKey");
    if (o == NULL || *o == '\0' || strcmp(o, who->access_key) == 0)
        return who->access_key;
    if (!who->is_admin) {
        baic_api_forbidden(req, "Only administrators may act on other users' sessions.");
        return NULL;
    }
    return o;
}

void baic_api_agent_error(baic_http_req_t *req, int status, const json_t *answer, int err) {
    if (err != 0 || status == 0) {
        baic_http_respond_problem(req, 503, "instance-not-available",
                                  "There is no available instance.",
                                  "The agent holding the kernel is not reachable.", NULL);
        return;
    }
    const char *type = json_string_value(json_object_get(answer, "type"));
    const char *slug = type ? strrchr(type, '/') : NULL;
    slug = slug ? slug + 1 : NULL;
    if (status == 404 && (slug == NULL || strcmp(slug, "url-not-found") == 0)) {
        /* An agent without the execution relay (docs/agent-protocol.md). */
        baic_http_respond_problem(req, 409, "kernel-not-ready", "The kernel is not ready.",
                                  "The agent holding this kernel does not relay execution.",
                                  NULL);
        return;
    }
    if (status == 404 && strcmp(slug, "object-not-found") == 0) {
        baic_api_not_found(req, "kernel", "The agent does not know this session's kernel.");
        return;
    }
    const char *title = json_string_value(json_object_get(answer, "title"));
    const char *msg = json_string_value(json_object_get(answer, "msg"));
    json_t *data = json_object_get(answer, "data");
    if (status < 400 || status > 599)
        status = 500;
    baic_http_respond_problem(req, status, slug ? slug : "internal-server-error",
                              title ? title : "The agent refused the request.", msg,
                              data ? json_incref(data) : NULL);
}

/* ---- one relayed call ---- */

typedef struct kop kop_t;
typedef void (*kop_step)(kop_t *k, const baic_kref_t *ref);

struct kop {
    baic_api_op_t *op;
    baic_manager_t *m;
    kop_step step;
    baic_kref_t ref;
    json_t *body;   /* request to the agent */
    json_t *extra;  /* per-operation state */
    char *path;     /* a file path */
    char run_id[80];
    int mode_complete;
    /* upload: parts to send one after the other; download: files to fetch */
    size_t idx, count;
    json_t *parts; /* [{"path","data_b64"}] or [paths] */
    json_t *got;   /* download: [{"name","data_b64"}] */
    int single;
    const char *key; /* the owner's access key (request arena) */
};

static void kop_free(kop_t *k) {
    json_decref(k->body);
    json_decref(k->extra);
    json_decref(k->parts);
    json_decref(k->got);
    free(k->path);
    free(k);
}

/* True (and frees k) when the client went away. */
static int kop_gone(kop_t *k) {
    if (!baic_api_op_gone(k->op))
        return 0;
    kop_free(k);
    return 1;
}

static void kop_found(const baic_kref_t *ref, int err, void *arg) {
    kop_t *k = arg;
    if (kop_gone(k))
        return;
    baic_http_req_t *req = k->op->req;
    if (err != 0) {
        baic_api_unavailable(req, "The database is not reachable.");
    } else if (ref == NULL || ref->kernel_id[0] == '\0') {
        baic_api_not_found(req, "session", "No such session.");
    } else if (strcmp(ref->status, "RUNNING") != 0 || strcmp(ref->kstatus, "RUNNING") != 0 ||
               ref->addr[0] == '\0') {
        char msg[160];
        snprintf(msg, sizeof msg, "The session is %.32s, not RUNNING.", ref->status);
        baic_http_respond_problem(req, 409, "kernel-not-ready", "The kernel is not ready.", msg,
                                  json_pack("{s:s}", "status", ref->status));
    } else {
        k->ref = *ref;
        k->step(k, ref);
        return;
    }
    kop_free(k);
}

/* Starts a relayed call: owner check, lookup, then step. Takes body (may be NULL). */
static kop_t *kop_start(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who,
                        kop_step step) {
    const char *key = baic_api_owner_key(req, who);
    if (key == NULL)
        return NULL;
    kop_t *k = calloc(1, sizeof *k);
    if (k == NULL) {
        baic_api_internal(req, "Out of memory.");
        return NULL;
    }
    k->op = baic_api_op_new(req, m, who);
    k->m = m;
    k->step = step;
    k->key = key;
    return k;
}

static void kop_go(kop_t *k) {
    if (baic_kernel_lookup(k->m, baic_http_param(k->op->req, "ref"), k->key, kop_found, k) != 0) {
        baic_api_not_found(k->op->req, "session", "No such session.");
        kop_free(k);
    }
}

static int kop_rpc(kop_t *k, const char *what, json_t *body, unsigned timeout_ms,
                   baic_agent_rpc_cb cb) {
    char path[160];
    snprintf(path, sizeof path, "/rpc/kernels/%s/%s", k->ref.kernel_id, what);
    int rc = baic_agent_rpc(k->m, k->ref.addr, "POST", path, body, timeout_ms, cb, k);
    if (rc != 0) {
        baic_api_agent_error(k->op->req, 0, NULL, rc);
        kop_free(k);
    }
    return rc;
}

/* ---- base64 ---- */

static char *b64_encode(const void *data, size_t len) {
    char *out = malloc(4 * ((len + 2) / 3) + 1);
    if (out == NULL)
        return NULL;
    EVP_EncodeBlock((unsigned char *)out, data, (int)len);
    return out;
}

/* Decoded bytes (malloc'd, *n their count) or NULL. */
static unsigned char *b64_decode(const char *s, size_t *n) {
    size_t len = strlen(s);
    if (len % 4 != 0)
        return NULL;
    unsigned char *out = malloc(len / 4 * 3 + 1);
    if (out == NULL)
        return NULL;
    int w = len ? EVP_DecodeBlock(out, (const unsigned char *)s, (int)len) : 0;
    if (w < 0) {
        free(out);
        return NULL;
    }
    size_t pad = 0;
    if (len >= 1 && s[len - 1] == '=')
        pad++;
    if (len >= 2 && s[len - 2] == '=')
        pad++;
    *n = (size_t)w - pad;
    return out;
}

/* ---- POST /session/{ref}: execute (polling form) ---- */

static void make_run_id(char *out, size_t n) {
    unsigned char r[8];
    if (RAND_bytes(r, sizeof r) != 1)
        memset(r, 0, sizeof r);
    size_t k = (n - 1) / 2 < sizeof r ? (n - 1) / 2 : sizeof r;
    baic_hex(r, k, out);
}

/* The api-contract §3 result from an agent answer (the runner's keys minus id/final). */
json_t *baic_exec_result(const json_t *answer, const char *run_id) {
    const json_t *a = json_object_get(answer, "result");
    if (!json_is_object(a))
        a = answer;
    json_t *out = json_object();
    const char *rid = json_string_value(json_object_get(a, "runId"));
    json_object_set_new(out, "runId", rid ? json_string(rid) : run_id ? json_string(run_id)
                                                                      : json_null());
    const char *st = json_string_value(json_object_get(a, "status"));
    json_object_set_new(out, "status", json_string(st ? st : "finished"));
    json_t *ec = json_object_get(a, "exitCode");
    json_object_set(out, "exitCode", ec ? ec : json_null());
    json_t *c = json_object_get(a, "console");
    json_object_set_new(out, "console", json_is_array(c) ? json_incref(c) : json_array());
    json_t *o = json_object_get(a, "options");
    json_object_set_new(out, "options", json_is_object(o) ? json_incref(o) : json_object());
    json_t *f = json_object_get(a, "files");
    json_object_set(out, "files", f ? f : json_null());
    return out;
}

static void exec_done(int status, json_t *answer, int err, void *arg) {
    kop_t *k = arg;
    if (kop_gone(k))
        return;
    if (err != 0 || status < 200 || status >= 300) {
        baic_api_agent_error(k->op->req, status, answer, err);
    } else if (k->mode_complete) {
        json_t *res = json_object_get(answer, "result");
        json_t *out = json_pack("{s:s, s:s, s:i, s:[[s, O]], s:{}, s:n}", "runId", k->run_id,
                                "status", "finished", "exitCode", 0, "console", "completion",
                                res ? res : json_null(), "options", "files");
        baic_http_respond_json(k->op->req, 200, json_pack("{s:o}", "result", out));
    } else {
        baic_http_respond_json(k->op->req, 200,
                               json_pack("{s:o}", "result", baic_exec_result(answer, k->run_id)));
    }
    kop_free(k);
}

static void exec_step(kop_t *k, const baic_kref_t *ref) {
    (void)ref;
    kop_rpc(k, k->mode_complete ? "complete" : "execute", k->body, 60000, exec_done);
}

static void post_execute(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    json_t *b = baic_api_json_body(req);
    if (b == NULL)
        return;
    const char *mode = json_string_value(json_object_get(b, "mode"));
    if (mode == NULL)
        mode = "query";
    if (strcmp(mode, "query") != 0 && strcmp(mode, "batch") != 0 &&
        strcmp(mode, "continue") != 0 && strcmp(mode, "input") != 0 &&
        strcmp(mode, "complete") != 0) {
        baic_api_invalid_params(req, "'mode' must be query, batch, continue, input or complete.");
        json_decref(b);
        return;
    }
    json_t *code = json_object_get(b, "code");
    if (code != NULL && !json_is_null(code) && !json_is_string(code)) {
        baic_api_invalid_params(req, "'code' must be a string.");
        json_decref(b);
        return;
    }
    json_t *opts = json_object_get(b, "options");
    if (opts != NULL && !json_is_null(opts) && !json_is_object(opts)) {
        baic_api_invalid_params(req, "'options' must be an object.");
        json_decref(b);
        return;
    }
    json_t *rid = json_object_get(b, "runId");
    if (rid == NULL || json_is_null(rid))
        rid = json_object_get(b, "run_id");
    if (rid != NULL && !json_is_null(rid) && !json_is_string(rid)) {
        baic_api_invalid_params(req, "'runId' must be a string or null.");
        json_decref(b);
        return;
    }
    const char *rs = json_string_value(rid);
    if ((rs == NULL || *rs == '\0') &&
        (strcmp(mode, "continue") == 0 || strcmp(mode, "input") == 0)) {
        baic_api_invalid_params(req, "'runId' is required for continue and input.");
        json_decref(b);
        return;
    }
    if (rs != NULL && strlen(rs) >= 64) {
        baic_api_invalid_params(req, "'runId' is too long.");
        json_decref(b);
        return;
    }
    kop_t *k = kop_start(req, m, who, exec_step);
    if (k == NULL) {
        json_decref(b);
        return;
    }
    if (rs != NULL && *rs)
        copy(k->run_id, sizeof k->run_id, rs);
    else
        make_run_id(k->run_id, sizeof k->run_id);
    const char *cs = json_string_value(code);
    if (strcmp(mode, "complete") == 0) {
        k->mode_complete = 1;
        k->body = json_pack("{s:s, s:o}", "code", cs ? cs : "", "options",
                            json_is_object(opts) ? json_incref(opts) : json_object());
    } else {
        k->body = json_pack("{s:s, s:s, s:s, s:o}", "mode", mode, "code", cs ? cs : "", "runId",
                            k->run_id, "options",
                            json_is_object(opts) ? json_incref(opts) : json_object());
    }
    json_decref(b);
    kop_go(k);
}

/* ---- interrupt and complete ---- */

static void interrupt_done(int status, json_t *answer, int err, void *arg) {
    kop_t *k = arg;
    if (kop_gone(k))
        return;
    if (err != 0 || status < 200 || status >= 300)
        baic_api_agent_error(k->op->req, status, answer, err);
    else
        baic_http_respond(k->op->req, 204, NULL, NULL, 0);
    kop_free(k);
}

static void interrupt_step(kop_t *k, const baic_kref_t *ref) {
    (void)ref;
    kop_rpc(k, "interrupt", NULL, 10000, interrupt_done);
}

static void post_interrupt(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    kop_t *k = kop_start(req, m, who, interrupt_step);
    if (k)
        kop_go(k);
}

static void complete_done(int status, json_t *answer, int err, void *arg) {
    kop_t *k = arg;
    if (kop_gone(k))
        return;
    if (err != 0 || status < 200 || status >= 300) {
        baic_api_agent_error(k->op->req, status, answer, err);
    } else {
        json_t *r = json_object_get(answer, "result");
        baic_http_respond_json(k->op->req, 200,
                               json_pack("{s:o}", "result", r ? json_incref(r) : json_array()));
    }
    kop_free(k);
}

static void complete_step(kop_t *k, const baic_kref_t *ref) {
    (void)ref;
    kop_rpc(k, "complete", k->body, 10000, complete_done);
}

static void post_complete(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    json_t *b = baic_api_json_body(req);
    if (b == NULL)
        return;
    const char *code = json_string_value(json_object_get(b, "code"));
    json_t *opts = json_object_get(b, "options");
    kop_t *k = kop_start(req, m, who, complete_step);
    if (k == NULL) {
        json_decref(b);
        return;
    }
    k->body = json_pack("{s:s, s:o}", "code", code ? code : "", "options",
                        json_is_object(opts) ? json_incref(opts) : json_object());
    json_decref(b);
    kop_go(k);
}

/* ---- files ---- */

/* The manager's own check (the runner checks again): relative to /home/work, no "..". */
static const char *confined(const char *p) {
    if (p == NULL || *p == '\0')
        return "."; /* default */
    if (strncmp(p, "/home/work", 10) == 0 && (p[10] == '\0' || p[10] == '/')) {
        p += 10;
        while (*p == '/')
            p++;
        if (*p == '\0')
            return ".";
    }
    if (*p == '/')
        return NULL;
    for (const char *s = p; *s;) {
        const char *e = strchr(s, '/');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (n == 2 && s[0] == '.' && s[1] == '.')
            return NULL;
        if (e == NULL)
            break;
        s = e + 1;
    }
    return p;
}

static void refuse_path(baic_http_req_t *req, const char *p) {
    char msg[400];
    snprintf(msg, sizeof msg, "The path '%.300s' is outside the session's home (/home/work).",
             p ? p : "");
    baic_api_invalid_params(req, msg);
}

static void list_done(int status, json_t *answer, int err, void *arg) {
    kop_t *k = arg;
    if (kop_gone(k))
        return;
    if (err != 0 || status < 200 || status >= 300) {
        baic_api_agent_error(k->op->req, status, answer, err);
        kop_free(k);
        return;
    }
    json_t *files = json_object_get(answer, "files");
    char *text = json_is_string(files) ? strdup(json_string_value(files))
                                       : json_dumps(files ? files : json_array(), JSON_COMPACT);
    const char *errs = json_string_value(json_object_get(answer, "errors"));
    baic_http_respond_json(k->op->req, 200,
                           json_pack("{s:s, s:s, s:s}", "files", text ? text : "[]", "errors",
                                     errs ? errs : "", "abspath", k->path));
    free(text);
    kop_free(k);
}

static void list_step(kop_t *k, const baic_kref_t *ref) {
    (void)ref;
    kop_rpc(k, "files/list", k->body, 15000, list_done);
}

static void get_files(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    const char *p = baic_http_query(req, "path");
    json_t *b = NULL;
    if (p == NULL) {
        b = baic_api_json_body(req);
        if (b == NULL)
            return;
        p = json_string_value(json_object_get(b, "path"));
    }
    const char *c = confined(p);
    if (c == NULL) {
        refuse_path(req, p);
        json_decref(b);
        return;
    }
    kop_t *k = kop_start(req, m, who, list_step);
    if (k == NULL) {
        json_decref(b);
        return;
    }
    k->path = strdup(p && *p ? p : ".");
    k->body = json_pack("{s:s}", "path", c);
    json_decref(b);
    kop_go(k);
}

/* -- upload: multipart/form-data -- */

/* The value of a parameter (boundary=, filename=, name=) in a header value; n bytes. */
static int header_param(const char *v, size_t vlen, const char *name, char *out, size_t n) {
    size_t nl = strlen(name);
    for (size_t i = 0; i + nl < vlen; i++) {
        if ((i == 0 || v[i - 1] == ';' || v[i - 1] == ' ' || v[i - 1] == '\t') &&
            strncasecmp(v + i, name, nl) == 0 && v[i + nl] == '=') {
            const char *s = v + i + nl + 1, *end = v + vlen;
            size_t w = 0;
            if (s < end && *s == '"') {
                s++;
                while (s < end && *s != '"' && w + 1 < n) {
                    if (*s == '\\' && s + 1 < end)
                        s++;
                    out[w++] = *s++;
                }
            } else {
                while (s < end && *s != ';' && *s != ' ' && *s != '\r' && w + 1 < n)
                    out[w++] = *s++;
            }
            out[w] = '\0';
            return 0;
        }
    }
    return -1;
}

static const void *memfind(const void *hay, size_t hn, const void *nd, size_t nn) {
    if (nn == 0 || hn < nn)
        return NULL;
    const char *h = hay;
    for (size_t i = 0; i + nn <= hn; i++)
        if (h[i] == *(const char *)nd && memcmp(h + i, nd, nn) == 0)
            return h + i;
    return NULL;
}

/* Parses the body into [{"path","data_b64"}]; NULL + msg on error. */
static json_t *parse_multipart(const char *ctype, const char *body, size_t len, char *msg,
                               size_t mn) {
    char boundary[200], delim[210];
    if (ctype == NULL || strncasecmp(ctype, "multipart/form-data", 19) != 0 ||
        header_param(ctype, strlen(ctype), "boundary", boundary, sizeof boundary) != 0 ||
        boundary[0] == '\0') {
        snprintf(msg, mn, "The upload must be multipart/form-data with a boundary.");
        return NULL;
    }
    int dl = snprintf(delim, sizeof delim, "--%s", boundary);
    if (dl < 0 || (size_t)dl >= sizeof delim) {
        snprintf(msg, mn, "The multipart boundary is too long.");
        return NULL;
    }
    json_t *parts = json_array();
    const char *p = memfind(body, len, delim, (size_t)dl);
    const char *end = body + len;
    while (p != NULL) {
        p += dl;
        if (end - p >= 2 && p[0] == '-' && p[1] == '-')
            return parts; /* closing delimiter */
        if (end - p >= 2 && p[0] == '\r' && p[1] == '\n')
            p += 2;
        const char *hend = memfind(p, (size_t)(end - p), "\r\n\r\n", 4);
        if (hend == NULL)
            break;
        char name[64] = "", filename[1024] = "";
        for (const char *h = p; h < hend;) {
            const char *eol = memfind(h, (size_t)(hend - h), "\r\n", 2);
            if (eol == NULL)
                eol = hend;
            if ((size_t)(eol - h) > 20 && strncasecmp(h, "Content-Disposition:", 20) == 0) {
                header_param(h, (size_t)(eol - h), "name", name, sizeof name);
                header_param(h, (size_t)(eol - h), "filename", filename, sizeof filename);
            }
            h = eol + 2;
        }
        const char *data = hend + 4;
        char crlf_delim[214];
        int cl = snprintf(crlf_delim, sizeof crlf_delim, "\r\n%s", delim);
        const char *next = memfind(data, (size_t)(end - data), crlf_delim, (size_t)cl);
        if (next == NULL)
            break;
        if (filename[0] != '\0') {
            const char *c = confined(filename);
            if (c == NULL || strcmp(c, ".") == 0) {
                snprintf(msg, mn, "The path '%.300s' is outside the session's home (/home/work).",
                         filename);
                json_decref(parts);
                return NULL;
            }
            char *b64 = b64_encode(data, (size_t)(next - data));
            if (b64 == NULL) {
                snprintf(msg, mn, "Out of memory.");
                json_decref(parts);
                return NULL;
            }
            json_array_append_new(parts, json_pack("{s:s, s:s}", "path", c, "data_b64", b64));
            free(b64);
        }
        p = next + 2;
    }
    json_decref(parts);
    snprintf(msg, mn, "The multipart body is truncated or malformed.");
    return NULL;
}

static void upload_next(kop_t *k);

static void upload_done(int status, json_t *answer, int err, void *arg) {
    kop_t *k = arg;
    if (kop_gone(k))
        return;
    if (err != 0 || status < 200 || status >= 300) {
        baic_api_agent_error(k->op->req, status, answer, err);
        kop_free(k);
        return;
    }
    k->idx++;
    upload_next(k);
}

static void upload_next(kop_t *k) {
    if (k->idx >= json_array_size(k->parts)) {
        baic_http_respond(k->op->req, 204, NULL, NULL, 0);
        kop_free(k);
        return;
    }
    kop_rpc(k, "files/upload", json_array_get(k->parts, k->idx), 60000, upload_done);
}

static void upload_step(kop_t *k, const baic_kref_t *ref) {
    (void)ref;
    upload_next(k);
}

static void post_upload(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    size_t len;
    const char *body = baic_http_body(req, &len);
    char msg[400];
    json_t *parts = parse_multipart(baic_http_header(req, "Content-Type"), body, len, msg,
                                    sizeof msg);
    if (parts == NULL) {
        baic_api_invalid_params(req, msg);
        return;
    }
    kop_t *k = kop_start(req, m, who, upload_step);
    if (k == NULL) {
        json_decref(parts);
        return;
    }
    k->parts = parts;
    kop_go(k);
}

/* -- download: each file as a one-member tar archive in a multipart/mixed answer -- */

static void tar_octal(char *dst, size_t n, unsigned long long v) {
    /* n-1 octal digits and a NUL */
    dst[n - 1] = '\0';
    for (size_t i = n - 1; i-- > 0;) {
        dst[i] = (char)('0' + (v & 7));
        v >>= 3;
    }
}

/* A ustar archive holding one regular file; *outn its size. */
static unsigned char *tar_one(const char *name, const unsigned char *data, size_t n,
                              size_t *outn) {
    size_t body = (n + 511) / 512 * 512;
    size_t total = 512 + body + 1024;
    unsigned char *t = calloc(1, total);
    if (t == NULL)
        return NULL;
    char *h = (char *)t;
    size_t nl = strlen(name);
    if (nl > 100) {
        const char *slash = strchr(name + nl - 100, '/');
        size_t pl = slash ? (size_t)(slash - name) : nl;
        if (slash == NULL || pl > 155) {
            name += nl - 100;
            nl = 100;
        } else {
            memcpy(h + 345, name, pl);
            name = slash + 1;
            nl = strlen(name);
        }
    }
    memcpy(h, name, nl);
    tar_octal(h + 100, 8, 0644);
    tar_octal(h + 108, 8, 0);
    tar_octal(h + 116, 8, 0);
    tar_octal(h + 124, 12, n);
    tar_octal(h + 136, 12, (unsigned long long)(baic_wall_ms() / 1000));
    memset(h + 148, ' ', 8);
    h[156] = '0';
    memcpy(h + 257, "ustar", 6);
    memcpy(h + 263, "00", 2);
    unsigned sum = 0;
    for (int i = 0; i < 512; i++)
        sum += t[i];
    tar_octal(h + 148, 7, sum);
    h[155] = ' ';
    if (n)
        memcpy(t + 512, data, n);
    *outn = total;
    return t;
}

static void download_next(kop_t *k);

static void send_download(kop_t *k) {
    baic_http_req_t *req = k->op->req;
    if (k->single) {
        json_t *g = json_array_get(k->got, 0);
        size_t n = 0;
        unsigned char *raw = b64_decode(json_string_value(json_object_get(g, "data_b64")), &n);
        if (raw == NULL) {
            baic_api_internal(req, "The agent sent an undecodable file.");
            return;
        }
        baic_http_respond(req, 200, "application/octet-stream", raw, n);
        free(raw);
        return;
    }
    char boundary[40] = "baic-";
    make_run_id(boundary + 5, sizeof boundary - 5);
    size_t cap = 4096, len = 0;
    char *out = malloc(cap);
    for (size_t i = 0; out && i < json_array_size(k->got); i++) {
        json_t *g = json_array_get(k->got, i);
        size_t n = 0, tn = 0;
        unsigned char *raw = b64_decode(json_string_value(json_object_get(g, "data_b64")), &n);
        const char *nm = json_string_value(json_object_get(g, "name"));
        const char *base = strrchr(nm, '/');
        unsigned char *tar = raw ? tar_one(base ? base + 1 : nm, raw, n, &tn) : NULL;
        free(raw);
        if (tar == NULL) {
            free(out);
            out = NULL;
            break;
        }
        char head[512];
        int hl = snprintf(head, sizeof head,
                          "--%s\r\nContent-Type: application/octet-stream\r\n"
                          "Content-Encoding: identity\r\n"
                          "Content-Disposition: attachment; filename=\"%.200s.tar\"\r\n\r\n",
                          boundary, base ? base + 1 : nm);
        if (hl < 0 || (size_t)hl >= sizeof head) {
            free(tar);
            free(out);
            out = NULL;
            break;
        }
        while (len + (size_t)hl + tn + 64 > cap)
            cap *= 2;
        char *no = realloc(out, cap);
        if (no == NULL) {
            free(tar);
            free(out);
            out = NULL;
            break;
        }
        out = no;
        memcpy(out + len, head, (size_t)hl);
        len += (size_t)hl;
        memcpy(out + len, tar, tn);
        len += tn;
        memcpy(out + len, "\r\n", 2);
        len += 2;
        free(tar);
    }
    if (out == NULL) {
        baic_api_internal(req, "The archive could not be built.");
        return;
    }
    int tl = snprintf(out + len, cap - len, "--%s--\r\n", boundary);
    len += tl > 0 ? (size_t)tl : 0;
    char ctype[80];
    snprintf(ctype, sizeof ctype, "multipart/mixed; boundary=%s", boundary);
    baic_http_respond(req, 200, ctype, out, len);
    free(out);
}

static void download_done(int status, json_t *answer, int err, void *arg) {
    kop_t *k = arg;
    if (kop_gone(k))
        return;
    if (err != 0 || status < 200 || status >= 300) {
        baic_api_agent_error(k->op->req, status, answer, err);
        kop_free(k);
        return;
    }
    const char *d = json_string_value(json_object_get(answer, "data_b64"));
    json_array_append_new(k->got,
                          json_pack("{s:s, s:s}", "name",
                                    json_string_value(json_array_get(k->parts, k->idx)),
                                    "data_b64", d ? d : ""));
    k->idx++;
    download_next(k);
}

static void download_next(kop_t *k) {
    if (k->idx >= json_array_size(k->parts)) {
        send_download(k);
        kop_free(k);
        return;
    }
    json_t *b = json_pack("{s:O}", "path", json_array_get(k->parts, k->idx));
    kop_rpc(k, "files/download", b, 60000, download_done);
    json_decref(b);
}

static void download_step(kop_t *k, const baic_kref_t *ref) {
    (void)ref;
    download_next(k);
}

/* Every value of a repeated query key, decoded. */
static json_t *query_all(baic_http_req_t *req, const char *key) {
    json_t *out = json_array();
    const char *q = baic_http_query_string(req);
    size_t kl = strlen(key);
    while (q && *q) {
        const char *amp = strchr(q, '&');
        size_t n = amp ? (size_t)(amp - q) : strlen(q);
        if (n > kl && strncmp(q, key, kl) == 0 && q[kl] == '=') {
            char *v = malloc(n - kl);
            size_t w = 0;
            for (size_t i = kl + 1; v && i < n; i++) {
                char c = q[i];
                if (c == '+') {
                    c = ' ';
                } else if (c == '%' && i + 2 < n) {
                    char hx[3] = {q[i + 1], q[i + 2], 0};
                    char *e;
                    long x = strtol(hx, &e, 16);
                    if (*e == '\0') {
                        c = (char)x;
                        i += 2;
                    }
                }
                v[w++] = c;
            }
            if (v) {
                v[w] = '\0';
                json_array_append_new(out, json_string(v));
                free(v);
            }
        }
        q = amp ? amp + 1 : NULL;
    }
    return out;
}

static void start_download(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who,
                           json_t *files, int single) {
    size_t i;
    json_t *f;
    if (json_array_size(files) == 0 || json_array_size(files) > 5) {
        baic_api_invalid_params(req, single ? "'file' is required."
                                            : "Give 1 to 5 'files' to download.");
        json_decref(files);
        return;
    }
    json_array_foreach(files, i, f) {
        const char *p = json_string_value(f);
        const char *c = confined(p);
        if (c == NULL || strcmp(c, ".") == 0) {
            refuse_path(req, p);
            json_decref(files);
            return;
        }
        json_array_set_new(files, i, json_string(c));
    }
    kop_t *k = kop_start(req, m, who, download_step);
    if (k == NULL) {
        json_decref(files);
        return;
    }
    k->parts = files;
    k->got = json_array();
    k->single = single;
    kop_go(k);
}

static void post_download(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    json_t *files = query_all(req, "files");
    if (json_array_size(files) == 0) {
        /* older clients: JSON body {"files": [...]} */
        json_t *b = baic_api_json_body(req);
        if (b == NULL) {
            json_decref(files);
            return;
        }
        json_t *bf = json_object_get(b, "files");
        if (json_is_array(bf)) {
            json_decref(files);
            files = json_deep_copy(bf);
        }
        json_decref(b);
    }
    start_download(req, m, who, files, 0);
}

static void post_download_single(baic_http_req_t *req, baic_manager_t *m,
                                 const baic_caller_t *who) {
    const char *f = baic_http_query(req, "file");
    json_t *files = json_array();
    if (f != NULL)
        json_array_append_new(files, json_string(f));
    else {
        json_t *b = baic_api_json_body(req);
        if (b == NULL) {
            json_decref(files);
            return;
        }
        const char *bf = json_string_value(json_object_get(b, "file"));
        if (bf)
            json_array_append_new(files, json_string(bf));
        json_decref(b);
    }
    start_download(req, m, who, files, 1);
}

/* ---- GET /session: the caller's sessions (for `baic session ls`; not in 24.09) ---- */

static void list_sessions_done(const baic_db_result_t *res, int err, const char *errmsg,
                               void *arg) {
    baic_api_op_t *op = arg;
    if (baic_api_op_gone(op))
        return;
    if (err != 0) {
        BAIC_LOG_W("session_list_failed", "error=\"%s\"", errmsg ? errmsg : "");
        baic_api_unavailable(op->req, "The database is not reachable.");
        return;
    }
    json_t *out = json_array();
    for (int r = 0; r < baic_db_result_rows(res); r++)
        json_array_append_new(
            out, json_pack("{s:s, s:s, s:s, s:s?, s:s?}", "id", baic_db_result_get(res, r, 0),
                           "name", baic_db_result_get(res, r, 1), "status",
                           baic_db_result_get(res, r, 2), "image", baic_db_result_get(res, r, 3),
                           "created", baic_db_result_get(res, r, 4)));
    baic_http_respond_json(op->req, 200, json_pack("{s:o}", "sessions", out));
}

static void list_sessions(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    const char *key = baic_api_owner_key(req, who);
    if (key == NULL)
        return;
    const char *all = baic_http_query(req, "all");
    baic_api_op_t *op = baic_api_op_new(req, m, who);
    const char *p[2] = {key, all && strcmp(all, "true") == 0 ? "true" : "false"};
    if (baic_db_query(m->db,
                      "SELECT id::text, name, status, images[1], created_at::text FROM sessions"
                      " WHERE access_key = $1 AND ($2::boolean OR status NOT IN "
                      BAIC_FINAL_STATUSES ") ORDER BY created_at DESC LIMIT 500",
                      2, p, list_sessions_done, op) != 0)
        baic_api_unavailable(req, "The database is not reachable.");
}

int baic_api_execute_init(baic_manager_t *m) {
    int rc = baic_api_route(m, "GET", "/session", BAIC_ROUTE_USER, list_sessions, 0);
    const size_t big = 48u * 1024 * 1024;
    if (!rc)
        rc = baic_api_route(m, "POST", "/session/{ref}", BAIC_ROUTE_USER, post_execute,
                            8 * 1024 * 1024);
    if (!rc)
        rc = baic_api_route(m, "POST", "/session/{ref}/interrupt", BAIC_ROUTE_USER,
                            post_interrupt, 0);
    if (!rc)
        rc = baic_api_route(m, "POST", "/session/{ref}/complete", BAIC_ROUTE_USER, post_complete,
                            1024 * 1024);
    if (!rc)
        rc = baic_api_route(m, "GET", "/session/{ref}/files", BAIC_ROUTE_USER, get_files, 0);
    if (!rc)
        rc = baic_api_route(m, "POST", "/session/{ref}/upload", BAIC_ROUTE_USER, post_upload, big);
    if (!rc)
        rc = baic_api_route(m, "POST", "/session/{ref}/download", BAIC_ROUTE_USER, post_download,
                            0);
    if (!rc)
        rc = baic_api_route(m, "GET", "/session/{ref}/download", BAIC_ROUTE_USER, post_download,
                            0);
    if (!rc)
        rc = baic_api_route(m, "POST", "/session/{ref}/download_single", BAIC_ROUTE_USER,
                            post_download_single, 0);
    if (!rc)
        rc = baic_api_route(m, "GET", "/session/{ref}/download_single", BAIC_ROUTE_USER,
                            post_download_single, 0);
    return rc;
}
