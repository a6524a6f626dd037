/* SPDX-License-Identifier: Apache-2.0 */
/* Backend.AI HMAC signing: the api-contract.md §1 vectors, parsers and the date window. */
#include <stdio.h>
#include <string.h>

#include "baic_check.h"

#include <baic/errors.h>

#include "auth/sign.h"

#define SECRET "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define AK "AKIAIOSFODNN7EXAMPLE"

static void hex(const unsigned char *d, size_t n, char *out) {
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", d[i]);
}

/* Signs with sha256, deriving yyyymmdd from the date string as the server would. */
static void sign_vec(const char *method, const char *path, const char *date, const char *host,
                     const char *ct_header, const char *version, char *out) {
    int64_t t;
    int off;
    char ymd[9], mime[128];
    ck_assert_int_eq(baic_auth_parse_date(date, strlen(date), &t, &off), 0);
    ck_assert_int_eq(baic_auth_date_yyyymmdd(t, off, ymd), 0);
    ck_assert_int_eq(baic_auth_content_mime(ct_header, mime, sizeof(mime)), 0);
    ck_assert_int_eq(baic_auth_sign("sha256", SECRET, strlen(SECRET), method, path, date, ymd, host,
                                    mime, "x-backendai-version", version, out, BAIC_AUTH_HEX_SIZE),
                     0);
}

static void assert_keys(const char *ymd, const char *host, const char *k_date_hex,
                        const char *k_sign_hex) {
    unsigned char kd[BAIC_AUTH_DIGEST_MAX], ks[BAIC_AUTH_DIGEST_MAX];
    char h[BAIC_AUTH_HEX_SIZE];
    size_t n = 0;
    ck_assert_int_eq(baic_auth_derive_keys("sha256", SECRET, strlen(SECRET), ymd, host, kd, ks, &n),
                     0);
    ck_assert_uint_eq(n, 32);
    if (k_date_hex != NULL) {
        hex(kd, n, h);
        ck_assert_str_eq(h, k_date_hex);
    }
    hex(ks, n, h);
    ck_assert_str_eq(h, k_sign_hex);
}

START_TEST(vector_a) {
    char sig[BAIC_AUTH_HEX_SIZE];
    assert_keys("20240915", "127.0.0.1:8081",
                "0eacd65e2e92f5feb7703e6ab0b54f66fe38a5405805e838e013bba8626bb54d",
                "ad368bffacaf1194cc5425aa160a42863b062f93699c46700756e91373813387");
    sign_vec("GET", "/session/mysess", "2024-09-15T12:34:56.789012+00:00", "127.0.0.1:8081",
             "text/plain", "v8.20240915", sig);
    ck_assert_str_eq(sig, "ef9f53dc0a1f0fe7992ffa65bc0e79840feff23223f2970cc05540917f6a2838");
}
END_TEST

START_TEST(vector_b) {
    char sig[BAIC_AUTH_HEX_SIZE];
    assert_keys("20240915", "127.0.0.1:8081", NULL,
                "ad368bffacaf1194cc5425aa160a42863b062f93699c46700756e91373813387");
    sign_vec("POST", "/session", "2024-09-15T12:34:56.789012+00:00", "127.0.0.1:8081",
             "application/json", "v8.20240915", sig);
    ck_assert_str_eq(sig, "a3c90356f05633ab042826dd96107f60ae97b717dba966e1f17a025ce1365893");
}
END_TEST

START_TEST(vector_c) {
    char sig[BAIC_AUTH_HEX_SIZE];
    assert_keys("20250722", "localhost:8081",
                "7a0a58ec14c4dcf7d478df0b0fca3a29f8514b1f2c63ac68579a526166ea42d0",
                "98933104851684f150c865adf2b9889bd7dc322845da573d8422900c130a51fd");
    sign_vec("DELETE", "/session/0d2e4f6a-1b3c-4d5e-8f90-123456789abc?forced=true&recursive=true",
             "2025-07-22T00:00:00+00:00", "localhost:8081", "text/plain", "v9.20250722", sig);
    ck_assert_str_eq(sig, "a73c4d06a88a685caec0176f2553d5c81e1668fa4fcbe37499c02a4a1cbb88c3");
}
END_TEST

START_TEST(vector_d) {
    char sig[BAIC_AUTH_HEX_SIZE];
    assert_keys("20240915", "api.example.com", NULL,
                "1f72026f7c8ecf7701439cd2c97fb15d6d34e9126b849350f52d9b13f87edfeb");
    /* No Content-Type header at all (websocket / SSE). */
    sign_vec("GET", "/events/session?sessionName=mysess&scope=%2A",
             "2024-09-15T23:59:59.999999+00:00", "api.example.com", NULL, "v8.20240915", sig);
    ck_assert_str_eq(sig, "5b0bd951c618850008be5e40fc78d5237c5d8a2700be0358ca8655b28c71b9c4");
}
END_TEST

