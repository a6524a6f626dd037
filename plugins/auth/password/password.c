/* SPDX-License-Identifier: Apache-2.0 */
/* auth/password: checks passwords against PBKDF2-HMAC-SHA256 hashes, off the loop thread. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <baic/auth.h>
#include <baic/host.h>
#include <baic/plugin.h>

/*
 * Stored format: pbkdf2_sha256$<iterations>$<base64 salt>$<base64 32-byte hash>, standard
 * base64 alphabet with '=' padding (unpadded input is accepted too).
 *
 * Config ([plugin."auth/password"]):
 *   iterations  PBKDF2 rounds for new hashes (default 600000, OWASP's 2023 figure for
 *               HMAC-SHA256). Lower values are allowed so tests run fast; a stored hash with
 *               fewer rounds than this still verifies and is flagged for rehash.
 */

#define PASSWORD_PREFIX "pbkdf2_sha256$"
#define PASSWORD_DEFAULT_ITER 600000
/* A stored count above this is corrupt or hostile: one login must not pin a pool thread
 * for minutes. */
#define PASSWORD_MAX_ITER 20000000UL
#define PASSWORD_SALT_LEN 16
#define PASSWORD_SALT_MAX 64
#define PASSWORD_HASH_LEN 32

#define PASSWORD_MSG_DENIED "User credential mismatch."
#define PASSWORD_MSG_INACTIVE "User account is not active."
#define PASSWORD_MSG_ERROR "Authentication backend error."
#define PASSWORD_MSG_OTP "Two-factor authentication is not supported by this server."

typedef struct password_state {
    const baic_host_t *host;
    unsigned long iterations;
    /* Unknown users are checked against this (random, never matching) so that the time
     * to answer does not reveal which names exist. */
    unsigned char dummy_salt[PASSWORD_SALT_LEN];
    unsigned char dummy_hash[PASSWORD_HASH_LEN];
    /* Lifetime: fini may come while work is queued; the last of the two frees. */
    int inflight;
    int closing;
} password_state_t;

typedef struct password_job {
    password_state_t *st;
    baic_auth_done_cb cb;
    void *arg;
    char *password;
    size_t password_len;
    unsigned char salt[PASSWORD_SALT_MAX];
    size_t salt_len;
    unsigned char want[PASSWORD_HASH_LEN];
    unsigned long iter;
    int usable;     /* the stored hash parsed */
    int user_known; /* there was a user record with a password */
    int inactive;   /* the record's status says it may not log in */
    int otp;        /* the record has a TOTP key this plugin cannot check */
    int work_rc;
    int match;
    char *username;
    char *email;
} password_job_t;

/* ---- base64 (standard alphabet) ---- */

static const char password_b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static size_t password_b64_encode(const unsigned char *in, size_t n, char *out) {
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = password_b64[v >> 18 & 63];
        out[o++] = password_b64[v >> 12 & 63];
        out[o++] = i + 1 < n ? password_b64[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? password_b64[v & 63] : '=';
    }
    out[o] = '\0';
    return o;
}

static int password_b64_val(char c) {
    const char *p = c ? strchr(password_b64, c) : NULL;
    return p ? (int)(p - password_b64) : -1;
}

