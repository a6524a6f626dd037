/* SPDX-License-Identifier: Apache-2.0 */
/* Cluster sessions: N kernels, their addresses, an SSH keypair, all-or-none start. */
#include "manager.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "log/log.h"

/*
 * Addressing (docs/cluster-sessions.md): a cluster session gets one /24 out of
 * 100.64.0.0/10, chosen from its id; kernel idx i has .(i+2), .1 is the gateway
 * every agent puts on its per-session bridge. The manager hands every agent the
 * whole list (hostname, address, the agent host that carries it); agents route
 * the addresses of remote kernels to the agent host that carries them.
 */
#define FINAL "('TERMINATED','ERROR','CANCELLED')"

int baic_cluster_mode_arg(baic_http_req_t *req, const json_t *v, char *out, size_t n) {
    snprintf(out, n, "single-node");
    if (v == NULL || json_is_null(v))
        return 0;
    const char *s = json_string_value(v);
    if (s == NULL || (strcmp(s, "single-node") != 0 && strcmp(s, "multi-node") != 0)) {
        baic_api_invalid_params(req, "'clusterMode' must be single-node or multi-node.");
        return -1;
    }
    snprintf(out, n, "%s", s);
    return 0;
}

json_t *baic_cluster_total_slots(const json_t *per_kernel, const json_t *types, int n) {
    json_t *out = json_object();
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)per_kernel, k, v) {
        const char *t = json_string_value(json_object_get(types, k));
        int bytes = t != NULL && strcmp(t, "bytes") == 0;
        int64_t x;
        char buf[48];
        if (json_string_value(v) == NULL || baic_slot_parse(json_string_value(v), bytes, &x) != 0 ||
            x > INT64_MAX / (n > 0 ? n : 1)) {
            json_object_set(out, k, v);
            continue;
        }
        baic_slot_format(x * (n > 0 ? n : 1), bytes, buf, sizeof buf);
        json_object_set_new(out, k, json_string(buf));
    }
    return out;
}

/* ---- the session's SSH keypair: ed25519, OpenSSH formats ---- */

static void put_u32(unsigned char **p, uint32_t v) {
    (*p)[0] = (unsigned char)(v >> 24);
    (*p)[1] = (unsigned char)(v >> 16);
    (*p)[2] = (unsigned char)(v >> 8);
    (*p)[3] = (unsigned char)v;
    *p += 4;
}

static void put_str(unsigned char **p, const void *s, size_t n) {
    put_u32(p, (uint32_t)n);
    memcpy(*p, s, n);
    *p += n;
}

static char *b64(const unsigned char *in, size_t n) {
    char *out = malloc(4 * ((n + 2) / 3) + 1);
    if (out != NULL)
        EVP_EncodeBlock((unsigned char *)out, in, (int)n);
    return out;
}

