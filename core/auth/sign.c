/* SPDX-License-Identifier: Apache-2.0 */
/* Backend.AI HMAC request signing: parsers, key derivation, signature and its checks. */
#include "auth/sign.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <baic/errors.h>

#include "util/hex.h"

/* ---- small text helpers (locale-independent on purpose: header bytes are not text) ---- */

static int sign_is_space(char c) {
    return c == ' ' || c == '\t';
}

static char sign_lower(char c) {
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

static int sign_is_digit(char c) {
    return c >= '0' && c <= '9';
}

static int sign_is_alpha(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static void sign_trim(const char **b, const char **e) {
    while (*b < *e && sign_is_space(**b))
        (*b)++;
    while (*e > *b && sign_is_space((*e)[-1]))
        (*e)--;
}

/* Case-sensitive compare of [b, e) with a NUL-terminated word. */
static int sign_span_eq(const char *b, const char *e, const char *word) {
    size_t n = strlen(word);
    return (size_t)(e - b) == n && memcmp(b, word, n) == 0;
}

static int sign_span_ieq(const char *b, const char *e, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(e - b) != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (sign_lower(b[i]) != sign_lower(word[i]))
            return 0;
    return 1;
}

/* ---- hashes ---- */

/* hashlib.algorithms_guaranteed minus shake_*, which Python's hmac cannot use either. */
static const struct {
    const char *py;
    const char *ossl;
} sign_hashes[] = {
    {"md5", "MD5"},           {"sha1", "SHA1"},           {"sha224", "SHA2-224"},
    {"sha256", "SHA2-256"},   {"sha384", "SHA2-384"},     {"sha512", "SHA2-512"},
    {"sha3_224", "SHA3-224"}, {"sha3_256", "SHA3-256"},   {"sha3_384", "SHA3-384"},
    {"sha3_512", "SHA3-512"}, {"blake2b", "BLAKE2B-512"}, {"blake2s", "BLAKE2S-256"},
};

static const char *sign_ossl_name(const char *py) {
    if (py == NULL)
        return NULL;
    for (size_t i = 0; i < sizeof(sign_hashes) / sizeof(sign_hashes[0]); i++)
        if (strcmp(py, sign_hashes[i].py) == 0)
            return sign_hashes[i].ossl;
    return NULL;
}

int baic_auth_hash_supported(const char *name) {
    return sign_ossl_name(name) != NULL;
}

/* ---- Authorization header ---- */

static int sign_hdr_fail(baic_auth_hdr_t *out, baic_auth_fail_t why) {
    out->fail = why;
    out->reason = baic_auth_fail_msg(why);
    return BAIC_EBAD_INPUT;
}

/* Copies [b, e) into dst[cap] with a NUL; 0, or -1 when it does not fit. */
static int sign_copy(char *dst, size_t cap, const char *b, const char *e) {
    size_t n = (size_t)(e - b);
    if (n >= cap)
        return -1;
    memcpy(dst, b, n);
    dst[n] = '\0';
    return 0;
}

static int sign_parse_method(baic_auth_hdr_t *out, const char *b, const char *e) {
    /* "HMAC-SHA256" → lower-cased, split at '-', exactly two parts (as the manager). */
    const char *dash = memchr(b, '-', (size_t)(e - b));
    if (dash == NULL || memchr(dash + 1, '-', (size_t)(e - dash - 1)) != NULL)
        return -1;
    if (!sign_span_ieq(b, dash, "hmac"))
        return -1;
    char name[BAIC_AUTH_HASH_NAME_MAX];
    if (sign_copy(name, sizeof(name), dash + 1, e) != 0)
        return -1;
    for (char *p = name; *p; p++)
        *p = sign_lower(*p);
    if (!baic_auth_hash_supported(name))
        return -1;
    memcpy(out->hash, name, sizeof(name));
    return 0;
}

int baic_auth_parse_header(const char *value, size_t len, baic_auth_hdr_t *out) {
    if (out == NULL)
        return BAIC_EBAD_INPUT;
    memset(out, 0, sizeof(*out));
    if (value == NULL)
        return sign_hdr_fail(out, BAIC_AUTH_FAIL_HEADER);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)value[i];
        /* NUL or control bytes would truncate or smuggle into C strings downstream. */
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return sign_hdr_fail(out, BAIC_AUTH_FAIL_HEADER);
    }
    const char *b = value, *e = value + len;
    sign_trim(&b, &e);
    const char *sp = b;
    while (sp < e && !sign_is_space(*sp))
        sp++;
    if (sp == e)
        return sign_hdr_fail(out, BAIC_AUTH_FAIL_HEADER);
    if (sign_span_eq(b, sp, "Sorna"))
        out->legacy_scheme = 1;
    else if (!sign_span_eq(b, sp, "BackendAI"))
        return sign_hdr_fail(out, BAIC_AUTH_FAIL_SCHEME);

    const char *m_b = NULL, *m_e = NULL, *c_b = NULL, *c_e = NULL;
    const char *p = sp;
    while (p < e) {
        const char *seg_e = memchr(p, ',', (size_t)(e - p));
        if (seg_e == NULL)
            seg_e = e;
        const char *sb = p, *se = seg_e;
        p = seg_e < e ? seg_e + 1 : e;
        sign_trim(&sb, &se);
        if (sb == se)
            continue; /* tolerate ", ," and a trailing comma */
        const char *eq = memchr(sb, '=', (size_t)(se - sb));
        if (eq == NULL)
            return sign_hdr_fail(out, BAIC_AUTH_FAIL_PARAMS);
        const char *kb = sb, *ke = eq, *vb = eq + 1, *ve = se;
        sign_trim(&kb, &ke);
        sign_trim(&vb, &ve);
        /* Later duplicates win, as with the manager's dict. */
        if (sign_span_eq(kb, ke, "signMethod")) {
            m_b = vb;
            m_e = ve;
        } else if (sign_span_eq(kb, ke, "credential")) {
            c_b = vb;
            c_e = ve;
        }
    }
    if (m_b == NULL || c_b == NULL)
        return sign_hdr_fail(out, BAIC_AUTH_FAIL_PARAMS);
    const char *colon = memchr(c_b, ':', (size_t)(c_e - c_b));
    if (colon == NULL || colon == c_b || colon + 1 == c_e)
        return sign_hdr_fail(out, BAIC_AUTH_FAIL_PARAMS);
    if (sign_copy(out->access_key, sizeof(out->access_key), c_b, colon) != 0 ||
        sign_copy(out->signature, sizeof(out->signature), colon + 1, c_e) != 0)
        return sign_hdr_fail(out, BAIC_AUTH_FAIL_PARAMS);
    if (sign_parse_method(out, m_b, m_e) != 0) {
        out->access_key[0] = out->signature[0] = '\0';
        return sign_hdr_fail(out, BAIC_AUTH_FAIL_METHOD);
    }
    return 0;
}

