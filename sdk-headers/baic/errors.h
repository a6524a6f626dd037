/* SPDX-License-Identifier: Apache-2.0 */
/* Error codes shared by the core and plugins: 0 is success, negative is failure. */
#ifndef BAIC_ERRORS_H
#define BAIC_ERRORS_H

/*
 * Every baic function returns int: 0 on success, a negative code on failure.
 * Negative errno values (and libuv's UV_E* codes, which are the same numbers on
 * Linux) pass through unchanged. baic's own codes live in a separate block far
 * below any errno, so the two never collide. baic_strerror() names both.
 */
#define BAIC__ERR_BASE (-30000)

#define BAIC_ERRNO_MAP(XX)                                                          \
    XX(PLUGIN_OPEN, -1, "cannot open shared object")                               \
    XX(PLUGIN_NO_ENTRY, -2, "not a baic plugin (no baic_plugin_entry)")            \
    XX(PLUGIN_BAD_MAGIC, -3, "bad magic number")                                   \
    XX(PLUGIN_ABI_MAJOR, -4, "ABI major version differs from the host's")          \
    XX(PLUGIN_ABI_NEWER, -5, "plugin needs a newer host (ABI minor too new)")      \
    XX(PLUGIN_DESC_SHORT, -6, "descriptor too short")                              \
    XX(PLUGIN_BUILD_SIG, -7, "plugin is not binary compatible (build signature)")  \
    XX(PLUGIN_BAD_KIND, -8, "unknown plugin kind")                                 \
    XX(PLUGIN_NAME_MISMATCH, -9, "kind/name differs from what config asked for")   \
    XX(PLUGIN_DUPLICATE, -10, "a plugin with this kind/name is already loaded")    \
    XX(PLUGIN_OPS_SHORT, -11, "ops table shorter than the kind's minimum")         \
    XX(PLUGIN_OPS_MISSING, -12, "mandatory op missing")                            \
    XX(PLUGIN_INIT, -13, "plugin init failed")                                     \
    XX(PLUGIN_NOT_FOUND, -14, "plugin not found on the search path")               \
    XX(CONFIG_SYNTAX, -20, "configuration syntax error")                           \
    XX(CONFIG_TYPE, -21, "configuration value has the wrong type")                 \
    XX(CONFIG_MISSING, -22, "required configuration value missing")                \
    XX(NOT_SUPPORTED, -30, "operation not supported by this plugin")               \
    XX(NO_RESOURCES, -31, "not enough resources")                                  \
    XX(NOT_FOUND, -32, "object not found")                                         \
    XX(EXISTS, -33, "object already exists")                                       \
    XX(PERMISSION, -34, "permission denied")                                       \
    XX(QUOTA, -35, "quota exceeded")                                               \
    XX(AUTH_FAILED, -36, "authentication failed")                                  \
    XX(BAD_INPUT, -37, "invalid input")                                            \
    XX(BACKEND, -38, "backend service error")                                      \
    XX(TIMEOUT, -39, "operation timed out")                                        \
    XX(CANCELLED, -40, "operation cancelled")                                      \
    XX(INTERNAL, -41, "internal error")

enum baic_errno {
#define BAIC__ERR_ENUM(name, off, msg) BAIC_E##name = BAIC__ERR_BASE + (off),
    BAIC_ERRNO_MAP(BAIC__ERR_ENUM)
#undef BAIC__ERR_ENUM
};

#endif /* BAIC_ERRORS_H */
