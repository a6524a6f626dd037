/* SPDX-License-Identifier: Apache-2.0 */
/* TOML 1.0 reader: a byte scanner and recursive-descent parser building jansson trees. */

#include <errno.h>
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <baic/errors.h>

#include "config/config.h"

/* Bounds both our recursion and jansson's (json_decref and json_dumps recurse too). */
#define TOML_MAX_DEPTH 128

/* Files bigger than this are not configuration; the limit keeps size arithmetic trivial. */
#define TOML_MAX_LEN ((size_t)1 << 30)

/*
 * How a table or array came to exist decides what may still be added to it (TOML 1.0
 * "Table" and "Array of Tables"). Anything absent from the map is sealed: inline tables
 * and value arrays are never extended once written.
 */
enum {
    ORIGIN_SEALED = 0,
    ORIGIN_IMPLICIT, /* intermediate of a [a.b.c] header: may later be defined once by [a] */
    ORIGIN_EXPLICIT, /* defined by a header (or the root): never again */
    ORIGIN_DOTTED,   /* made by a dotted key: extendable only by further dotted keys */
    ORIGIN_AOT,      /* array made by [[a]]: extendable only by [[a]] */
};

/* Open-addressing map from node address to origin; nodes live until the parse ends. */
typedef struct {
    const json_t **keys;
    unsigned char *vals;
    size_t cap;
    size_t used;
} origin_map_t;

typedef struct {
    const char *s;
    size_t len;
    size_t pos;
    const char *name;
    char *err;
    size_t errlen;
    origin_map_t origins;
    /* Scratch for decoded strings and keys; reused so a document costs few allocations. */
    char *buf;
    size_t buflen;
    size_t bufcap;
    json_t *root;
    json_t *cur;   /* the table that key/value lines go into */
    int cur_depth; /* its nesting depth; the root is 0 */
} toml_t;

/* ---- origins ---------------------------------------------------------------------------- */

static size_t origin_slot(const json_t *node, size_t cap) {
    uint64_t x = (uint64_t)(uintptr_t)node;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (size_t)x & (cap - 1);
}

static int origin_get(const origin_map_t *m, const json_t *node) {
    if (m->cap == 0)
        return ORIGIN_SEALED;
    for (size_t i = origin_slot(node, m->cap);; i = (i + 1) & (m->cap - 1)) {
        if (m->keys[i] == node)
            return m->vals[i];
        if (m->keys[i] == NULL)
            return ORIGIN_SEALED;
    }
}

static int origin_grow(origin_map_t *m) {
    size_t ncap = m->cap ? m->cap * 2 : 64;
    const json_t **nkeys = calloc(ncap, sizeof(*nkeys));
    unsigned char *nvals = calloc(ncap, 1);
    if (!nkeys || !nvals) {
        free(nkeys);
        free(nvals);
        return -ENOMEM;
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->keys[i])
            continue;
        size_t j = origin_slot(m->keys[i], ncap);
        while (nkeys[j])
            j = (j + 1) & (ncap - 1);
        nkeys[j] = m->keys[i];
        nvals[j] = m->vals[i];
    }
    free(m->keys);
    free(m->vals);
    m->keys = nkeys;
    m->vals = nvals;
    m->cap = ncap;
    return 0;
}

static int origin_set(origin_map_t *m, const json_t *node, int origin) {
    if ((m->used + 1) * 2 > m->cap && origin_grow(m) < 0)
        return -ENOMEM;
    size_t i = origin_slot(node, m->cap);
    while (m->keys[i] && m->keys[i] != node)
        i = (i + 1) & (m->cap - 1);
    if (!m->keys[i])
        m->used++;
    m->keys[i] = node;
    m->vals[i] = (unsigned char)origin;
    return 0;
}

/* ---- errors ----------------------------------------------------------------------------- */

static void line_col(const toml_t *p, size_t pos, int *line, int *col) {
    int l = 1, c = 1;
    for (size_t i = 0; i < pos && i < p->len; i++) {
        unsigned char b = (unsigned char)p->s[i];
        if (b == '\n') {
            l++;
            c = 1;
        } else if ((b & 0xC0) != 0x80) {
            c++; /* columns count characters, not UTF-8 continuation bytes */
        }
    }
    *line = l;
    *col = c;
}