/* {"type": "ed25519", "private_key": OpenSSH PEM, "public_key": "ssh-ed25519 AAAA.. comment"} */
static json_t *ssh_keypair(const char *comment) {
    EVP_PKEY *key = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
    unsigned char pub[32], priv[32];
    size_t pl = sizeof pub, sl = sizeof priv;
    json_t *out = NULL;
    if (ctx == NULL || EVP_PKEY_keygen_init(ctx) <= 0 || EVP_PKEY_keygen(ctx, &key) <= 0 ||
        EVP_PKEY_get_raw_public_key(key, pub, &pl) <= 0 ||
        EVP_PKEY_get_raw_private_key(key, priv, &sl) <= 0 || pl != 32 || sl != 32)
        goto out;
    size_t cl = strlen(comment);
    unsigned char blob[64], *p = blob;
    put_str(&p, "ssh-ed25519", 11);
    put_str(&p, pub, 32);
    size_t blen = (size_t)(p - blob);
    /* openssh-key-v1, unencrypted: magic, cipher/kdf "none", one key, its public blob,
     * then the private section padded to 8 bytes. */
    unsigned char sec[256], *q = sec;
    uint32_t check;
    RAND_bytes((unsigned char *)&check, sizeof check);
    put_u32(&q, check);
    put_u32(&q, check);
    put_str(&q, "ssh-ed25519", 11);
    put_str(&q, pub, 32);
    unsigned char both[64];
    memcpy(both, priv, 32);
    memcpy(both + 32, pub, 32);
    put_str(&q, both, 64);
    put_str(&q, comment, cl);
    for (unsigned char pad = 1; (q - sec) % 8 != 0; pad++)
        *q++ = pad;
    size_t slen = (size_t)(q - sec);
    unsigned char file[512], *f = file;
    memcpy(f, "openssh-key-v1", 15);
    f += 15;
    put_str(&f, "none", 4);
    put_str(&f, "none", 4);
    put_str(&f, "", 0);
    put_u32(&f, 1);
    put_str(&f, blob, blen);
    put_str(&f, sec, slen);
    char *fb = b64(file, (size_t)(f - file)), *pb = b64(blob, blen);
    if (fb != NULL && pb != NULL) {
        size_t fl = strlen(fb);
        char *pem = malloc(fl + fl / 70 + 128);
        if (pem != NULL) {
            size_t o = (size_t)sprintf(pem, "-----BEGIN OPENSSH PRIVATE KEY-----\n");
            for (size_t i = 0; i < fl; i += 70)
                o += (size_t)sprintf(pem + o, "%.70s\n", fb + i);
            sprintf(pem + o, "-----END OPENSSH PRIVATE KEY-----\n");
            char *pubtxt = malloc(strlen(pb) + cl + 16);
            if (pubtxt != NULL) {
                sprintf(pubtxt, "ssh-ed25519 %s %s", pb, comment);
                out = json_pack("{s:s, s:s, s:s}", "type", "ed25519", "private_key", pem,
                                "public_key", pubtxt);
                free(pubtxt);
            }
            free(pem);
        }
    }
    free(fb);
    free(pb);
    OPENSSL_cleanse(priv, sizeof priv);
    OPENSSL_cleanse(both, sizeof both);
    OPENSSL_cleanse(sec, sizeof sec);
out:
    EVP_PKEY_free(key);
    EVP_PKEY_CTX_free(ctx);
    return out;
}

/* ---- launch ---- */

typedef struct claunch {
    baic_manager_t *m;
    json_t *row;     /* the scheduler's row (main kernel) */
    json_t *kernels; /* [{id, agent_addr}] of the session */
    json_t *accepted; /* agent addrs that answered 202 */
    json_t *suspect;  /* agent addrs whose answer was lost or 5xx */
    int waiting, failed;
    char why[300];
} claunch_t;

static const char *col(const json_t *row, const char *name) {
    return json_string_value(json_object_get(row, name));
}

static void claunch_free(claunch_t *c) {
    json_decref(c->row);
    json_decref(c->kernels);
    json_decref(c->accepted);
    json_decref(c->suspect);
    free(c);
}

static void preparing_done(const baic_db_result_t *res, int err, const char *errmsg, void *arg) {
    claunch_t *c = arg;
    if (err != 0) {
        BAIC_LOG_W("session_update_failed", "session=%s status=PREPARING error=\"%s\"",
                   col(c->row, "id"), errmsg ? errmsg : "");
    } else {
        for (int i = 0; i < baic_db_result_rows(res); i++)
            baic_session_event(c->m, "kernel_preparing", col(c->row, "id"), col(c->row, "name"),
                               col(c->row, "access_key"), NULL, baic_db_result_get(res, i, 0),
                               INT32_MIN);
        if (baic_db_result_rows(res) > 0)
            baic_session_event(c->m, "session_preparing", col(c->row, "id"),
                               col(c->row, "name"), col(c->row, "access_key"), NULL, NULL,
                               INT32_MIN);
    }
    claunch_free(c);
}

static int in_list(const json_t *list, const char *s) {
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v) if (strcmp(json_string_value(v), s) == 0) return 1;
    return 0;
}

