/* SPDX-License-Identifier: Apache-2.0 */
/* The scheduling loop: places PENDING sessions with the resource groups' plugins, starts them, enforces deadlines. */
#include "manager.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <baic/scheduler.h>
#include <baic/selector.h>

#include "config/config.h"
#include "log/log.h"
#include "policy.h"

/*
 * A round runs in one transaction that first takes a transaction-level advisory
 * lock: while one manager schedules, the others' rounds end at once (and their
 * wake-ups are not lost, the lock holder re-runs whenever it was woken meanwhile and
 * every manager has a safety tick). Everything the plugins see is read in that
 * transaction; occupancy is always summed from the live kernels' occupied_slots.
 * The allocation is written in the same transaction, guarded by status = 'PENDING'
 * and the agent still being ALIVE, and the pending rows are locked (FOR UPDATE) so a
 * concurrent cancel waits for the round instead of racing it.
 */

#define SCHED_LOCK_KEY "7301843725390167"
#define MAX_SLOTS 32

/* ---- slot amounts ---- */

int baic_slot_parse(const char *text, int bytes, int64_t *out) {
    if (text == NULL)
        return -EINVAL;
    const char *s = text;
    while (*s == ' ')
        s++;
    if (!isdigit((unsigned char)*s) && *s != '.')
        return -EINVAL;
    __int128 ip = 0, fp = 0, fscale = 1;
    int digits = 0;
    for (; isdigit((unsigned char)*s); s++) {
        if (++digits > 18)
            return -EINVAL;
        ip = ip * 10 + (*s - '0');
    }
    if (*s == '.') {
        s++;
        for (int fd = 0; isdigit((unsigned char)*s); s++, fd++) {
            if (fd >= 9)
                continue; /* beyond any unit's precision */
            fp = fp * 10 + (*s - '0');
            fscale *= 10;
        }
    }
    __int128 mult = 1;
    if (bytes && *s != '\0') {
        const char *units = "kmgtpe";
        const char *u = strchr(units, tolower((unsigned char)*s));
        if (u == NULL)
            return -EINVAL;
        for (long i = 0; i <= u - units; i++)
            mult *= 1024;
        s++;
        if (*s == 'i' || *s == 'I')
            s++;
        if (*s == 'b' || *s == 'B')
            s++;
    }
    while (*s == ' ')
        s++;
    if (*s != '\0')
        return -EINVAL;
    __int128 unit = bytes ? mult : BAIC_SLOT_UNIT;
    __int128 v = ip * unit + fp * unit / fscale;
    if (v > INT64_MAX)
        return -EINVAL;
    *out = (int64_t)v;
    return 0;
}

void baic_slot_format(int64_t v, int bytes, char *buf, size_t n) {
    if (bytes) {
        snprintf(buf, n, "%lld", (long long)v);
        return;
    }
    long long ip = v / BAIC_SLOT_UNIT, fp = v % BAIC_SLOT_UNIT;
    if (fp == 0) {
        snprintf(buf, n, "%lld", ip);
        return;
    }
    char frac[8];
    snprintf(frac, sizeof frac, "%06lld", fp < 0 ? -fp : fp);
    for (int i = 5; i > 0 && frac[i] == '0'; i--)
        frac[i] = '\0';
    snprintf(buf, n, "%s%lld.%s", v < 0 && ip == 0 ? "-" : "", ip, frac);
}

/* ---- state ---- */

typedef struct baic_sched {
    baic_manager_t *m;
    uv_timer_t tick, kick;
    int n_open;              /* timers not yet closed */
    int refs;                /* timers + rounds in flight */
    int running, again, closing;
    struct round *cur;       /* the round that holds (or asks for) the lock */
    struct round *next;      /* the one reading the next page meanwhile (prefetch) */
    int placing;             /* the last round that decided placed something */
    baic_bus_sub_t *wake_sub;
    long long deadline_s, pulling_s, terminating_s, destroy_tries, tick_ms, relaunch_s;
    uint64_t last_sweep;
    /* Placed sessions waiting for their create_kernels (see "launch queue" below). */
    uv_timer_t launch_timer; /* active while the queue is held: the oldest's wait */
    uv_idle_t launch_idle;   /* sends a few per loop turn while running */
    json_t *launchq;         /* launch rows, in placement order */
    size_t launchq_head;     /* the first not sent yet */
    int launch_inflight;     /* create_kernels sent, not answered yet */
    uint64_t launchq_since;  /* loop ms when the oldest not sent was placed */
    long long launch_defer_ms;
    long long page;          /* pending sessions a round reads */
    char page_text[24];
    baic_db_pool_t *db; /* the rounds' own connection: never queued behind launches */
    /* occupancy cache (see below) */
    json_t *occ_agents;      /* agent id -> {"occupied": {slot: text}, "n": kernels} */
    json_t *occ_kp;          /* Q_KP_OCC rows */
    json_t *live_kp;         /* Q_KP_LIVE rows */
    json_t *occ_pol;         /* Q_POL_OCC: {kind: {id: {slot: total}}} for the predicates */
    int cache_ok;
    uint64_t cache_at;       /* loop ms of the last rebuild */
    long long cache_ms;      /* rebuild at least this often; 0: every round */
    char me[96];             /* this manager in the stamp */
    long long stamp_seq;     /* what our last placing round wrote */
    json_t *confs;   /* "kind/name" -> the conf a plugin was loaded with (must outlive it) */
    json_t *applied; /* "kind/name" -> options text last applied */
    json_t *failed;  /* "kind/name" -> loop time of the last failed load */
} baic_sched_t;

typedef struct vec {
    baic_slot_t v[MAX_SLOTS];
    size_t n;
} vec_t;

/* Every round reads Q_PENDING..Q_STAMP; the occupancy queries after them only when the
 * scheduler's cached occupancy must be rebuilt (see "occupancy cache" below). The page's
 * two queries come first: a prefetching round (see "the round") reads them early. */
enum { Q_PENDING, Q_POLICY, Q_GROUPS, Q_AGENTS, Q_SLOTS, Q_STAMP, Q_AGENT_OCC, Q_KP_OCC, Q_KP_LIVE,
       Q_POL_OCC, NQ };
#define NQ_PAGE Q_GROUPS
#define NQ_LIGHT Q_AGENT_OCC

/* A session's main kernel as the plugins see it and launch_one() sends it: the
 * pending rows of a round, and the SCHEDULED rows the sweep launches again. */
#define LAUNCH_COLS \
    "SELECT s.id::text AS id, s.name, s.access_key, s.user_uuid::text AS user_id," \
    " s.group_id::text AS group_id, s.domain_name, s.scaling_group_name AS sgroup," \
    " s.requested_slots::text AS requested," \
    " (extract(epoch FROM s.created_at) * 1000)::bigint AS created_ms," \
    " (extract(epoch FROM s.enqueued_at) * 1000)::bigint AS enqueued_ms," \
    " s.priority, s.times_skipped, s.cluster_size, s.architecture," \
    " COALESCE(s.environ, '{}')::text AS environ, s.startup_command, s.bootstrap_script," \
    " s.session_type," \
    " COALESCE(s.vfolder_mounts, '[]')::text AS mounts," \
    " k.id::text AS kernel_id, k.image, k.registry, k.cluster_role, k.cluster_idx," \
    " k.cluster_hostname, k.resource_opts::text AS resource_opts," \
    " s.cluster_mode, k.requested_slots::text AS kreq," /* cluster.c */ \
    " COALESCE(i.labels, '{}')::text AS labels," \
    " COALESCE(i.resources, '{}')::text AS image_resources," \
    " p.max_concurrent_sessions, p.total_resource_slots::text AS kp_limits," \
    " p.default_for_unspecified AS kp_default"
#define LAUNCH_FROM \
    " FROM sessions s JOIN kernels k ON k.session_id = s.id AND k.cluster_idx = 0" \
    " LEFT JOIN images i ON i.name = k.image AND i.architecture = k.architecture" \
    " LEFT JOIN keypairs kp ON kp.access_key = s.access_key" \
    " LEFT JOIN keypair_resource_policies p ON p.name = kp.resource_policy"

static const char *const ROUND_SQL[NQ] = {
    [Q_PENDING] =
        LAUNCH_COLS BAIC_POLICY_PAGE_COLS LAUNCH_FROM
        " WHERE s.status = 'PENDING' AND " BAIC_POLICY_PAGE_DUE
        " ORDER BY s.priority DESC, s.enqueued_at, s.created_at, s.id"
        " LIMIT $1::int FOR UPDATE OF s SKIP LOCKED", /* rows a request holds: next round */
    [Q_GROUPS] = "SELECT name, scheduler, scheduler_opts::text AS sopts, agent_selector,"
                 " agent_selector_opts::text AS aopts FROM scaling_groups WHERE is_active",
    [Q_AGENTS] =
        "SELECT a.id, a.addr, a.scaling_group AS sgroup, a.architecture,"
        " a.available_slots::text AS available"
        " FROM agents a WHERE a.status = 'ALIVE' AND a.schedulable ORDER BY a.id",
    [Q_STAMP] = "SELECT value::text AS value FROM shared_config WHERE key = 'scheduler/stamp'",
    /* One pass over the live kernels for every agent's occupancy. */
    [Q_AGENT_OCC] =
        "SELECT c.agent AS id, COALESCE(o.occ, '{}') AS occupied, c.n AS n_kernels FROM"
        " (SELECT agent, count(*) AS n FROM kernels WHERE status IN " BAIC_LIVE_STATUSES
        "   AND agent IS NOT NULL GROUP BY agent) c LEFT JOIN"
        " (SELECT agent, jsonb_object_agg(key, total)::text AS occ FROM ("
        "   SELECT k.agent, e.key, sum((e.value #>> '{}')::numeric)::text AS total FROM kernels k,"
        "   jsonb_each(k.occupied_slots) e WHERE k.status IN " BAIC_LIVE_STATUSES
        "   AND k.agent IS NOT NULL GROUP BY 1, 2) x GROUP BY agent) o ON o.agent = c.agent",
    [Q_KP_OCC] = "SELECT k.access_key, k.scaling_group AS sgroup, e.key AS slot,"
                 " sum((e.value #>> '{}')::numeric)::text AS total FROM kernels k,"
                 " jsonb_each(k.occupied_slots) e WHERE k.status IN " BAIC_LIVE_STATUSES
                 " AND k.access_key IS NOT NULL GROUP BY 1, 2, 3",
    [Q_KP_LIVE] = "SELECT access_key, count(*) AS n FROM sessions WHERE status IN "
                  BAIC_LIVE_STATUSES " AND access_key IS NOT NULL GROUP BY access_key",
    [Q_SLOTS] = "SELECT value::text AS value FROM shared_config WHERE key = 'config/resource_slots'",
    [Q_POLICY] = BAIC_POLICY_ROUND_SQL, /* predicates.c; sent once Q_PENDING is read */
    [Q_POL_OCC] = BAIC_POLICY_OCC_SQL,
};

