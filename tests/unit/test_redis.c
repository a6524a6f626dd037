/* SPDX-License-Identifier: Apache-2.0 */
/* Redis client and the Streams event bus against a real, private redis-server, restarts included. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <uv.h>

#include "baic_check.h"
#include "events/bus.h"
#include "integration/services.h"
#include "redis/redis.h"

static char *rdir;
static int port;
static int skipped;

static void redis_setup(void) {
    rdir = baic_svc_tmpdir("baic-test-redis");
    ck_assert_ptr_nonnull(rdir);
    char line[128];
    int rc = baic_svc_run("start_redis", rdir, line, sizeof line);
    if (rc == 77) {
        skipped = 1;
        fprintf(stderr, "test_redis: redis-server not installed, skipping\n");
        return;
    }
    ck_assert_msg(rc == 0, "start_redis failed (%d)", rc);
    ck_assert_int_eq(sscanf(line, "%*s %d", &port), 1);
}

static void redis_teardown(void) {
    if (!skipped)
        baic_svc_run("stop_redis", rdir, NULL, 0);
    baic_svc_rmdir(rdir);
    free(rdir);
}

#define SKIP_IF_NO_REDIS()                                                               \
    do {                                                                                 \
        if (skipped)                                                                     \
            return;                                                                      \
    } while (0)

static void run_until(uv_loop_t *loop, const int *flag) {
    while (!*flag)
        uv_run(loop, UV_RUN_ONCE);
}

/* A timer that keeps the loop turning while we poll for a state (no sleeps). */
static void tick(uv_timer_t *t) {}
static void on_tick_closed(uv_handle_t *h) { *(int *)h->data = 1; }

static void wait_connected(uv_loop_t *loop, baic_redis_t *r) {
    uv_timer_t t;
    uv_timer_init(loop, &t);
    uv_timer_start(&t, tick, 10, 10);
    while (!baic_redis_connected(r))
        uv_run(loop, UV_RUN_ONCE);
    int closed = 0;
    t.data = &closed;
    uv_close((uv_handle_t *)&t, on_tick_closed);
    run_until(loop, &closed);
}

typedef struct {
    int done;
    int err;
    int type;
    long long integer;
    char str[128];
    size_t len;
} rres_t;

static void on_r(redisReply *reply, int err, const char *errmsg, void *arg) {
    rres_t *x = arg;
    x->done = 1;
    x->err = err;
    if (reply) {
        x->type = reply->type;
        x->integer = reply->integer;
        if (reply->str) {
            x->len = reply->len < sizeof x->str ? reply->len : sizeof x->str;
            memcpy(x->str, reply->str, x->len);
        }
    }
}

static rres_t cmd_sync(uv_loop_t *loop, baic_redis_t *r, int argc, const char **argv,
                       const size_t *lens) {
    rres_t x = {0};
    int rc = baic_redis_cmd_argv(r, argc, argv, lens, on_r, &x);
    if (rc < 0) {
        x.err = rc;
        return x;
    }
    ck_assert_int_eq(x.done, 0);
    run_until(loop, &x.done);
    return x;
}

static void on_closed(void *arg) { *(int *)arg = 1; }

static void finish(uv_loop_t *loop) {
    ck_assert_int_eq(uv_run(loop, UV_RUN_DEFAULT), 0);
    ck_assert_int_eq(uv_loop_close(loop), 0);
}

/* Closes the test's ticker, bus and command connection, then the loop. */
static void close_all(uv_loop_t *loop, uv_timer_t *t, baic_bus_t *bus, baic_redis_t *r) {
    uv_close((uv_handle_t *)t, NULL);
    int c1 = 0, c2 = 0;
    baic_bus_close(bus, on_closed, &c1);
    baic_redis_close(r, on_closed, &c2);
    run_until(loop, &c1);
    run_until(loop, &c2);
    finish(loop);
}

