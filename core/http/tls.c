/* SPDX-License-Identifier: Apache-2.0 */
/* TLS for server connections: OpenSSL over memory BIOs, bytes moved by libuv. */
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "http/internal.h"
#include "log/log.h"

int http_tls_ctx_new(const char *cert, const char *key, SSL_CTX **out) {
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL)
        return UV_ENOMEM;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* Writes always complete in full into the memory BIO; allow the buffer behind a
     * retried write to move, since our plaintext lives in short-lived pieces. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        char err[256];
        ERR_error_string_n(ERR_get_error(), err, sizeof(err));
        BAIC_LOG_E("http.tls_load_failed", "cert=%s key=%s err=\"%s\"", cert, key, err);
        ERR_clear_error();
        SSL_CTX_free(ctx);
        return UV_EPROTO;
    }
    *out = ctx;
    return 0;
}

int http_tls_conn_init(http_conn_t *c) {
    c->ssl = SSL_new(c->srv->ssl_ctx);
    if (c->ssl == NULL)
        return UV_ENOMEM;
    c->rbio = BIO_new(BIO_s_mem());
    c->wbio = BIO_new(BIO_s_mem());
    if (c->rbio == NULL || c->wbio == NULL) {
        BIO_free(c->rbio);
        BIO_free(c->wbio);
        c->rbio = c->wbio = NULL;
        return UV_ENOMEM;
    }
    SSL_set_bio(c->ssl, c->rbio, c->wbio);
    SSL_set_accept_state(c->ssl);
    return 0;
}

/* Moves whatever OpenSSL produced (handshake records, alerts) to the socket. */
static int flush_wbio(http_conn_t *c, http_out_t *o) {
    size_t pending = BIO_ctrl_pending(c->wbio);
    if (o == NULL && pending == 0)
        return 0;
    char *data = malloc(pending ? pending : 1);
    if (data == NULL)
        return UV_ENOMEM;
    if (pending && BIO_read(c->wbio, data, (int)pending) != (int)pending) {
        free(data);
        return UV_EIO;
    }
    bool own = o == NULL;
    if (own) {
        o = calloc(1, sizeof(*o));
        if (o == NULL) {
            free(data);
            return UV_ENOMEM;
        }
        o->heap = true;
        o->conn = c;
        o->wr.data = o;
    }
    o->tls_data = data;
    uv_buf_t b = uv_buf_init(data, (unsigned)pending);
    int rc = uv_write(&o->wr, &c->h.stream, &b, 1, http_write_cb);
    if (rc < 0) {
        free(data);
        o->tls_data = NULL;
        if (own)
            free(o);
        return rc;
    }
    if (own)
        c->wpending++;
    return 0;
}

int http_tls_write(http_conn_t *c, http_out_t *o) {
    for (unsigned i = 0; i < o->nbufs; i++) {
        if (o->bufs[i].len == 0)
            continue;
        if (SSL_write(c->ssl, o->bufs[i].base, (int)o->bufs[i].len) <= 0) {
            ERR_clear_error();
            return UV_EPROTO;
        }
    }
    return flush_wbio(c, o);
}

void http_tls_on_read(http_conn_t *c, const char *data, size_t len) {
    if (BIO_write(c->rbio, data, (int)len) != (int)len) {
        http_conn_close(c);
        return;
    }
    if (!c->tls_ready) {
        int r = SSL_do_handshake(c->ssl);
        if (r == 1) {
            c->tls_ready = true;
        } else {
            int e = SSL_get_error(c->ssl, r);
            flush_wbio(c, NULL);
            if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
                BAIC_LOG_D("http.tls_handshake_failed", "remote=%s", c->remote);
                ERR_clear_error();
                http_conn_close(c);
            }
            return;
        }
    }
    char buf[16384];
    while (!c->closing) {
        int n = SSL_read(c->ssl, buf, sizeof(buf));
        if (n > 0) {
            http_conn_feed(c, buf, (size_t)n);
            continue;
        }
        int e = SSL_get_error(c->ssl, n);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            break;
        ERR_clear_error();
        /* close_notify or a fatal alert: the peer is done sending. */
        flush_wbio(c, NULL);
        http_conn_close(c);
        return;
    }
    if (!c->closing && flush_wbio(c, NULL) < 0)
        http_conn_close(c);
}

void http_tls_shutdown(http_conn_t *c) {
    if (c->tls_ready) {
        SSL_shutdown(c->ssl);
        ERR_clear_error();
        flush_wbio(c, NULL);
    }
}

void http_tls_free(http_conn_t *c) {
    if (c->ssl != NULL)
        SSL_free(c->ssl); /* frees both BIOs */
    c->ssl = NULL;
}