/* value: {"agent", "addr", "kernels": [{"agent", "addr"} per cluster_idx]}; a session
 * is placed only when every agent it names is still ALIVE (all or none; the agents are
 * read once for the whole batch, not scanned per session), and its session row only once
 * its kernels are (their agents become the session's agent_ids).
 * The planner cannot count jsonb_each's rows, so every join here must be cheap whatever it
 * estimates: rows are found by their keys (the session's through the kernels' aggregate,
 * never a semi-join against the kernel CTE, which a 1-row estimate made a nested loop,
 * quadratic in the page), and the dead agents' sessions are a hashed NOT IN.
 * "(status = X) IS TRUE" is the status test the planner does not answer from a status
 * index: statuses churn faster than the statistics, and a plan that believed "one row is
 * SCHEDULED" walked every SCHEDULED row of a drain for each batch; the rows are found
 * by their ids and their status checked after. */
static const char ALLOC_SQL[] =
    "WITH a0 AS (SELECT key::uuid AS sid, value->>'agent' AS agent, value->>'addr' AS addr,"
    "   COALESCE(value->'kernels', jsonb_build_array(value)) AS ks FROM jsonb_each($1::jsonb)),"
    " dead AS (SELECT a0.sid FROM a0 CROSS JOIN LATERAL jsonb_array_elements(a0.ks) x"
    "   LEFT JOIN agents g ON g.id = x->>'agent' WHERE g.status IS DISTINCT FROM 'ALIVE'),"
    " a AS (SELECT * FROM a0 WHERE a0.sid NOT IN (SELECT sid FROM dead)),"
    " k AS (UPDATE kernels k SET agent = COALESCE(a.ks->k.cluster_idx->>'agent', a.agent),"
    "   agent_addr = COALESCE(a.ks->k.cluster_idx->>'addr', a.addr),"
    "   occupied_slots = k.requested_slots, status = 'SCHEDULED', status_changed = now(),"
    "   status_info = NULL,"
    "   status_history = k.status_history || jsonb_build_object('SCHEDULED', now()::text)"
    " FROM a WHERE k.session_id = a.sid AND (k.status = 'PENDING') IS TRUE"
    " RETURNING k.session_id, k.agent),"
    " ks AS (SELECT session_id, array_agg(DISTINCT agent) AS agents FROM k GROUP BY session_id)"
    " UPDATE sessions s SET status = 'SCHEDULED', status_changed = now(), status_info = NULL,"
    "   agent_ids = ks.agents::varchar(64)[], occupying_slots = s.requested_slots,"
    "   status_history = s.status_history || jsonb_build_object('SCHEDULED', now()::text)"
    " FROM ks WHERE s.id = ks.session_id AND (s.status = 'PENDING') IS TRUE"
    " RETURNING s.id::text";

static const char DENY_SQL[] =
    "UPDATE sessions s SET status_info = x.value->>'info',"
    " sched_retry_at = now() + make_interval(secs => (x.value->>'retry_ms')::float8 / 1000),"
    " status_data = COALESCE(s.status_data, '{}'::jsonb) || jsonb_build_object('scheduler',"
    "   jsonb_build_object('failed_predicates', x.value->'failed', 'msg', x.value->>'msg',"
    "   'passed_predicates', COALESCE(x.value->'passed', '[]'::jsonb), 'last_try',"
    "   to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"'),"
    "   'retries', COALESCE((s.status_data #>> '{scheduler,retries}')::int, 0) + 1))"
    " FROM jsonb_each($1::jsonb) x WHERE s.id = x.key::uuid AND s.status = 'PENDING'";

static const char SKIP_SQL[] =
    "UPDATE sessions s SET times_skipped = (x.value #>> '{}')::int"
    " FROM jsonb_each($1::jsonb) x WHERE s.id = x.key::uuid AND s.status = 'PENDING'";

typedef struct round {
    baic_sched_t *s;
    baic_db_tx_t *tx;
    int fresh;                /* occupancy read from the database in this round */
    long long stamp_seq;      /* the stamp this round wrote, 0 if none */
    size_t ncands;            /* candidates handed to the plugins */
    uint64_t t_start, t_fetched, t_decided; /* uv_hrtime() of the round's steps */
    int pending, failed, locked;
    int prefetching, prefetched; /* reading its page before its turn; done so */
    int decided;              /* its decision is made (its writes may still wait) */
    int early;                /* decided before its turn: checked against the stamp then */
    uint64_t t_sent;          /* uv_hrtime() its writes went out */
    json_t *res[NQ];
    json_t *types;   /* slot name -> "count" | "bytes" | "unique" */
    json_t *alloc;   /* session id -> {"agent", "addr"} */
    json_t *deny;    /* session id -> {"info", "msg", "failed": [...]} */
    json_t *skips;   /* session id -> times_skipped */
    json_t *launch;  /* session id -> pending row + "agent_addr" */
    json_t *scheduled; /* ids the allocation statement confirmed */
    baic_policy_t *pol; /* predicates.c: this round's view of the policies */
} round_t;

static void sched_unref(baic_sched_t *s) {
    if (--s->refs > 0)
        return;
    json_decref(s->confs);
    json_decref(s->applied);
    json_decref(s->failed);
    json_decref(s->occ_agents);
    json_decref(s->occ_kp);
    json_decref(s->live_kp);
    json_decref(s->occ_pol);
    json_decref(s->launchq);
    free(s);
}

/* ---- slot vectors over the round's slot types ---- */

static int slot_is_bytes(round_t *r, const char *name) {
    const char *t = json_string_value(json_object_get(r->types, name));
    return t != NULL && strcmp(t, "bytes") == 0;
}

/* A name pointer that lives as long as the round: the key inside r->types. */
static const char *intern(round_t *r, const char *name) {
    void *it = json_object_iter_at(r->types, name);
    if (it == NULL) {
        json_object_set_new(r->types, name, json_string("count"));
        it = json_object_iter_at(r->types, name);
    }
    return json_object_iter_key(it);
}

static int64_t *vec_slot(round_t *r, vec_t *v, const char *name) {
    for (size_t j = 0; j < v->n; j++) /* names are interned: mostly the same pointer */
        if (v->v[j].name == name)
            return &v->v[j].value;
    size_t i = 0;
    while (i < v->n && strcmp(v->v[i].name, name) < 0)
        i++;
    if (i < v->n && strcmp(v->v[i].name, name) == 0)
        return &v->v[i].value;
    if (v->n == MAX_SLOTS)
        return NULL;
    memmove(&v->v[i + 1], &v->v[i], (v->n - i) * sizeof v->v[0]);
    v->v[i].name = intern(r, name);
    v->v[i].value = 0;
    v->n++;
    return &v->v[i].value;
}

static void vec_from_json(round_t *r, vec_t *v, const json_t *obj) {
    const char *k;
    json_t *val;
    json_object_foreach((json_t *)obj, k, val) {
        int64_t x = 0;
        char num[64];
        const char *text = json_string_value(val);
        if (json_is_number(val)) {
            snprintf(num, sizeof num, "%.9g", json_number_value(val));
            text = num;
        }
        if (text == NULL || baic_slot_parse(text, slot_is_bytes(r, k), &x) != 0)
            continue;
        int64_t *p = vec_slot(r, v, k);
        if (p)
            *p += x;
    }
}

static void vec_from_text(round_t *r, vec_t *v, const char *text) {
    json_t *j = text ? json_loads(text, 0, NULL) : NULL;
    if (json_is_object(j))
        vec_from_json(r, v, j);
    json_decref(j);
}

static void vec_add(round_t *r, vec_t *dst, const vec_t *src) {
    for (size_t i = 0; i < src->n; i++) {
        int64_t *p = vec_slot(r, dst, src->v[i].name);
        if (p)
            *p += src->v[i].value;
    }
}

static baic_slots_t as_slots(const vec_t *v) {
    baic_slots_t s = {v->v, v->n};
    return s;
}

static const char *col(const json_t *row, const char *name) {
    return json_string_value(json_object_get(row, name));
}

/* ---- plugins ---- */

static int plugin_name_ok(const char *s) {
    if (s == NULL || *s == '\0' || strlen(s) > 63)
        return 0;
    for (; *s; s++)
        if (!islower((unsigned char)*s) && !isdigit((unsigned char)*s) && *s != '_' && *s != '-')
            return 0;
    return 1;
}

/*
 * The group's plugin, loaded on first use with the group's options as its config;
 * groups naming the same plugin share one instance, and a group whose options differ
 * from those last applied gets them through update_options before its turn.
 */
static const baic_plugin_t *group_plugin(baic_sched_t *s, baic_plugin_kind_t kind,
                                         const char *name, const char *opts) {
    if (!plugin_name_ok(name))
        return NULL;
    char id[96];
    snprintf(id, sizeof id, "%s/%s", baic_plugin_kind_name(kind), name);
    baic_manager_t *m = s->m;
    const baic_plugin_t *p = baic_registry_find(m->registry, kind, name);
    if (p == NULL) {
        json_t *when = json_object_get(s->failed, id);
        if (when && uv_now(m->uv) - (uint64_t)json_integer_value(when) < 60000)
            return NULL;
        json_t *conf = json_loads(opts ? opts : "{}", 0, NULL);
        if (!json_is_object(conf)) {
            json_decref(conf);
            conf = json_object();
        }
        char err[512];
        int rc = baic_registry_load(m->registry, id, conf, err, sizeof err);
        if (rc != 0) {
            BAIC_LOG_E("scheduler_plugin_unavailable", "plugin=%s error=\"%s\"", id, err);
            json_object_set_new(s->failed, id, json_integer((json_int_t)uv_now(m->uv)));
            json_decref(conf);
            return NULL;
        }
        json_object_set_new(s->confs, id, conf);
        json_object_set_new(s->applied, id, json_string(opts ? opts : "{}"));
        BAIC_LOG_I("scheduler_plugin_loaded", "plugin=%s", id);
        return baic_registry_find(m->registry, kind, name);
    }
    const char *last = json_string_value(json_object_get(s->applied, id));
    if (opts && (last == NULL || strcmp(last, opts) != 0)) {
        json_t *o = json_loads(opts, 0, NULL);
        int (*update)(void *, const json_t *) =
            kind == BAIC_KIND_SCHEDULER ? ((const baic_scheduler_ops_t *)p->ops)->update_options
                                        : ((const baic_selector_ops_t *)p->ops)->update_options;
        if (o != NULL && update != NULL && update(p->state, o) != 0)
            BAIC_LOG_W("scheduler_options_refused", "plugin=%s", id);
        json_decref(o);
        json_object_set_new(s->applied, id, json_string(opts));
    }
    return p;
}