START_TEST(test_commands) {
    SKIP_IF_NO_REDIS();
    uv_loop_t loop;
    uv_loop_init(&loop);
    baic_redis_t *r;
    ck_assert_int_eq(baic_redis_new(&loop, "127.0.0.1", port, NULL, &r), 0);
    wait_connected(&loop, r);

    const char *set[] = {"SET", "k", "a\0b"};
    size_t lens[] = {3, 1, 3};
    rres_t x = cmd_sync(&loop, r, 3, set, lens);
    ck_assert_int_eq(x.err, 0);
    const char *get[] = {"GET", "k"};
    x = cmd_sync(&loop, r, 2, get, NULL);
    ck_assert_int_eq(x.err, 0);
    ck_assert_uint_eq(x.len, 3);
    ck_assert_int_eq(memcmp(x.str, "a\0b", 3), 0);

    const char *bad[] = {"INCR", "k"};
    x = cmd_sync(&loop, r, 2, bad, NULL);
    ck_assert_int_eq(x.err, BAIC_EBACKEND);
    ck_assert_int_eq(x.type, REDIS_REPLY_ERROR);

    rres_t v = {0};
    ck_assert_int_eq(baic_redis_cmd(r, on_r, &v, "INCRBY", "n", "5", NULL), 0);
    run_until(&loop, &v.done);
    ck_assert_int_eq(v.integer, 5);

    int closed = 0;
    rres_t pending = {0};
    const char *blpop[] = {"BLPOP", "nothing", "0"};
    ck_assert_int_eq(baic_redis_cmd_argv(r, 3, blpop, NULL, on_r, &pending), 0);
    baic_redis_close(r, on_closed, &closed);
    run_until(&loop, &closed);
    ck_assert_int_eq(pending.err, BAIC_ECANCELLED);
    finish(&loop);
}
END_TEST

struct proc {
    uv_process_t p;
    int exited;
    int64_t status;
};

static void on_exit_cb(uv_process_t *p, int64_t status, int sig) {
    struct proc *x = (struct proc *)p;
    x->exited = 1;
    x->status = status;
    uv_close((uv_handle_t *)p, NULL);
}

static void svc_sync(uv_loop_t *loop, const char *fn) {
    struct proc x;
    char cmd[8192];
    baic_svc_cmd(cmd, sizeof cmd, fn, rdir);
    char *args[] = {"bash", "-c", cmd, NULL};
    uv_stdio_container_t io[3] = {{.flags = UV_IGNORE}, {.flags = UV_IGNORE},
                                  {.flags = UV_INHERIT_FD, .data.fd = 2}};
    uv_process_options_t o = {.exit_cb = on_exit_cb, .file = "bash", .args = args,
                              .stdio_count = 3, .stdio = io};
    memset(&x, 0, sizeof x);
    ck_assert_int_eq(uv_spawn(loop, &x.p, &o), 0);
    run_until(loop, &x.exited);
    ck_assert_int_eq(x.status, 0);
}

START_TEST(test_survives_redis_restart) {
    SKIP_IF_NO_REDIS();
    uv_loop_t loop;
    uv_loop_init(&loop);
    baic_redis_t *r;
    ck_assert_int_eq(baic_redis_new(&loop, "127.0.0.1", port, NULL, &r), 0);
    wait_connected(&loop, r);

    /* In flight across the restart: a clear error, not a hang. */
    rres_t pending = {0};
    const char *blpop[] = {"BLPOP", "nothing", "0"};
    ck_assert_int_eq(baic_redis_cmd_argv(r, 3, blpop, NULL, on_r, &pending), 0);
    svc_sync(&loop, "stop_redis");
    run_until(&loop, &pending.done);
    ck_assert_int_eq(pending.err, -ECONNRESET);

    /* Down: commands fail fast (immediately, or with a prompt callback). */
    const char *ping[] = {"PING"};
    uint64_t t0 = uv_hrtime();
    rres_t x = cmd_sync(&loop, r, 1, ping, NULL);
    ck_assert_msg(x.err == -ENOTCONN || x.err == -ECONNRESET, "err %d", x.err);
    ck_assert_uint_lt(uv_hrtime() - t0, 2000000000ull);

    /* Back: the client reconnects on its own. */
    svc_sync(&loop, "restart_redis");
    wait_connected(&loop, r);
    x = cmd_sync(&loop, r, 1, ping, NULL);
    ck_assert_int_eq(x.err, 0);
    ck_assert_str_eq(x.str, "PONG");

    int closed = 0;
    baic_redis_close(r, on_closed, &closed);
    run_until(&loop, &closed);
    finish(&loop);
}
END_TEST

