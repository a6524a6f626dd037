/* SPDX-License-Identifier: Apache-2.0 */
/* Names for every code a baic call can return. */
#ifndef BAIC_CORE_STRERROR_H
#define BAIC_CORE_STRERROR_H

/* Returns a static message for 0, a negative errno / libuv code, or a BAIC_E* code. */
const char *baic_strerror(int code);
/* Returns the symbolic name ("BAIC_EPLUGIN_BAD_MAGIC", "ENOENT") or "UNKNOWN". */
const char *baic_err_name(int code);

#endif
