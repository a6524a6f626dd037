/* SPDX-License-Identifier: Apache-2.0 */
/* Shared declarations of baic-storage-proxy's files: volumes, the two APIs, tokens, transfers. */
#ifndef BAIC_STORAGE_PROXY_H
#define BAIC_STORAGE_PROXY_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include <baic/storage.h>

#include "host/host.h"
#include "http/http.h"
#include "loop/loop.h"

#define SP_VERSION BAIC_VERSION
#define SP_TOKEN_MAX_AGE_S 86400

/* One [volume.<name>] opened with its backend plugin. */
typedef struct sp_volume {
    char *name;
    const char *backend;           /* "vfs" (borrowed from config) */
    const baic_plugin_t *plugin;
    const baic_storage_ops_t *ops;
    baic_volume_t *vol;
    uint32_t caps;
    int write_on_loop;             /* uploads write on the loop thread (upload.c) */
    unsigned fast_writes;          /* pool writes in a row that were page-cache fast */
} sp_volume_t;

typedef struct sp {
    json_t *config;
    baic_loop_t *loop;
    uv_loop_t *uv;
    baic_host_ctx_t *host;
    baic_registry_t *reg;
    baic_http_server_t *mgr_http, *cli_http;
    const char *listen_manager, *listen_client;
    const char *manager_secret, *jwt_secret;
    const char *client_url;        /* base URL handed out with issued tokens */
    sp_volume_t *vols;
    size_t nvols;
    int64_t max_upload;            /* Tus-Max-Size */
    struct sp_upload *uploads;     /* PATCHes in progress, one per temp file */
    int closing;
} sp_t;

/* A verified token's claims (strings borrowed from claims). */
typedef struct sp_token {
    json_t *claims;
    const char *op, *volume, *vfid, *relpath, *session;
    int64_t size;                  /* upload; -1 when absent */
    int archive;
} sp_token_t;

sp_volume_t *sp_volume_find(sp_t *sp, const char *name);

/* Problem answers; status and slug per api-contract §7. */
int sp_fail(baic_http_req_t *req, int status, const char *slug, const char *title,
            const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Answers a plugin/baic error code with the matching problem JSON. */
int sp_fail_code(baic_http_req_t *req, int code, const char *what);

/* auth.c: the manager-facing API's authentication. 0 when the request may proceed. */
int sp_auth_check(const sp_t *sp, baic_http_req_t *req, const char **why);

/* token.c */
/* Verifies token (HS256, exp) and that its op is want_op. Returns 0, or answers the
 * request (401/403) itself and returns -1. out->claims must be json_decref'd. */
int sp_token_check(sp_t *sp, baic_http_req_t *req, const char *want_op, sp_token_t *out);
/* Signs claims (borrowed) with exp = now + ttl_s; returns a malloc'd token or NULL. */
char *sp_token_issue(const sp_t *sp, json_t *claims, int64_t ttl_s);

/* manager_api.c, upload.c, download.c: route registration. */
int sp_manager_api_init(sp_t *sp);
int sp_upload_init(sp_t *sp);
int sp_download_init(sp_t *sp);

/* HTTP-date of a wall-clock time in ms ("Sun, 06 Nov 1994 08:49:37 GMT"). */
void sp_http_date(int64_t ms, char *out, size_t n);

#endif