__attribute__((format(printf, 3, 4))) static int fail_at(toml_t *p, size_t pos, const char *fmt,
                                                         ...) {
    if (p->err && p->errlen) {
        int line, col;
        line_col(p, pos, &line, &col);
        int n = snprintf(p->err, p->errlen, "%s:%d:%d: ", p->name, line, col);
        if (n >= 0 && (size_t)n < p->errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return BAIC_ECONFIG_SYNTAX;
}

static int oom(toml_t *p) {
    if (p->err && p->errlen)
        snprintf(p->err, p->errlen, "%s: out of memory", p->name);
    return -ENOMEM;
}

/* Decodes the (already validated) UTF-8 sequence at pos; used only for messages. */
static unsigned long peek_codepoint(const toml_t *p, size_t pos) {
    const unsigned char *s = (const unsigned char *)p->s;
    unsigned char b = s[pos];
    int n = b >= 0xF0 ? 3 : b >= 0xE0 ? 2 : b >= 0xC0 ? 1 : 0;
    unsigned long cp = n == 3 ? (b & 0x07u) : n == 2 ? (b & 0x0Fu) : n == 1 ? (b & 0x1Fu) : b;
    for (int i = 1; i <= n && pos + (size_t)i < p->len; i++)
        cp = (cp << 6) | (s[pos + (size_t)i] & 0x3Fu);
    return cp;
}

/* Names the character at pos for "found ..." in messages. */
static const char *describe(const toml_t *p, size_t pos, char out[32]) {
    if (pos >= p->len)
        return "end of file";
    unsigned char c = (unsigned char)p->s[pos];
    if (c == '\n')
        return "newline";
    if (c == '\r')
        return "carriage return";
    if (c == '\t')
        return "tab";
    if (c == '\'')
        return "\"'\"";
    if (c > 0x20 && c < 0x7f)
        snprintf(out, 32, "'%c'", c);
    else
        snprintf(out, 32, "U+%04lX", c < 0x80 ? (unsigned long)c : peek_codepoint(p, pos));
    return out;
}

/* Renders a decoded key for messages: quoted, escaped, shortened. */
static const char *show_key(const char *k, char out[72]) {
    size_t o = 0;
    out[o++] = '"';
    for (size_t i = 0; k[i] && o < 62; i++) {
        unsigned char c = (unsigned char)k[i];
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            o += (size_t)snprintf(out + o, 72 - o, "\\u%04X", c);
        } else {
            out[o++] = (char)c;
        }
    }
    if (o >= 62) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o++] = '"';
    out[o] = '\0';
    return out;
}

static const char *type_name(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "a table";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a float";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    default:
        return "a value";
    }
}

/* ---- scanning --------------------------------------------------------------------------- */

/* The byte at pos + off, or -1 past the end: every look-ahead goes through here. */
static int at(const toml_t *p, size_t off) {
    return p->pos + off < p->len ? (unsigned char)p->s[p->pos + off] : -1;
}

static int is_control(int c) {
    return (c >= 0 && c < 0x20 && c != '\t') || c == 0x7f;
}