START_TEST(vector_e) {
    char sig[BAIC_AUTH_HEX_SIZE];
    sign_vec("get", "/session/mysess", "2024-09-15T12:34:56.789Z", "127.0.0.1:8081",
             "application/json; charset=utf-8", "v8.20240915", sig);
    ck_assert_str_eq(sig, "5f37d5225aa4e94623e987b1fb514dd419c0f99923fa85af912c223fd3bc812a");
}
END_TEST

/* Other hashlib hashes: expected values computed with python3 hmac/hashlib following the
 * manager's algorithm, where the last line is the hex hash of b"" with that same hash. */
START_TEST(other_hashes) {
    static const struct {
        const char *hash, *sig;
    } v[] = {
        {"sha1", "148b58c708d468fdcfe9aa16a74093760c672467"},
        {"md5", "f252dd92ba82d39ab305e8907caa629c"},
        {"sha3_256", "6405f0a0adaed8561e9a09dd97722e6e00a48dfd4f85dec0d6b6ae1fe59b9d4e"},
        {"sha512", "d542fc4ce9652d5541e5b3517cd8ef50c567954b83294bdaad7eebc75f9f75b8ef580355edfa0f"
                   "f0b80585451b47bde147c953fd6c9b6d31d7fdddd7cd98937d"},
        {"blake2b", "d77035490e108715ae6748a892413a6f43a1b473db2b46638bad175cd8b7922dc90d00f1a3f"
                    "014c069099bfe3bc7e96add3d7e1740c36b145f2c0ec121fbc1e4"},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        char sig[BAIC_AUTH_HEX_SIZE];
        ck_assert_int_eq(baic_auth_sign(v[i].hash, SECRET, strlen(SECRET), "GET", "/session/mysess",
                                        "2024-09-15T12:34:56.789012+00:00", "20240915",
                                        "127.0.0.1:8081", "text/plain", "x-backendai-version",
                                        "v8.20240915", sig, sizeof(sig)),
                         0);
        ck_assert_str_eq(sig, v[i].sig);
    }
}
END_TEST

START_TEST(legacy_version_header) {
    char sig[BAIC_AUTH_HEX_SIZE];
    ck_assert_int_eq(baic_auth_sign("sha256", SECRET, strlen(SECRET), "GET", "/session/mysess",
                                    "2024-09-15T12:34:56.789012+00:00", "20240915",
                                    "127.0.0.1:8081", "text/plain", "x-sorna-version",
                                    "v8.20240915", sig, sizeof(sig)),
                     0);
    ck_assert_str_eq(sig, "c62a9399d5677c2fe0beac1a5848575254bc7cddb39fb8f9481e412160336a58");
}
END_TEST

/* k_date uses the date in the header's own offset: 01:00+09:00 is still the 14th in UTC. */
START_TEST(date_in_own_offset) {
    const char *date = "2024-09-15T01:00:00+09:00";
    int64_t t;
    int off;
    char ymd[9], sig[BAIC_AUTH_HEX_SIZE];
    ck_assert_int_eq(baic_auth_parse_date(date, strlen(date), &t, &off), 0);
    ck_assert_int_eq(off, 540);
    ck_assert_int_eq(baic_auth_date_yyyymmdd(t, 0, ymd), 0);
    ck_assert_str_eq(ymd, "20240914");
    ck_assert_int_eq(baic_auth_date_yyyymmdd(t, off, ymd), 0);
    ck_assert_str_eq(ymd, "20240915");
    ck_assert_int_eq(baic_auth_sign("sha256", SECRET, strlen(SECRET), "GET", "/x", date, ymd, "h",
                                    "text/plain", "x-backendai-version", "v8.20240915", sig,
                                    sizeof(sig)),
                     0);
    ck_assert_str_eq(sig, "d9c9e34f5b3e7baefe530c1e08159a2433ce4c599951ab324a5ed0227ed022dd");
}
END_TEST

START_TEST(sign_bad_args) {
    char sig[BAIC_AUTH_HEX_SIZE];
    ck_assert_int_eq(baic_auth_sign("sha999", SECRET, strlen(SECRET), "GET", "/", "d", "20240915",
                                    "h", "text/plain", "x-backendai-version", "v8.20240915", sig,
                                    sizeof(sig)),
                     BAIC_EBAD_INPUT);
    ck_assert_int_eq(baic_auth_sign("sha256", SECRET, strlen(SECRET), "GET", "/", "d", "20240915",
                                    "h", "text/plain", "x-backendai-version", "v8.20240915", sig,
                                    64 /* one short of 64 hex + NUL */),
                     BAIC_EBAD_INPUT);
    ck_assert_int_eq(baic_auth_sign("sha256", SECRET, strlen(SECRET), "GET", NULL, "d", "20240915",
                                    "h", "text/plain", "x-backendai-version", "v8.20240915", sig,
                                    sizeof(sig)),
                     BAIC_EBAD_INPUT);
    /* An empty secret is still a key. */
    ck_assert_int_eq(baic_auth_sign("sha256", "", 0, "GET", "/", "d", "20240915", "h", "text/plain",
                                    "x-backendai-version", "v8.20240915", sig, sizeof(sig)),
                     0);
    ck_assert_uint_eq(strlen(sig), 64);
}
END_TEST

