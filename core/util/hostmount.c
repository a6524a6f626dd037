/* SPDX-License-Identifier: Apache-2.0 */
/* Parameter rules of host mounts (see hostmount.h). */
#include "util/hostmount.h"

#include <stdio.h>
#include <string.h>

static int fail(char *msg, size_t len, const char *text) {
    snprintf(msg, len, "%s", text);
    return -1;
}

/* *out = the string under key; NULL when absent or null. -1 on another type. */
static int opt_str(const json_t *body, const char *key, const char **out, char *msg, size_t len) {
    const json_t *x = json_object_get(body, key);
    *out = NULL;
    if (x == NULL || json_is_null(x))
        return 0;
    if (!json_is_string(x)) {
        snprintf(msg, len, "'%s' must be a string.", key);
        return -1;
    }
    if (strlen(json_string_value(x)) != json_string_length(x)) {
        snprintf(msg, len, "'%s' must not hold a NUL character.", key);
        return -1;
    }
    *out = json_string_value(x);
    return 0;
}

static int has_space(const char *s) {
    for (; *s; s++)
        if (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r' || *s == '\v' || *s == '\f')
            return 1;
    return 0;
}

static int name_ok(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > BAIC_HOSTMOUNT_NAME_MAX || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '.' || *s == '_' || *s == '-'))
            return 0;
    return 1;
}

static int fstype_ok(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > BAIC_HOSTMOUNT_FSTYPE_MAX)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '.' || *s == '_'))
            return 0;
    return 1;
}

int baic_hostmount_parse(const json_t *body, int mount, baic_hostmount_req_t *out, char *msg,
                         size_t len) {
    memset(out, 0, sizeof *out);
    if (!json_is_object(body))
        return fail(msg, len, "The body must be a JSON object.");
    if (opt_str(body, "name", &out->name, msg, len) ||
        opt_str(body, "fstab_path", &out->fstab_path, msg, len) ||
        opt_str(body, "scaling_group", &out->scaling_group, msg, len))
        return -1;
    if (out->name == NULL)
        return fail(msg, len, "'name' is required.");
    if (!name_ok(out->name))
        return fail(msg, len,
                    "'name' must be one path component of A-Z, a-z, 0-9, '.', '_' and '-' "
                    "(not '.' or '..'), at most 64 characters.");
    if (out->scaling_group && (*out->scaling_group == '\0' || strlen(out->scaling_group) > 64))
        return fail(msg, len, "'scaling_group' must be 1..64 characters.");
    if (out->fstab_path && (out->fstab_path[0] != '/' || has_space(out->fstab_path) ||
                            strlen(out->fstab_path) > BAIC_HOSTMOUNT_PATH_MAX))
        return fail(msg, len, "'fstab_path' must be an absolute path without whitespace.");
    const json_t *e = json_object_get(body, "edit_fstab");
    if (e == NULL || json_is_null(e) || json_is_false(e))
        out->edit_fstab = 0;
    else if (json_is_true(e))
        out->edit_fstab = 1;
    else if (json_is_string(e) && (strcmp(json_string_value(e), "true") == 0 ||
                                   strcmp(json_string_value(e), "false") == 0))
        out->edit_fstab = strcmp(json_string_value(e), "true") == 0;
    else
        return fail(msg, len, "'edit_fstab' must be a boolean (or \"true\"/\"false\").");
    if (!mount)
        return 0;
    if (opt_str(body, "fs_location", &out->fs_location, msg, len) ||
        opt_str(body, "fs_type", &out->fs_type, msg, len) ||
        opt_str(body, "options", &out->options, msg, len))
        return -1;
    if (out->fs_location == NULL || *out->fs_location == '\0')
        return fail(msg, len, "'fs_location' is required.");
    if (has_space(out->fs_location) || out->fs_location[0] == '-' ||
        strlen(out->fs_location) > BAIC_HOSTMOUNT_LOCATION_MAX)
        return fail(msg, len,
                    "'fs_location' must not hold whitespace or start with '-' (at most 1024 "
                    "characters).");
    if (out->fs_type == NULL)
        out->fs_type = "nfs";
    if (!fstype_ok(out->fs_type))
        return fail(msg, len, "'fs_type' must be 1..32 characters of a-z, 0-9, '.' and '_'.");
    if (out->options && *out->options == '\0')
        out->options = NULL;
    if (out->options &&
        (has_space(out->options) || strlen(out->options) > BAIC_HOSTMOUNT_OPTIONS_MAX))
        return fail(msg, len, "'options' must not hold whitespace (at most 1024 characters).");
    return 0;
}
