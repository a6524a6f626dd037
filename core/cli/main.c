/* SPDX-License-Identifier: Apache-2.0 */
/* `baic`: finds the subcommand named by argv[1] in a table and hands it the rest of argv. */
#include <stdio.h>
#include <string.h>

#include "cli/api.h"
#include "cli/cli.h"

/* One row per verb; a new verb is a new file plus a row here. */
static const struct {
    const char *name;
    cli_cmd_fn fn;
    const char *summary;
} commands[] = {
    {"up", cli_cmd_up, "start a private manager (and PostgreSQL, Redis) in a data directory"},
    {"down", cli_cmd_down, "stop everything `baic up` started in a data directory"},
    {"run", cli_cmd_run, "run code in a new session of an image and print its output"},
    {"session", cli_cmd_session, "create, list, inspect, exec in, remove sessions; events"},
    {"shell", cli_cmd_shell, "a terminal in a running session"},
    {"folder", cli_cmd_folder, "virtual folders: create, list, upload, download, remove"},
};

static void usage(FILE *out) {
    fprintf(out, "usage: baic [--version] <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\n'baic <command> --help' describes a command.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *verb = argv[1];
    if (strcmp(verb, "-h") == 0 || strcmp(verb, "--help") == 0 || strcmp(verb, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(verb, "--version") == 0 || strcmp(verb, "version") == 0) {
        printf("baic %s\n", BAIC_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(verb, commands[i].name) == 0)
            return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "baic: unknown command '%s'\n", verb);
    usage(stderr);
    return 2;
}