/* ---- verify_request ---- */

#define NOW_A_MS 1726403696789LL /* 2024-09-15T12:34:56.789Z */

static baic_auth_signed_req_t req_a(void) {
    baic_auth_signed_req_t r = {
        .method = "GET",
        .raw_path = "/session/mysess",
        .host = "127.0.0.1:8081",
        .content_type = "text/plain",
        .date = "2024-09-15T12:34:56.789012+00:00",
        .version = "v8.20240915",
        .sorna_version = NULL,
    };
    return r;
}

static void hdr_a(baic_auth_hdr_t *h) {
    const char *v = "BackendAI signMethod=HMAC-SHA256, credential=" AK
                    ":ef9f53dc0a1f0fe7992ffa65bc0e79840feff23223f2970cc05540917f6a2838";
    ck_assert_int_eq(baic_auth_parse_header(v, strlen(v), h), 0);
}

/* The derived-key cache changes cost, never answers: same verdicts as without it. */
START_TEST(verify_with_key_cache) {
    baic_auth_hdr_t h;
    baic_auth_fail_t why;
    baic_auth_kcache_t kc;
    memset(&kc, 0, sizeof kc);
    hdr_a(&h);
    baic_auth_signed_req_t r = req_a();
    ck_assert_int_eq(baic_auth_verify_request_kc(&r, &h, SECRET, strlen(SECRET), NOW_A_MS, &kc, &why), 0);
    ck_assert_uint_eq(kc.len, 32);
    ck_assert_str_eq(kc.ymd, "20240915");
    ck_assert_str_eq(kc.host, "127.0.0.1:8081");
    /* Vector A's k_sign is what got cached. */
    static const unsigned char ks_a[32] = {
        0xad, 0x36, 0x8b, 0xff, 0xac, 0xaf, 0x11, 0x94, 0xcc, 0x54, 0x25, 0xaa, 0x16, 0x0a, 0x42, 0x86,
        0x3b, 0x06, 0x2f, 0x93, 0x69, 0x9c, 0x46, 0x70, 0x07, 0x56, 0xe9, 0x13, 0x73, 0x81, 0x33, 0x87};
    ck_assert_mem_eq(kc.k_sign, ks_a, 32);
    /* A hit still checks the signature: vector B's method with A's signature fails. */
    r.method = "POST";
    ck_assert_int_eq(baic_auth_verify_request_kc(&r, &h, SECRET, strlen(SECRET), NOW_A_MS, &kc, &why),
                     BAIC_EAUTH_FAILED);
    /* Another host misses the cache and fails on its own merits, then is cached. */
    r = req_a();
    r.host = "127.0.0.1:8082";
    ck_assert_int_eq(baic_auth_verify_request_kc(&r, &h, SECRET, strlen(SECRET), NOW_A_MS, &kc, &why),
                     BAIC_EAUTH_FAILED);
    ck_assert_str_eq(kc.host, "127.0.0.1:8082");
    r = req_a();
    ck_assert_int_eq(baic_auth_verify_request_kc(&r, &h, SECRET, strlen(SECRET), NOW_A_MS, &kc, &why), 0);
    /* The cache lives in a keypair's entry: another secret starts without one. */
    ck_assert_int_eq(baic_auth_verify_request_kc(&r, &h, "x", 1, NOW_A_MS, NULL, &why),
                     BAIC_EAUTH_FAILED);
}
END_TEST