static void all_answered(claunch_t *c) {
    baic_manager_t *m = c->m;
    if (!c->failed) {
        const char *p[1] = {col(c->row, "id")};
        if (baic_db_query(m->db,
                          "WITH k AS (UPDATE kernels SET status = 'PREPARING',"
                          " status_changed = now(),"
                          " status_history = status_history || jsonb_build_object('PREPARING',"
                          " now()::text) WHERE session_id = $1::uuid AND status = 'SCHEDULED'"
                          " RETURNING id), s AS (UPDATE sessions SET status = 'PREPARING',"
                          " status_changed = now(), status_history = status_history ||"
                          " jsonb_build_object('PREPARING', now()::text) WHERE id = $1::uuid"
                          " AND status = 'SCHEDULED' RETURNING id) SELECT id::text FROM k",
                          1, p, preparing_done, c) != 0)
            claunch_free(c);
        return;
    }
    /* One agent refused: no kernel of the session may run. Kernels on agents that
     * accepted (or whose answer was lost) are destroyed there; every one ends ERROR. */
    BAIC_LOG_W("cluster_start_failed", "session=%s reason=\"%s\"", col(c->row, "id"), c->why);
    size_t i;
    json_t *k;
    json_array_foreach(c->kernels, i, k) {
        const char *kid = col(k, "id"), *addr = col(k, "agent_addr");
        baic_kernel_finish(m, kid, "ERROR", c->why, INT32_MIN);
        if (addr != NULL && (in_list(c->accepted, addr) || in_list(c->suspect, addr)))
            baic_agent_destroy_kernel(m, addr, kid, "failed-to-start");
    }
    claunch_free(c);
}

typedef struct cpart {
    claunch_t *c;
    char addr[136];
} cpart_t;

static void agent_answered(int status, json_t *answer, int err, void *arg) {
    cpart_t *p = arg;
    claunch_t *c = p->c;
    if (baic_agent_create_accepted(status, answer, err)) {
        json_array_append_new(c->accepted, json_string(p->addr));
    } else {
        const char *msg = json_string_value(json_object_get(answer, "msg"));
        if (msg == NULL)
            msg = json_string_value(json_object_get(answer, "title"));
        if (!c->failed) {
            if (err != 0)
                snprintf(c->why, sizeof c->why,
                         "failed-to-start: agent %.128s not reachable (%d)", p->addr, err);
            else
                snprintf(c->why, sizeof c->why, "failed-to-start: agent answered %d%s%.200s",
                         status, msg ? ": " : "", msg ? msg : "");
        }
        c->failed = 1;
        if (err != 0 || status >= 500)
            json_array_append_new(c->suspect, json_string(p->addr));
    }
    free(p);
    if (--c->waiting == 0 && !c->m->closing)
        all_answered(c);
    else if (c->waiting == 0)
        claunch_free(c);
}

/* host part of "http://host:port" / "host:port" / "[v6]:port" */
static void addr_host(const char *addr, char *out, size_t n) {
    const char *s = strstr(addr, "://"), *e;
    s = s ? s + 3 : addr;
    if (*s == '[') {
        s++;
        e = strchr(s, ']');
    } else {
        e = strrchr(s, ':');
    }
    size_t len = e ? (size_t)(e - s) : strlen(s);
    if (len >= n)
        len = n - 1;
    memcpy(out, s, len);
    out[len] = '\0';
}