/* ---- one resource group ---- */

typedef struct cand {
    json_t *row;
    baic_sched_session_t s;
    vec_t req;
    int placed;
    uint32_t skipped;
} cand_t;

typedef struct agent {
    json_t *row;
    baic_sel_agent_t a;
    vec_t avail, occ;
} agent_t;

typedef struct kp {
    const char *ak;
    vec_t occ_all, occ_group;
    long long live;
    baic_sched_occupancy_t o;
} kp_t;

/* One pointer per distinct string among the few (architectures) a group has, so that
 * the loops over agents, here and in the selectors, compare pointers. */
static const char *str_intern(const char **tab, size_t *n, size_t cap, const char *s) {
    if (s == NULL)
        return NULL;
    for (size_t i = 0; i < *n; i++)
        if (tab[i] == s || strcmp(tab[i], s) == 0)
            return tab[i];
    if (*n < cap)
        tab[(*n)++] = s;
    return s;
}

static kp_t *kp_find(kp_t *kps, size_t n, const char *ak) {
    for (size_t i = 0; i < n; i++)
        if (kps[i].ak == ak)
            return &kps[i];
    for (size_t i = 0; i < n; i++)
        if (strcmp(kps[i].ak, ak) == 0)
            return &kps[i];
    return NULL;
}

static void deny(round_t *r, cand_t *c, const char *info, const char *pred, const char *msg) {
    json_object_set_new(r->deny, col(c->row, "id"),
                        json_pack("{s:s, s:s, s:[{s:s, s:s}]}", "info", info, "msg", msg, "failed",
                                  "name", pred, "msg", msg));
    c->s.flags |= BAIC_SCHED_CAND_TRIED;
}

static void schedule_group(round_t *r, const json_t *g) {
    baic_sched_t *s = r->s;
    const char *gname = col(g, "name");
    size_t nc = 0, i;
    json_t *row;
    json_array_foreach(r->res[Q_PENDING], i, row) if (strcmp(col(row, "sgroup") ?: "", gname) == 0) nc++;
    if (nc == 0)
        return;
    r->ncands += nc;
    cand_t *cands = calloc(nc, sizeof *cands);
    const baic_sched_session_t **ptrs = calloc(nc, sizeof *ptrs);
    size_t *map = calloc(nc, sizeof *map);
    agent_t *agents = calloc(json_array_size(r->res[Q_AGENTS]) + 1, sizeof *agents);
    size_t nkp_max = json_array_size(r->res[Q_KP_LIVE]) + nc + 1;
    kp_t *kps = calloc(nkp_max, sizeof *kps);
    const baic_sched_occupancy_t **kptrs = calloc(nkp_max, sizeof *kptrs);
    const baic_sel_agent_t **aptrs = calloc(json_array_size(r->res[Q_AGENTS]) + 1, sizeof *aptrs);
    size_t *amap = calloc(json_array_size(r->res[Q_AGENTS]) + 1, sizeof *amap);
    size_t na = 0, nkp = 0, narch = 0;
    const char *archs[16];

    /* Keypairs: live sessions everywhere, occupancy everywhere and in this group. */
    json_array_foreach(r->res[Q_KP_LIVE], i, row) {
        kps[nkp].ak = col(row, "access_key");
        kps[nkp++].live = atoll(col(row, "n"));
    }
    nc = 0;
    json_array_foreach(r->res[Q_PENDING], i, row) {
        if (strcmp(col(row, "sgroup") ?: "", gname) != 0)
            continue;
        cand_t *c = &cands[nc++];
        c->row = row;
        vec_from_text(r, &c->req, col(row, "requested"));
        c->s.id = col(row, "id");
        c->s.access_key = col(row, "access_key");
        c->s.user_id = col(row, "user_id");
        c->s.group_id = col(row, "group_id");
        c->s.domain = col(row, "domain_name");
        c->s.requested = as_slots(&c->req);
        c->s.created_at_ms = atoll(col(row, "created_ms"));
        c->s.enqueued_at_ms = atoll(col(row, "enqueued_ms"));
        c->s.priority = atoi(col(row, "priority"));
        c->s.times_skipped = (uint32_t)atol(col(row, "times_skipped"));
        c->s.cluster_size = (uint32_t)atol(col(row, "cluster_size"));
        kp_t *k = kp_find(kps, nkp, c->s.access_key);
        if (k == NULL)
            kps[nkp++].ak = c->s.access_key;
        else /* one pointer per keypair, for the plugins' lookups too */
            c->s.access_key = k->ak;
    }
    json_array_foreach(r->res[Q_KP_OCC], i, row) {
        kp_t *k = kp_find(kps, nkp, col(row, "access_key"));
        if (k == NULL)
            continue;
        vec_t one = {0};
        int64_t x;
        const char *slot = col(row, "slot");
        if (baic_slot_parse(col(row, "total"), slot_is_bytes(r, slot), &x) != 0)
            continue;
        int64_t *p = vec_slot(r, &one, slot);
        if (p == NULL)
            continue;
        *p = x;
        vec_add(r, &k->occ_all, &one);
        if (strcmp(col(row, "sgroup") ?: "", gname) == 0)
            vec_add(r, &k->occ_group, &one);
    }

    baic_sched_context_t ctx = {.size = sizeof ctx, .resource_group = gname};
    vec_t cap = {0}, occ = {0};
    json_array_foreach(r->res[Q_AGENTS], i, row) {
        if (strcmp(col(row, "sgroup"), gname) != 0)
            continue;
        agent_t *a = &agents[na++];
        a->row = row;
        vec_from_text(r, &a->avail, col(row, "available"));
        a->a.id = col(row, "id");
        json_t *oc = json_object_get(s->occ_agents, a->a.id);
        if (oc != NULL)
            vec_from_json(r, &a->occ, json_object_get(oc, "occupied"));
        a->a.available = as_slots(&a->avail);
        a->a.occupied = as_slots(&a->occ);
        a->a.architecture = str_intern(archs, &narch, 16, col(row, "architecture"));
        a->a.resource_group = gname;
        a->a.n_kernels = oc ? (uint32_t)json_integer_value(json_object_get(oc, "n")) : 0;
        vec_add(r, &cap, &a->avail);
        vec_add(r, &occ, &a->occ);
    }

    if (na == 0) {
        /* Drained, lost or none at all: say so instead of leaving no reason. */
        char why[160];
        snprintf(why, sizeof why, "No schedulable agent in resource group %.64s.", gname);
        for (size_t c = 0; c < nc; c++)
            deny(r, &cands[c], "no-available-instances", "agents", why);
        goto out;
    }
    const baic_plugin_t *sp = group_plugin(s, BAIC_KIND_SCHEDULER, col(g, "scheduler"), col(g, "sopts"));
    const baic_plugin_t *ap = group_plugin(s, BAIC_KIND_SELECTOR, col(g, "agent_selector"), col(g, "aopts"));
    if (sp == NULL || ap == NULL) {
        for (size_t c = 0; c < nc; c++)
            deny(r, &cands[c], "scheduler-unavailable", "plugin",
                 "The resource group's scheduler or agent-selector plugin is not available.");
        goto out;
    }
    const baic_scheduler_ops_t *sops = sp->ops;
    const baic_selector_ops_t *aops = ap->ops;
    ctx.queue_order = 1; /* the page's ORDER BY, kept by every list built from it */
    /* The agents offered for the last architecture; built again when another is asked
     * for or a booking changed which agents may take another kernel. */
    const char *sel_arch = NULL;
    int sel_stale = 1;
    size_t nsel = 0;
    /* The plugins' view: the unplaced candidates in queue order, ptrs[off .. off + n) (map:
     * their index in cands). A placement takes its entry out, shifting the shorter side. */
    size_t n = nc, off = 0;
    int one_priority = 1;
    for (size_t c = 0; c < nc; c++) {
        map[c] = c;
        ptrs[c] = &cands[c].s;
        if (cands[c].s.priority != cands[0].s.priority)
            one_priority = 0;
    }

    for (size_t guard = 0; guard <= 2 * nc; guard++) {
        size_t nk = 0;
        for (size_t k = 0; k < nkp; k++) {
            if (kps[k].occ_group.n == 0)
                continue;
            kps[k].o.access_key = kps[k].ak;
            kps[k].o.occupied = as_slots(&kps[k].occ_group);
            kptrs[nk++] = &kps[k].o;
        }
        ctx.capacity = as_slots(&cap);
        ctx.occupied = as_slots(&occ);
        ctx.keypairs = kptrs;
        ctx.n_keypairs = nk;
        ctx.now_ms = baic_wall_ms();
        size_t picked = BAIC_SCHED_NONE;
        if (n == 0)
            break;
        int rc = sops->pick(sp->state, &ctx, ptrs + off, n, &picked);
        if (rc != 0) {
            BAIC_LOG_W("scheduler_pick_failed", "group=%s plugin=%s error=%d", gname, sp->id, rc);
            break;
        }
        if (picked == BAIC_SCHED_NONE || picked >= n)
            break;
        cand_t *c = &cands[map[off + picked]];
        if (c->s.flags & BAIC_SCHED_CAND_TRIED)
            break; /* the plugin broke its contract; do not loop on it */
        kp_t *k = kp_find(kps, nkp, c->s.access_key);
        char msg[256];
        baic_slots_t want = as_slots(&c->req);
        json_t *denial = baic_policy_check(r->pol, c->row, &want);
        if (denial != NULL) {
            /* Held back by its own policies on fresh numbers: out of the page for a tick,
             * so that a head of such sessions cannot hide the queue behind it. */
            if (r->fresh)
                json_object_set_new(denial, "retry_ms", json_integer(r->s->tick_ms));
            json_object_set_new(r->deny, c->s.id, denial);
            c->s.flags |= BAIC_SCHED_CAND_TRIED;
            continue;
        }
        /* Agents of the right architecture, with their occupancy as of this round. */
        const char *arch = str_intern(archs, &narch, 16, col(c->row, "architecture"));
        if (sel_stale || arch != sel_arch) {
            nsel = 0;
            for (size_t a = 0; a < na; a++) {
                if ((arch && (agents[a].a.architecture == NULL ||
                              strcmp(agents[a].a.architecture, arch) != 0)) ||
                    !baic_policy_agent_ok(r->pol, agents[a].a.n_kernels))
                    continue;
                amap[nsel] = a;
                aptrs[nsel++] = &agents[a].a;
            }
            sel_arch = arch;
            sel_stale = 0;
        }
        if (nsel == 0) {
            snprintf(msg, sizeof msg, "No schedulable %s agent in resource group %s.",
                     arch ? arch : "", gname);
            deny(r, c, "no-available-instances", "agents", msg);
            continue;
        }
        /* Every kernel of the session at once; all fit or none is placed (cluster.c). */
        size_t nkern = c->s.cluster_size > 1 ? c->s.cluster_size : 1;
        vec_t kreq = c->req;
        if (nkern > 1) {
            memset(&kreq, 0, sizeof kreq);
            vec_from_text(r, &kreq, col(c->row, "kreq"));
        }
        baic_sel_kernel_t *kern = calloc(nkern, sizeof *kern);
        const baic_sel_kernel_t **kptr = calloc(nkern, sizeof *kptr);
        size_t *chosen = calloc(nkern, sizeof *chosen);
        for (size_t ki = 0; kern && kptr && chosen && ki < nkern; ki++) {
            kern[ki] = (baic_sel_kernel_t){.id = col(c->row, "kernel_id"),
                                           .role = ki ? "sub" : "main",
                                           .index = (uint32_t)ki,
                                           .architecture = arch,
                                           .requested = as_slots(&kreq)};
            kptr[ki] = &kern[ki];
            chosen[ki] = (size_t)-1;
        }
        int multi = strcmp(col(c->row, "cluster_mode") ?: "", "multi-node") == 0;
        baic_sel_request_t req = {
            .size = sizeof req,
            .session_id = c->s.id,
            .access_key = c->s.access_key,
            .resource_group = gname,
            .cluster_mode = multi ? BAIC_SEL_MULTI_NODE : BAIC_SEL_SINGLE_NODE,
            .kernels = kptr,
            .n_kernels = nkern,
        };
        rc = kern && kptr && chosen ? aops->select(ap->state, &req, aptrs, nsel, chosen)
                                    : BAIC_ENO_RESOURCES;
        /* Never trust a plugin with the books: book kernel by kernel, undo on a misfit. */
        size_t booked = 0;
        for (; rc == 0 && booked < nkern; booked++) {
            if (chosen[booked] >= nsel || (!multi && chosen[booked] != chosen[0])) {
                rc = BAIC_ENO_RESOURCES;
                break;
            }
            agent_t *a = &agents[amap[chosen[booked]]];
            baic_slots_t need = as_slots(&kreq), av = as_slots(&a->avail),
                         oc = as_slots(&a->occ);
            if (baic_slots_fit(&need, &av, &oc) != 0) {
                rc = BAIC_ENO_RESOURCES;
                break;
            }
            vec_add(r, &a->occ, &kreq);
            a->a.occupied = as_slots(&a->occ);
            if (!baic_policy_agent_ok(r->pol, ++a->a.n_kernels))
                sel_stale = 1;
        }
        if (rc != 0) {
            for (size_t ki = 0; ki < booked; ki++) {
                agent_t *a = &agents[amap[chosen[ki]]];
                for (size_t j = 0; j < kreq.n; j++) {
                    int64_t *p = vec_slot(r, &a->occ, kreq.v[j].name);
                    if (p)
                        *p -= kreq.v[j].value;
                }
                a->a.n_kernels--;
                sel_stale = 1;
            }
            free(kern);
            free(kptr);
            free(chosen);
            deny(r, c, "no-available-instances", "agent_resources",
                 nkern > 1 ? "No agents have enough free resources for all the kernels of this "
                             "cluster session now."
                           : "No agent has enough free resources for this session now.");
            continue;
        }
        agent_t *a = &agents[amap[chosen[0]]];
        json_t *placed = json_array();
        for (size_t ki = 0; ki < nkern; ki++) {
            agent_t *ka = &agents[amap[chosen[ki]]];
            json_array_append_new(placed, json_pack("{s:s, s:s}", "agent", ka->a.id, "addr",
                                                    col(ka->row, "addr")));
        }
        free(kern);
        free(kptr);
        free(chosen);
        vec_add(r, &occ, &c->req);
        vec_add(r, &k->occ_all, &c->req);
        vec_add(r, &k->occ_group, &c->req);
        k->live++;
        baic_policy_place(r->pol, c->row, &want);
        c->placed = 1;
        json_object_del(r->deny, c->s.id);
        json_object_set_new(r->alloc, c->s.id,
                            json_pack("{s:s, s:s, s:o}", "agent", a->a.id, "addr",
                                      col(a->row, "addr"), "kernels", placed));
        /* The row itself becomes the launch's: nothing reads it as a candidate again. */
        json_object_set_new(c->row, "agent_addr", json_string(col(a->row, "addr")));
        json_object_set_new(c->row, "agent", json_string(a->a.id));
        json_object_set(r->launch, c->s.id, c->row);
        /* Everyone queued before it that is still waiting was skipped once more: among
         * the unplaced, with one priority on the page, only those ahead of it in queue
         * order can be. */
        size_t upto = one_priority ? picked : n;
        for (size_t o = 0; o < upto; o++) {
            cand_t *w = &cands[map[off + o]];
            if (o == picked || w->s.enqueued_at_ms > c->s.enqueued_at_ms ||
                (w->s.enqueued_at_ms == c->s.enqueued_at_ms && w->s.created_at_ms >= c->s.created_at_ms))
                continue;
            w->s.times_skipped++;
            w->skipped = 1;
        }
        if (picked < n / 2) {
            memmove(ptrs + off + 1, ptrs + off, picked * sizeof *ptrs);
            memmove(map + off + 1, map + off, picked * sizeof *map);
            off++;
        } else {
            memmove(ptrs + off + picked, ptrs + off + picked + 1, (n - picked - 1) * sizeof *ptrs);
            memmove(map + off + picked, map + off + picked + 1, (n - picked - 1) * sizeof *map);
        }
        n--;
    }
    /* Those the plugin passed over because the group's free capacity is short of them
     * (a whole cluster counts) still get a reason. */
    for (size_t c = 0; c < nc; c++) {
        baic_slots_t need = as_slots(&cands[c].req), cp = as_slots(&cap), oc = as_slots(&occ);
        if (!cands[c].placed && !(cands[c].s.flags & BAIC_SCHED_CAND_TRIED) &&
            json_object_get(r->deny, cands[c].s.id) == NULL && baic_slots_fit(&need, &cp, &oc) != 0)
            deny(r, &cands[c], "no-available-instances", "agent_resources",
                 "The resource group has not enough free resources for this session now.");
    }
    for (size_t c = 0; c < nc; c++)
        if (!cands[c].placed && cands[c].skipped)
            json_object_set_new(r->skips, cands[c].s.id, json_integer(cands[c].s.times_skipped));
out:
    free(cands);
    free(ptrs);
    free(map);
    free(agents);
    free(kps);
    free(kptrs);
    free(aptrs);
    free(amap);
}