START_TEST(verify_ok_and_negative) {
    baic_auth_hdr_t h;
    baic_auth_fail_t why = BAIC_AUTH_FAIL_HEADER;
    hdr_a(&h);
    baic_auth_signed_req_t r = req_a();
    ck_assert_int_eq(baic_auth_verify_request(&r, &h, SECRET, strlen(SECRET), NOW_A_MS, &why), 0);
    ck_assert_int_eq(why, BAIC_AUTH_FAIL_NONE);

    /* One byte of host changed → 401. */
    r.host = "127.0.0.1:8082";
    ck_assert_int_eq(baic_auth_verify_request(&r, &h, SECRET, strlen(SECRET), NOW_A_MS, &why),
                     BAIC_EAUTH_FAILED);
    ck_assert_int_eq(why, BAIC_AUTH_FAIL_SIGNATURE);
    ck_assert_int_eq(baic_auth_fail_http_status(why), 401);
    ck_assert_str_eq(baic_auth_fail_msg(why), "HMAC signature mismatch");

    /* Every other covered field, one at a time. */
    r = req_a();
    r.raw_path = "/session/mysesS";
    ck_assert_int_eq(baic_auth_verify_request(&r, &h, SECRET, strlen(SECRET), NOW_A_MS, &why),
                     BAIC_EAUTH_FAILED);
    r = req_a();
    r.method = "POST";
    ck_assert_int_eq(baic_auth_verify_request(&r, &h, SECRET, strlen(SECRET), NOW_A_MS, &why),
                     BAIC_EAUTH_FAILED);
    r = req_a();
    r.content_type = "application/json";
    ck_assert_int_eq(baic_auth_verify_request(&r, &h, SECRET, strlen(SECRET), NOW_A_MS, &why),
                     BAIC_EAUTH_FAILED);
    r = req_a();
    r.content_type = NULL;
    ck_assert_int_eq(baic_auth_verify_request(&r, &h, SECRET, strlen(SECRET), NOW_A_MS, &why),
                     BAIC_EAUTH_FAILED);
    r = req_a();
    r.version = "v9.20250722";
    ck_assert_int_eq(baic_auth_verify_request(&r, &h, SECRET, strlen(SECRET), NOW_A_MS, &why),
                     BAIC_EAUTH_FAILED);
    r = req_a();
    r.date = "2024-09-15T12:34:56.789013+00:00";
    ck_assert_int_eq(baic_auth_verify_request(&r, &h, SECRET, strlen(SECRET), NOW_A_MS, &why),
                     BAIC_EAUTH_FAILED);
    r = req_a();
    ck_assert_int_eq(
        baic_auth_verify_request(&r, &h, "x" SECRET, strlen(SECRET) + 1, NOW_A_MS, &why),
        BAIC_EAUTH_FAILED);
    /* Signature with one hex digit changed, and one that is a prefix. */
    h.signature[10] = h.signature[10] == '0' ? '1' : '0';
    ck_assert_int_eq(baic_auth_verify_request(&r, &h, SECRET, strlen(SECRET), NOW_A_MS, &why),
                     BAIC_EAUTH_FAILED);
    hdr_a(&h);
    h.signature[63] = '\0';
    ck_assert_int_eq(baic_auth_verify_request(&r, &h, SECRET, strlen(SECRET), NOW_A_MS, &why),
                     BAIC_EAUTH_FAILED);
}
END_TEST

START_TEST(verify_versions) {
    baic_auth_hdr_t h;
    baic_auth_fail_t why;
    hdr_a(&h);
    baic_auth_signed_req_t r = req_a();
    r.version = NULL;
    ck_assert_int_eq(baic_auth_verify_request(&r, &h, SECRET, strlen(SECRET), NOW_A_MS, &why),
                     BAIC_EBAD_INPUT);
    ck_assert_int_eq(why, BAIC_AUTH_FAIL_VERSION_MISSING);
    r.version = "v8.20240916";
    ck_assert_int_eq(baic_auth_verify_request(&r, &h, SECRET, strlen(SECRET), NOW_A_MS, &why),
                     BAIC_EBAD_INPUT);
    ck_assert_int_eq(why, BAIC_AUTH_FAIL_VERSION_UNSUPPORTED);
    ck_assert_int_eq(baic_auth_fail_http_status(why), 400);

    /* Legacy header: signed as x-sorna-version. */
    r.version = NULL;
    r.sorna_version = "v8.20240915";
    strcpy(h.signature, "c62a9399d5677c2fe0beac1a5848575254bc7cddb39fb8f9481e412160336a58");
    ck_assert_int_eq(baic_auth_verify_request(&r, &h, SECRET, strlen(SECRET), NOW_A_MS, &why), 0);
}
END_TEST

