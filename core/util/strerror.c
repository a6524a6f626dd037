/* SPDX-License-Identifier: Apache-2.0 */
/* baic_strerror(): baic's own block first, then libuv's table for errno values. */
#include "util/strerror.h"

#include <baic/errors.h>
#include <uv.h>

const char *baic_strerror(int code) {
    if (code == 0)
        return "success";
    switch (code) {
#define XX(name, off, msg)                                                              \
    case BAIC_E##name:                                                                  \
        return msg;
        BAIC_ERRNO_MAP(XX)
#undef XX
    default:
        break;
    }
    if (code < 0 && code > BAIC__ERR_BASE)
        return uv_strerror(code);
    return "unknown error";
}

const char *baic_err_name(int code) {
    switch (code) {
#define XX(name, off, msg)                                                              \
    case BAIC_E##name:                                                                  \
        return "BAIC_E" #name;
        BAIC_ERRNO_MAP(XX)
#undef XX
    default:
        break;
    }
    if (code < 0 && code > BAIC__ERR_BASE)
        return uv_err_name(code);
    return "UNKNOWN";
}