/* ---- calendar ---- */

static int sign_is_leap(int64_t y) {
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int sign_month_days(int64_t y, int m) {
    static const int d[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && sign_is_leap(y) ? 29 : d[m - 1];
}

/* Days from 0001-01-01 to January 1st of year y (y >= 1), proleptic Gregorian. */
static int64_t sign_days_before_year(int64_t y) {
    int64_t p = y - 1;
    return p * 365 + p / 4 - p / 100 + p / 400;
}

static int64_t sign_days_before_month(int64_t y, int m) {
    int64_t n = 0;
    for (int i = 1; i < m; i++)
        n += sign_month_days(y, i);
    return n;
}

#define SIGN_EPOCH_DAYS 719162 /* sign_days_before_year(1970) */

static int64_t sign_epoch_day(int64_t y, int m, int d) {
    return sign_days_before_year(y) + sign_days_before_month(y, m) + (d - 1) - SIGN_EPOCH_DAYS;
}

int baic_auth_date_yyyymmdd(int64_t epoch_s, int offset_min, char out[9]) {
    int64_t t = epoch_s + (int64_t)offset_min * 60;
    int64_t day = t / 86400 - (t % 86400 < 0); /* floor */
    int64_t n = day + SIGN_EPOCH_DAYS;         /* days since 0001-01-01 */
    if (n < 0 || n >= sign_days_before_year(10000))
        return BAIC_EBAD_INPUT;
    int64_t y = n * 400 / 146097 + 1; /* 146097 days per 400 years; then correct */
    while (y > 1 && sign_days_before_year(y) > n)
        y--;
    while (sign_days_before_year(y + 1) <= n)
        y++;
    int64_t doy = n - sign_days_before_year(y);
    int m = 1;
    while (doy >= sign_month_days(y, m)) {
        doy -= sign_month_days(y, m);
        m++;
    }
    int d = (int)doy + 1;
    out[0] = (char)('0' + y / 1000);
    out[1] = (char)('0' + y / 100 % 10);
    out[2] = (char)('0' + y / 10 % 10);
    out[3] = (char)('0' + y % 10);
    out[4] = (char)('0' + m / 10);
    out[5] = (char)('0' + m % 10);
    out[6] = (char)('0' + d / 10);
    out[7] = (char)('0' + d % 10);
    out[8] = '\0';
    return 0;
}

/* ---- date parsing ---- */

typedef struct sign_cur {
    const char *p, *e;
} sign_cur_t;

/* Exactly n digits. */
static int sign_num(sign_cur_t *c, int n, int *out) {
    if (c->e - c->p < n)
        return -1;
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!sign_is_digit(c->p[i]))
            return -1;
        v = v * 10 + (c->p[i] - '0');
    }
    c->p += n;
    *out = v;
    return 0;
}