/* ±15 minutes, strictly: 14:59 passes, 15:00 does not, on both sides. */
START_TEST(window_edges) {
    const char *d = "2024-09-15T12:00:00+00:00";
    const int64_t t = 1726401600000LL;
    const int64_t m = 60 * 1000;
    baic_auth_fail_t why;
    ck_assert_int_eq(baic_auth_check_date(d, t, &why), 0);
    ck_assert_int_eq(baic_auth_check_date(d, t + 14 * m + 59 * 1000, &why), 0);
    ck_assert_int_eq(baic_auth_check_date(d, t - 14 * m - 59 * 1000, &why), 0);
    ck_assert_int_eq(baic_auth_check_date(d, t + 15 * m - 1, &why), 0);
    ck_assert_int_eq(baic_auth_check_date(d, t - 15 * m + 1, &why), 0);
    ck_assert_int_eq(baic_auth_check_date(d, t + 15 * m, &why), BAIC_EBAD_INPUT);
    ck_assert_int_eq(why, BAIC_AUTH_FAIL_DATE_SKEW);
    ck_assert_str_eq(baic_auth_fail_msg(why), "Date/time sync error");
    ck_assert_int_eq(baic_auth_check_date(d, t - 15 * m, &why), BAIC_EBAD_INPUT);
    ck_assert_int_eq(why, BAIC_AUTH_FAIL_DATE_SKEW);
    ck_assert_int_eq(baic_auth_check_date(d, t + 3600 * 1000, &why), BAIC_EBAD_INPUT);
    /* The fraction counts: .5 s past the edge is inside. */
    ck_assert_int_eq(baic_auth_check_date("2024-09-15T12:00:00.5Z", t + 15 * m, &why), 0);
    ck_assert_int_eq(baic_auth_check_date(NULL, t, &why), BAIC_EBAD_INPUT);
    ck_assert_int_eq(why, BAIC_AUTH_FAIL_DATE_MISSING);
    ck_assert_int_eq(baic_auth_check_date("yesterday", t, &why), BAIC_EBAD_INPUT);
    ck_assert_int_eq(why, BAIC_AUTH_FAIL_DATE_FORMAT);

    /* Date skew is a 400 before the signature is even looked at. The date of vector A is
     * 12 µs after NOW_A_MS, hence the extra millisecond. */
    baic_auth_hdr_t h;
    hdr_a(&h);
    baic_auth_signed_req_t r = req_a();
    ck_assert_int_eq(
        baic_auth_verify_request(&r, &h, SECRET, strlen(SECRET), NOW_A_MS + 15 * m + 1, &why),
        BAIC_EBAD_INPUT);
    ck_assert_int_eq(why, BAIC_AUTH_FAIL_DATE_SKEW);
    ck_assert_int_eq(
        baic_auth_verify_request(&r, &h, SECRET, strlen(SECRET), NOW_A_MS + 14 * m, &why), 0);
}
END_TEST

/* ---- date parsing ---- */

static void date_ok(const char *s, int64_t epoch, int us, int off) {
    int64_t t, tu;
    int o = 12345;
    ck_assert_msg(baic_auth_parse_date(s, strlen(s), &t, &o) == 0, "parse failed: %s", s);
    ck_assert_msg(t == epoch, "%s: %lld != %lld", s, (long long)t, (long long)epoch);
    ck_assert_int_eq(o, off);
    ck_assert_int_eq(baic_auth_parse_date_us(s, strlen(s), &tu, &o), 0);
    ck_assert_msg(tu == epoch * 1000000 + us, "%s: us %lld", s, (long long)tu);
}

static void date_bad(const char *s) {
    int64_t t;
    int o;
    ck_assert_msg(baic_auth_parse_date(s, strlen(s), &t, &o) == BAIC_EBAD_INPUT, "accepted: %s", s);
}

/* Expected epochs from python3 dateutil.parser.parse (naive → UTC). */
START_TEST(date_parsing) {
    date_ok("2024-09-15T12:34:56.789012+00:00", 1726403696, 789012, 0);
    date_ok("2024-09-15T12:34:56.789Z", 1726403696, 789000, 0);
    date_ok("2024-09-15T12:34:56z", 1726403696, 0, 0);
    date_ok("Sun, 15 Sep 2024 12:34:56 GMT", 1726403696, 0, 0);
    date_ok("15 Sep 2024 12:34:56 +0000", 1726403696, 0, 0);
    date_ok("Sun, 5 Sep 2024 12:34:56 GMT", 1726403696 - 10 * 86400, 0, 0);
    date_ok("sun, 15 sep 2024 12:34:56 utc", 1726403696, 0, 0);
    date_ok("2024-09-15 12:34:56", 1726403696, 0, 0);
    date_ok("2024-09-15T12:34:56", 1726403696, 0, 0);
    date_ok("  2024-09-15T12:34:56Z  ", 1726403696, 0, 0);
    date_ok("2024-09-15T21:34:56+0900", 1726403696, 0, 540);
    date_ok("2024-09-15T21:34:56+09", 1726403696, 0, 540);
    date_ok("2024-09-15T01:00:00+09:00", 1726329600, 0, 540);
    date_ok("2024-09-14T20:00:00-05:30", 1726363800, 0, -330);
    date_ok("2024-09-15 12:34:56 UTC", 1726403696, 0, 0);
    date_ok("2024-09-15 12:34:56 +00:00", 1726403696, 0, 0);
    date_ok("20240915T123456Z", 1726403696, 0, 0);
    date_ok("2000-02-29T00:00:00Z", 951782400, 0, 0);
    date_ok("1970-01-01T00:00:00Z", 0, 0, 0);
    date_ok("2024-09-15T12:34:56.123456789+00:00", 1726403696, 123456, 0);
    date_ok("2024-09-15T12:34:56,5Z", 1726403696, 500000, 0);
    date_ok("2024-09-15T12:34Z", 1726403640, 0, 0);
    date_ok("2024-09-15", 1726358400, 0, 0);
    date_ok("9999-12-31T23:59:59Z", 253402300799LL, 0, 0);
    date_ok("0001-01-01T00:00:00Z", -62135596800LL, 0, 0);
    date_ok("1969-12-31T23:59:59.5Z", -1, 500000, 0);

    date_bad("");
    date_bad("   ");
    date_bad("2024-09-15T");
    date_bad("2024-9-15T12:34:56Z");
    date_bad("2024-13-01T00:00:00Z");
    date_bad("2023-02-29T00:00:00Z");
    date_bad("1900-02-29T00:00:00Z");
    date_bad("2024-09-31T00:00:00Z");
    date_bad("2024-09-15T24:00:00Z");
    date_bad("2024-09-15T12:60:00Z");
    date_bad("2024-09-15T12:34:60Z");
    date_bad("2024-09-15T12:34:56+24:00");
    date_bad("2024-09-15T12:34:56+05:60");
    date_bad("2024-09-15T12:34:56+5");
    date_bad("2024-09-15T12:34:56.Z");
    date_bad("2024-09-15T12:34:56Zjunk");
    date_bad("2024-09-15T12:34:56 PST");
    date_bad("0000-01-01T00:00:00Z");
    date_bad("Sun, 15 Foo 2024 12:34:56 GMT");
    date_bad("Sunday 15 Sep 2024 12:34:56 GMT");
    date_bad("Sun, 15 Sep 24 12:34:56 GMT");
    date_bad("Sun, 15 Sep 2024");
    date_bad("1726403696");

    /* Embedded NUL: the length rules, not the terminator. */
    int64_t t;
    int o;
    ck_assert_int_eq(baic_auth_parse_date("2024-09-15T12:34:56Z\0junk", 25, &t, &o),
                     BAIC_EBAD_INPUT);
    ck_assert_int_eq(baic_auth_parse_date("2024-09-15T12:34:56Zjunk", 20, &t, &o), 0);
}
END_TEST