/* ---- after commit: start the kernels ---- */

typedef struct launch {
    baic_manager_t *m;
    char session_id[40], kernel_id[40], addr[136];
} launch_t;

static void launch_answered(baic_manager_t *m);

static void created(int status, json_t *answer, int err, void *arg) {
    launch_t *l = arg;
    baic_manager_t *m = l->m;
    launch_answered(m);
    if (m->closing) {
        free(l);
        return;
    }
    if (baic_agent_create_accepted(status, answer, err)) {
        BAIC_LOG_D("kernels_accepted", "session=%s kernel=%s agent=%s", l->session_id,
                   l->kernel_id, l->addr);
        /* SCHEDULED -> PREPARING, batched with the agents' kernel events (agents.c). */
        baic_kernel_forward(m, l->kernel_id, "PREPARING", "{SCHEDULED}", "kernel_preparing",
                            "session_preparing");
        free(l);
        return;
    }
    char why[300];
    const char *msg = json_string_value(json_object_get(answer, "msg"));
    if (msg == NULL)
        msg = json_string_value(json_object_get(answer, "title"));
    if (err != 0)
        snprintf(why, sizeof why, "failed-to-start: agent %s not reachable (%d)", l->addr, err);
    else
        snprintf(why, sizeof why, "failed-to-start: agent answered %d%s%.200s", status,
                 msg ? ": " : "", msg ? msg : "");
    BAIC_LOG_W("create_kernels_failed", "session=%s kernel=%s agent=%s reason=\"%s\"",
               l->session_id, l->kernel_id, l->addr, why);
    baic_kernel_finish(m, l->kernel_id, "ERROR", why, INT32_MIN);
    /* A lost answer may hide a started kernel; a refusal (4xx) left nothing behind. */
    if (err != 0 || status >= 500)
        baic_agent_destroy_kernel(m, l->addr, l->kernel_id, "failed-to-start");
    free(l);
}

/* The create_kernels entry of the row's (main) kernel; cluster.c adapts it per kernel. */
json_t *baic_sched_kernel_spec(const json_t *row) {
    json_t *labels = json_loads(col(row, "labels") ?: "{}", 0, NULL);
    json_t *env = json_loads(col(row, "environ") ?: "{}", 0, NULL);
    json_t *slots = json_loads(col(row, "requested") ?: "{}", 0, NULL);
    json_t *kern = json_pack("{s:s, s:{s:s, s:s?, s:o}, s:o, s:o, s:s, s:i, s:s}", "kernel_id",
                             col(row, "kernel_id"), "image", "canonical", col(row, "image"),
                             "registry", col(row, "registry"), "labels",
                             labels ? labels : json_object(), "resource_slots",
                             slots ? slots : json_object(), "environ",
                             json_is_object(env) ? env : json_object(), "cluster_role",
                             col(row, "cluster_role") ?: "main", "cluster_idx", 0,
                             "cluster_hostname", col(row, "cluster_hostname") ?: "main1");
    if (!json_is_object(env))
        json_decref(env);
    json_t *mounts = json_loads(col(row, "mounts") ?: "[]", 0, NULL); /* vfolder_mounts.c */
    json_object_set_new(kern, "mounts", json_is_array(mounts) ? mounts : json_array());
    if (!json_is_array(mounts))
        json_decref(mounts);
    if (col(row, "startup_command"))
        json_object_set_new(kern, "startup_command", json_string(col(row, "startup_command")));
    if (col(row, "session_type")) /* batch kernels end with their startup command */
        json_object_set_new(kern, "session_type", json_string(col(row, "session_type")));
    if (col(row, "bootstrap_script"))
        json_object_set_new(kern, "bootstrap_script", json_string(col(row, "bootstrap_script")));
    return kern;
}