static int sign_peek_digit(const sign_cur_t *c) {
    return c->p < c->e && sign_is_digit(*c->p);
}

static int sign_eat(sign_cur_t *c, char ch) {
    if (c->p < c->e && *c->p == ch) {
        c->p++;
        return 1;
    }
    return 0;
}

static int sign_skip_spaces(sign_cur_t *c) {
    const char *s = c->p;
    while (c->p < c->e && sign_is_space(*c->p))
        c->p++;
    return c->p != s;
}

/* Fraction after '.' or ',': any number of digits, microseconds kept (truncated). */
static int sign_fraction(sign_cur_t *c, int *us) {
    if (!sign_peek_digit(c))
        return -1;
    int v = 0, n = 0;
    while (sign_peek_digit(c)) {
        if (n < 6) {
            v = v * 10 + (*c->p - '0');
            n++;
        }
        c->p++;
    }
    while (n++ < 6)
        v *= 10;
    *us = v;
    return 0;
}

/*
 * Zone designator at the cursor: Z, UTC, UT, GMT (any case), ±hh, ±hhmm, ±hh:mm.
 * Nothing at all means naive, i.e. UTC. Leading spaces allowed. Python refuses offsets
 * of 24 hours or more, so do we.
 */
static int sign_zone(sign_cur_t *c, int *offset_min) {
    *offset_min = 0;
    sign_skip_spaces(c);
    if (c->p == c->e)
        return 0;
    const char *wb = c->p;
    while (c->p < c->e && sign_is_alpha(*c->p))
        c->p++;
    if (c->p != wb) {
        if (!sign_span_ieq(wb, c->p, "z") && !sign_span_ieq(wb, c->p, "utc") &&
            !sign_span_ieq(wb, c->p, "ut") && !sign_span_ieq(wb, c->p, "gmt"))
            return -1;
        /* "GMT+0200"-style suffixes are not something clients send; refuse them. */
        return 0;
    }
    int sign = 0;
    if (sign_eat(c, '+'))
        sign = 1;
    else if (sign_eat(c, '-'))
        sign = -1;
    else
        return -1;
    int hh, mm = 0;
    if (sign_num(c, 2, &hh) != 0)
        return -1;
    if (sign_eat(c, ':')) {
        if (sign_num(c, 2, &mm) != 0)
            return -1;
    } else if (sign_peek_digit(c)) {
        if (sign_num(c, 2, &mm) != 0)
            return -1;
    }
    if (hh > 23 || mm > 59)
        return -1;
    *offset_min = sign * (hh * 60 + mm);
    return 0;
}

typedef struct sign_tm {
    int y, mo, d, h, mi, s, us;
} sign_tm_t;

/* HH:MM[:SS[.frac]] (extended) or HHMM[SS[.frac]] (basic). */
static int sign_time(sign_cur_t *c, sign_tm_t *t, int basic) {
    if (sign_num(c, 2, &t->h) != 0)
        return -1;
    if (!basic && !sign_eat(c, ':'))
        return -1;
    if (sign_num(c, 2, &t->mi) != 0)
        return -1;
    if (basic ? sign_peek_digit(c) : sign_eat(c, ':')) {
        if (sign_num(c, 2, &t->s) != 0)
            return -1;
        if (sign_eat(c, '.') || sign_eat(c, ','))
            if (sign_fraction(c, &t->us) != 0)
                return -1;
    }
    return 0;
}

