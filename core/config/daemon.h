/* SPDX-License-Identifier: Apache-2.0 */
/* What every baic daemon does with its config: find the file, load it, read values with logged errors. */
#ifndef BAIC_CORE_CONFIG_DAEMON_H
#define BAIC_CORE_CONFIG_DAEMON_H

#include <jansson.h>

/*
 * The config file to use when none was given: $env if set and non-empty, else ./file
 * when readable, else /etc/baic/file. Returns a pointer to env's value, to file, or
 * to a static buffer. Call from main before threads exist.
 */
const char *baic_daemon_config_path(const char *env, const char *file);

/*
 * Parses path into *out and applies "<section>.log_level" unless BAIC_LOG_LEVEL is
 * set. On failure prints "prog: <error naming file:line:col>" to stderr and returns
 * non-zero (*out NULL). The caller decrefs *out.
 */
int baic_daemon_config_load(const char *prog, const char *path, const char *section,
                            json_t **out);

/* Raises the soft limit on open files to at least want (up to the hard limit). Returns 0
 * when the limit is want or more, else a negative errno (-EMFILE: the hard limit is lower). */
int baic_daemon_open_files(unsigned want);

/* baic_config_get_string / _int that log a config_error line instead of taking a
 * buffer; same returns. */
int baic_cfg_str(const json_t *root, const char *path, const char *def, const char **out);
int baic_cfg_int(const json_t *root, const char *path, long long def, long long *out);

#endif
