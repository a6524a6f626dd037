/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for whole writes and whole-file replacement (core/util/file.c). */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "baic_check.h"
#include "util/file.h"

static char g_dir[64];

static void setup(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/baic-file-test.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(g_dir));
}

static void teardown(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
    ck_assert_int_eq(system(cmd), 0);
}

static size_t entries(void) {
    DIR *d = opendir(g_dir);
    ck_assert_ptr_nonnull(d);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static void read_back(const char *path, char *buf, size_t len) {
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(buf, 1, len - 1, f);
    buf[n] = '\0';
    fclose(f);
}

START_TEST(replaces_whole) {
    char path[128], buf[64];
    snprintf(path, sizeof path, "%s/f", g_dir);
    ck_assert_int_eq(baic_file_replace(path, "first\n", 6, 0600), 0);
    read_back(path, buf, sizeof buf);
    ck_assert_str_eq(buf, "first\n");
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 07777, 0600);
    /* the old inode is replaced, not rewritten: an open reader keeps the old bytes */
    int old = open(path, O_RDONLY);
    ck_assert_int_ge(old, 0);
    mode_t um = umask(077); /* the mode is exact whatever the umask */
    ck_assert_int_eq(baic_file_replace(path, "second", 6, 0644), 0);
    umask(um);
    read_back(path, buf, sizeof buf);
    ck_assert_str_eq(buf, "second");
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 07777, 0644);
    ck_assert_int_eq((int)read(old, buf, sizeof buf), 6);
    ck_assert_int_eq(memcmp(buf, "first\n", 6), 0);
    close(old);
    ck_assert_int_eq(baic_file_replace(path, "", 0, 0644), 0); /* empty is a file too */
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq((int)st.st_size, 0);
    ck_assert_uint_eq(entries(), 1); /* no temporary file left */
}
END_TEST

START_TEST(failure_leaves_nothing) {
    char path[128];
    snprintf(path, sizeof path, "%s/missing/f", g_dir);
    ck_assert_int_eq(baic_file_replace(path, "x", 1, 0644), -ENOENT);
    /* a directory in the way: the rename fails, the temporary file goes */
    snprintf(path, sizeof path, "%s/dir", g_dir);
    ck_assert_int_eq(mkdir(path, 0755), 0);
    char inner[160];
    snprintf(inner, sizeof inner, "%s/keep", path);
    ck_assert_int_eq(baic_file_replace(inner, "k", 1, 0644), 0);
    ck_assert_int_lt(baic_file_replace(path, "x", 1, 0644), 0);
    ck_assert_uint_eq(entries(), 1);
    struct stat st;
    ck_assert_int_eq(stat(inner, &st), 0);
    char longp[5000];
    memset(longp, 'a', sizeof longp - 1);
    longp[sizeof longp - 1] = '\0';
    ck_assert_int_eq(baic_file_replace(longp, "x", 1, 0644), -ENAMETOOLONG);
}
END_TEST

START_TEST(write_all_whole) {
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    static char big[200000]; /* more than a pipe holds: the reader drains it meanwhile */
    memset(big, 'z', sizeof big);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(p[1]);
        size_t got = 0;
        char b[4096];
        ssize_t n;
        while ((n = read(p[0], b, sizeof b)) > 0)
            got += (size_t)n;
        _exit(got == sizeof big ? 0 : 1);
    }
    close(p[0]);
    ck_assert_int_eq(baic_write_all(p[1], big, sizeof big), 0);
    close(p[1]);
    int st = 0;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    ck_assert_int_eq(baic_write_all(-1, "x", 1), -EBADF);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("file");
    BAIC_TCASE(s, tc, "replace", 10);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, replaces_whole);
    tcase_add_test(tc, failure_leaves_nothing);
    tcase_add_test(tc, write_all_whole);
    return s;
}

BAIC_CHECK_MAIN(suite)