/* ---- event bus ---- */

#define MAXEV 16

struct seen {
    int n;
    char ids[MAXEV][64];
    char names[MAXEV][64];
    long long seq[MAXEV];
    int refuse;  /* handler returns non-zero (no ack) */
};

static int on_event(const baic_bus_event_t *ev, void *arg) {
    struct seen *s = arg;
    if (s->n >= MAXEV) {
        s->n++; /* the tests that publish in a loop only count */
        return s->refuse;
    }
    snprintf(s->ids[s->n], sizeof s->ids[0], "%s", ev->id);
    snprintf(s->names[s->n], sizeof s->names[0], "%s", ev->name);
    s->seq[s->n] = json_integer_value(json_object_get(ev->body, "seq"));
    s->n++;
    return s->refuse;
}

struct pubres {
    int n;
    int err;
    char id[64];
};

static void on_pub(const char *id, int err, void *arg) {
    struct pubres *p = arg;
    p->n++;
    p->err |= err;
    if (id)
        snprintf(p->id, sizeof p->id, "%s", id);
}

static void publish_n(uv_loop_t *loop, baic_bus_t *bus, const char *stream, int from, int n) {
    struct pubres p = {0};
    for (int i = 0; i < n; i++) {
        json_t *b = json_pack("{s:I, s:s}", "seq", (json_int_t)(from + i), "session_id", "s-1");
        ck_assert_int_eq(baic_bus_publish(bus, stream, "session_started", b, on_pub, &p), 0);
        json_decref(b);
    }
    while (p.n < n)
        uv_run(loop, UV_RUN_ONCE);
    ck_assert_int_eq(p.err, 0);
}

static void wait_events(uv_loop_t *loop, struct seen *s, int n) {
    while (s->n < n)
        uv_run(loop, UV_RUN_ONCE);
}

struct xp {
    int done;
    long long n;
};

static void on_xp(redisReply *reply, int err, const char *errmsg, void *arg) {
    struct xp *y = arg;
    ck_assert_msg(err == 0, "%s", errmsg);
    y->n = reply->element[0]->integer; /* summary form: the count comes first */
    y->done = 1;
}

static long long xpending(uv_loop_t *loop, baic_redis_t *r, const char *stream, const char *group) {
    struct xp y = {0};
    const char *argv[] = {"XPENDING", stream, group};
    ck_assert_int_eq(baic_redis_cmd_argv(r, 3, argv, NULL, on_xp, &y), 0);
    run_until(loop, &y.done);
    return y.n;
}

/* The group's stream exists once EXISTS says so (XGROUP CREATE ... MKSTREAM made both). */
static void wait_exists(uv_loop_t *loop, baic_redis_t *r, const char *key) {
    for (;;) {
        rres_t x = {0};
        ck_assert_int_eq(baic_redis_cmd(r, on_r, &x, "EXISTS", key, NULL), 0);
        run_until(loop, &x.done);
        if (x.integer == 1)
            return;
        uv_run(loop, UV_RUN_ONCE);
    }
}

