/* SPDX-License-Identifier: Apache-2.0 */
/* Backend.AI request signing (api-contract.md §1): header and date parsing, HMAC, checks. */
#ifndef BAIC_CORE_AUTH_SIGN_H
#define BAIC_CORE_AUTH_SIGN_H

#include <stddef.h>
#include <stdint.h>

/*
 * Everything here is pure: no I/O, no globals, no logging (the secret passes through
 * these functions and must never reach a log). All functions may be called from any
 * thread. Strings are NUL-terminated unless a length is given.
 */

#define BAIC_AUTH_HASH_NAME_MAX 16 /* "sha3_512" + NUL fits */
#define BAIC_AUTH_ACCESS_KEY_MAX 128
#define BAIC_AUTH_SIG_HEX_MAX 160 /* longest hex digest (128) + slack, NUL included */
#define BAIC_AUTH_DIGEST_MAX 64   /* longest raw digest we accept (sha512, blake2b) */
#define BAIC_AUTH_HEX_SIZE (2 * BAIC_AUTH_DIGEST_MAX + 1)
#define BAIC_AUTH_WINDOW_MS (15 * 60 * 1000) /* the date must be strictly inside ±this */

/* Why a check failed. The return code already tells 400 from 401; this says which
 * sentence to put in the problem JSON (baic_auth_fail_msg). */
typedef enum baic_auth_fail {
    BAIC_AUTH_FAIL_NONE = 0,
    BAIC_AUTH_FAIL_HEADER,              /* 400 malformed Authorization header */
    BAIC_AUTH_FAIL_SCHEME,              /* 400 scheme word is not BackendAI / Sorna */
    BAIC_AUTH_FAIL_PARAMS,              /* 400 signMethod / credential missing or malformed */
    BAIC_AUTH_FAIL_METHOD,              /* 400 signMethod not HMAC-<supported hash> */
    BAIC_AUTH_FAIL_DATE_MISSING,        /* 400 no Date / X-BackendAI-Date / X-Sorna-Date */
    BAIC_AUTH_FAIL_DATE_FORMAT,         /* 400 date does not parse */
    BAIC_AUTH_FAIL_DATE_SKEW,           /* 400 "Date/time sync error" */
    BAIC_AUTH_FAIL_VERSION_MISSING,     /* 400 no X-BackendAI-Version / X-Sorna-Version */
    BAIC_AUTH_FAIL_VERSION_UNSUPPORTED, /* 400 "Unsupported API version." */
    BAIC_AUTH_FAIL_SIGNATURE,           /* 401 "HMAC signature mismatch" */
} baic_auth_fail_t;

/* A parsed Authorization header. Fixed buffers: parsing never allocates. */
typedef struct baic_auth_hdr {
    int legacy_scheme;                  /* 1 when the scheme word was "Sorna" */
    char hash[BAIC_AUTH_HASH_NAME_MAX]; /* lower-case hashlib name, e.g. "sha256" */
    char access_key[BAIC_AUTH_ACCESS_KEY_MAX];
    char signature[BAIC_AUTH_SIG_HEX_MAX]; /* exactly as sent */
    baic_auth_fail_t fail;                 /* set when parsing failed */
    const char *reason;                    /* static sentence when parsing failed, else NULL */
} baic_auth_hdr_t;

/*
 * Parses `BackendAI signMethod=HMAC-SHA256, credential=AK:SIG` (scheme word BackendAI or
 * Sorna, case-sensitive; comma-separated k=v with whitespace trimmed; unknown keys
 * ignored; credential split at its first ':'). The method is lower-cased and must be
 * exactly `hmac-<hash>` with <hash> one of baic_auth_hash_supported().
 *   value, len  the raw header value (need not be NUL-terminated)
 *   out         filled on success; on failure out->fail and out->reason say why
 * Returns 0, or BAIC_EBAD_INPUT (answer 400 invalid-auth-params).
 */