/* Strict decode of [s, s+n) into out[cap]; padding optional. Returns the length or -1. */
static long password_b64_decode(const char *s, size_t n, unsigned char *out, size_t cap) {
    while (n > 0 && s[n - 1] == '=')
        n--;
    if (n % 4 == 1)
        return -1;
    size_t o = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = password_b64_val(s[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o >= cap)
                return -1;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    return (long)o;
}

/* ---- stored format ---- */

static int password_parse(const char *stored, unsigned long *iter, unsigned char *salt,
                          size_t *salt_len, unsigned char *hash) {
    size_t pl = strlen(PASSWORD_PREFIX);
    if (stored == NULL || strncmp(stored, PASSWORD_PREFIX, pl) != 0)
        return BAIC_EBAD_INPUT;
    const char *p = stored + pl;
    unsigned long it = 0;
    if (*p < '1' || *p > '9')
        return BAIC_EBAD_INPUT;
    while (*p >= '0' && *p <= '9') {
        it = it * 10 + (unsigned long)(*p - '0');
        if (it > PASSWORD_MAX_ITER)
            return BAIC_EBAD_INPUT;
        p++;
    }
    if (*p++ != '$')
        return BAIC_EBAD_INPUT;
    const char *s_end = strchr(p, '$');
    if (s_end == NULL || s_end == p)
        return BAIC_EBAD_INPUT;
    long sl = password_b64_decode(p, (size_t)(s_end - p), salt, PASSWORD_SALT_MAX);
    if (sl <= 0)
        return BAIC_EBAD_INPUT;
    const char *h = s_end + 1;
    if (strchr(h, '$') != NULL)
        return BAIC_EBAD_INPUT;
    unsigned char tmp[PASSWORD_HASH_LEN + 3];
    if (password_b64_decode(h, strlen(h), tmp, sizeof(tmp)) != PASSWORD_HASH_LEN)
        return BAIC_EBAD_INPUT;
    memcpy(hash, tmp, PASSWORD_HASH_LEN);
    *iter = it;
    *salt_len = (size_t)sl;
    return 0;
}

static int password_derive(const char *pw, size_t pw_len, const unsigned char *salt,
                           size_t salt_len, unsigned long iter, unsigned char *out) {
    if (pw_len > INT_MAX || salt_len > INT_MAX || iter > INT_MAX)
        return BAIC_EBAD_INPUT;
    if (!PKCS5_PBKDF2_HMAC(pw, (int)pw_len, salt, (int)salt_len, (int)iter, EVP_sha256(),
                           PASSWORD_HASH_LEN, out))
        return BAIC_EINTERNAL;
    return 0;
}

/* ---- state lifetime ---- */

static void password_state_free(password_state_t *st) {
    OPENSSL_cleanse(st, sizeof(*st));
    free(st);
}

static void password_job_free(password_job_t *j) {
    if (j->password != NULL) {
        OPENSSL_cleanse(j->password, j->password_len);
        free(j->password);
    }
    free(j->username);
    free(j->email);
    OPENSSL_cleanse(j, sizeof(*j));
    free(j);
}

/* ---- authenticate ---- */

static void password_work(void *arg) {
    password_job_t *j = arg;
    unsigned char got[PASSWORD_HASH_LEN];
    if (!j->usable)
        return;
    j->work_rc = password_derive(j->password, j->password_len, j->salt, j->salt_len, j->iter, got);
    j->match = j->work_rc == 0 && CRYPTO_memcmp(got, j->want, PASSWORD_HASH_LEN) == 0;
    OPENSSL_cleanse(got, sizeof(got));
    /* Pool threads live as long as the daemon and OpenSSL keeps per-thread state
     * (error queue, caches) on each; release it after every job so a thread that
     * never runs OpenSSL again holds nothing. Cheap next to the key stretching. */
    OPENSSL_thread_stop();
}

static void password_count(const baic_host_t *h, const char *outcome) {
    char labels[32];
    snprintf(labels, sizeof(labels), "outcome=\"%s\"", outcome);
    h->metric_add(h, "baic_auth_password_attempts_total",
                  "Password checks by auth/password, by outcome.", labels, 1);
}

static void password_done(void *arg, int status) {
    password_job_t *j = arg;
    password_state_t *st = j->st;
    baic_auth_result_t res;
    memset(&res, 0, sizeof(res));
    const char *label = "error";

    if (st->closing || status != 0) {
        res.outcome = BAIC_AUTH_ERROR;
        res.error = BAIC_ECANCELLED;
        res.reason = PASSWORD_MSG_ERROR;
    } else if (!j->usable) {
        res.outcome = BAIC_AUTH_ERROR;
        res.error = BAIC_EBAD_INPUT;
        res.reason = PASSWORD_MSG_ERROR;
        /* Never the hash itself: it is as good as a password to an offline attacker. */
        st->host->log(st->host, BAIC_LOG_WARN, "stored_hash_unusable", "format=unknown");
    } else if (j->work_rc != 0) {
        res.outcome = BAIC_AUTH_ERROR;
        res.error = j->work_rc;
        res.reason = PASSWORD_MSG_ERROR;
        st->host->log(st->host, BAIC_LOG_ERROR, "pbkdf2_failed", "code=%d", j->work_rc);
    } else if (!j->user_known || !j->match) {
        res.outcome = BAIC_AUTH_DENIED;
        res.reason = PASSWORD_MSG_DENIED;
        label = "denied";
    } else if (j->inactive) {
        res.outcome = BAIC_AUTH_DENIED;
        res.reason = PASSWORD_MSG_INACTIVE;
        label = "denied";
    } else if (j->otp) {
        res.outcome = BAIC_AUTH_ERROR;
        res.error = BAIC_ENOT_SUPPORTED;
        res.reason = PASSWORD_MSG_OTP;
    } else {
        res.outcome = BAIC_AUTH_OK;
        res.username = j->username;
        res.email = j->email;
        res.needs_rehash = j->iter < st->iterations;
        label = "ok";
    }
    if (!st->closing)
        password_count(st->host, label);

    j->cb(&res, j->arg);
    password_job_free(j);
    if (--st->inflight == 0 && st->closing)
        password_state_free(st);
}

static char *password_strdup(const char *s) {
    return s ? strdup(s) : NULL;
}

static int password_authenticate(void *state, const baic_auth_request_t *req, baic_auth_done_cb cb,
                                 void *arg) {
    password_state_t *st = state;
    if (req == NULL || cb == NULL ||
        req->size < offsetof(baic_auth_request_t, user) + sizeof(req->user))
        return BAIC_EBAD_INPUT;
    if (req->type != BAIC_AUTH_REQ_PASSWORD)
        return BAIC_ENOT_SUPPORTED;
    if (req->password == NULL)
        return BAIC_EBAD_INPUT;

    password_job_t *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return UV_ENOMEM;
    j->st = st;
    j->cb = cb;
    j->arg = arg;
    j->password_len = strlen(req->password);
    j->password = malloc(j->password_len + 1);
    if (j->password == NULL) {
        password_job_free(j);
        return UV_ENOMEM;
    }
    memcpy(j->password, req->password, j->password_len + 1);

    const json_t *user = json_is_object(req->user) ? req->user : NULL;
    const char *stored = user ? json_string_value(json_object_get(user, "password")) : NULL;
    if (stored != NULL) {
        j->user_known = 1;
        j->usable = password_parse(stored, &j->iter, j->salt, &j->salt_len, j->want) == 0;
        const char *status = json_string_value(json_object_get(user, "status"));
        j->inactive = status != NULL && strcmp(status, "active") != 0;
        const char *totp = json_string_value(json_object_get(user, "totp_key"));
        j->otp = totp != NULL && totp[0] != '\0';
        const char *un = json_string_value(json_object_get(user, "username"));
        const char *em = json_string_value(json_object_get(user, "email"));
        j->username = password_strdup(un ? un : req->username);
        j->email = password_strdup(em);
    } else {
        /* Same work as a real check, against a hash nothing matches. */
        j->usable = 1;
        j->iter = st->iterations;
        memcpy(j->salt, st->dummy_salt, PASSWORD_SALT_LEN);
        j->salt_len = PASSWORD_SALT_LEN;
        memcpy(j->want, st->dummy_hash, PASSWORD_HASH_LEN);
    }

    int rc = st->host->queue_work(st->host, password_work, password_done, j);
    if (rc != 0) {
        password_job_free(j);
        return rc;
    }
    st->inflight++;
    return 0;
}

/* ---- hashing for storage ---- */

static int password_hash(void *state, const char *password, char **out) {
    password_state_t *st = state;
    if (password == NULL || out == NULL)
        return BAIC_EBAD_INPUT;
    unsigned char salt[PASSWORD_SALT_LEN], dk[PASSWORD_HASH_LEN];
    if (RAND_bytes(salt, sizeof(salt)) != 1)
        return BAIC_EINTERNAL;
    int rc = password_derive(password, strlen(password), salt, sizeof(salt), st->iterations, dk);
    if (rc != 0)
        return rc;
    char sb[(PASSWORD_SALT_LEN + 2) / 3 * 4 + 1], hb[(PASSWORD_HASH_LEN + 2) / 3 * 4 + 1];
    password_b64_encode(salt, sizeof(salt), sb);
    password_b64_encode(dk, sizeof(dk), hb);
    OPENSSL_cleanse(dk, sizeof(dk));
    int n = snprintf(NULL, 0, "%s%lu$%s$%s", PASSWORD_PREFIX, st->iterations, sb, hb);
    char *s = st->host->alloc((size_t)n + 1);
    if (s == NULL)
        return UV_ENOMEM;
    snprintf(s, (size_t)n + 1, "%s%lu$%s$%s", PASSWORD_PREFIX, st->iterations, sb, hb);
    *out = s;
    return 0;
}

static int password_needs_rehash(void *state, const char *stored) {
    password_state_t *st = state;
    unsigned long iter;
    unsigned char salt[PASSWORD_SALT_MAX], hash[PASSWORD_HASH_LEN];
    size_t sl;
    if (password_parse(stored, &iter, salt, &sl, hash) != 0)
        return BAIC_EBAD_INPUT;
    return iter < st->iterations || sl < PASSWORD_SALT_LEN;
}

/* ---- plugin ---- */

static int password_init(const baic_host_t *host, const json_t *conf, void **state) {
    unsigned long iterations = PASSWORD_DEFAULT_ITER;
    if (conf != NULL && !json_is_object(conf)) {
        host->log(host, BAIC_LOG_ERROR, "config_invalid", "reason=\"not a table\"");
        return BAIC_ECONFIG_TYPE;
    }
    const json_t *it = conf ? json_object_get(conf, "iterations") : NULL;
    if (it != NULL) {
        if (!json_is_integer(it) || json_integer_value(it) < 1 ||
            (unsigned long)json_integer_value(it) > PASSWORD_MAX_ITER) {
            host->log(host, BAIC_LOG_ERROR, "config_invalid",
                      "key=iterations reason=\"integer 1..%lu expected\"", PASSWORD_MAX_ITER);
            return BAIC_ECONFIG_TYPE;
        }
        iterations = (unsigned long)json_integer_value(it);
    }
    password_state_t *st = calloc(1, sizeof(*st));
    if (st == NULL)
        return UV_ENOMEM;
    st->host = host;
    st->iterations = iterations;
    if (RAND_bytes(st->dummy_salt, sizeof(st->dummy_salt)) != 1 ||
        RAND_bytes(st->dummy_hash, sizeof(st->dummy_hash)) != 1) {
        password_state_free(st);
        return BAIC_EINTERNAL;
    }
    if (iterations < 100000)
        host->log(host, BAIC_LOG_WARN, "weak_config", "iterations=%lu", iterations);
    *state = st;
    return 0;
}

static void password_fini(void *state) {
    password_state_t *st = state;
    st->closing = 1;
    if (st->inflight == 0)
        password_state_free(st);
}

static const baic_auth_ops_t password_ops = {
    .authenticate = password_authenticate,
    .hash_password = password_hash,
    .needs_rehash = password_needs_rehash,
};

BAIC_PLUGIN_DEFINE(auth, password, "1.0.0", password_init, password_fini, &password_ops)
