/* SPDX-License-Identifier: Apache-2.0 */
/* `baic shell SESSION`: a terminal in a session over the pty websocket (raw tty, resize, restore).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <uv.h>

#include "auth/sign.h"
#include "cli/api.h"
#include "cli/cli.h"
#include "manager/ws_client.h"

#define PING_MS 30000

typedef struct shell {
    uv_loop_t loop;
    union {
        uv_tty_t tty;   /* stdin when it is a terminal */
        uv_pipe_t pipe; /* otherwise */
    } in;
    uv_signal_t winch;
    uv_timer_t ping;
    baic_ws_client_t *ws;
    int open, closed, in_open, rc;
    int tty;
    struct termios saved;
} shell_t;

static struct termios *g_saved; /* for the exit path of a signal */

static void tty_restore(void) {
    if (g_saved != NULL) {
        tcsetattr(STDIN_FILENO, TCSADRAIN, g_saved);
        g_saved = NULL;
    }
}

static void on_fatal_signal(int sig) {
    tty_restore();
    signal(sig, SIG_DFL);
    raise(sig);
}

static int tty_raw(shell_t *s) {
    if (!isatty(STDIN_FILENO))
        return 0;
    if (tcgetattr(STDIN_FILENO, &s->saved) != 0)
        return -errno;
    struct termios raw = s->saved;
    cfmakeraw(&raw);
    if (tcsetattr(STDIN_FILENO, TCSADRAIN, &raw) != 0)
        return -errno;
    s->tty = 1;
    g_saved = &s->saved;
    atexit(tty_restore);
    signal(SIGTERM, on_fatal_signal);
    signal(SIGHUP, on_fatal_signal);
    return 0;
}

static void send_json(shell_t *s, json_t *msg) {
    char *t = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    if (t != NULL && s->ws != NULL && s->open && !s->closed)
        baic_ws_client_send(s->ws, 1, t, strlen(t));
    free(t);
}

static void send_resize(shell_t *s) {
    struct winsize ws;
    if (!s->tty || ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) != 0 || ws.ws_row == 0)
        return;
    send_json(s, json_pack("{s:s, s:i, s:i}", "type", "resize", "rows", (int)ws.ws_row, "cols",
                           (int)ws.ws_col));
}

static void on_winch(uv_signal_t *h, int sig) {
    (void)sig;
    send_resize(h->data);
}

static void on_ping(uv_timer_t *t) {
    send_json(t->data, json_pack("{s:s}", "type", "ping"));
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    (void)h;
    buf->base = malloc(suggested);
    buf->len = buf->base ? suggested : 0;
}

static void stop_all(shell_t *s) {
    if (s->in_open) {
        s->in_open = 0;
        uv_read_stop((uv_stream_t *)&s->in);
        uv_close((uv_handle_t *)&s->in, NULL);
    }
    if (!uv_is_closing((uv_handle_t *)&s->winch))
        uv_close((uv_handle_t *)&s->winch, NULL);
    if (!uv_is_closing((uv_handle_t *)&s->ping))
        uv_close((uv_handle_t *)&s->ping, NULL);
}

static void on_stdin(uv_stream_t *st, ssize_t n, const uv_buf_t *buf) {
    shell_t *s = st->data;
    if (n > 0) {
        char *b64 = malloc(4 * (((size_t)n + 2) / 3) + 1);
        if (b64 != NULL) {
            EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)buf->base, (int)n);
            send_json(s, json_pack("{s:s, s:s}", "type", "stdin", "chars", b64));
            free(b64);
        }
    } else if (n < 0) {
        /* End of input: the remote shell gets its EOF as ^D and ends the connection. */
        if (s->in_open) {
            s->in_open = 0;
            uv_read_stop(st);
            uv_close((uv_handle_t *)st, NULL);
        }
        if (!s->tty)
            send_json(s, json_pack("{s:s, s:s}", "type", "stdin", "chars", "BA==")); /* ^D */
    }
    free(buf->base);
}

static void on_message(baic_ws_client_t *c, int is_text, const void *data, size_t len, void *arg) {
    shell_t *s = arg;
    (void)c;
    (void)is_text;
    json_t *m = json_loadb(data, len, 0, NULL);
    const char *type = json_string_value(json_object_get(m, "type"));
    const char *b64 = json_string_value(json_object_get(m, "data"));
    if (type != NULL && strcmp(type, "out") == 0 && b64 != NULL) {
        size_t bl = strlen(b64);
        unsigned char *out = bl % 4 == 0 ? malloc(bl / 4 * 3 + 1) : NULL;
        int w = out ? EVP_DecodeBlock(out, (const unsigned char *)b64, (int)bl) : -1;
        if (w > 0) {
            size_t pad = (bl >= 1 && b64[bl - 1] == '=') + (bl >= 2 && b64[bl - 2] == '=');
            size_t n = (size_t)w - pad, done = 0;
            while (done < n) {
                ssize_t k = write(STDOUT_FILENO, out + done, n - done);
                if (k < 0 && errno == EINTR)
                    continue;
                if (k <= 0)
                    break;
                done += (size_t)k;
            }
        }
        free(out);
    } else if (type != NULL && strcmp(type, "error") == 0) {
        const char *msg = json_string_value(json_object_get(m, "msg"));
        tty_restore();
        fprintf(stderr, "\r\nbaic shell: %s\r\n", msg ? msg : "error");
        s->rc = 1;
    }
    json_decref(m);
}