START_TEST(yyyymmdd) {
    char ymd[9];
    ck_assert_int_eq(baic_auth_date_yyyymmdd(0, 0, ymd), 0);
    ck_assert_str_eq(ymd, "19700101");
    ck_assert_int_eq(baic_auth_date_yyyymmdd(-1, 0, ymd), 0);
    ck_assert_str_eq(ymd, "19691231");
    ck_assert_int_eq(baic_auth_date_yyyymmdd(951782400, 0, ymd), 0);
    ck_assert_str_eq(ymd, "20000229");
    ck_assert_int_eq(baic_auth_date_yyyymmdd(951782400 - 1, 0, ymd), 0);
    ck_assert_str_eq(ymd, "20000228");
    ck_assert_int_eq(baic_auth_date_yyyymmdd(1735689599, 0, ymd), 0); /* 2024-12-31T23:59:59Z */
    ck_assert_str_eq(ymd, "20241231");
    ck_assert_int_eq(baic_auth_date_yyyymmdd(1735689599, 1, ymd), 0);
    ck_assert_str_eq(ymd, "20250101");
    ck_assert_int_eq(baic_auth_date_yyyymmdd(253402300799LL, 0, ymd), 0);
    ck_assert_str_eq(ymd, "99991231");
    ck_assert_int_eq(baic_auth_date_yyyymmdd(253402300800LL, 0, ymd), BAIC_EBAD_INPUT);
    ck_assert_int_eq(baic_auth_date_yyyymmdd(-62135596800LL, 0, ymd), 0);
    ck_assert_str_eq(ymd, "00010101");
    ck_assert_int_eq(baic_auth_date_yyyymmdd(-62135596801LL, 0, ymd), BAIC_EBAD_INPUT);
    /* Every day of a leap year and a common year round-trips through the parser. */
    for (int64_t d = 19723 /* 2024-01-01 */; d < 19723 + 731; d++) {
        char s[32];
        ck_assert_int_eq(baic_auth_date_yyyymmdd(d * 86400, 0, ymd), 0);
        snprintf(s, sizeof(s), "%.4s-%.2s-%.2sT00:00:00Z", ymd, ymd + 4, ymd + 6);
        int64_t t;
        int o;
        ck_assert_int_eq(baic_auth_parse_date(s, strlen(s), &t, &o), 0);
        ck_assert_int_eq(t, d * 86400);
    }
}
END_TEST

/* ---- Authorization header ---- */

static void hdr_bad(const char *v, baic_auth_fail_t want) {
    baic_auth_hdr_t h;
    ck_assert_msg(baic_auth_parse_header(v, strlen(v), &h) == BAIC_EBAD_INPUT, "accepted: %s", v);
    ck_assert_msg(h.fail == want, "%s: fail %d want %d", v, (int)h.fail, (int)want);
    ck_assert_ptr_nonnull(h.reason);
    ck_assert_int_eq(baic_auth_fail_http_status(h.fail), 400);
}