static void kernels_loaded(const baic_db_result_t *res, int err, const char *errmsg, void *arg) {
    claunch_t *c = arg;
    baic_manager_t *m = c->m;
    int n = err == 0 ? baic_db_result_rows(res) : 0;
    if (err != 0 || n == 0 || m->closing) {
        if (err != 0)
            BAIC_LOG_W("cluster_load_failed", "session=%s error=\"%s\"", col(c->row, "id"),
                       errmsg ? errmsg : "");
        claunch_free(c);
        return;
    }
    const char *sid = col(c->row, "id");
    /* The session's /24 in 100.64.0.0/10, from its id (docs/cluster-sessions.md). */
    unsigned h = 2166136261u;
    for (const char *s = sid; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    unsigned net = h % 16384;
    char subnet[32];
    snprintf(subnet, sizeof subnet, "100.%u.%u.0/24", 64 + net / 256, net % 256);
    json_t *hosts = json_array();
    json_t *byagent = json_object();
    json_t *base = baic_sched_kernel_spec(c->row);
    for (int i = 0; i < n; i++) {
        const char *kid = baic_db_result_get(res, i, 0), *role = baic_db_result_get(res, i, 2);
        const char *hn = baic_db_result_get(res, i, 3), *addr = baic_db_result_get(res, i, 4);
        int idx = atoi(baic_db_result_get(res, i, 1));
        char ip[32], host[136];
        snprintf(ip, sizeof ip, "100.%u.%u.%d", 64 + net / 256, net % 256, idx + 2);
        addr_host(addr ? addr : "", host, sizeof host);
        json_array_append_new(hosts, json_pack("{s:s, s:s, s:i, s:s, s:s, s:s}", "hostname", hn,
                                               "role", role, "idx", idx, "address", ip,
                                               "agent_host", host, "kernel_id", kid));
        json_array_append_new(c->kernels,
                              json_pack("{s:s, s:s?}", "id", kid, "agent_addr", addr));
        if (addr == NULL)
            continue;
        json_t *ks = json_deep_copy(base);
        json_object_set_new(ks, "kernel_id", json_string(kid));
        json_object_set_new(ks, "cluster_role", json_string(role));
        json_object_set_new(ks, "cluster_idx", json_integer(idx));
        json_object_set_new(ks, "cluster_hostname", json_string(hn));
        json_t *slots = json_loads(baic_db_result_get(res, i, 5) ?: "{}", 0, NULL);
        json_object_set_new(ks, "resource_slots", json_is_object(slots) ? slots : json_object());
        if (!json_is_object(slots))
            json_decref(slots);
        json_t *list = json_object_get(byagent, addr);
        if (list == NULL) {
            list = json_array();
            json_object_set_new(byagent, addr, list);
        }
        json_array_append_new(list, ks);
    }
    json_decref(base);
    char comment[64];
    snprintf(comment, sizeof comment, "work@%.36s", sid);
    json_t *ssh = ssh_keypair(comment);
    if (ssh == NULL)
        BAIC_LOG_W("cluster_ssh_keygen_failed", "session=%s", sid);
    json_t *cluster = json_pack("{s:s, s:i, s:s, s:o, s:o?}", "mode",
                                col(c->row, "cluster_mode") ?: "single-node", "size", n,
                                "subnet", subnet, "hosts", hosts, "ssh", ssh);
    baic_session_event(m, "session_scheduled", sid, col(c->row, "name"),
                       col(c->row, "access_key"), NULL, NULL, INT32_MIN);
    const char *addr;
    json_t *list;
    c->waiting = (int)json_object_size(byagent) + 1;
    json_object_foreach(byagent, addr, list) {
        json_t *body = json_pack("{s:s, s:s?, s:s?, s:i, s:O, s:O}", "session_id", sid,
                                 "session_name", col(c->row, "name"), "access_key",
                                 col(c->row, "access_key"), "cluster_size", n, "cluster",
                                 cluster, "kernels", list);
        cpart_t *p = calloc(1, sizeof *p);
        if (p == NULL) {
            c->failed = 1;
            snprintf(c->why, sizeof c->why, "failed-to-start: out of memory");
            c->waiting--;
            json_decref(body);
            continue;
        }
        p->c = c;
        snprintf(p->addr, sizeof p->addr, "%s", addr);
        BAIC_LOG_I("session_scheduled", "session=%s agent=%s kernels=%zu", sid, addr,
                   json_array_size(list));
        if (baic_agent_rpc(m, addr, "POST", "/rpc/create_kernels", body, 30000, agent_answered,
                           p) != 0)
            agent_answered(0, NULL, -EINVAL, p);
        json_decref(body);
    }
    json_decref(cluster);
    json_decref(byagent);
    if (--c->waiting == 0)
        all_answered(c);
}

void baic_cluster_launch(baic_manager_t *m, const json_t *row) {
    claunch_t *c = calloc(1, sizeof *c);
    if (c == NULL)
        return;
    c->m = m;
    c->row = json_deep_copy(row);
    c->kernels = json_array();
    c->accepted = json_array();
    c->suspect = json_array();
    const char *p[1] = {col(row, "id")};
    if (baic_db_query(m->db,
                      "SELECT id::text, cluster_idx, cluster_role, cluster_hostname, agent_addr,"
                      " requested_slots::text FROM kernels WHERE session_id = $1::uuid"
                      " AND status = 'SCHEDULED' ORDER BY cluster_idx",
                      1, p, kernels_loaded, c) != 0)
        claunch_free(c);
}

/* ---- one member ended: the rest follow ---- */

typedef struct reap {
    baic_manager_t *m;
    char session_id[40];
} reap_t;

/* Members that ended at the same moment each saw the other still live; whoever looks
 * last ends the session. */
static void finalized(const baic_db_result_t *res, int err, const char *errmsg, void *arg) {
    reap_t *r = arg;
    if (err != 0)
        BAIC_LOG_W("cluster_finalize_failed", "session=%s error=\"%s\"", r->session_id,
                   errmsg ? errmsg : "");
    else if (baic_db_result_rows(res) > 0) {
        BAIC_LOG_I("cluster_session_ended", "session=%s status=%s", r->session_id,
                   baic_db_result_get(res, 0, 2));
        baic_session_event(r->m, "session_terminated", r->session_id,
                           baic_db_result_get(res, 0, 0), baic_db_result_get(res, 0, 1),
                           baic_db_result_get(res, 0, 3), NULL, INT32_MIN);
        baic_scheduler_wake(r->m);
    }
    free(r);
}

static void reaped(const baic_db_result_t *res, int err, const char *errmsg, void *arg) {
    reap_t *r = arg;
    if (err != 0) {
        BAIC_LOG_W("cluster_reap_failed", "session=%s error=\"%s\"", r->session_id,
                   errmsg ? errmsg : "");
    } else {
        for (int i = 0; i < baic_db_result_rows(res); i++) {
            const char *what = baic_db_result_get(res, i, 0), *kid = baic_db_result_get(res, i, 1);
            BAIC_LOG_I("cluster_member_reaped", "session=%s kernel=%s how=%s", r->session_id,
                       kid, what);
            if (strcmp(what, "destroy") == 0)
                baic_agent_destroy_kernel(r->m, baic_db_result_get(res, i, 2), kid,
                                          "cluster-member-ended");
            else
                baic_kernel_finish(r->m, kid, "CANCELLED", "cluster-member-ended", INT32_MIN);
        }
        const char *p[1] = {r->session_id};
        if (baic_db_query(
                r->m->db,
                "UPDATE sessions s SET status = x.st, status_changed = now(),"
                " terminated_at = now(), status_info = COALESCE(x.why, s.status_info),"
                " status_history = s.status_history || jsonb_build_object(x.st, now()::text)"
                " FROM (SELECT CASE WHEN bool_or(status = 'ERROR') THEN 'ERROR' ELSE"
                "   'TERMINATED' END AS st, (array_agg(status_info ORDER BY status = 'ERROR' DESC,"
                "   status_changed))[1] AS why FROM kernels WHERE session_id = $1::uuid) x"
                " WHERE s.id = $1::uuid AND s.status NOT IN " FINAL
                "   AND NOT EXISTS (SELECT 1 FROM kernels k WHERE k.session_id = s.id"
                "   AND k.status NOT IN " FINAL ")"
                " RETURNING s.name, s.access_key, s.status, s.status_info",
                1, p, finalized, r) == 0)
            return;
    }
    free(r);
}

void baic_cluster_member_ended(baic_manager_t *m, const char *session_id) {
    reap_t *r = calloc(1, sizeof *r);
    if (r == NULL)
        return;
    r->m = m;
    snprintf(r->session_id, sizeof r->session_id, "%s", session_id);
    const char *p[1] = {session_id};
    if (baic_db_query(
            m->db,
            "WITH s AS (SELECT id FROM sessions WHERE id = $1::uuid AND cluster_size > 1),"
            " t AS (UPDATE kernels k SET status = 'TERMINATING', status_changed = now(),"
            "   destroy_tries = 1, status_info = 'cluster-member-ended',"
            "   status_history = k.status_history || jsonb_build_object('TERMINATING',"
            "   now()::text) FROM s WHERE k.session_id = s.id AND k.agent_addr IS NOT NULL"
            "   AND k.status NOT IN " FINAL " AND k.status <> 'TERMINATING'"
            "   RETURNING k.id::text AS id, k.agent_addr)"
            " SELECT 'destroy', id, agent_addr FROM t UNION ALL"
            " SELECT 'finish', k.id::text, NULL FROM kernels k JOIN s ON k.session_id = s.id"
            "   WHERE k.agent_addr IS NULL AND k.status NOT IN " FINAL,
            1, p, reaped, r) != 0)
        free(r);
}
