/* SPDX-License-Identifier: Apache-2.0 */
/* Daemon configuration: TOML 1.0 files read into jansson trees, and typed lookups into them. */
#ifndef BAIC_CORE_CONFIG_H
#define BAIC_CORE_CONFIG_H

#include <stddef.h>

#include <jansson.h>

/*
 * Mapping from TOML to JSON:
 *   table, inline table      -> object
 *   array, array of tables   -> array
 *   string                   -> string (valid UTF-8; "\u0000" is rejected so values stay C strings)
 *   integer                  -> integer (64-bit signed)
 *   float                    -> real; inf and nan have no JSON form and become the strings
 *                               "inf", "+inf", "-inf", "nan", "+nan", "-nan" as written
 *   boolean                  -> true / false
 *   date, time, date-time    -> string, exactly as written in the file
 * Trees never nest deeper than 128 containers. All functions may be called from any thread;
 * they share no state.
 */

/*
 * Parses TOML text into a new object tree.
 *   text, len  the document; need not be NUL-terminated, and a NUL byte inside is an error.
 *   name       used in messages: a file name or "<string>".
 *   out        on success receives a new reference the caller must json_decref(); NULL on error.
 *   err        on error receives "name:line:col: message" (1-based line and column, the column
 *              counted in characters) naming the offending character and what was expected.
 *              May be NULL; truncated to errlen.
 * Returns 0, BAIC_ECONFIG_SYNTAX for any invalid document, or -ENOMEM.
 */
int baic_config_parse_string(const char *text, size_t len, const char *name, json_t **out,
                             char *err, size_t errlen);

/*
 * Reads and parses the file at path, as baic_config_parse_string with name = path.
 * Returns 0, BAIC_ECONFIG_SYNTAX, or -errno when the file cannot be read (message
 * "path: strerror"); files over 16 MiB give -EFBIG.
 */
int baic_config_parse_file(const char *path, json_t **out, char *err, size_t errlen);

/*
 * Dotted-path lookup from root: "manager.db.dsn". A segment may be quoted to hold dots or
 * slashes, with \" and \\ as its only escapes: plugin."compute/mock".devices. The empty
 * path is root itself.
 * Returns a borrowed reference, or NULL when root is NULL, the path is malformed, a segment
 * is missing, or an intermediate value is not a table.
 */
const json_t *baic_config_get(const json_t *root, const char *path);

/*
 * Typed getters. When path is absent, *out = def and the result is 0. When present with the
 * expected type, *out is its value (get_string's is borrowed from root). When present with
 * another type, *out is untouched, err receives "path: expected <type>, found <type>" and the
 * result is BAIC_ECONFIG_TYPE. A float is not an integer; an integer is not a bool.
 */
int baic_config_get_string(const json_t *root, const char *path, const char *def, const char **out,
                           char *err, size_t errlen);
int baic_config_get_int(const json_t *root, const char *path, long long def, long long *out,
                        char *err, size_t errlen);
int baic_config_get_bool(const json_t *root, const char *path, int def, int *out, char *err,
                         size_t errlen);

#endif
