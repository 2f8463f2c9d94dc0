/*
 * http.h — the HTTP request path of `tokd serve`, on libmicrohttpd: a request's steps from
 * its request line to its completion (http.c's opening comment), with the server object
 * (server.h) as the callbacks' context. server.c starts and stops it.
 */
#ifndef TOKD_HTTP_H
#define TOKD_HTTP_H

#include <stddef.h>

#include "serve/server.h"

/* A connection's memory: libmicrohttpd's pool for the request head and its I/O buffers
 * (TOKD_CONN_POOL), its own and our structures (measured: 4.7 KB resident for an idle
 * connection, 33.5 KB for one holding a 30 KB head with a 32 KiB pool). Each open
 * connection reserves TOKD_CONN_RESERVE of the budget, so the budget bounds connections
 * too (the lingering-close set holds the same share). */
#define TOKD_CONN_POOL ((size_t)16 << 10)
#define TOKD_CONN_RESERVE (TOKD_CONN_POOL + ((size_t)3 << 10))

/* Starts libmicrohttpd on srv's TCP address or first Unix socket (srv->http) and hands it
 * the other Unix sockets (srv->listener). 0, or an exit status after a message on stderr
 * (nothing started then). */
int tokd_http_start(tokd_server *srv);
/* Stops accepting connections (the open ones go on). */
void tokd_http_quiesce(tokd_server *srv);
/* Stops libmicrohttpd: every connection is closed. No request may be with the pool. */
void tokd_http_stop(tokd_server *srv);
/* The TCP port it listens on (the bound one when --port 0); 0 without TCP. */
unsigned tokd_http_port(const tokd_server *srv);

#endif
