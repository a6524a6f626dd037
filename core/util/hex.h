/* SPDX-License-Identifier: Apache-2.0 */
/* Lower-case hex encoding, the one used for digests, MACs and ids throughout baic. */
#ifndef BAIC_CORE_HEX_H
#define BAIC_CORE_HEX_H

#include <stddef.h>

/* Writes 2*n hex digits and a NUL to out (which holds at least 2*n+1 bytes). */
void baic_hex(const unsigned char *in, size_t n, char *out);

#endif