START_TEST(header_parsing) {
    baic_auth_hdr_t h;
    const char *v = "BackendAI signMethod=HMAC-SHA256, credential=AK:0123abcd";
    ck_assert_int_eq(baic_auth_parse_header(v, strlen(v), &h), 0);
    ck_assert_int_eq(h.legacy_scheme, 0);
    ck_assert_str_eq(h.hash, "sha256");
    ck_assert_str_eq(h.access_key, "AK");
    ck_assert_str_eq(h.signature, "0123abcd");
    ck_assert_ptr_null(h.reason);

    v = "Sorna signMethod=hmac-sha1,credential=" AK ":ab";
    ck_assert_int_eq(baic_auth_parse_header(v, strlen(v), &h), 0);
    ck_assert_int_eq(h.legacy_scheme, 1);
    ck_assert_str_eq(h.hash, "sha1");
    ck_assert_str_eq(h.access_key, AK);

    v = "  BackendAI \t  credential = AK:sig:with:colons ,  signMethod =  HMAC-SHA512 ,x=y,  ";
    ck_assert_int_eq(baic_auth_parse_header(v, strlen(v), &h), 0);
    ck_assert_str_eq(h.hash, "sha512");
    ck_assert_str_eq(h.access_key, "AK");
    ck_assert_str_eq(h.signature, "sig:with:colons");

    v = "BackendAI signMethod=HMAC-SHA3_256, credential=AK:s";
    ck_assert_int_eq(baic_auth_parse_header(v, strlen(v), &h), 0);
    ck_assert_str_eq(h.hash, "sha3_256");

    /* Length, not NUL, ends the value. */
    v = "BackendAI signMethod=HMAC-SHA256, credential=AK:sigXXXX";
    ck_assert_int_eq(baic_auth_parse_header(v, strlen(v) - 4, &h), 0);
    ck_assert_str_eq(h.signature, "sig");

    hdr_bad("", BAIC_AUTH_FAIL_HEADER);
    hdr_bad("BackendAI", BAIC_AUTH_FAIL_HEADER);
    hdr_bad("Bearer signMethod=HMAC-SHA256, credential=AK:s", BAIC_AUTH_FAIL_SCHEME);
    hdr_bad("backendai signMethod=HMAC-SHA256, credential=AK:s", BAIC_AUTH_FAIL_SCHEME);
    hdr_bad("BackendAI signMethod=HMAC-SHA256", BAIC_AUTH_FAIL_PARAMS);
    hdr_bad("BackendAI credential=AK:s", BAIC_AUTH_FAIL_PARAMS);
    hdr_bad("BackendAI signMethod=HMAC-SHA256, credential=AKs", BAIC_AUTH_FAIL_PARAMS);
    hdr_bad("BackendAI signMethod=HMAC-SHA256, credential=:s", BAIC_AUTH_FAIL_PARAMS);
    hdr_bad("BackendAI signMethod=HMAC-SHA256, credential=AK:", BAIC_AUTH_FAIL_PARAMS);
    hdr_bad("BackendAI signMethod=HMAC-SHA256, credential", BAIC_AUTH_FAIL_PARAMS);
    hdr_bad("BackendAI signmethod=HMAC-SHA256, credential=AK:s", BAIC_AUTH_FAIL_PARAMS);
    hdr_bad("BackendAI signMethod=HMAC-SHA999, credential=AK:s", BAIC_AUTH_FAIL_METHOD);
    hdr_bad("BackendAI signMethod=HMAC-SHAKE_128, credential=AK:s", BAIC_AUTH_FAIL_METHOD);
    hdr_bad("BackendAI signMethod=CMAC-SHA256, credential=AK:s", BAIC_AUTH_FAIL_METHOD);
    hdr_bad("BackendAI signMethod=HMAC-SHA3-256, credential=AK:s", BAIC_AUTH_FAIL_METHOD);
    hdr_bad("BackendAI signMethod=HMACSHA256, credential=AK:s", BAIC_AUTH_FAIL_METHOD);
    hdr_bad("BackendAI signMethod=, credential=AK:s", BAIC_AUTH_FAIL_METHOD);
    hdr_bad("BackendAI signMethod=HMAC-SHA256, credential=AK:s\r\nX-Evil: 1",
            BAIC_AUTH_FAIL_HEADER);

    /* Oversized fields are refused, not truncated. */
    char big[600];
    memset(big, 'a', sizeof(big));
    int n = snprintf(big, sizeof(big), "BackendAI signMethod=HMAC-SHA256, credential=");
    memset(big + n, 'K', 200);
    big[n + 200] = ':';
    big[n + 201] = 's';
    big[n + 202] = '\0';
    hdr_bad(big, BAIC_AUTH_FAIL_PARAMS);
    ck_assert_int_eq(
        baic_auth_parse_header("BackendAI signMethod=HMAC-SHA256, credential=A:b\0x", 51, &h),
        BAIC_EBAD_INPUT);
    ck_assert_int_eq(baic_auth_parse_header(NULL, 0, &h), BAIC_EBAD_INPUT);
}
END_TEST