static void launch_one(baic_manager_t *m, const json_t *row) {
    if (atoi(col(row, "cluster_size") ?: "1") > 1) {
        baic_cluster_launch(m, row); /* cluster.c: every kernel, all or none */
        return;
    }
    launch_t *l = calloc(1, sizeof *l);
    if (l == NULL)
        return;
    l->m = m;
    snprintf(l->session_id, sizeof l->session_id, "%s", col(row, "id"));
    snprintf(l->kernel_id, sizeof l->kernel_id, "%s", col(row, "kernel_id"));
    snprintf(l->addr, sizeof l->addr, "%s", col(row, "agent_addr"));
    baic_session_event(m, "session_scheduled", l->session_id, col(row, "name"),
                       col(row, "access_key"), NULL, NULL, INT32_MIN);
    json_t *kern = baic_sched_kernel_spec(row);
    json_t *body = json_pack("{s:s, s:s?, s:s?, s:[o]}", "session_id", l->session_id,
                             "session_name", col(row, "name"), "access_key",
                             col(row, "access_key"), "kernels", kern);
    BAIC_LOG_I("session_scheduled", "session=%s kernel=%s agent=%s", l->session_id, l->kernel_id,
               col(row, "agent"));
    if (m->sched != NULL)
        m->sched->launch_inflight++;
    if (baic_agent_rpc(m, l->addr, "POST", "/rpc/create_kernels", body, 30000, created, l) != 0)
        created(0, NULL, -EINVAL, l);
    json_decref(body);
}

/* ---- launch queue ---- */

/*
 * A committed round's sessions are sent their create_kernels right after the commit,
 * except while the queue is deeper than a page: then the next round goes first and the
 * launches wait, the oldest at most manager.scheduler_launch_defer_ms (default 5000; 0:
 * never wait). Placing a backlog and launching what was placed share the machine's
 * cores, and each launch costs more than its placement; without the wait a burst is
 * placed at the pace of the launches it causes. The sessions are SCHEDULED in the
 * database meanwhile: a manager that stops holding some leaves them to the relaunch
 * sweep (relaunch_s) of whichever manager runs next.
 */
#define LAUNCHES_PER_TURN 64   /* a few ms of the loop: rounds and replies go between */
#define LAUNCHES_IN_FLIGHT 256 /* unanswered create_kernels (single-kernel sessions) */

static size_t launch_unsent(const baic_sched_t *s) {
    return json_array_size(s->launchq) - s->launchq_head;
}

static void launch_drip(uv_idle_t *h);

/* Sends what the queue holds unless it is held (the wait armed) or the cap is reached;
 * launch_drip stops itself when either ends its turn. */
static void launch_resume(baic_sched_t *s) {
    if (!s->closing && launch_unsent(s) > 0 && !uv_is_active((uv_handle_t *)&s->launch_timer) &&
        s->launch_inflight < LAUNCHES_IN_FLIGHT)
        uv_idle_start(&s->launch_idle, launch_drip);
}

static void launch_drip(uv_idle_t *h) {
    baic_sched_t *s = h->data;
    for (int k = 0; k < LAUNCHES_PER_TURN && launch_unsent(s) > 0 && !s->closing &&
                    s->launch_inflight < LAUNCHES_IN_FLIGHT;
         k++) {
        size_t i = s->launchq_head++;
        launch_one(s->m, json_array_get(s->launchq, i));
        json_array_set_new(s->launchq, i, json_null()); /* its memory back now */
    }
    if (launch_unsent(s) == 0) {
        json_array_clear(s->launchq);
        s->launchq_head = 0;
    }
    if (launch_unsent(s) == 0 || s->closing || s->launch_inflight >= LAUNCHES_IN_FLIGHT)
        uv_idle_stop(&s->launch_idle); /* launch_enqueue or launch_answered starts it again */
}

/* A create_kernels of launch_one was answered (or failed). */
static void launch_answered(baic_manager_t *m) {
    baic_sched_t *s = m->sched;
    if (s == NULL)
        return;
    if (s->launch_inflight > 0)
        s->launch_inflight--;
    launch_resume(s);
}

static void launch_timer_cb(uv_timer_t *t) {
    launch_resume(t->data); /* the wait is over: the timer is no longer active */
}

static void launch_enqueue(baic_sched_t *s, const round_t *r, int backlog) {
    uint64_t now = uv_now(s->m->uv);
    size_t i;
    json_t *id;
    /* Already being sent (not held, not empty): what this round adds follows. */
    int sending = launch_unsent(s) > 0 && !uv_is_active((uv_handle_t *)&s->launch_timer);
    if (launch_unsent(s) == 0)
        s->launchq_since = now;
    json_array_foreach(r->scheduled, i, id) {
        json_t *row = json_object_get(r->launch, json_string_value(id));
        if (row)
            json_array_append(s->launchq, row);
    }
    uint64_t age = now - s->launchq_since, defer = (uint64_t)s->launch_defer_ms;
    if (!sending && backlog && s->launch_defer_ms > 0 && age < defer) {
        if (!uv_is_active((uv_handle_t *)&s->launch_timer))
            uv_timer_start(&s->launch_timer, launch_timer_cb, defer - age, 0);
        return;
    }
    uv_timer_stop(&s->launch_timer);
    launch_resume(s);
}

/* ---- deadlines and recovery ---- */

typedef struct retry {
    baic_manager_t *m;
    char kernel_id[40];
} retry_t;

static void retry_done(const baic_db_result_t *res, int err, const char *errmsg, void *arg) {
    retry_t *t = arg;
    if (err != 0)
        BAIC_LOG_W("destroy_retry_failed", "kernel=%s error=\"%s\"", t->kernel_id,
                   errmsg ? errmsg : "");
    else if (baic_db_result_rows(res) > 0 && !baic_db_result_is_null(res, 0, 0))
        baic_agent_destroy_kernel(t->m, baic_db_result_get(res, 0, 0), t->kernel_id,
                                  "user-requested");
    free(t);
}

static void sweep_done(const baic_db_result_t *res, int err, const char *errmsg, void *arg) {
    baic_sched_t *s = arg;
    baic_manager_t *m = s->m;
    if (err != 0 || s->closing) {
        if (err != 0)
            BAIC_LOG_W("deadline_sweep_failed", "error=\"%s\"", errmsg ? errmsg : "");
        sched_unref(s);
        return;
    }
    for (int r = 0; r < baic_db_result_rows(res); r++) {
        const char *kid = baic_db_result_get(res, r, 0), *st = baic_db_result_get(res, r, 1);
        const char *addr = baic_db_result_get(res, r, 2);
        long tries = atol(baic_db_result_get(res, r, 3));
        if (strcmp(st, "TERMINATING") == 0) {
            if (tries >= s->destroy_tries) {
                BAIC_LOG_W("kernel_force_terminated", "kernel=%s tries=%ld", kid, tries);
                baic_kernel_finish(m, kid, "TERMINATED", "force-terminated", INT32_MIN);
                continue;
            }
            retry_t *t = calloc(1, sizeof *t);
            if (t == NULL)
                continue;
            t->m = m;
            snprintf(t->kernel_id, sizeof t->kernel_id, "%s", kid);
            const char *p[1] = {kid};
            BAIC_LOG_I("destroy_retry", "kernel=%s try=%ld", kid, tries + 1);
            if (baic_db_query(m->db,
                              "UPDATE kernels SET destroy_tries = destroy_tries + 1,"
                              " status_changed = now() WHERE id = $1::uuid AND status ="
                              " 'TERMINATING' RETURNING agent_addr",
                              1, p, retry_done, t) != 0)
                free(t);
            continue;
        }
        char why[96];
        snprintf(why, sizeof why, "deadline-exceeded: %s", st);
        BAIC_LOG_W("kernel_deadline_exceeded", "kernel=%s status=%s", kid, st);
        baic_kernel_finish(m, kid, "ERROR", why, INT32_MIN);
        if (addr != NULL)
            baic_agent_destroy_kernel(m, addr, kid, "failed-to-start");
    }
    sched_unref(s);
}

/*
 * A launch is lost when a manager dies between committing a round and an agent taking
 * the create_kernels request: nothing would ever move that session out of SCHEDULED
 * but the deadline (ERROR). Sessions SCHEDULED for longer than relaunch_s are sent
 * again; an agent that already has the kernel answers kernel-already-exists, which
 * counts as accepted (baic_agent_create_accepted). Touching status_changed spaces the
 * tries; the kernels' own deadline still ends a launch no agent ever takes.
 */
static const char RELAUNCH_SQL[] =
    "WITH t AS (UPDATE sessions SET status_changed = now() WHERE id IN (SELECT id FROM"
    "   sessions WHERE status = 'SCHEDULED' AND status_changed < now() -"
    "   make_interval(secs => $1::int) LIMIT 100 FOR UPDATE SKIP LOCKED) RETURNING id) "
    LAUNCH_COLS ", k.agent, k.agent_addr" LAUNCH_FROM " JOIN t ON t.id = s.id"
    " WHERE NOT EXISTS (SELECT 1 FROM kernels o WHERE o.session_id = s.id"
    "   AND o.status <> 'SCHEDULED')";

static json_t *rows_json(const baic_db_result_t *res);

static void relaunch_done(const baic_db_result_t *res, int err, const char *errmsg, void *arg) {
    baic_sched_t *s = arg;
    if (err != 0)
        BAIC_LOG_W("relaunch_failed", "error=\"%s\"", errmsg ? errmsg : "");
    else if (!s->closing) {
        json_t *rows = rows_json(res), *row;
        size_t i;
        json_array_foreach(rows, i, row) {
            BAIC_LOG_W("session_relaunch", "session=%s agent=%s", col(row, "id"),
                       col(row, "agent") ?: "");
            launch_one(s->m, row);
        }
        json_decref(rows);
    }
    sched_unref(s);
}