static int sign_iso(sign_cur_t *c, sign_tm_t *t, int *offset_min) {
    int basic = 0;
    if (sign_num(c, 4, &t->y) != 0)
        return -1;
    if (sign_eat(c, '-')) {
        if (sign_num(c, 2, &t->mo) != 0 || !sign_eat(c, '-') || sign_num(c, 2, &t->d) != 0)
            return -1;
    } else {
        basic = 1;
        if (sign_num(c, 2, &t->mo) != 0 || sign_num(c, 2, &t->d) != 0)
            return -1;
    }
    if (c->p == c->e)
        return 0; /* a date alone: midnight UTC */
    if (sign_eat(c, 'T') || sign_eat(c, 't')) {
        /* a basic-form date goes with a basic-form time and vice versa */
    } else if (!basic && sign_skip_spaces(c)) {
        if (c->p == c->e)
            return 0;
    } else {
        return -1;
    }
    if (sign_time(c, t, basic) != 0)
        return -1;
    return sign_zone(c, offset_min);
}

static int sign_month_name(const char *b, const char *e) {
    static const char *names[12] = {"jan", "feb", "mar", "apr", "may", "jun",
                                    "jul", "aug", "sep", "oct", "nov", "dec"};
    for (int i = 0; i < 12; i++)
        if (sign_span_ieq(b, e, names[i]))
            return i + 1;
    return 0;
}

static int sign_day_name(const char *b, const char *e) {
    static const char *names[7] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};
    for (int i = 0; i < 7; i++)
        if (sign_span_ieq(b, e, names[i]))
            return 1;
    return 0;
}

/* [Day, ]D[D] Mon YYYY HH:MM[:SS] [zone] */
static int sign_rfc1123(sign_cur_t *c, sign_tm_t *t, int *offset_min) {
    if (c->p < c->e && sign_is_alpha(*c->p)) {
        const char *wb = c->p;
        while (c->p < c->e && sign_is_alpha(*c->p))
            c->p++;
        if (!sign_day_name(wb, c->p) || !sign_eat(c, ','))
            return -1;
        sign_skip_spaces(c);
    }
    if (sign_num(c, 2, &t->d) != 0 && sign_num(c, 1, &t->d) != 0)
        return -1;
    if (!sign_skip_spaces(c))
        return -1;
    const char *mb = c->p;
    while (c->p < c->e && sign_is_alpha(*c->p))
        c->p++;
    if ((t->mo = sign_month_name(mb, c->p)) == 0)
        return -1;
    if (!sign_skip_spaces(c) || sign_num(c, 4, &t->y) != 0 || !sign_skip_spaces(c))
        return -1;
    if (sign_time(c, t, 0) != 0)
        return -1;
    return sign_zone(c, offset_min);
}

int baic_auth_parse_date_us(const char *s, size_t len, int64_t *epoch_us, int *offset_min) {
    if (s == NULL || epoch_us == NULL || offset_min == NULL)
        return BAIC_EBAD_INPUT;
    sign_cur_t c = {s, s + len};
    sign_trim(&c.p, &c.e);
    if (c.p == c.e)
        return BAIC_EBAD_INPUT;
    sign_tm_t t = {0, 0, 0, 0, 0, 0, 0};
    int off = 0, rc;
    /* RFC 1123 starts with a day name, or "15 Sep"; ISO starts with four digits. */
    int rfc = sign_is_alpha(*c.p) ||
              (c.e - c.p >= 2 && sign_is_digit(c.p[0]) &&
               (sign_is_space(c.p[1]) ||
                (sign_is_digit(c.p[1]) && c.e - c.p >= 3 && sign_is_space(c.p[2]))));
    rc = rfc ? sign_rfc1123(&c, &t, &off) : sign_iso(&c, &t, &off);
    if (rc != 0 || c.p != c.e)
        return BAIC_EBAD_INPUT;
    if (t.y < 1 || t.mo < 1 || t.mo > 12 || t.d < 1 || t.d > sign_month_days(t.y, t.mo) ||
        t.h > 23 || t.mi > 59 || t.s > 59)
        return BAIC_EBAD_INPUT;
    int64_t secs =
        sign_epoch_day(t.y, t.mo, t.d) * 86400 + t.h * 3600 + t.mi * 60 + t.s - (int64_t)off * 60;
    *epoch_us = secs * 1000000 + t.us;
    *offset_min = off;
    return 0;
}

int baic_auth_parse_date(const char *s, size_t len, int64_t *epoch_s, int *offset_min) {
    int64_t us;
    if (epoch_s == NULL)
        return BAIC_EBAD_INPUT;
    int rc = baic_auth_parse_date_us(s, len, &us, offset_min);
    if (rc != 0)
        return rc;
    *epoch_s = us / 1000000 - (us % 1000000 < 0);
    return 0;
}

/* ---- Content-Type ---- */