START_TEST(mime_and_versions) {
    char m[64];
    ck_assert_int_eq(baic_auth_content_mime(NULL, m, sizeof(m)), 0);
    ck_assert_str_eq(m, "application/octet-stream");
    ck_assert_int_eq(baic_auth_content_mime("Application/JSON; charset=UTF-8", m, sizeof(m)), 0);
    ck_assert_str_eq(m, "application/json");
    ck_assert_int_eq(baic_auth_content_mime("  multipart/form-data ; boundary=x", m, sizeof(m)), 0);
    ck_assert_str_eq(m, "multipart/form-data");
    ck_assert_int_eq(baic_auth_content_mime("", m, sizeof(m)), 0);
    ck_assert_str_eq(m, "text/plain");
    ck_assert_int_eq(baic_auth_content_mime("garbage", m, sizeof(m)), 0);
    ck_assert_str_eq(m, "text/plain");
    ck_assert_int_eq(baic_auth_content_mime("a/b/c", m, sizeof(m)), 0);
    ck_assert_str_eq(m, "text/plain");
    ck_assert_int_eq(baic_auth_content_mime("text/plain", m, 10), BAIC_EBAD_INPUT);

    int major;
    uint32_t date;
    ck_assert_int_eq(baic_auth_version_parse("v8.20240915", &major, &date), 0);
    ck_assert_int_eq(major, 8);
    ck_assert_uint_eq(date, 20240915);
    ck_assert_int_eq(baic_auth_version_parse("v10.20300101", &major, NULL), 0);
    ck_assert_int_eq(major, 10);
    ck_assert_int_eq(baic_auth_version_parse("v8.2024091", NULL, NULL), BAIC_EBAD_INPUT);
    ck_assert_int_eq(baic_auth_version_parse("v8.202409150", NULL, NULL), BAIC_EBAD_INPUT);
    ck_assert_int_eq(baic_auth_version_parse("8.20240915", NULL, NULL), BAIC_EBAD_INPUT);
    ck_assert_int_eq(baic_auth_version_parse("v.20240915", NULL, NULL), BAIC_EBAD_INPUT);
    ck_assert_int_eq(baic_auth_version_parse("v8-20240915", NULL, NULL), BAIC_EBAD_INPUT);
    ck_assert_int_eq(baic_auth_version_parse(NULL, NULL, NULL), BAIC_EBAD_INPUT);

    ck_assert(baic_auth_version_supported("v8.20240915"));
    ck_assert(baic_auth_version_supported("v9.20250722"));
    ck_assert(baic_auth_version_supported("v4.20181215"));
    ck_assert(!baic_auth_version_supported("v3.20170615"));
    ck_assert(!baic_auth_version_supported("v8.20240915 "));
    ck_assert(baic_auth_version_supported(BAIC_AUTH_API_VERSION));
    size_t n = 0;
    for (const char *const *v = baic_auth_versions(); *v; v++, n++)
        ck_assert_int_eq(baic_auth_version_parse(*v, NULL, NULL), 0);
    ck_assert_uint_eq(n, 14);

    ck_assert(baic_auth_hash_supported("sha256"));
    ck_assert(baic_auth_hash_supported("blake2s"));
    ck_assert(!baic_auth_hash_supported("SHA256"));
    ck_assert(!baic_auth_hash_supported("shake_256"));
    ck_assert(!baic_auth_hash_supported(NULL));
}
END_TEST

static Suite *auth_sign_suite(void) {
    Suite *s = suite_create("auth_sign");
    BAIC_TCASE(s, tv, "vectors", 10);
    tcase_add_test(tv, vector_a);
    tcase_add_test(tv, vector_b);
    tcase_add_test(tv, vector_c);
    tcase_add_test(tv, vector_d);
    tcase_add_test(tv, vector_e);
    tcase_add_test(tv, other_hashes);
    tcase_add_test(tv, legacy_version_header);
    tcase_add_test(tv, date_in_own_offset);
    tcase_add_test(tv, sign_bad_args);
    BAIC_TCASE(s, tr, "verify", 10);
    tcase_add_test(tr, verify_ok_and_negative);
    tcase_add_test(tr, verify_with_key_cache);
    tcase_add_test(tr, verify_versions);
    tcase_add_test(tr, window_edges);
    BAIC_TCASE(s, tp, "parsers", 10);
    tcase_add_test(tp, date_parsing);
    tcase_add_test(tp, yyyymmdd);
    tcase_add_test(tp, header_parsing);
    tcase_add_test(tp, mime_and_versions);
    return s;
}

BAIC_CHECK_MAIN(auth_sign_suite)