START_TEST(test_bus_group_ack_and_resume) {
    SKIP_IF_NO_REDIS();
    uv_loop_t loop;
    uv_loop_init(&loop);
    baic_bus_t *bus;
    ck_assert_int_eq(baic_bus_new(&loop, "127.0.0.1", port, NULL, &bus), 0);
    baic_redis_t *r;
    ck_assert_int_eq(baic_redis_new(&loop, "127.0.0.1", port, NULL, &r), 0);
    wait_connected(&loop, r);

    /* Group created before publishing (MKSTREAM), so the consumer sees everything. */
    struct seen g = {0};
    baic_bus_sub_t *gs;
    ck_assert_int_eq(baic_bus_consume(bus, "events:session", "manager", "m1", on_event, &g, &gs), 0);
    uv_timer_t t;
    uv_timer_init(&loop, &t);
    uv_timer_start(&t, tick, 10, 10);
    wait_exists(&loop, r, "events:session");
    publish_n(&loop, bus, "events:session", 1, 3);
    wait_events(&loop, &g, 3);
    ck_assert_str_eq(g.names[0], "session_started");
    ck_assert_int_eq(g.seq[0], 1);
    ck_assert_int_eq(g.seq[2], 3);
    /* Acked after the handler: nothing pending once the XACKs went through. */
    while (xpending(&loop, r, "events:session", "manager") != 0)
        uv_run(&loop, UV_RUN_ONCE);

    /* Resumable reader: from the start, then from an id (SSE Last-Event-ID). */
    struct seen all = {0};
    baic_bus_sub_t *rs;
    ck_assert_int_eq(baic_bus_read_from(bus, "events:session", "0", on_event, &all, &rs), 0);
    wait_events(&loop, &all, 3);
    ck_assert_str_eq(all.ids[0], g.ids[0]);
    baic_bus_unsubscribe(rs);
    struct seen tail = {0};
    ck_assert_int_eq(baic_bus_read_from(bus, "events:session", g.ids[1], on_event, &tail, &rs), 0);
    wait_events(&loop, &tail, 1);
    ck_assert_int_eq(tail.seq[0], 3);
    publish_n(&loop, bus, "events:session", 4, 1);
    wait_events(&loop, &tail, 2);
    ck_assert_int_eq(tail.seq[1], 4);
    wait_events(&loop, &g, 4);
    baic_bus_unsubscribe(rs);

    /* A handler that refuses leaves the entry pending; the same consumer gets it again
     * when it comes back (crash recovery). */
    baic_bus_unsubscribe(gs);
    struct seen refuse = {.refuse = 1};
    ck_assert_int_eq(baic_bus_consume(bus, "events:kernel", "recovery", "m2", on_event, &refuse, &gs), 0);
    wait_exists(&loop, r, "events:kernel");
    publish_n(&loop, bus, "events:kernel", 5, 1);
    wait_events(&loop, &refuse, 1);
    ck_assert_int_eq(refuse.seq[0], 5);
    baic_bus_unsubscribe(gs);
    ck_assert_int_eq(xpending(&loop, r, "events:kernel", "recovery"), 1);
    struct seen again = {0};
    ck_assert_int_eq(baic_bus_consume(bus, "events:kernel", "recovery", "m2", on_event, &again, &gs), 0);
    wait_events(&loop, &again, 1);
    ck_assert_int_eq(again.seq[0], 5);
    while (xpending(&loop, r, "events:kernel", "recovery") != 0)
        uv_run(&loop, UV_RUN_ONCE);

    close_all(&loop, &t, bus, r);
}
END_TEST

/* A consumer that dies between reading an entry and acknowledging it: another consumer
 * of the group (a new process has a new name) claims the entry once it has been idle long
 * enough and handles it; a handler that acknowledges later does so with baic_bus_ack. */
START_TEST(test_bus_claims_a_dead_consumers_entries) {
    SKIP_IF_NO_REDIS();
    uv_loop_t loop;
    uv_loop_init(&loop);
    baic_bus_t *bus;
    ck_assert_int_eq(baic_bus_new(&loop, "127.0.0.1", port, NULL, &bus), 0);
    baic_bus_set_claim(bus, 100, 300);
    baic_redis_t *r;
    ck_assert_int_eq(baic_redis_new(&loop, "127.0.0.1", port, NULL, &r), 0);
    wait_connected(&loop, r);
    uv_timer_t t;
    uv_timer_init(&loop, &t);
    uv_timer_start(&t, tick, 10, 10);

    struct seen dead = {.refuse = 1};
    baic_bus_sub_t *ds;
    ck_assert_int_eq(baic_bus_consume(bus, "events:claim", "g", "m-dead", on_event, &dead, &ds), 0);
    wait_exists(&loop, r, "events:claim");
    publish_n(&loop, bus, "events:claim", 7, 2);
    wait_events(&loop, &dead, 2);
    baic_bus_unsubscribe(ds); /* gone without acknowledging either */
    ck_assert_int_eq(xpending(&loop, r, "events:claim", "g"), 2);

    /* The heir acknowledges the first itself, later; the second right away. */
    struct seen heir = {.refuse = 1};
    baic_bus_sub_t *hs;
    uint64_t t0 = uv_now(&loop);
    ck_assert_int_eq(baic_bus_consume(bus, "events:claim", "g", "m-heir", on_event, &heir, &hs), 0);
    wait_events(&loop, &heir, 2);
    ck_assert_uint_ge(uv_now(&loop) - t0, 200); /* not before the entries were idle */
    ck_assert_int_eq(heir.seq[0], 7);
    ck_assert_int_eq(heir.seq[1], 8);
    ck_assert_str_eq(heir.ids[0], dead.ids[0]);
    ck_assert_int_eq(baic_bus_ack(bus, "events:claim", "g", heir.ids[0]), 0);
    ck_assert_int_eq(baic_bus_ack(bus, "events:claim", "g", heir.ids[1]), 0);
    while (xpending(&loop, r, "events:claim", "g") != 0)
        uv_run(&loop, UV_RUN_ONCE);
    /* Nothing is handed over twice once acknowledged. */
    uint64_t t1 = uv_now(&loop);
    while (uv_now(&loop) - t1 < 700)
        uv_run(&loop, UV_RUN_ONCE);
    ck_assert_int_eq(heir.n, 2);
    baic_bus_unsubscribe(hs);

    close_all(&loop, &t, bus, r);
}
END_TEST