int baic_auth_content_mime(const char *content_type, char *out, size_t out_size) {
    const char *mime = NULL;
    const char *b = NULL, *e = NULL;
    if (content_type == NULL) {
        mime = "application/octet-stream";
    } else {
        b = content_type;
        e = strchr(b, ';');
        if (e == NULL)
            e = b + strlen(b);
        sign_trim(&b, &e);
        const char *slash = memchr(b, '/', (size_t)(e - b));
        if (slash == NULL || memchr(slash + 1, '/', (size_t)(e - slash - 1)) != NULL)
            mime = "text/plain";
    }
    if (mime != NULL) {
        size_t n = strlen(mime);
        if (out == NULL || n >= out_size)
            return BAIC_EBAD_INPUT;
        memcpy(out, mime, n + 1);
        return 0;
    }
    size_t n = (size_t)(e - b);
    if (out == NULL || n >= out_size)
        return BAIC_EBAD_INPUT;
    for (size_t i = 0; i < n; i++)
        out[i] = sign_lower(b[i]);
    out[n] = '\0';
    return 0;
}

/* ---- API versions ---- */

static const char *const sign_versions[] = {
    "v4.20181215", "v4.20190115", "v4.20190315", "v4.20190615", "v5.20191215",
    "v6.20200815", "v6.20220315", "v6.20220615", "v6.20221201", "v6.20230315",
    "v7.20230615", "v8.20240315", "v8.20240915", "v9.20250722", NULL,
};

const char *const *baic_auth_versions(void) {
    return sign_versions;
}

int baic_auth_version_parse(const char *s, int *major, uint32_t *yyyymmdd) {
    if (s == NULL || s[0] != 'v' || !sign_is_digit(s[1]))
        return BAIC_EBAD_INPUT;
    const char *p = s + 1;
    long long mj = 0;
    while (sign_is_digit(*p)) {
        mj = mj * 10 + (*p - '0');
        if (mj > 1000000)
            return BAIC_EBAD_INPUT; /* \d+ in theory; nothing real is this large */
        p++;
    }
    if (*p++ != '.')
        return BAIC_EBAD_INPUT;
    uint32_t d = 0;
    for (int i = 0; i < 8; i++, p++) {
        if (!sign_is_digit(*p))
            return BAIC_EBAD_INPUT;
        d = d * 10 + (uint32_t)(*p - '0');
    }
    if (*p != '\0')
        return BAIC_EBAD_INPUT;
    if (major != NULL)
        *major = (int)mj;
    if (yyyymmdd != NULL)
        *yyyymmdd = d;
    return 0;
}

int baic_auth_version_supported(const char *s) {
    if (s == NULL)
        return 0;
    for (size_t i = 0; sign_versions[i] != NULL; i++)
        if (strcmp(s, sign_versions[i]) == 0)
            return 1;
    return 0;
}

/* ---- HMAC ---- */

/* Fetching the HMAC implementation takes the provider store's locks: do it once. */
static EVP_MAC *hmac_impl;
static pthread_once_t hmac_once = PTHREAD_ONCE_INIT;

static void hmac_fetch(void) { hmac_impl = EVP_MAC_fetch(NULL, "HMAC", NULL); }

static EVP_MAC *sign_mac(void) {
    pthread_once(&hmac_once, hmac_fetch);
    if (hmac_impl != NULL)
        EVP_MAC_up_ref(hmac_impl);
    return hmac_impl;
}

/* HMAC over the concatenation of n parts, streamed so nothing is copied. */
static int sign_hmac(EVP_MAC *mac, const char *md, const void *key, size_t key_len,
                     const void *const *parts, const size_t *lens, size_t n, unsigned char *out,
                     size_t *out_len) {
    int rc = BAIC_EINTERNAL;
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(mac);
    if (ctx == NULL)
        return rc;
    OSSL_PARAM params[2];
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)md, 0);
    params[1] = OSSL_PARAM_construct_end();
    /* A NULL key would mean "keep the old key"; an empty secret is still a key. */
    static const unsigned char empty = 0;
    if (!EVP_MAC_init(ctx, key_len ? key : &empty, key_len, params))
        goto out;
    for (size_t i = 0; i < n; i++)
        if (lens[i] && !EVP_MAC_update(ctx, parts[i], lens[i]))
            goto out;
    if (!EVP_MAC_final(ctx, out, out_len, BAIC_AUTH_DIGEST_MAX))
        goto out;
    rc = 0;
out:
    EVP_MAC_CTX_free(ctx);
    return rc;
}