static void sweep(baic_sched_t *s) {
    char r[24];
    snprintf(r, sizeof r, "%lld", s->relaunch_s);
    const char *rp[1] = {r};
    s->refs++;
    if (baic_db_query(s->m->db, RELAUNCH_SQL, 1, rp, relaunch_done, s) != 0)
        sched_unref(s);
    char a[24], b[24], c[24];
    snprintf(a, sizeof a, "%lld", s->deadline_s);
    snprintf(b, sizeof b, "%lld", s->pulling_s);
    snprintf(c, sizeof c, "%lld", s->terminating_s);
    const char *p[3] = {a, b, c};
    s->refs++;
    if (baic_db_query(s->m->db,
                      "SELECT id::text, status, agent_addr, destroy_tries FROM kernels WHERE"
                      " (status IN ('SCHEDULED', 'PREPARING', 'PREPARED', 'CREATING')"
                      "  AND status_changed < now() - make_interval(secs => $1::int))"
                      " OR (status = 'PULLING' AND status_changed < now() -"
                      "  make_interval(secs => $2::int))"
                      " OR (status = 'TERMINATING' AND status_changed < now() -"
                      "  make_interval(secs => $3::int)) LIMIT 500",
                      3, p, sweep_done, s) != 0)
        sched_unref(s);
}

/* ---- occupancy cache ---- */

/*
 * Summing every live kernel's occupied_slots (jsonb_each over all of them) is the costliest
 * read of a round. The scheduler keeps the sums in memory instead (per agent, per keypair
 * and resource group, and per keypair, user, project and domain for the predicates, with
 * the live sessions per keypair) and adds its own placements on commit. Every placement
 * anywhere goes through a round under the advisory lock, so the cache can only overstate
 * occupancy (kernels freed since), never understate it, as long as no other manager
 * placed meanwhile: each placing round writes a stamp
 * (manager, sequence) into shared_config, and a round that finds someone else's stamp
 * rebuilds. It also rebuilds when the cache is older than manager.scheduler_cache_ms
 * (default 5000; 0 = every round), after a failed commit, and right after a round on cached
 * numbers that left a candidate unplaced (frees are seen by a rebuild only).
 */
/* obj[key], an object created empty when missing. */
static json_t *child(json_t *obj, const char *key) {
    json_t *c = json_object_get(obj, key);
    if (c == NULL)
        json_object_set_new(obj, key, c = json_object());
    return c;
}

static void cache_rebuild(baic_sched_t *s, round_t *r) {
    json_decref(s->occ_agents);
    json_decref(s->occ_kp);
    json_decref(s->live_kp);
    json_decref(s->occ_pol);
    size_t i;
    json_t *row;
    s->occ_pol = json_object();
    json_array_foreach(r->res[Q_POL_OCC], i, row) {
        const char *kind = col(row, "kind"), *id = col(row, "id"), *slot = col(row, "slot");
        if (kind == NULL || id == NULL || slot == NULL || col(row, "total") == NULL)
            continue;
        json_object_set_new(child(child(s->occ_pol, kind), id), slot,
                            json_string(col(row, "total")));
    }
    s->occ_agents = json_object();
    json_array_foreach(r->res[Q_AGENT_OCC], i, row) {
        json_t *occ = json_loads(col(row, "occupied") ?: "{}", 0, NULL);
        if (!json_is_object(occ)) {
            json_decref(occ);
            occ = json_object();
        }
        if (col(row, "id") != NULL)
            json_object_set_new(s->occ_agents, col(row, "id"),
                                json_pack("{s:o, s:I}", "occupied", occ, "n",
                                          (json_int_t)atoll(col(row, "n_kernels") ?: "0")));
        else
            json_decref(occ);
    }
    s->occ_kp = json_incref(r->res[Q_KP_OCC]);
    s->live_kp = json_incref(r->res[Q_KP_LIVE]);
    s->cache_ok = 1;
    s->cache_at = uv_now(s->m->uv);
}

/* 1 when the last placing round was ours (or there was none). */
static int stamp_ours(baic_sched_t *s, round_t *r) {
    const char *v = col(json_array_get(r->res[Q_STAMP], 0), "value");
    if (v == NULL)
        return s->stamp_seq == 0;
    json_t *j = json_loads(v, 0, NULL);
    const char *by = json_string_value(json_object_get(j, "by"));
    int ours = by != NULL && strcmp(by, s->me) == 0 &&
               json_integer_value(json_object_get(j, "seq")) == s->stamp_seq;
    json_decref(j);
    return ours;
}

static void text_add(round_t *r, json_t *obj, const char *key, const char *slot, int64_t add) {
    int bytes = slot_is_bytes(r, slot);
    int64_t v = 0;
    const char *cur = json_string_value(json_object_get(obj, key));
    if (cur != NULL && baic_slot_parse(cur, bytes, &v) != 0)
        v = 0;
    char buf[64];
    baic_slot_format(v + add, bytes, buf, sizeof buf);
    json_object_set_new(obj, key, json_string(buf));
}

static json_t *row_find(json_t *rows, const char *k1, const char *v1, const char *k2,
                        const char *v2, const char *k3, const char *v3) {
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row) {
        if (strcmp(col(row, k1) ?: "", v1) == 0 && (k2 == NULL || strcmp(col(row, k2) ?: "", v2) == 0) &&
            (k3 == NULL || strcmp(col(row, k3) ?: "", v3) == 0))
            return row;
    }
    return NULL;
}

/* Adds a round's placements to the cache as soon as they are decided, so the next round
 * can decide on them while they are written; a round whose commit fails, or confirms
 * fewer than it placed, drops the cache (committed()). */
static void cache_apply(baic_sched_t *s, round_t *r) {
    const char *sid;
    json_t *v;
    json_object_foreach(r->alloc, sid, v) {
        const json_t *l = json_object_get(r->launch, sid);
        const char *agent = col(l, "agent"), *ak = col(l, "access_key");
        const char *sg = col(l, "sgroup") ?: "";
        if (agent == NULL)
            continue;
        vec_t v = {0};
        vec_from_text(r, &v, col(l, "requested"));
        json_t *e = json_object_get(s->occ_agents, agent);
        if (e == NULL) {
            e = json_pack("{s:{}, s:I}", "occupied", "n", (json_int_t)0);
            json_object_set_new(s->occ_agents, agent, e);
        }
        json_t *occ = json_object_get(e, "occupied");
        for (size_t k = 0; k < v.n; k++)
            text_add(r, occ, v.v[k].name, v.v[k].name, v.v[k].value);
        json_object_set_new(e, "n", json_integer(json_integer_value(json_object_get(e, "n")) + 1));
        if (ak == NULL)
            continue;
        for (size_t k = 0; k < v.n; k++) {
            json_t *row = row_find(s->occ_kp, "access_key", ak, "sgroup", sg, "slot", v.v[k].name);
            if (row == NULL) {
                row = json_pack("{s:s, s:s, s:s, s:s}", "access_key", ak, "sgroup", sg, "slot",
                                v.v[k].name, "total", "0");
                json_array_append_new(s->occ_kp, row);
            }
            text_add(r, row, "total", v.v[k].name, v.v[k].value);
        }
        const char *level[4][2] = {{"keypair", ak},
                                   {"user", col(l, "user_id")},
                                   {"group", col(l, "group_id")},
                                   {"domain", col(l, "domain_name")}};
        for (int j = 0; j < 4; j++) {
            if (level[j][1] == NULL)
                continue;
            json_t *e = child(child(s->occ_pol, level[j][0]), level[j][1]);
            for (size_t k = 0; k < v.n; k++)
                text_add(r, e, v.v[k].name, v.v[k].name, v.v[k].value);
        }
        json_t *live = row_find(s->live_kp, "access_key", ak, NULL, NULL, NULL, NULL);
        char n[24];
        snprintf(n, sizeof n, "%lld", live ? atoll(col(live, "n") ?: "0") + 1 : 1);
        if (live == NULL)
            json_array_append_new(s->live_kp, json_pack("{s:s, s:s}", "access_key", ak, "n", n));
        else
            json_object_set_new(live, "n", json_string(n));
    }
}

/* ---- the round ---- */

static void kick(baic_sched_t *s);

static void round_free(round_t *r) {
    for (int i = 0; i < NQ; i++)
        json_decref(r->res[i]);
    json_decref(r->types);
    json_decref(r->alloc);
    json_decref(r->deny);
    json_decref(r->skips);
    json_decref(r->launch);
    json_decref(r->scheduled);
    baic_policy_free(r->pol);
    free(r);
}

static void proceed_lock(round_t *r);
static void maybe_prefetch(round_t *r);

static void round_end(round_t *r) {
    baic_sched_t *s = r->s;
    int locked = r->locked;
    if (s->next == r) { /* a prefetch that failed before its turn */
        s->next = NULL;
        round_free(r);
        sched_unref(s);
        return;
    }
    if (s->cur == r)
        s->cur = NULL;
    round_free(r);
    if (!s->closing && locked && uv_now(s->m->uv) - s->last_sweep >= 5000) {
        s->last_sweep = uv_now(s->m->uv);
        sweep(s);
    }
    round_t *n = s->next;
    if (n != NULL && !s->closing) {
        /* Its turn: the page it read is the queue's next one (ours was locked). */
        s->next = NULL;
        s->cur = n;
        if (n->prefetched)
            proceed_lock(n);
    } else {
        s->running = 0;
        if (!s->closing && s->again) {
            s->again = 0;
            kick(s);
        }
    }
    sched_unref(s);
}

static void committed(int err, const char *errmsg, void *arg) {
    round_t *r = arg;
    if (err != 0) {
        BAIC_LOG_W("schedule_commit_failed", "error=\"%s\"", errmsg ? errmsg : "");
    } else if (!r->s->closing) {
        uint64_t t = uv_hrtime();
        if (json_array_size(r->scheduled) > 0 || json_object_size(r->deny) > 0)
            BAIC_LOG_I("schedule_round", "pending=%zu placed=%zu denied=%zu prefetched=%d"
                       " early=%d fetch_ms=%.1f decide_ms=%.1f write_ms=%.1f",
                       json_array_size(r->res[Q_PENDING]), json_array_size(r->scheduled),
                       json_object_size(r->deny), r->prefetched, r->early,
                       (double)(r->t_fetched - r->t_start) / 1e6,
                       (double)(r->t_decided - r->t_fetched) / 1e6,
                       (double)(t - r->t_sent) / 1e6);
        baic_sched_t *s = r->s;
        if (r->stamp_seq)
            s->stamp_seq = r->stamp_seq;
        if (json_array_size(r->scheduled) < json_object_size(r->alloc))
            s->cache_ok = 0; /* it counted placements that did not happen */
        launch_enqueue(s, r, json_array_size(r->res[Q_PENDING]) >= (size_t)s->page);
        /* Something was placed: more may fit once these numbers settle. */
        if (json_array_size(r->scheduled) > 0)
            r->s->again = 1;
        /* Cached numbers may hide what was freed since: look again with fresh ones. */
        if (!r->fresh && (json_object_size(r->deny) > 0 || json_array_size(r->scheduled) < r->ncands)) {
            s->cache_ok = 0;
            s->again = 1;
        }
    }
    if (err != 0)
        r->s->cache_ok = 0;
    round_end(r);
}