struct note {
    int n;
    char last[64];
};

static void on_note(const char *channel, const char *msg, size_t len, void *arg) {
    struct note *x = arg;
    x->n++;
    snprintf(x->last, sizeof x->last, "%.*s", (int)len, msg);
}

START_TEST(test_bus_pubsub_and_restart) {
    SKIP_IF_NO_REDIS();
    uv_loop_t loop;
    uv_loop_init(&loop);
    baic_bus_t *bus;
    ck_assert_int_eq(baic_bus_new(&loop, "127.0.0.1", port, NULL, &bus), 0);
    struct note nt = {0};
    ck_assert_int_eq(baic_bus_listen(bus, "wakeup:scheduler", on_note, &nt, NULL), 0);
    struct seen g = {0};
    ck_assert_int_eq(baic_bus_consume(bus, "events:agent", "manager", "m1", on_event, &g, NULL), 0);

    /* Best effort: keep notifying until the listener is subscribed. */
    uv_timer_t t;
    uv_timer_init(&loop, &t);
    uv_timer_start(&t, tick, 20, 20);
    while (nt.n == 0) {
        (void)baic_bus_notify(bus, "wakeup:scheduler", "go");
        uv_run(&loop, UV_RUN_ONCE);
    }
    ck_assert_str_eq(nt.last, "go");

    /* Publish until the consumer group (created asynchronously) sees one. */
    int seq = 1;
    while (g.n == 0) {
        json_t *b = json_pack("{s:i}", "seq", seq++);
        (void)baic_bus_publish(bus, "events:agent", "agent_heartbeat", b, NULL, NULL);
        json_decref(b);
        uv_run(&loop, UV_RUN_ONCE);
    }

    /* Redis restarts (losing everything: no persistence here). Publishing and
     * consuming resume without restarting anything on our side. */
    svc_sync(&loop, "restart_redis");
    int before = g.n;
    int before_nt = nt.n;
    while (g.n == before || nt.n == before_nt) {
        json_t *b = json_pack("{s:i}", "seq", seq++);
        (void)baic_bus_publish(bus, "events:agent", "agent_heartbeat", b, NULL, NULL);
        json_decref(b);
        (void)baic_bus_notify(bus, "wakeup:scheduler", "again");
        uv_run(&loop, UV_RUN_ONCE);
    }
    ck_assert_str_eq(nt.last, "again");

    uv_close((uv_handle_t *)&t, NULL);
    int closed = 0;
    baic_bus_close(bus, on_closed, &closed);
    run_until(&loop, &closed);
    finish(&loop);
}
END_TEST

static Suite *redis_suite(void) {
    Suite *s = suite_create("redis");
    BAIC_TCASE(s, tc, "redis", 60);
    tcase_add_unchecked_fixture(tc, redis_setup, redis_teardown);
    tcase_add_test(tc, test_commands);
    tcase_add_test(tc, test_bus_group_ack_and_resume);
    tcase_add_test(tc, test_bus_claims_a_dead_consumers_entries);
    tcase_add_test(tc, test_bus_pubsub_and_restart);
    tcase_add_test(tc, test_survives_redis_restart);
    return s;
}

BAIC_CHECK_MAIN(redis_suite)
