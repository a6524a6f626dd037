/* SPDX-License-Identifier: Apache-2.0 */
/* Signed, blocking calls to a Backend.AI manager for the `baic` client verbs (run, session). */
#ifndef BAIC_CLI_API_H
#define BAIC_CLI_API_H

#include <stddef.h>

#include <jansson.h>

/* Where and as whom: BACKEND_ENDPOINT, BACKEND_ACCESS_KEY, BACKEND_SECRET_KEY (as the
 * official CLI reads them). */
typedef struct cli_api {
    char endpoint[512]; /* "http://host:port" without a trailing slash */
    char hostport[300]; /* "host:port" as the Host header carries it (signed) */
    char access_key[128];
    char secret_key[256];
} cli_api_t;

/* Fills api from the environment; prints what is missing and returns -1. */
int cli_api_from_env(cli_api_t *api);

/* An answer: status 0 when the request failed (err then a negative code). */
typedef struct cli_resp {
    int status;
    int err;
    char *body; /* NUL-terminated, malloc'd; NULL on failure */
    size_t len;
    char *content_type;
} cli_resp_t;

/* The Date and Authorization header values for a request (ctype as sent). 0 or < 0. */
int cli_api_sign(const cli_api_t *api, const char *method, const char *path, const char *ctype,
                 char date[40], char authz[512]);

/* One signed request (path with query, e.g. "/session/x?owner_access_key=..."). body may
 * be NULL; ctype NULL means application/json. Blocks up to timeout_ms. Returns 0 when an
 * answer came (any status), else a negative code (also in r->err). */
int cli_api_call(const cli_api_t *api, const char *method, const char *path, const void *body,
                 size_t len, const char *ctype, unsigned timeout_ms, cli_resp_t *r);
/* The same with a JSON body (may be NULL) and the answer parsed (*out NULL if not JSON). */
int cli_api_json(const cli_api_t *api, const char *method, const char *path, json_t *body,
                 unsigned timeout_ms, int *status, json_t **out);
void cli_resp_free(cli_resp_t *r);

/* Prints a problem answer ("title: msg") to stderr, prefixed by what. */
void cli_api_print_error(const char *what, int status, const json_t *answer);

/* Percent-encodes s for a path segment or query value into out (n bytes). */
void cli_api_escape(const char *s, char *out, size_t n);

/* Verbs. */
int cli_cmd_run(int argc, char **argv);
int cli_cmd_session(int argc, char **argv);
int cli_cmd_folder(int argc, char **argv);

/* folder.c: adds --mount FOLDER[:/home/work/PATH][:ro|rw] to a session's config object
 * (config.mounts, mount_map, mount_options). 0, or -1 after printing why. */
int cli_mount_parse(json_t *config, const char *spec);

/* transfer.c: argv = {"upload"|"download", NAME, FILE..., [--dest DIR]}; exit status. */
int cli_session_transfer(const cli_api_t *api, int argc, char **argv);
/* shell.c: `baic shell SESSION`. */
int cli_cmd_shell(int argc, char **argv);

/* Runs code in a RUNNING session (query mode, continue until finished), printing the
 * console as it arrives; returns the exit code (or 1 when the call failed). */
int cli_exec_code(const cli_api_t *api, const char *session, const char *mode, const char *code);

/* run.c: POST /session waiting for RUNNING (resources may be NULL), DELETE; 0 or 1. */
int cli_session_create(const cli_api_t *api, const char *image, const char *name,
                       json_t *resources);
/* The same with more config keys (mounts...; may be NULL) merged into the request's config. */
int cli_session_create_ex(const cli_api_t *api, const char *image, const char *name,
                          json_t *resources, json_t *config);
int cli_session_delete(const cli_api_t *api, const char *name);

#endif