/* Hex digest of the empty string: a constant for sha256 (nearly every request). */
static int sign_empty_hex(const char *md, char *out) {
    if (strcmp(md, "SHA256") == 0 || strcmp(md, "sha256") == 0) {
        memcpy(out, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", 65);
        return 0;
    }
    unsigned char d[EVP_MAX_MD_SIZE];
    size_t n = 0;
    if (!EVP_Q_digest(NULL, md, NULL, "", 0, d, &n) || n > BAIC_AUTH_DIGEST_MAX)
        return BAIC_EINTERNAL;
    baic_hex(d, n, out);
    return 0;
}

static int sign_derive(EVP_MAC *mac, const char *md, const void *secret, size_t secret_len,
                       const char *yyyymmdd, const char *host, unsigned char *k_date,
                       unsigned char *k_sign, size_t *md_len) {
    const void *p1[1] = {yyyymmdd};
    size_t l1[1] = {strlen(yyyymmdd)};
    size_t n1 = 0, n2 = 0;
    int rc = sign_hmac(mac, md, secret, secret_len, p1, l1, 1, k_date, &n1);
    if (rc != 0)
        return rc;
    const void *p2[1] = {host};
    size_t l2[1] = {strlen(host)};
    rc = sign_hmac(mac, md, k_date, n1, p2, l2, 1, k_sign, &n2);
    *md_len = n2;
    return rc;
}

int baic_auth_derive_keys(const char *hash, const void *secret, size_t secret_len,
                          const char *yyyymmdd, const char *host, unsigned char *k_date,
                          unsigned char *k_sign, size_t *md_len) {
    const char *md = sign_ossl_name(hash);
    if (md == NULL || (secret == NULL && secret_len) || yyyymmdd == NULL || host == NULL)
        return BAIC_EBAD_INPUT;
    EVP_MAC *mac = sign_mac();
    if (mac == NULL)
        return BAIC_EINTERNAL;
    unsigned char kd[BAIC_AUTH_DIGEST_MAX], ks[BAIC_AUTH_DIGEST_MAX];
    size_t n = 0;
    int rc = sign_derive(mac, md, secret, secret_len, yyyymmdd, host, kd, ks, &n);
    EVP_MAC_free(mac);
    if (rc == 0) {
        if (k_date != NULL)
            memcpy(k_date, kd, n);
        if (k_sign != NULL)
            memcpy(k_sign, ks, n);
        if (md_len != NULL)
            *md_len = n;
    }
    OPENSSL_cleanse(kd, sizeof(kd));
    OPENSSL_cleanse(ks, sizeof(ks));
    return rc;
}

/* The last HMAC: over the string-to-sign, keyed with k_sign. method already checked. */
static int sign_final(EVP_MAC *mac, const char *md, const unsigned char *ks, size_t kn,
                      const char *method, const char *raw_path, const char *date_raw,
                      const char *host, const char *mime, const char *version_hdr,
                      const char *version, char *out_hex, size_t out_size) {
    /* The method is short; upper-case a bounded copy rather than the caller's string. */
    char meth[32];
    size_t ml = strlen(method);
    if (ml >= sizeof(meth))
        return BAIC_EBAD_INPUT;
    for (size_t i = 0; i <= ml; i++)
        meth[i] =
            (method[i] >= 'a' && method[i] <= 'z') ? (char)(method[i] - 'a' + 'A') : method[i];

    /* Last line: hex of the hash of an empty body (the body is not signed since
     * v4.20181215); with the request's own hash, which is sha256's e3b0c442... usually. */
    char empty_hex[2 * EVP_MAX_MD_SIZE + 1];
    if (sign_empty_hex(md, empty_hex) != 0)
        return BAIC_EINTERNAL;
    const void *parts[] = {meth,        "\n", raw_path,          "\n", date_raw,
                           "\nhost:",   host, "\ncontent-type:", mime, "\n",
                           version_hdr, ":",  version,           "\n", empty_hex};
    size_t lens[sizeof(parts) / sizeof(parts[0])];
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
        lens[i] = strlen(parts[i]);
    unsigned char sig[BAIC_AUTH_DIGEST_MAX];
    size_t sn = 0;
    int rc = sign_hmac(mac, md, ks, kn, parts, lens, sizeof(parts) / sizeof(parts[0]), sig, &sn);
    if (rc == 0) {
        if (out_size < 2 * sn + 1)
            rc = BAIC_EBAD_INPUT;
        else
            baic_hex(sig, sn, out_hex);
    }
    OPENSSL_cleanse(sig, sizeof(sig));
    return rc;
}

int baic_auth_sign(const char *hash, const void *secret, size_t secret_len, const char *method,
                   const char *raw_path, const char *date_raw, const char *yyyymmdd,
                   const char *host, const char *mime, const char *version_hdr, const char *version,
                   char *out_hex, size_t out_size) {
    const char *md = sign_ossl_name(hash);
    if (md == NULL || (secret == NULL && secret_len) || method == NULL || raw_path == NULL ||
        date_raw == NULL || yyyymmdd == NULL || host == NULL || mime == NULL ||
        version_hdr == NULL || version == NULL || out_hex == NULL)
        return BAIC_EBAD_INPUT;
    EVP_MAC *mac = sign_mac();
    if (mac == NULL)
        return BAIC_EINTERNAL;
    unsigned char kd[BAIC_AUTH_DIGEST_MAX], ks[BAIC_AUTH_DIGEST_MAX];
    size_t kn = 0;
    int rc = sign_derive(mac, md, secret, secret_len, yyyymmdd, host, kd, ks, &kn);
    if (rc == 0)
        rc = sign_final(mac, md, ks, kn, method, raw_path, date_raw, host, mime, version_hdr,
                        version, out_hex, out_size);
    EVP_MAC_free(mac);
    OPENSSL_cleanse(kd, sizeof(kd));
    OPENSSL_cleanse(ks, sizeof(ks));
    return rc;
}

/* ---- checks ---- */

static int sign_fail(baic_auth_fail_t *why, baic_auth_fail_t w) {
    if (why != NULL)
        *why = w;
    return baic_auth_fail_http_status(w) == 401 ? BAIC_EAUTH_FAILED : BAIC_EBAD_INPUT;
}

/* Parses and checks the window; epoch_s / offset_min out for the caller's k_date. */
static int sign_date(const char *date, int64_t now_ms, baic_auth_fail_t *why, int64_t *epoch_s,
                     int *offset_min) {
    if (date == NULL)
        return sign_fail(why, BAIC_AUTH_FAIL_DATE_MISSING);
    int64_t us;
    int off;
    if (baic_auth_parse_date_us(date, strlen(date), &us, &off) != 0)
        return sign_fail(why, BAIC_AUTH_FAIL_DATE_FORMAT);
    /* Strictly inside (now - 15 min, now + 15 min), as the manager compares. */
    int64_t diff = us - now_ms * 1000;
    int64_t w = (int64_t)BAIC_AUTH_WINDOW_MS * 1000;
    if (diff <= -w || diff >= w)
        return sign_fail(why, BAIC_AUTH_FAIL_DATE_SKEW);
    if (epoch_s != NULL)
        *epoch_s = us / 1000000 - (us % 1000000 < 0);
    if (offset_min != NULL)
        *offset_min = off;
    if (why != NULL)
        *why = BAIC_AUTH_FAIL_NONE;
    return 0;
}

int baic_auth_check_date(const char *date, int64_t now_ms, baic_auth_fail_t *why) {
    return sign_date(date, now_ms, why, NULL, NULL);
}

int baic_auth_verify_request(const baic_auth_signed_req_t *req, const baic_auth_hdr_t *hdr,
                             const void *secret, size_t secret_len, int64_t now_ms,
                             baic_auth_fail_t *why) {
    return baic_auth_verify_request_kc(req, hdr, secret, secret_len, now_ms, NULL, why);
}

int baic_auth_verify_request_kc(const baic_auth_signed_req_t *req, const baic_auth_hdr_t *hdr,
                                const void *secret, size_t secret_len, int64_t now_ms,
                                baic_auth_kcache_t *kc, baic_auth_fail_t *why) {
    if (req == NULL || hdr == NULL || req->method == NULL || req->raw_path == NULL)
        return sign_fail(why, BAIC_AUTH_FAIL_HEADER);
    if (!baic_auth_hash_supported(hdr->hash))
        return sign_fail(why, BAIC_AUTH_FAIL_METHOD);
    const char *vhdr = "x-backendai-version", *version = req->version;
    if (version == NULL) {
        vhdr = "x-sorna-version";
        version = req->sorna_version;
    }
    if (version == NULL)
        return sign_fail(why, BAIC_AUTH_FAIL_VERSION_MISSING);
    if (!baic_auth_version_supported(version))
        return sign_fail(why, BAIC_AUTH_FAIL_VERSION_UNSUPPORTED);

    int64_t epoch_s;
    int off;
    int rc = sign_date(req->date, now_ms, why, &epoch_s, &off);
    if (rc != 0)
        return rc;
    char ymd[9], mime[256], want[BAIC_AUTH_HEX_SIZE];
    if (baic_auth_date_yyyymmdd(epoch_s, off, ymd) != 0)
        return sign_fail(why, BAIC_AUTH_FAIL_DATE_FORMAT);
    /* An absurdly long Content-Type cannot have been signed by a real client. */
    if (baic_auth_content_mime(req->content_type, mime, sizeof(mime)) != 0)
        return sign_fail(why, BAIC_AUTH_FAIL_SIGNATURE);
    const char *host = req->host ? req->host : "";
    const char *md = sign_ossl_name(hdr->hash);
    EVP_MAC *mac = sign_mac();
    if (mac == NULL)
        return BAIC_EINTERNAL;
    unsigned char kd[BAIC_AUTH_DIGEST_MAX], ks[BAIC_AUTH_DIGEST_MAX];
    size_t kn = 0;
    /* k_sign depends only on the secret, the day and the host: reuse it while they hold. */
    if (kc != NULL && kc->len > 0 && strcmp(kc->hash, hdr->hash) == 0 &&
        strcmp(kc->ymd, ymd) == 0 && strcmp(kc->host, host) == 0) {
        kn = kc->len;
        memcpy(ks, kc->k_sign, kn);
        rc = 0;
    } else {
        rc = sign_derive(mac, md, secret, secret_len, ymd, host, kd, ks, &kn);
        if (rc == 0 && kc != NULL && strlen(host) < sizeof(kc->host)) {
            snprintf(kc->hash, sizeof(kc->hash), "%s", hdr->hash);
            memcpy(kc->ymd, ymd, sizeof(kc->ymd));
            snprintf(kc->host, sizeof(kc->host), "%s", host);
            memcpy(kc->k_sign, ks, kn);
            kc->len = kn;
        }
    }
    if (rc == 0)
        rc = sign_final(mac, md, ks, kn, req->method, req->raw_path, req->date, host, mime, vhdr,
                        version, want, sizeof(want));
    EVP_MAC_free(mac);
    OPENSSL_cleanse(kd, sizeof(kd));
    OPENSSL_cleanse(ks, sizeof(ks));
    if (rc == BAIC_EBAD_INPUT)
        return sign_fail(why, BAIC_AUTH_FAIL_SIGNATURE); /* e.g. a bogus method word */
    if (rc != 0) {
        if (why != NULL)
            *why = BAIC_AUTH_FAIL_NONE;
        return rc;
    }
    /* The length of a digest is public; only the bytes need a constant-time compare. */
    size_t wl = strlen(want);
    int same = strlen(hdr->signature) == wl && CRYPTO_memcmp(want, hdr->signature, wl) == 0;
    OPENSSL_cleanse(want, sizeof(want));
    if (!same)
        return sign_fail(why, BAIC_AUTH_FAIL_SIGNATURE);
    if (why != NULL)
        *why = BAIC_AUTH_FAIL_NONE;
    return 0;
}

const char *baic_auth_fail_msg(baic_auth_fail_t why) {
    switch (why) {
    case BAIC_AUTH_FAIL_NONE:
        return "ok";
    case BAIC_AUTH_FAIL_HEADER:
        return "Malformed authorization header";
    case BAIC_AUTH_FAIL_SCHEME:
        return "Invalid authorization type name";
    case BAIC_AUTH_FAIL_PARAMS:
        return "Missing or malformed authorization parameters";
    case BAIC_AUTH_FAIL_METHOD:
        return "Unsupported request signing method";
    case BAIC_AUTH_FAIL_DATE_MISSING:
        return "Date header is missing";
    case BAIC_AUTH_FAIL_DATE_FORMAT:
        return "Invalid date format";
    case BAIC_AUTH_FAIL_DATE_SKEW:
        return "Date/time sync error";
    case BAIC_AUTH_FAIL_VERSION_MISSING:
        return "API version missing in request headers";
    case BAIC_AUTH_FAIL_VERSION_UNSUPPORTED:
        return "Unsupported API version.";
    case BAIC_AUTH_FAIL_SIGNATURE:
        return "HMAC signature mismatch";
    }
    return "authentication failed";
}

int baic_auth_fail_http_status(baic_auth_fail_t why) {
    if (why == BAIC_AUTH_FAIL_NONE)
        return 0;
    return why == BAIC_AUTH_FAIL_SIGNATURE ? 401 : 400;
}