static void alloc_done(const baic_db_result_t *res, int err, const char *errmsg, void *arg) {
    round_t *r = arg;
    if (err != 0) {
        BAIC_LOG_W("schedule_update_failed", "error=\"%s\"", errmsg ? errmsg : "");
        return;
    }
    for (int i = 0; i < baic_db_result_rows(res); i++)
        json_array_append_new(r->scheduled, json_string(baic_db_result_get(res, i, 0)));
}

static void write_done(const baic_db_result_t *res, int err, const char *errmsg, void *arg) {
    (void)res;
    (void)arg;
    if (err != 0)
        BAIC_LOG_W("schedule_update_failed", "error=\"%s\"", errmsg ? errmsg : "");
}

static void tx_query(round_t *r, const char *sql, json_t *param, baic_db_cb cb) {
    char *text = json_dumps(param, JSON_COMPACT);
    const char *p[1] = {text};
    baic_db_tx_query(r->tx, sql, 1, p, cb, r);
    free(text);
}

static void maybe_decide_early(baic_sched_t *s);

/* The decision: placements, denials and skips, booked into the cache. */
static void decide_compute(round_t *r) {
    r->t_fetched = uv_hrtime();
    json_t *slots = json_loads(col(json_array_get(r->res[Q_SLOTS], 0), "value") ?: "{}", 0, NULL);
    json_object_set_new(r->types, "cpu", json_string("count"));
    json_object_set_new(r->types, "mem", json_string("bytes"));
    if (json_is_object(slots))
        json_object_update(r->types, slots);
    json_decref(slots);
    r->pol = baic_policy_new(r->s->m, r->res[Q_POLICY], r->res[Q_PENDING], r->types, r->s->occ_pol,
                             r->res[Q_KP_LIVE]);
    size_t i;
    json_t *g;
    json_array_foreach(r->res[Q_GROUPS], i, g) schedule_group(r, g);
    r->t_decided = uv_hrtime();
    r->decided = 1;
    if (r->s->cache_ok)
        cache_apply(r->s, r);
    /* Placing from a full page: the next page is worth reading while this one is written. */
    r->s->placing = json_object_size(r->alloc) > 0;
    maybe_prefetch(r);
}

/* Its writes and the commit, in its turn (the advisory lock held). */
static void decide_send(round_t *r) {
    r->t_sent = uv_hrtime();
    if (json_object_size(r->alloc) > 0) {
        tx_query(r, ALLOC_SQL, r->alloc, alloc_done);
        r->stamp_seq = r->s->stamp_seq + 1;
        json_t *st = json_pack("{s:s, s:I}", "by", r->s->me, "seq", (json_int_t)r->stamp_seq);
        tx_query(r, "INSERT INTO shared_config (key, value) VALUES ('scheduler/stamp', $1::jsonb)"
                    " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()",
                 st, write_done);
        json_decref(st);
    }
    if (json_object_size(r->deny) > 0)
        tx_query(r, DENY_SQL, r->deny, write_done);
    if (json_object_size(r->skips) > 0)
        tx_query(r, SKIP_SQL, r->skips, write_done);
    if (baic_db_tx_commit(r->tx, committed, r) != 0) {
        r->s->cache_ok = 0; /* its placements are in the cache */
        round_end(r);
        return;
    }
    /* While these are written, the next round may decide on them. */
    maybe_decide_early(r->s);
}

static void decide(round_t *r) {
    decide_compute(r);
    decide_send(r);
}

/* Drops an early decision the stamp did not confirm: the round reads and decides anew. */
static void forget_decision(round_t *r) {
    for (int i = NQ_PAGE; i < NQ; i++) {
        json_decref(r->res[i]);
        r->res[i] = NULL;
    }
    size_t i;
    json_t *row;
    json_array_foreach(r->res[Q_PENDING], i, row) {
        json_object_del(row, "agent");
        json_object_del(row, "agent_addr");
    }
    json_t **objs[4] = {&r->alloc, &r->deny, &r->skips, &r->launch};
    for (int k = 0; k < 4; k++) {
        json_decref(*objs[k]);
        *objs[k] = json_object();
    }
    baic_policy_free(r->pol);
    r->pol = NULL;
    r->ncands = 0;
    r->decided = 0;
}

/*
 * The read-ahead round decides as soon as its page is read and the round before it has
 * decided, on that round's placements (in the cache) and its agents and groups, instead
 * of after that round's commit: the manager decides one page while PostgreSQL writes the
 * other. Its writes still wait for its turn, and go only if the stamp then is the one the
 * round before wrote (no other manager placed in between) and the cache still holds
 * (that round committed all it placed); otherwise the decision is dropped and made again
 * on fresh numbers. A decision on the round before's placements can only be more
 * cautious than one after them, never book what is not free.
 */
static void maybe_decide_early(baic_sched_t *s) {
    round_t *c = s->cur, *n = s->next;
    if (s->closing || c == NULL || n == NULL || !c->decided || !n->prefetched || n->decided ||
        n->failed || !s->cache_ok || s->cache_ms == 0 ||
        uv_now(s->m->uv) - s->cache_at >= (uint64_t)s->cache_ms)
        return;
    const int borrowed[] = {Q_GROUPS, Q_AGENTS, Q_SLOTS};
    for (size_t i = 0; i < sizeof borrowed / sizeof *borrowed; i++)
        n->res[borrowed[i]] = json_incref(c->res[borrowed[i]]);
    n->res[Q_KP_OCC] = json_incref(s->occ_kp);
    n->res[Q_KP_LIVE] = json_incref(s->live_kp);
    n->fresh = 0;
    n->early = 1;
    decide_compute(n);
}

/* PostgreSQL's text is UTF-8 (the connections' client_encoding) and the column names are
 * ours: no validation per cell (a page is ~36,000 of them). A NULL column is left out (its
 * readers take a missing member as NULL): a page row has several (startup command,
 * bootstrap script, start time, dependencies). */
static json_t *rows_json(const baic_db_result_t *res) {
    json_t *rows = json_array();
    for (int r = 0; r < baic_db_result_rows(res); r++) {
        json_t *row = json_object();
        for (int c = 0; c < baic_db_result_cols(res); c++)
            if (!baic_db_result_is_null(res, r, c))
                json_object_set_new_nocheck(row, baic_db_result_col_name(res, c),
                                            json_string_nocheck(baic_db_result_get(res, r, c)));
        json_array_append_new(rows, row);
    }
    return rows;
}

typedef struct part {
    round_t *r;
    int idx;
} part_t;

static void issue(round_t *r, int from, int to);
static void send_part(round_t *r, int idx, int np, const char *const *params);

static void part_done(const baic_db_result_t *res, int err, const char *errmsg, void *arg) {
    part_t *p = arg;
    round_t *r = p->r;
    if (err != 0) {
        if (!r->failed)
            BAIC_LOG_W("schedule_query_failed", "query=%d error=\"%s\"", p->idx,
                       errmsg ? errmsg : "");
        r->failed = 1;
    } else {
        r->res[p->idx] = rows_json(res);
        if (p->idx == Q_PENDING) {
            /* The policies of what the page names, in the same transaction. */
            json_t *param = baic_policy_round_param(r->res[Q_PENDING]);
            char *text = json_dumps(param, JSON_COMPACT);
            json_decref(param);
            r->pending++;
            send_part(r, Q_POLICY, 1, (const char *[]){text ? text : "{}"});
            free(text);
            maybe_prefetch(r);
        }
    }
    free(p);
    if (--r->pending > 0)
        return;
    if (r->failed || r->s->closing) {
        if (baic_db_tx_rollback(r->tx, NULL, NULL) != 0) { /* connection gone */ }
        round_end(r);
        return;
    }
    baic_sched_t *s = r->s;
    if (r->prefetching) { /* its page is read: the rest when its turn comes */
        r->prefetching = 0;
        r->prefetched = 1;
        if (s->cur == r)
            proceed_lock(r);
        else
            maybe_decide_early(s);
        return;
    }
    if (r->early && r->decided) { /* its turn: the stamp read, is the decision still good? */
        if (stamp_ours(s, r) && s->cache_ok) {
            decide_send(r);
            return;
        }
        BAIC_LOG_I("schedule_early_dropped", "reason=%s",
                   s->cache_ok ? "another-manager-placed" : "round-before-not-all-committed");
        forget_decision(r);
        r->early = 0;
        s->cache_ok = 0;
        r->fresh = 1;
        issue(r, NQ_PAGE, NQ);
        return;
    }
    if (!r->fresh && !stamp_ours(s, r)) {
        r->fresh = 1; /* another manager placed since: read the occupancy */
        issue(r, NQ_LIGHT, NQ);
        return;
    }
    if (r->fresh) {
        cache_rebuild(s, r);
    } else {
        r->res[Q_KP_OCC] = json_incref(s->occ_kp);
        r->res[Q_KP_LIVE] = json_incref(s->live_kp);
    }
    decide(r);
}

/* Sends query idx of the round (counted in r->pending by the caller). */
static void send_part(round_t *r, int idx, int np, const char *const *params) {
    part_t *p = calloc(1, sizeof *p);
    if (p == NULL) {
        r->failed = 1;
        if (--r->pending == 0) {
            baic_db_tx_rollback(r->tx, NULL, NULL);
            round_end(r);
        }
        return;
    }
    p->r = r;
    p->idx = idx;
    if (baic_db_tx_query(r->tx, ROUND_SQL[idx], np, params, part_done, p) != 0)
        part_done(NULL, -ECONNRESET, "connection lost", p);
}

/* Queries [from, to) of the round; Q_POLICY goes once Q_PENDING is read (part_done). */
static void issue(round_t *r, int from, int to) {
    r->pending = to - from - (from <= Q_POLICY && Q_POLICY < to);
    const char *pp[1] = {r->s->page_text}; /* the page's size */
    for (int i = from; i < to; i++)
        if (i != Q_POLICY)
            send_part(r, i, i == Q_PENDING, i == Q_PENDING ? pp : NULL);
}