static int is_bare(int c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

static int is_digit(int c) {
    return c >= '0' && c <= '9';
}

static void skip_ws(toml_t *p) {
    while (at(p, 0) == ' ' || at(p, 0) == '\t')
        p->pos++;
}

/* Consumes LF or CRLF; returns whether it did. */
static int eat_newline(toml_t *p) {
    if (at(p, 0) == '\n') {
        p->pos++;
        return 1;
    }
    if (at(p, 0) == '\r' && at(p, 1) == '\n') {
        p->pos += 2;
        return 1;
    }
    return 0;
}

static int at_newline(const toml_t *p) {
    return at(p, 0) == '\n' || (at(p, 0) == '\r' && at(p, 1) == '\n');
}

/* Skips a comment up to (not including) its newline. */
static int skip_comment(toml_t *p) {
    if (at(p, 0) != '#')
        return 0;
    p->pos++;
    for (int c; (c = at(p, 0)) != -1 && !at_newline(p); p->pos++) {
        if (is_control(c))
            return fail_at(p, p->pos, "control character U+%04X is not allowed in a comment",
                           (unsigned)c);
    }
    return 0;
}

/* Whitespace, newlines and comments, as allowed between array elements. */
static int skip_ws_nl_comments(toml_t *p) {
    for (;;) {
        skip_ws(p);
        if (at(p, 0) == '#') {
            int rc = skip_comment(p);
            if (rc)
                return rc;
        } else if (!eat_newline(p)) {
            return 0;
        }
    }
}

/* Rejects anything that is not UTF-8 up front, so later stages may trust every byte. */
static int validate_utf8(toml_t *p) {
    const unsigned char *s = (const unsigned char *)p->s;
    size_t i = 0;
    while (i < p->len) {
        unsigned char b = s[i];
        if (b == 0)
            return fail_at(p, i, "NUL byte is not allowed in a TOML document");
        if (b < 0x80) {
            i++;
            continue;
        }
        size_t n;
        unsigned long cp, min;
        if (b >= 0xC2 && b <= 0xDF) {
            n = 1, cp = b & 0x1Fu, min = 0x80;
        } else if (b >= 0xE0 && b <= 0xEF) {
            n = 2, cp = b & 0x0Fu, min = 0x800;
        } else if (b >= 0xF0 && b <= 0xF4) {
            n = 3, cp = b & 0x07u, min = 0x10000;
        } else {
            return fail_at(p, i, "invalid UTF-8: unexpected byte 0x%02X", b);
        }
        for (size_t k = 1; k <= n; k++) {
            if (i + k >= p->len || (s[i + k] & 0xC0) != 0x80)
                return fail_at(p, i, "invalid UTF-8: truncated sequence");
            cp = (cp << 6) | (s[i + k] & 0x3Fu);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return fail_at(p, i, "invalid UTF-8: overlong form, surrogate or out of range");
        i += n + 1;
    }
    return 0;
}

/* ---- scratch buffer --------------------------------------------------------------------- */

static int buf_reserve(toml_t *p, size_t extra) {
    if (p->buflen + extra + 1 <= p->bufcap)
        return 0;
    size_t ncap = p->bufcap ? p->bufcap : 256;
    while (ncap < p->buflen + extra + 1)
        ncap *= 2;
    char *n = realloc(p->buf, ncap);
    if (!n)
        return oom(p);
    p->buf = n;
    p->bufcap = ncap;
    return 0;
}

static int buf_put(toml_t *p, const char *s, size_t n) {
    int rc = buf_reserve(p, n);
    if (rc)
        return rc;
    memcpy(p->buf + p->buflen, s, n);
    p->buflen += n;
    p->buf[p->buflen] = '\0';
    return 0;
}

static int buf_putc(toml_t *p, char c) {
    return buf_put(p, &c, 1);
}

static int buf_reset(toml_t *p) {
    p->buflen = 0;
    int rc = buf_reserve(p, 0);
    if (rc == 0)
        p->buf[0] = '\0';
    return rc;
}

/* ---- strings ---------------------------------------------------------------------------- */

static int hexval(int c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int put_utf8(toml_t *p, unsigned long cp) {
    char b[4];
    size_t n;
    if (cp < 0x80) {
        b[0] = (char)cp, n = 1;
    } else if (cp < 0x800) {
        b[0] = (char)(0xC0 | (cp >> 6)), b[1] = (char)(0x80 | (cp & 0x3F)), n = 2;
    } else if (cp < 0x10000) {
        b[0] = (char)(0xE0 | (cp >> 12)), b[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (char)(0x80 | (cp & 0x3F)), n = 3;
    } else {
        b[0] = (char)(0xF0 | (cp >> 18)), b[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (char)(0x80 | ((cp >> 6) & 0x3F)), b[3] = (char)(0x80 | (cp & 0x3F)), n = 4;
    }
    return buf_put(p, b, n);
}

/* Decodes one escape at p->pos (the backslash) into the buffer. */
static int parse_escape(toml_t *p) {
    size_t start = p->pos;
    int c = at(p, 1);
    char out;
    switch (c) {
    case 'b':
        out = '\b';
        break;
    case 't':
        out = '\t';
        break;
    case 'n':
        out = '\n';
        break;
    case 'f':
        out = '\f';
        break;
    case 'r':
        out = '\r';
        break;
    case '"':
        out = '"';
        break;
    case '\\':
        out = '\\';
        break;
    case 'u':
    case 'U': {
        int ndig = c == 'u' ? 4 : 8;
        unsigned long cp = 0;
        for (int i = 0; i < ndig; i++) {
            int h = hexval(at(p, 2 + (size_t)i));
            if (h < 0) {
                char d[32];
                return fail_at(p, p->pos + 2 + (size_t)i,
                               "expected %d hex digits after '\\%c', found %s", ndig, c,
                               describe(p, p->pos + 2 + (size_t)i, d));
            }
            cp = (cp << 4) | (unsigned long)h;
        }
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return fail_at(p, start, "escape '\\%c%.*s' is not a Unicode scalar value", c, ndig,
                           p->s + p->pos + 2);
        if (cp == 0)
            return fail_at(p, start,
                           "escape for U+0000 is not supported (NUL cannot be "
                           "represented in configuration strings)");
        p->pos += 2 + (size_t)ndig;
        return put_utf8(p, cp);
    }
    default: {
        char d[32];
        return fail_at(p, start,
                       "invalid escape: expected one of \\b \\t \\n \\f \\r \\\" \\\\ \\uXXXX "
                       "\\UXXXXXXXX after backslash, found %s",
                       describe(p, p->pos + 1, d));
    }
    }
    p->pos += 2;
    return buf_putc(p, out);
}

/* Single-line basic ("...") or literal ('...') string; decoded into the buffer. */
static int parse_line_string(toml_t *p) {
    int q = at(p, 0);
    int rc = buf_reset(p);
    if (rc)
        return rc;
    p->pos++;
    for (;;) {
        int c = at(p, 0);
        if (c == q) {
            p->pos++;
            return 0;
        }
        if (c == -1 || c == '\n' || c == '\r') {
            char d[32];
            return fail_at(p, p->pos, "expected %s to close the string, found %s",
                           q == '"' ? "'\"'" : "\"'\"", describe(p, p->pos, d));
        }
        if (is_control(c))
            return fail_at(p, p->pos, "control character U+%04X must be escaped in a string",
                           (unsigned)c);
        if (c == '\\' && q == '"') {
            rc = parse_escape(p);
        } else {
            rc = buf_putc(p, (char)c);
            p->pos++;
        }
        if (rc)
            return rc;
    }
}

/* Multi-line basic ("""...""") or literal ('''...''') string; p->pos is at the opening quotes. */
static int parse_ml_string(toml_t *p) {
    int q = at(p, 0);
    int rc = buf_reset(p);
    if (rc)
        return rc;
    p->pos += 3;
    eat_newline(p); /* a newline right after the delimiter is not part of the string */
    for (;;) {
        int c = at(p, 0);
        if (c == q) {
            size_t n = 0;
            while (at(p, n) == q)
                n++;
            if (n < 3) {
                rc = buf_put(p, q == '"' ? "\"\"" : "''", n);
                p->pos += n;
            } else if (n <= 5) {
                /* up to two quotes may sit right before the closing delimiter */
                rc = buf_put(p, q == '"' ? "\"\"" : "''", n - 3);
                p->pos += n;
                return rc;
            } else {
                return fail_at(p, p->pos + 5,
                               "too many quotes: at most two may precede the closing delimiter");
            }
        } else if (c == -1) {
            return fail_at(p, p->pos,
                           "expected %s to close the multi-line string, found end "
                           "of file",
                           q == '"' ? "'\"\"\"'" : "\"'''\"");
        } else if (c == '\n' || (c == '\r' && at(p, 1) == '\n')) {
            eat_newline(p); /* CRLF is stored as LF */
            rc = buf_putc(p, '\n');
        } else if (is_control(c)) {
            return fail_at(p, p->pos, "control character U+%04X must be escaped in a string",
                           (unsigned)c);
        } else if (c == '\\' && q == '"') {
            size_t i = 1;
            while (at(p, i) == ' ' || at(p, i) == '\t')
                i++;
            if (at(p, i) == '\n' || (at(p, i) == '\r' && at(p, i + 1) == '\n')) {
                /* line-ending backslash: drop it and all whitespace up to the next text */
                p->pos += i;
                for (;;) {
                    if (at(p, 0) == ' ' || at(p, 0) == '\t')
                        p->pos++;
                    else if (!eat_newline(p))
                        break;
                }
            } else {
                rc = parse_escape(p);
            }
        } else {
            rc = buf_putc(p, (char)c);
            p->pos++;
        }
        if (rc)
            return rc;
    }
}

/* Any string value, as a new jansson string. */
static int parse_string_value(toml_t *p, json_t **out) {
    int q = at(p, 0);
    int rc = (at(p, 1) == q && at(p, 2) == q) ? parse_ml_string(p) : parse_line_string(p);
    if (rc)
        return rc;
    *out = json_stringn(p->buf, p->buflen);
    return *out ? 0 : oom(p);
}

/* ---- keys and tables -------------------------------------------------------------------- */

/* One key segment (bare, "basic" or 'literal') decoded into the buffer. */
static int parse_key_segment(toml_t *p) {
    int c = at(p, 0);
    if (c == '"' || c == '\'')
        return parse_line_string(p);
    if (!is_bare(c)) {
        char d[32];
        return fail_at(p, p->pos, "expected a key (bare, \"quoted\" or 'literal'), found %s",
                       describe(p, p->pos, d));
    }
    size_t start = p->pos;
    while (is_bare(at(p, 0)))
        p->pos++;
    int rc = buf_reset(p);
    return rc ? rc : buf_put(p, p->s + start, p->pos - start);
}

static int check_depth(toml_t *p, size_t pos, int depth) {
    if (depth > TOML_MAX_DEPTH)
        return fail_at(p, pos, "nesting deeper than %d tables and arrays", TOML_MAX_DEPTH);
    return 0;
}

/* Adds an empty table under parent[key] and records its origin. */
static int add_table(toml_t *p, json_t *parent, const char *key, int origin, json_t **out) {
    json_t *t = json_object();
    if (!t)
        return oom(p);
    if (json_is_array(parent) ? json_array_append_new(parent, t)
                              : json_object_set_new(parent, key, t))
        return oom(p); /* jansson released t */
    if (origin_set(&p->origins, t, origin))
        return oom(p);
    *out = t;
    return 0;
}

/* Appends a table to an array of tables at parent[key], creating the array if needed. */
static int add_aot_element(toml_t *p, json_t *parent, const char *key, json_t *arr, json_t **out) {
    if (!arr) {
        arr = json_array();
        if (!arr)
            return oom(p);
        if (json_object_set_new(parent, key, arr))
            return oom(p);
        if (origin_set(&p->origins, arr, ORIGIN_AOT))
            return oom(p);
    }
    return add_table(p, arr, NULL, ORIGIN_EXPLICIT, out);
}

/* A non-final segment of a [header]: descend into (or create) key under *tbl. */
static int header_step(toml_t *p, json_t **tbl, const char *key, size_t kpos, int *depth) {
    char k[72];
    json_t *v = json_object_get(*tbl, key);
    int rc;
    if (!v) {
        if ((rc = check_depth(p, kpos, *depth + 1)))
            return rc;
        if ((rc = add_table(p, *tbl, key, ORIGIN_IMPLICIT, tbl)))
            return rc;
        (*depth)++;
        return 0;
    }
    int origin = origin_get(&p->origins, v);
    if (json_is_object(v)) {
        if (origin == ORIGIN_SEALED)
            return fail_at(p, kpos, "cannot extend %s: inline tables are complete as written",
                           show_key(key, k));
        *tbl = v;
        (*depth)++;
        return 0;
    }
    if (json_is_array(v) && origin == ORIGIN_AOT) {
        if ((rc = check_depth(p, kpos, *depth + 2)))
            return rc;
        *tbl = json_array_get(v, json_array_size(v) - 1);
        *depth += 2;
        return 0;
    }
    if (json_is_array(v))
        return fail_at(p, kpos, "cannot extend %s: it is a static array, expected a table",
                       show_key(key, k));
    return fail_at(p, kpos, "%s is already %s, expected a table", show_key(key, k), type_name(v));
}

/* The last segment of [key] or [[key]]: defines the table lines go into next. */
static int header_final(toml_t *p, json_t *tbl, const char *key, size_t kpos, int depth, int aot) {
    char k[72];
    json_t *v = json_object_get(tbl, key);
    int origin = v ? origin_get(&p->origins, v) : ORIGIN_SEALED;
    int rc;
    if (aot) {
        if (v && !(json_is_array(v) && origin == ORIGIN_AOT)) {
            if (json_is_array(v))
                return fail_at(p, kpos, "cannot append to static array %s with [[...]]",
                               show_key(key, k));
            return fail_at(p, kpos, "%s is already %s, expected an array of tables",
                           show_key(key, k), type_name(v));
        }
        if ((rc = check_depth(p, kpos, depth + 2)))
            return rc;
        if ((rc = add_aot_element(p, tbl, key, v, &p->cur)))
            return rc;
        p->cur_depth = depth + 2;
        return 0;
    }
    if (!v) {
        if ((rc = check_depth(p, kpos, depth + 1)))
            return rc;
        if ((rc = add_table(p, tbl, key, ORIGIN_EXPLICIT, &p->cur)))
            return rc;
    } else if (json_is_object(v) && origin == ORIGIN_IMPLICIT) {
        if (origin_set(&p->origins, v, ORIGIN_EXPLICIT))
            return oom(p);
        p->cur = v;
    } else if (json_is_object(v)) {
        return fail_at(p, kpos, "table %s is defined more than once%s", show_key(key, k),
                       origin == ORIGIN_DOTTED ? " (already defined by dotted keys)" : "");
    } else if (json_is_array(v) && origin == ORIGIN_AOT) {
        return fail_at(p, kpos, "%s is an array of tables; use [[...]] to add to it",
                       show_key(key, k));
    } else {
        return fail_at(p, kpos, "%s is already %s, expected a table", show_key(key, k),
                       type_name(v));
    }
    p->cur_depth = depth + 1;
    return 0;
}

/* "[a.b]" or "[[a.b]]" at p->pos. */
static int parse_header(toml_t *p) {
    int aot = at(p, 1) == '[';
    p->pos += aot ? 2 : 1;
    json_t *tbl = p->root;
    int depth = 0;
    size_t kpos;
    int rc;
    for (;;) {
        skip_ws(p);
        kpos = p->pos;
        if ((rc = parse_key_segment(p)))
            return rc;
        skip_ws(p);
        if (at(p, 0) != '.')
            break;
        p->pos++;
        if ((rc = header_step(p, &tbl, p->buf, kpos, &depth)))
            return rc;
    }
    if (at(p, 0) != ']' || (aot && at(p, 1) != ']')) {
        char d[32];
        size_t bad = at(p, 0) == ']' ? p->pos + 1 : p->pos;
        return fail_at(p, bad, "expected '%s' to close the %s header, found %s", aot ? "]]" : "]",
                       aot ? "array-of-tables" : "table", describe(p, bad, d));
    }
    p->pos += aot ? 2 : 1;
    return header_final(p, tbl, p->buf, kpos, depth, aot);
}

/* A non-final segment of a dotted key in a key/value pair. */
static int dotted_step(toml_t *p, json_t **tbl, const char *key, size_t kpos, int *depth) {
    char k[72];
    json_t *v = json_object_get(*tbl, key);
    int rc;
    if (!v) {
        if ((rc = check_depth(p, kpos, *depth + 1)))
            return rc;
        if ((rc = add_table(p, *tbl, key, ORIGIN_DOTTED, tbl)))
            return rc;
        (*depth)++;
        return 0;
    }
    int origin = origin_get(&p->origins, v);
    if (json_is_object(v) && (origin == ORIGIN_DOTTED || origin == ORIGIN_IMPLICIT)) {
        /* A table only implied by a deeper header has not been defined yet, so dotted keys
         * may define it (as tomli and toml-test read the spec); a [header] for it is then a
         * redefinition. */
        if (origin == ORIGIN_IMPLICIT && origin_set(&p->origins, v, ORIGIN_DOTTED))
            return oom(p);
        *tbl = v;
        (*depth)++;
        return 0;
    }
    if (json_is_object(v) && origin == ORIGIN_SEALED)
        return fail_at(p, kpos, "cannot extend %s: inline tables are complete as written",
                       show_key(key, k));
    if (json_is_object(v))
        return fail_at(p, kpos,
                       "cannot add to table %s with dotted keys: it is defined by a "
                       "[header]",
                       show_key(key, k));
    return fail_at(p, kpos, "%s is already %s, expected a table", show_key(key, k), type_name(v));
}

static int parse_value(toml_t *p, int depth, json_t **out);

/* "key = value" into tbl (at nesting depth). */
static int parse_keyval(toml_t *p, json_t *tbl, int depth) {
    size_t kpos;
    int rc;
    for (;;) {
        kpos = p->pos;
        if ((rc = parse_key_segment(p)))
            return rc;
        skip_ws(p);
        if (at(p, 0) != '.')
            break;
        p->pos++;
        skip_ws(p);
        if ((rc = dotted_step(p, &tbl, p->buf, kpos, &depth)))
            return rc;
    }
    if (at(p, 0) != '=') {
        char d[32];
        return fail_at(p, p->pos, "expected '=' after key, found %s", describe(p, p->pos, d));
    }
    if (json_object_get(tbl, p->buf)) {
        char k[72];
        return fail_at(p, kpos, "key %s is defined more than once", show_key(p->buf, k));
    }
    char *key = strdup(p->buf); /* the value's strings reuse the buffer */
    if (!key)
        return oom(p);
    p->pos++;
    skip_ws(p);
    json_t *v = NULL;
    rc = parse_value(p, depth + 1, &v);
    if (rc == 0 && json_object_set_new(tbl, key, v))
        rc = oom(p);
    free(key);
    return rc;
}

/* ---- values ----------------------------------------------------------------------------- */

static int parse_array(toml_t *p, int depth, json_t **out) {
    int rc = check_depth(p, p->pos, depth);
    if (rc)
        return rc;
    json_t *arr = json_array();
    if (!arr)
        return oom(p);
    p->pos++;
    for (;;) {
        if ((rc = skip_ws_nl_comments(p)))
            break;
        if (at(p, 0) == ']')
            break;
        json_t *v = NULL;
        if ((rc = parse_value(p, depth + 1, &v)))
            break;
        if (json_array_append_new(arr, v)) {
            rc = oom(p);
            break;
        }
        if ((rc = skip_ws_nl_comments(p)))
            break;
        if (at(p, 0) == ',') {
            p->pos++;
            continue;
        }
        if (at(p, 0) != ']') {
            char d[32];
            rc = fail_at(p, p->pos, "expected ',' or ']' in array, found %s",
                         describe(p, p->pos, d));
        }
        break;
    }
    if (rc) {
        json_decref(arr);
        return rc;
    }
    p->pos++;
    *out = arr;
    return 0;
}

static int parse_inline_table(toml_t *p, int depth, json_t **out) {
    int rc = check_depth(p, p->pos, depth);
    if (rc)
        return rc;
    json_t *obj = json_object();
    if (!obj)
        return oom(p);
    p->pos++;
    skip_ws(p);
    if (at(p, 0) != '}') {
        for (;;) {
            skip_ws(p);
            if ((rc = parse_keyval(p, obj, depth)))
                break;
            skip_ws(p);
            if (at(p, 0) == '}')
                break;
            if (at(p, 0) != ',') {
                char d[32];
                rc = fail_at(p, p->pos, "expected ',' or '}' in inline table, found %s%s",
                             describe(p, p->pos, d),
                             at_newline(p) ? " (inline tables must be on one line)" : "");
                break;
            }
            p->pos++;
            skip_ws(p);
            if (at(p, 0) == '}') {
                rc = fail_at(p, p->pos,
                             "expected a key after ',': trailing commas are not "
                             "allowed in inline tables");
                break;
            }
        }
    }
    if (rc) {
        json_decref(obj);
        return rc;
    }
    p->pos++;
    *out = obj;
    return 0;
}

/* Parses digits of a base with '_' only between digits, from tok[*i]. Returns digit count or
 * -1 with *i at the offending character. */
static int scan_digits(const char *tok, size_t n, size_t *i, int base) {
    int count = 0;
    while (*i < n) {
        int c = (unsigned char)tok[*i];
        int d = hexval(c);
        if (d >= 0 && d < base) {
            count++;
            (*i)++;
        } else if (c == '_') {
            if (count == 0 || *i + 1 >= n || hexval((unsigned char)tok[*i + 1]) < 0 ||
                hexval((unsigned char)tok[*i + 1]) >= base)
                return -1;
            (*i)++;
        } else {
            break;
        }
    }
    return count;
}

static int number_value(toml_t *p, size_t start, size_t n, json_t **out) {
    const char *tok = p->s + start;
    size_t i = 0;
    int neg = 0, sign = 0;
    if (tok[0] == '+' || tok[0] == '-') {
        sign = 1;
        neg = tok[0] == '-';
        i = 1;
    }
    if (n - i == 3 && (!memcmp(tok + i, "inf", 3) || !memcmp(tok + i, "nan", 3))) {
        /* JSON has no inf or nan; keep the spelling so a reader can still tell */
        *out = json_stringn(tok, n);
        return *out ? 0 : oom(p);
    }
    if (n - i >= 2 && tok[i] == '0' &&
        (tok[i + 1] == 'x' || tok[i + 1] == 'o' || tok[i + 1] == 'b')) {
        int base = tok[i + 1] == 'x' ? 16 : tok[i + 1] == 'o' ? 8 : 2;
        if (sign)
            return fail_at(p, start,
                           "a sign is not allowed on hexadecimal, octal or binary "
                           "integers");
        i += 2;
        size_t d0 = i;
        int cnt = scan_digits(tok, n, &i, base);
        if (cnt <= 0 || i != n) {
            char d[32];
            return fail_at(p, start + i, "expected a base-%d digit, found %s", base,
                           describe(p, start + i, d));
        }
        unsigned long long u = 0;
        for (size_t k = d0; k < n; k++) {
            if (tok[k] == '_')
                continue;
            unsigned dv = (unsigned)hexval((unsigned char)tok[k]);
            if (u > ((unsigned long long)LLONG_MAX - dv) / (unsigned)base)
                return fail_at(p, start, "integer does not fit in 64 bits");
            u = u * (unsigned)base + dv;
        }
        *out = json_integer((json_int_t)u);
        return *out ? 0 : oom(p);
    }
    size_t int0 = i;
    int cnt = scan_digits(tok, n, &i, 10);
    if (cnt <= 0) {
        char d[32];
        return fail_at(p, start + i, "expected a digit, found %s", describe(p, start + i, d));
    }
    if (tok[int0] == '0' && cnt > 1)
        return fail_at(p, start + int0, "leading zeros are not allowed");
    size_t int_end = i;
    int is_float = 0;
    if (i < n && tok[i] == '.') {
        is_float = 1;
        i++;
        if (scan_digits(tok, n, &i, 10) <= 0) {
            char d[32];
            return fail_at(p, start + i, "expected a digit after '.', found %s",
                           describe(p, start + i, d));
        }
    }
    if (i < n && (tok[i] == 'e' || tok[i] == 'E')) {
        is_float = 1;
        i++;
        if (i < n && (tok[i] == '+' || tok[i] == '-'))
            i++;
        if (scan_digits(tok, n, &i, 10) <= 0) {
            char d[32];
            return fail_at(p, start + i, "expected a digit in the exponent, found %s",
                           describe(p, start + i, d));
        }
    }
    if (i != n) {
        char d[32];
        return fail_at(p, start + i, "unexpected %s in number", describe(p, start + i, d));
    }
    if (!is_float) {
        unsigned long long limit = neg ? (unsigned long long)LLONG_MAX + 1 : LLONG_MAX;
        unsigned long long u = 0;
        for (size_t k = int0; k < int_end; k++) {
            if (tok[k] == '_')
                continue;
            unsigned dv = (unsigned)(tok[k] - '0');
            if (u > (limit - dv) / 10)
                return fail_at(p, start, "integer does not fit in 64 bits");
            u = u * 10 + dv;
        }
        json_int_t v = neg ? (u == (unsigned long long)LLONG_MAX + 1 ? LLONG_MIN : -(json_int_t)u)
                           : (json_int_t)u;
        *out = json_integer(v);
        return *out ? 0 : oom(p);
    }
    /* strtod reads the locale's decimal point, so hand it that instead of '.' */
    const char *dp = localeconv()->decimal_point;
    size_t dplen = dp && *dp ? strlen(dp) : 1;
    int rc = buf_reset(p);
    for (size_t k = 0; k < n && rc == 0; k++) {
        if (tok[k] == '.')
            rc = buf_put(p, dp && *dp ? dp : ".", dplen);
        else if (tok[k] != '_')
            rc = buf_putc(p, tok[k]);
    }
    if (rc)
        return rc;
    errno = 0;
    double d = strtod(p->buf, NULL);
    if (isinf(d))
        return fail_at(p, start, "float is out of range");
    *out = json_real(d);
    return *out ? 0 : oom(p);
}

/* Reads n digits at tok[i]; returns -1 unless all are digits. */
static int dt_num(const char *tok, size_t len, size_t i, size_t n) {
    int v = 0;
    if (i + n > len)
        return -1;
    for (size_t k = i; k < i + n; k++) {
        if (!is_digit((unsigned char)tok[k]))
            return -1;
        v = v * 10 + (tok[k] - '0');
    }
    return v;
}

/* Checks that tok[*i] is c; advances past it or leaves *i at the fault. */
static int dt_sep(const char *tok, size_t n, size_t *i, char c) {
    if (*i >= n || tok[*i] != c)
        return -1;
    (*i)++;
    return 0;
}

/* Reads a 2- or 4-digit field in [lo, hi] at tok[*i]; advances or leaves *i at the fault. */
static int dt_field(const char *tok, size_t n, size_t *i, size_t digits, int lo, int hi, int *out) {
    int v = dt_num(tok, n, *i, digits);
    if (v < lo || v > hi)
        return -1;
    *i += digits;
    if (out)
        *out = v;
    return 0;
}

/* Validates HH:MM:SS[.frac] at tok[*i]; returns 0 or -1 with *i at the fault. */
static int dt_time(const char *tok, size_t n, size_t *i) {
    if (dt_field(tok, n, i, 2, 0, 23, NULL) || dt_sep(tok, n, i, ':') ||
        dt_field(tok, n, i, 2, 0, 59, NULL) || dt_sep(tok, n, i, ':') ||
        dt_field(tok, n, i, 2, 0, 60, NULL)) /* 60: leap second */
        return -1;
    if (*i < n && tok[*i] == '.') {
        (*i)++;
        size_t f0 = *i;
        while (*i < n && is_digit((unsigned char)tok[*i]))
            (*i)++;
        if (*i == f0)
            return -1;
    }
    return 0;
}

/* Dates and times are checked, then kept as the exact text. */
static int datetime_value(toml_t *p, size_t start, size_t n, json_t **out) {
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const char *tok = p->s + start;
    size_t i = 0;
    int y, mo, d;
    if (n > 2 && tok[2] == ':') {
        if (dt_time(tok, n, &i))
            goto bad;
    } else {
        if (dt_field(tok, n, &i, 4, 0, 9999, &y) || dt_sep(tok, n, &i, '-') ||
            dt_field(tok, n, &i, 2, 1, 12, &mo) || dt_sep(tok, n, &i, '-'))
            goto bad;
        int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        if (dt_field(tok, n, &i, 2, 1, mo == 2 && !leap ? 28 : mdays[mo - 1], &d))
            goto bad;
        if (i < n) {
            if (tok[i] != 'T' && tok[i] != 't' && tok[i] != ' ')
                goto bad;
            i++;
            if (dt_time(tok, n, &i))
                goto bad;
            if (i < n && (tok[i] == 'Z' || tok[i] == 'z')) {
                i++;
            } else if (i < n && (tok[i] == '+' || tok[i] == '-')) {
                i++;
                if (dt_field(tok, n, &i, 2, 0, 23, NULL) || dt_sep(tok, n, &i, ':') ||
                    dt_field(tok, n, &i, 2, 0, 59, NULL))
                    goto bad;
            }
        }
    }
    if (i != n)
        goto bad;
    *out = json_stringn(tok, n);
    return *out ? 0 : oom(p);
bad:;
    char dbuf[32];
    return fail_at(p, start + i,
                   "invalid date or time: expected YYYY-MM-DD, HH:MM:SS[.frac] or "
                   "YYYY-MM-DDTHH:MM:SS[.frac][Z|+HH:MM], found %s",
                   describe(p, start + i, dbuf));
}

static int is_token_char(int c) {
    return is_bare(c) || c == '+' || c == '.' || c == ':';
}

/* Numbers, dates and times: one token, classified after it is delimited. */
static int parse_scalar_token(toml_t *p, json_t **out) {
    size_t start = p->pos;
    while (is_token_char(at(p, 0)))
        p->pos++;
    size_t n = p->pos - start;
    const char *tok = p->s + start;
    int is_date =
        n >= 5 && is_digit((unsigned char)tok[0]) && tok[4] == '-' && dt_num(tok, n, 0, 4) >= 0;
    int is_time = n >= 3 && tok[2] == ':' && dt_num(tok, n, 0, 2) >= 0;
    /* "1979-05-27 07:32:00": a space may separate date and time */
    if (is_date && n == 10 && at(p, 0) == ' ' && is_digit(at(p, 1)) && is_digit(at(p, 2)) &&
        at(p, 3) == ':') {
        p->pos++;
        while (is_token_char(at(p, 0)))
            p->pos++;
        n = p->pos - start;
    }
    if (is_date || is_time)
        return datetime_value(p, start, n, out);
    return number_value(p, start, n, out);
}

static int parse_value(toml_t *p, int depth, json_t **out) {
    int c = at(p, 0);
    switch (c) {
    case '"':
    case '\'':
        return parse_string_value(p, out);
    case '[':
        return parse_array(p, depth, out);
    case '{':
        return parse_inline_table(p, depth, out);
    default:
        break;
    }
    if (c == 't' && p->len - p->pos >= 4 && !memcmp(p->s + p->pos, "true", 4) &&
        !is_bare(at(p, 4))) {
        p->pos += 4;
        *out = json_true();
        return 0;
    }
    if (c == 'f' && p->len - p->pos >= 5 && !memcmp(p->s + p->pos, "false", 5) &&
        !is_bare(at(p, 5))) {
        p->pos += 5;
        *out = json_false();
        return 0;
    }
    if (is_digit(c) || c == '+' || c == '-' ||
        ((c == 'i' || c == 'n') && p->len - p->pos >= 3 &&
         (!memcmp(p->s + p->pos, "inf", 3) || !memcmp(p->s + p->pos, "nan", 3))))
        return parse_scalar_token(p, out);
    char d[32];
    return fail_at(p, p->pos,
                   "expected a value (string, number, boolean, date, array or inline "
                   "table), found %s",
                   describe(p, p->pos, d));
}

/* ---- document --------------------------------------------------------------------------- */

/* After a header or key/value: optional comment, then a newline or the end. */
static int end_of_line(toml_t *p, const char *after) {
    skip_ws(p);
    int rc = skip_comment(p);
    if (rc)
        return rc;
    if (at(p, 0) == -1 || eat_newline(p))
        return 0;
    char d[32];
    return fail_at(p, p->pos, "expected a newline or end of file after %s, found %s", after,
                   describe(p, p->pos, d));
}

static int parse_document(toml_t *p) {
    int rc = validate_utf8(p);
    if (rc)
        return rc;
    if (p->len >= 3 && !memcmp(p->s, "\xEF\xBB\xBF", 3))
        p->pos = 3; /* a byte-order mark carries no meaning in UTF-8 */
    while ((rc = skip_ws_nl_comments(p)) == 0 && at(p, 0) != -1) {
        int header = at(p, 0) == '[';
        if (header)
            rc = parse_header(p);
        else
            rc = parse_keyval(p, p->cur, p->cur_depth);
        if (rc == 0)
            rc = end_of_line(p, header ? "a table header" : "a value");
        if (rc)
            break;
    }
    return rc;
}

int baic_config_parse_string(const char *text, size_t len, const char *name, json_t **out,
                             char *err, size_t errlen) {
    toml_t p = {
        .s = text ? text : "",
        .len = text ? len : 0,
        .name = name ? name : "<string>",
        .err = err,
        .errlen = errlen,
    };
    if (err && errlen)
        err[0] = '\0';
    *out = NULL;
    if (p.len > TOML_MAX_LEN)
        return fail_at(&p, 0, "document larger than %zu bytes", TOML_MAX_LEN);
    p.root = json_object();
    if (!p.root)
        return oom(&p);
    p.cur = p.root;
    int rc = origin_set(&p.origins, p.root, ORIGIN_EXPLICIT) ? oom(&p) : parse_document(&p);
    free(p.origins.keys);
    free(p.origins.vals);
    free(p.buf);
    if (rc) {
        json_decref(p.root);
        return rc;
    }
    *out = p.root;
    return 0;
}
