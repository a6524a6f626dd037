/* SPDX-License-Identifier: Apache-2.0 */
/* Shared machinery of the /folders API files (api/vfolder*.c): one request's state, finding
 * a folder the caller may see, database and storage proxy steps. */
#ifndef BAIC_MANAGER_VFOLDER_INT_H
#define BAIC_MANAGER_VFOLDER_INT_H

#include <jansson.h>

#include "manager.h"
#include "storage_client.h"

/* Access levels: what the caller's effective permission allows. */
enum { VF_ANY = 0, VF_RO = 1, VF_RW = 2, VF_WD = 3, VF_OWNER = 4 };

typedef struct vf vf_t;
typedef void (*vf_step)(vf_t *v);
typedef void (*vf_db_step)(vf_t *v, const baic_db_result_t *res, int err);
typedef void (*vf_sp_step)(vf_t *v, int status, json_t *answer);

struct vf {
    baic_api_op_t *op;
    baic_manager_t *m;
    baic_http_req_t *req;
    const baic_caller_t *who;
    json_t *body; /* the request body (owned) */
    json_t *row;  /* the folder, after vf_resolve (owned) */
    const char *id, *hex, *name, *host, *qsid, *status, *perm; /* borrowed from row */
    char vfid[160]; /* "<quota scope>/<hex>": the proxy's folder id */
    int level;      /* VF_RO.. VF_OWNER */
    json_t *acc;    /* scratch results (owned) */
    json_t *aux;    /* scratch (owned) */
    vf_step next;
    vf_db_step dbnext;
    vf_sp_step spnext;
    void *data;
    void (*on_drop)(vf_t *v); /* runs in vf_free while set (owners of data clean up) */
    int i, n, flag;
};

/* A new request state (body parsed when parse_body; NULL after answering 400). */
vf_t *vf_new(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who, int parse_body);
void vf_free(vf_t *v);
/* Answers and frees. */
void vf_reply(vf_t *v, int status, json_t *body);
void vf_empty(vf_t *v, int status);

/* Finds folder `ref` (name, dashed UUID or 32-hex UUID) among those the caller sees and
 * checks the level; trash: 1 = only a folder in the trash bin, 0 = only a live one.
 * Answers 404/403 itself; else runs next. */
void vf_resolve(vf_t *v, const char *ref, int need, int trash, vf_step next);
/* The folder named by the route's {name}. */
void vf_resolve_param(vf_t *v, int need, vf_step next);

/* One query; the step runs unless the client went away. err other than 0/BAIC_EEXISTS is
 * answered (503) before the step would run. */
void vf_query(vf_t *v, const char *sql, int n, const char *const *p, vf_db_step next);
/* A proxy call for this folder's host (body stolen, "vfid" added when add_vfid). The step
 * gets only 2xx answers unless raw; failures are answered. */
void vf_storage(vf_t *v, const char *host, const char *path, json_t *body, int add_vfid, int raw,
                unsigned timeout_ms, vf_sp_step next);

/* Checks a path inside a folder: relative, no "..", no NUL, ≤ 1024 bytes. 0 or -1 (answered). */
int vf_relpath_ok(vf_t *v, const json_t *s, const char *what);
/* Host permission names granted on the folder's host ("upload-file", ...). */
int vf_host_allows(vf_t *v, const char *perm);

/* SQL: the columns of one folder as seen by caller $1 (uuid), $2 (is admin), $3 (admin
 * domain or NULL for superadmin), $4 (access key). */
extern const char VF_COLUMNS[];
extern const char VF_FROM_VISIBLE[];
/* JSON shapes. */
json_t *vf_list_item(const json_t *row, int level, const char *perm);
/* Effective level and shown permission of a row for the caller. */
int vf_row_level(const json_t *row, const char **perm);
/* The folder's 32-hex id from a dashed UUID string (out 33 bytes). */
void vf_hex(const char *uuid, char out[33]);

/* Folder name rule (create, rename, clone). */
int baic_vfolder_name_ok(const char *s);

/* Route registration of the files. */
int baic_api_vfolder_files_init(baic_manager_t *m);
int baic_api_vfolder_share_init(baic_manager_t *m);
int baic_api_vfolder_clone_init(baic_manager_t *m);
int baic_api_vfolder_admin_init(baic_manager_t *m);
int baic_api_vfolder_hostmount_init(baic_manager_t *m);
/* GET /folders/_/mounts, last step: fills acc.agents from the ALIVE agents and answers. */
void vf_hostmount_list(vf_t *v);

#endif