int baic_auth_parse_header(const char *value, size_t len, baic_auth_hdr_t *out);

/* True when name (lower-case hashlib spelling: md5 sha1 sha224 sha256 sha384 sha512
 * sha3_224 sha3_256 sha3_384 sha3_512 blake2b blake2s) can sign requests here. */
int baic_auth_hash_supported(const char *name);

/*
 * Parses a request date leniently, as the manager's dateutil does for the forms clients
 * send: ISO-8601 `YYYY-MM-DD[T| ]HH:MM[:SS[.frac]]` (fraction of any length, `.` or `,`)
 * followed by nothing (naive: UTC), `Z`, `±hh:mm`, `±hhmm`, `±hh` or ` UTC`/` GMT`; the
 * basic form `YYYYMMDDTHHMMSS` likewise; and RFC 1123 / 2822
 * `[Sun, ]15 Sep 2024 12:34:56 GMT` (or `UTC`, `Z`, `±hhmm`).
 *   epoch_s     out: seconds since 1970-01-01T00:00:00Z (the fraction is dropped)
 *   offset_min  out: the offset written in the string, minutes east of UTC (0 if naive)
 * Returns 0 or BAIC_EBAD_INPUT.
 */
int baic_auth_parse_date(const char *s, size_t len, int64_t *epoch_s, int *offset_min);
/* The same, keeping microseconds (digits past the sixth are dropped, as Python does). */
int baic_auth_parse_date_us(const char *s, size_t len, int64_t *epoch_us, int *offset_min);

/* Writes the calendar date YYYYMMDD of epoch_s seen at offset_min into out[9]: the
 * message of k_date. Returns 0 or BAIC_EBAD_INPUT (year outside 1..9999). */
int baic_auth_date_yyyymmdd(int64_t epoch_s, int offset_min, char out[9]);

/*
 * The mime type aiohttp reports for a raw Content-Type header value, which is what
 * the client signed: NULL (header absent) gives "application/octet-stream"; otherwise
 * the part before the first ';', trimmed and lower-cased, or "text/plain" when that is
 * not of the form a/b (Python's email rules). Writes at most out_size bytes including
 * the NUL. Returns 0, or BAIC_EBAD_INPUT when out_size is too small.
 */
int baic_auth_content_mime(const char *content_type, char *out, size_t out_size);

/* API versions `^v(\d+)\.(\d{8})$`. Parse returns 0 and fills major / date (either may
 * be NULL), or BAIC_EBAD_INPUT. */
int baic_auth_version_parse(const char *s, int *major, uint32_t *yyyymmdd);
/* True when s is one of the versions the manager accepts (api-contract.md §0). */
int baic_auth_version_supported(const char *s);
/* The accepted versions, oldest first, NULL-terminated; static. */
const char *const *baic_auth_versions(void);
/* The version this server advertises on GET /. */
#define BAIC_AUTH_API_VERSION "v8.20240915"

/*
 * The two derived keys: k_date = HMAC(secret, yyyymmdd), k_sign = HMAC(k_date, host).
 * k_date and k_sign receive BAIC_AUTH_DIGEST_MAX bytes at most; *md_len their length.
 * Either output may be NULL. Returns 0, BAIC_EBAD_INPUT (unknown hash) or BAIC_EINTERNAL.
 */
int baic_auth_derive_keys(const char *hash, const void *secret, size_t secret_len,
                          const char *yyyymmdd, const char *host, unsigned char *k_date,
                          unsigned char *k_sign, size_t *md_len);