static void locked_cb(const baic_db_result_t *res, int err, const char *errmsg, void *arg) {
    round_t *r = arg;
    if (err != 0 || r->s->closing) {
        if (err != 0)
            BAIC_LOG_W("schedule_lock_failed", "error=\"%s\"", errmsg ? errmsg : "");
        baic_db_tx_rollback(r->tx, NULL, NULL);
        round_end(r);
        return;
    }
    const char *v = baic_db_result_get(res, 0, 0);
    if (v == NULL || strcmp(v, "t") != 0) {
        /* Another manager schedules now. */
        baic_db_tx_rollback(r->tx, NULL, NULL);
        round_end(r);
        return;
    }
    r->locked = 1;
    baic_sched_t *s = r->s;
    if (r->decided) { /* decided early: only the stamp to check */
        maybe_prefetch(r);
        issue(r, Q_STAMP, Q_STAMP + 1);
        return;
    }
    r->fresh = !s->cache_ok || s->cache_ms == 0 || uv_now(s->m->uv) - s->cache_at >= (uint64_t)s->cache_ms;
    if (r->prefetched) {
        maybe_prefetch(r);
        issue(r, NQ_PAGE, r->fresh ? NQ : NQ_LIGHT);
    } else {
        issue(r, 0, r->fresh ? NQ : NQ_LIGHT);
    }
}

static void proceed_lock(round_t *r) {
    const char *p[1] = {SCHED_LOCK_KEY};
    if (r->prefetched && !r->decided)
        r->t_start = uv_hrtime(); /* its fetch_ms: from its turn, its page read already */
    if (baic_db_tx_query(r->tx, "SELECT pg_try_advisory_xact_lock($1::bigint)", 1, p, locked_cb,
                         r) != 0) {
        baic_db_tx_rollback(r->tx, NULL, NULL);
        round_end(r);
    }
}

static void tx_started(baic_db_tx_t *tx, int err, const char *errmsg, void *arg) {
    round_t *r = arg;
    if (err != 0 || r->s->closing) {
        if (err != 0)
            BAIC_LOG_W("schedule_begin_failed", "error=\"%s\"", errmsg ? errmsg : "");
        if (tx)
            baic_db_tx_rollback(tx, NULL, NULL);
        round_end(r);
        return;
    }
    r->tx = tx;
    if (r->prefetching)
        issue(r, 0, NQ_PAGE);
    else
        proceed_lock(r);
}

static round_t *round_new(baic_sched_t *s) {
    round_t *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    r->s = s;
    r->types = json_object();
    r->alloc = json_object();
    r->deny = json_object();
    r->skips = json_object();
    r->launch = json_object();
    r->scheduled = json_array();
    r->t_start = uv_hrtime();
    return r;
}

/* A new round in *slot (s->cur, or s->next for a prefetch) with its transaction begun;
 * 0, or -1 with *slot NULL again. */
static int round_begin(baic_sched_t *s, round_t **slot, int prefetch) {
    round_t *r = round_new(s);
    if (r == NULL)
        return -1;
    r->prefetching = prefetch;
    *slot = r;
    s->refs++;
    if (baic_db_tx_begin(s->db ? s->db : s->m->db, tx_started, r) != 0) {
        *slot = NULL;
        round_free(r);
        s->refs--;
        return -1;
    }
    return 0;
}

static void round_start(uv_timer_t *t) {
    baic_sched_t *s = t->data;
    if (s->closing || s->running)
        return;
    s->running = 1;
    if (round_begin(s, &s->cur, 0) != 0)
        s->running = 0;
}

/*
 * While a round that found a full page decides and writes, the next round reads the
 * next page on the scheduler's second connection (the current page's rows are locked,
 * so SKIP LOCKED hands it the rows after them, in order), then waits for its turn: the
 * advisory lock and its writes come after the current round ended. It decides on the
 * current round's placements (the occupancy cache), early (maybe_decide_early) or in its
 * turn. PostgreSQL reads one page while the manager decides the other and while the
 * other is written.
 */
static void maybe_prefetch(round_t *r) {
    baic_sched_t *s = r->s;
    if (s->closing || s->next != NULL || s->db == NULL || s->cur != r || !r->locked ||
        !s->placing || json_array_size(r->res[Q_PENDING]) < (size_t)s->page)
        return; /* (a queue the last round placed nothing from is not read ahead) */
    round_begin(s, &s->next, 1);
}

/* Coalesces wake-ups: one round per loop turn at most, another after it if woken meanwhile. */
static void kick(baic_sched_t *s) {
    if (s->closing)
        return;
    if (s->running) {
        s->again = 1;
        return;
    }
    if (!uv_is_active((uv_handle_t *)&s->kick))
        uv_timer_start(&s->kick, round_start, 0, 0);
}

static void on_wake_notice(const char *channel, const char *msg, size_t len, void *arg) {
    (void)channel;
    (void)msg;
    (void)len;
    kick(arg);
}

void baic_scheduler_wake(baic_manager_t *m) {
    if (m->sched == NULL || m->closing)
        return;
    kick(m->sched);
    if (m->bus)
        baic_bus_notify(m->bus, BAIC_SCHED_WAKE_CHANNEL, "wake");
}

static void safety_tick(uv_timer_t *t) {
    kick(t->data);
}

int baic_scheduler_init(baic_manager_t *m) {
    baic_sched_t *s = calloc(1, sizeof *s);
    if (s == NULL)
        return -ENOMEM;
    s->m = m;
    char err[256];
    if (baic_config_get_int(m->config, "manager.deadline_s", 120, &s->deadline_s, err, sizeof err) ||
        baic_config_get_int(m->config, "manager.deadline_pulling_s", 600, &s->pulling_s, err,
                            sizeof err) ||
        baic_config_get_int(m->config, "manager.relaunch_s", 15, &s->relaunch_s, err,
                            sizeof err) ||
        baic_config_get_int(m->config, "manager.terminating_retry_s", 60, &s->terminating_s, err,
                            sizeof err) ||
        baic_config_get_int(m->config, "manager.destroy_tries", 3, &s->destroy_tries, err,
                            sizeof err) ||
        baic_config_get_int(m->config, "manager.scheduler_tick_ms", 2000, &s->tick_ms, err,
                            sizeof err) ||
        baic_config_get_int(m->config, "manager.scheduler_cache_ms", 5000, &s->cache_ms, err,
                            sizeof err) ||
        baic_config_get_int(m->config, "manager.scheduler_launch_defer_ms", 5000,
                            &s->launch_defer_ms, err, sizeof err) ||
        baic_config_get_int(m->config, "manager.scheduler_page", BAIC_SCHED_PAGE, &s->page, err,
                            sizeof err)) {
        BAIC_LOG_E("config_error", "msg=\"%s\"", err);
        free(s);
        return -EINVAL;
    }
    if (s->page < 1 || s->page > 100000) {
        BAIC_LOG_E("config_error", "msg=\"manager.scheduler_page: want 1..100000, got %lld\"",
                   s->page);
        free(s);
        return -EINVAL;
    }
    snprintf(s->page_text, sizeof s->page_text, "%lld", s->page);
    /* The rounds get connections of their own: on the shared pool a round would wait
     * behind every queued launch and event update, and placement would slow down to
     * the pace of what follows it. Two: one round and the next one's prefetch. Without a
     * DSN (tests) they share the pool and do not prefetch. */
    const char *dsn = NULL;
    if (baic_config_get_string(m->config, "db.dsn", NULL, &dsn, err, sizeof err) == 0 && dsn) {
        /* Named, so that its server process can be told apart (pg_stat_activity). */
        char named[2048];
        int uri = strncmp(dsn, "postgres://", 11) == 0 || strncmp(dsn, "postgresql://", 13) == 0;
        int n = snprintf(named, sizeof named, "%s%sapplication_name=baic-scheduler", dsn,
                         !uri ? " " : strchr(dsn, '?') ? "&" : "?");
        if (n < 0 || (size_t)n >= sizeof named || baic_db_pool_new(m->uv, named, 2, &s->db) != 0)
            s->db = NULL;
    }
    char host[64] = "manager";
    gethostname(host, sizeof host - 1);
    unsigned rnd = (unsigned)(uv_hrtime() ^ (uint64_t)getpid() * 2654435761u);
    snprintf(s->me, sizeof s->me, "%.63s:%d:%08x", host, (int)getpid(), rnd);
    s->confs = json_object();
    s->applied = json_object();
    s->failed = json_object();
    s->launchq = json_array();
    uv_timer_init(m->uv, &s->tick);
    uv_timer_init(m->uv, &s->kick);
    uv_timer_init(m->uv, &s->launch_timer);
    uv_idle_init(m->uv, &s->launch_idle);
    s->tick.data = s->kick.data = s->launch_timer.data = s->launch_idle.data = s;
    s->n_open = 4;
    s->refs = 1;
    m->sched = s;
    uv_timer_start(&s->tick, safety_tick, (uint64_t)s->tick_ms, (uint64_t)s->tick_ms);
    if (m->bus)
        baic_bus_listen(m->bus, BAIC_SCHED_WAKE_CHANNEL, on_wake_notice, s, &s->wake_sub);
    kick(s);
    return 0;
}

static void timer_closed(uv_handle_t *h) {
    baic_sched_t *s = h->data;
    if (--s->n_open == 0)
        sched_unref(s);
}

void baic_scheduler_fini(baic_manager_t *m) {
    baic_sched_t *s = m->sched;
    if (s == NULL)
        return;
    m->sched = NULL;
    s->closing = 1;
    uv_timer_stop(&s->tick);
    uv_timer_stop(&s->kick);
    uv_timer_stop(&s->launch_timer);
    uv_idle_stop(&s->launch_idle);
    if (json_array_size(s->launchq) > s->launchq_head)
        BAIC_LOG_W("launches_left", "sessions=%zu (SCHEDULED; the relaunch sweep sends them)",
                   json_array_size(s->launchq) - s->launchq_head);
    uv_close((uv_handle_t *)&s->tick, timer_closed);
    uv_close((uv_handle_t *)&s->kick, timer_closed);
    uv_close((uv_handle_t *)&s->launch_timer, timer_closed);
    uv_close((uv_handle_t *)&s->launch_idle, timer_closed);
    if (s->db) {
        baic_db_pool_close(s->db, NULL, NULL);
        s->db = NULL;
    }
}