static void on_close(baic_ws_client_t *c, void *arg) {
    shell_t *s = arg;
    (void)c;
    s->closed = 1;
    s->ws = NULL;
    stop_all(s);
}

static void on_open(baic_ws_client_t *c, int err, int status, void *arg) {
    shell_t *s = arg;
    (void)c;
    if (err != 0) {
        tty_restore();
        if (status == 404)
            fprintf(stderr, "baic shell: no such running session\n");
        else if (status == 409)
            fprintf(stderr, "baic shell: the session's kernel is not ready\n");
        else if (status != 0)
            fprintf(stderr, "baic shell: the server refused the terminal (HTTP %d)\n", status);
        else
            fprintf(stderr, "baic shell: cannot connect: %s\n", uv_strerror(err));
        s->rc = 1;
        s->ws = NULL;
        s->closed = 1;
        stop_all(s);
        return;
    }
    s->open = 1;
    send_resize(s);
    uv_timer_start(&s->ping, on_ping, PING_MS, PING_MS);
    uv_read_start((uv_stream_t *)&s->in, on_alloc, on_stdin);
}

int cli_cmd_shell(int argc, char **argv) {
    if (argc != 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        fputs("usage: baic shell SESSION\n"
              "  Opens a terminal in the session (the pty websocket). The local terminal is in\n"
              "  raw mode until the remote shell exits; window size changes follow.\n",
              argc == 2 ? stdout : stderr);
        return argc == 2 ? 0 : 2;
    }
    cli_api_t api;
    if (cli_api_from_env(&api) != 0)
        return 2;
    char esc[300], path[400], date[40], authz[512];
    cli_api_escape(argv[1], esc, sizeof esc);
    snprintf(path, sizeof path, "/stream/session/%s/pty", esc);
    if (cli_api_sign(&api, "GET", path, "application/json", date, authz) != 0)
        return 1;
    baic_http_header_t hdrs[] = {
        {"Date", date},
        {"Content-Type", "application/json"},
        {"X-BackendAI-Version", BAIC_AUTH_API_VERSION},
        {"Authorization", authz},
        {NULL, NULL},
    };
    shell_t *s = calloc(1, sizeof *s);
    if (s == NULL || uv_loop_init(&s->loop) != 0) {
        free(s);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    int in_rc;
    if (isatty(STDIN_FILENO)) {
        in_rc = uv_tty_init(&s->loop, &s->in.tty, STDIN_FILENO, 1);
    } else {
        uv_pipe_init(&s->loop, &s->in.pipe, 0);
        in_rc = uv_pipe_open(&s->in.pipe, STDIN_FILENO);
    }
    s->in.pipe.data = s;
    if (in_rc != 0) {
        fprintf(stderr, "baic shell: cannot read stdin: %s\n", uv_strerror(in_rc));
        if (!isatty(STDIN_FILENO)) /* an initialised pipe handle must be closed */
            uv_close((uv_handle_t *)&s->in, NULL);
        uv_run(&s->loop, UV_RUN_DEFAULT);
        uv_loop_close(&s->loop);
        free(s);
        return 1;
    }
    s->in_open = 1;
    uv_signal_init(&s->loop, &s->winch);
    s->winch.data = s;
    uv_signal_start(&s->winch, on_winch, SIGWINCH);
    uv_timer_init(&s->loop, &s->ping);
    s->ping.data = s;
    int rc = baic_ws_client_connect(&s->loop, api.endpoint, path, hdrs, on_open, on_message,
                                    on_close, s, &s->ws);
    if (rc != 0) {
        fprintf(stderr, "baic shell: cannot connect to %s: %s\n", api.endpoint, uv_strerror(rc));
        stop_all(s);
        s->rc = 1;
    } else if (tty_raw(s) != 0) {
        fprintf(stderr, "baic shell: cannot put the terminal in raw mode\n");
    }
    uv_run(&s->loop, UV_RUN_DEFAULT);
    tty_restore();
    uv_loop_close(&s->loop);
    rc = s->rc;
    free(s);
    return rc;
}
