/* SPDX-License-Identifier: Apache-2.0 */
/* Whole writes and whole-file replacement, for every file baic writes in one piece. */
#ifndef BAIC_CORE_FILE_H
#define BAIC_CORE_FILE_H

#include <stddef.h>
#include <sys/types.h>

/* Writes all n bytes (retrying short writes and EINTR). 0, or -errno (-EIO when the
 * file takes no more bytes). */
int baic_write_all(int fd, const void *data, size_t n);

/*
 * Replaces path with data in one step: a temporary file in the same directory gets the
 * bytes and exactly mode (the umask does not apply), is fsynced and renamed over path, so
 * a reader sees the old file or the new one, never a part. A path that is a symbolic link
 * is replaced by a plain file (resolve it first to write through it). 0, or -errno with
 * path left as it was and no temporary file behind.
 */
int baic_file_replace(const char *path, const void *data, size_t len, mode_t mode);

#endif