/*
 * Computes the request signature exactly as api-contract.md §1:
 * string-to-sign = METHOD \n raw_path \n date_raw \n host:<host> \n content-type:<mime> \n
 * <version_hdr>:<version> \n hex(hash(b"")), signed with k_sign; lower-case hex.
 *   hash         hashlib name ("sha256")
 *   secret       the secret key's UTF-8 bytes; never copied beyond this call
 *   method       request method; upper-cased here
 *   raw_path     path with query string exactly as on the request line
 *   date_raw     the date header value exactly as received
 *   yyyymmdd     from baic_auth_date_yyyymmdd of the parsed date in its own offset
 *   host         the Host header value
 *   mime         from baic_auth_content_mime
 *   version_hdr  "x-backendai-version" or "x-sorna-version"
 *   version      the version header's value
 *   out_hex      receives the hex signature and a NUL; out_size >= 2 * digest + 1
 * Returns 0, BAIC_EBAD_INPUT (unknown hash, NULL field, out too small) or BAIC_EINTERNAL.
 */
int baic_auth_sign(const char *hash, const void *secret, size_t secret_len, const char *method,
                   const char *raw_path, const char *date_raw, const char *yyyymmdd,
                   const char *host, const char *mime, const char *version_hdr, const char *version,
                   char *out_hex, size_t out_size);

/* The request fields a signature covers, as received. All borrowed. */
typedef struct baic_auth_signed_req {
    const char *method;        /* "GET" */
    const char *raw_path;      /* path and query exactly as on the request line */
    const char *host;          /* Host header value ("" if absent) */
    const char *content_type;  /* raw Content-Type value, NULL when absent */
    const char *date;          /* Date, else X-BackendAI-Date, else X-Sorna-Date; NULL if none */
    const char *version;       /* X-BackendAI-Version or NULL */
    const char *sorna_version; /* X-Sorna-Version or NULL; used only when version is NULL */
} baic_auth_signed_req_t;

/*
 * Checks the date is present, parses and lies strictly within ±15 minutes of now_ms.
 *   now_ms   wall-clock time, milliseconds since the epoch (CLOCK_REALTIME)
 *   why      out, may be NULL
 * Returns 0 or BAIC_EBAD_INPUT (400 invalid-auth-params). The manager calls this before
 * looking the access key up, as the reference manager does.
 */
int baic_auth_check_date(const char *date, int64_t now_ms, baic_auth_fail_t *why);

/*
 * Full check of a signed request whose Authorization header was parsed into hdr and
 * whose access key resolved to secret: version present and supported, date (as
 * baic_auth_check_date), then the signature compared in constant time.
 * Returns 0; BAIC_EBAD_INPUT for 400 invalid-auth-params (version or date);
 * BAIC_EAUTH_FAILED for 401 auth-failed (signature mismatch); BAIC_EINTERNAL when the
 * crypto library fails. *why (may be NULL) tells which.
 */
int baic_auth_verify_request(const baic_auth_signed_req_t *req, const baic_auth_hdr_t *hdr,
                             const void *secret, size_t secret_len, int64_t now_ms,
                             baic_auth_fail_t *why);

/*
 * A derived signing key kept between requests of one keypair: k_sign depends only on
 * the secret, the request's day and the Host, so a verifier that keeps one of these per
 * keypair computes one HMAC per request instead of three. Zero-initialise before first
 * use; wipe (OPENSSL_cleanse) when the keypair is dropped. Not thread-safe: one per
 * keypair per thread.
 */
typedef struct baic_auth_kcache {
    char hash[BAIC_AUTH_HASH_NAME_MAX];
    char ymd[9];
    char host[128];
    unsigned char k_sign[BAIC_AUTH_DIGEST_MAX];
    size_t len; /* 0 = empty */
} baic_auth_kcache_t;

/* baic_auth_verify_request with a derived-key cache (kc may be NULL). */
int baic_auth_verify_request_kc(const baic_auth_signed_req_t *req, const baic_auth_hdr_t *hdr,
                                const void *secret, size_t secret_len, int64_t now_ms,
                                baic_auth_kcache_t *kc, baic_auth_fail_t *why);

/* Static sentence for a failure, suitable as the problem JSON's msg. */
const char *baic_auth_fail_msg(baic_auth_fail_t why);
/* 400 or 401 for a failure (0 for NONE). */
int baic_auth_fail_http_status(baic_auth_fail_t why);

#endif
