/*
 * listen.h — where `tokd serve` listens: one TCP address and any Unix domain sockets.
 *
 * A sidecar's LLM server reaches tokd on the same pod; over a Unix domain socket it skips
 * the TCP stack (no handshake, no checksums, no loopback routing) and nothing outside the
 * pod's shared volume can reach it. `--listen` takes a comma list of `HOST:PORT` (at most
 * one; `[v6]:PORT` for IPv6) and `unix:PATH` entries; without it tokd listens on
 * --host:--port as before.
 *
 * A Unix socket file is made with --socket-mode by bind itself (the umask is set around
 * bind: no chmod of a path that could by then be a symlink to something else). Its
 * directory must be owned by tokd's user or root and not writable by other users unless
 * it has the sticky bit (as /tmp); a missing last directory is created, 0755 and tokd's
 * own, which is how a socket goes in a volume every container of a pod can write (a
 * Kubernetes emptyDir is 0777). A file already at the path is replaced only if it is a
 * socket nobody answers on (a stale one left by a killed tokd) — a live socket, one whose
 * backlog is full, or any other kind of file is an error at start, never removed; the
 * probe's connect never blocks. At a clean exit the file is removed if it is still the
 * one tokd made (same device and inode).
 *
 * libmicrohttpd listens on one socket: the first listener (TCP if any) is its own; the
 * others are accepted by one thread here and handed over with MHD_add_connection, so every
 * connection shares one thread pool, one connection limit and one memory budget.
 */
#ifndef TOKD_LISTEN_H
#define TOKD_LISTEN_H

#include <stdbool.h>
#include <stddef.h>

#define TOKD_MAX_UNIX 8

typedef struct tokd_listen_spec {
  char *buf;                              /* owns the strings below */
  bool tcp;                               /* a HOST:PORT entry was given */
  const char *host;                       /* its host (within buf) */
  unsigned port;
  const char *unix_paths[TOKD_MAX_UNIX];  /* within buf */
  unsigned n_unix;
} tokd_listen_spec;

/* Parses a --listen value. Returns 0, or 2 after printing why (source names the flag or
 * variable). On success spec->buf is owned by the caller (tokd_listen_spec_free). */
int tokd_listen_parse(const char *value, const char *source, tokd_listen_spec *spec);
void tokd_listen_spec_free(tokd_listen_spec *spec);

typedef struct tokd_listener tokd_listener;

/* Binds and listens on every Unix socket of spec with the given file mode (none when spec
 * has only TCP). NULL and *rc an exit status after printing why (nothing left bound). */
tokd_listener *tokd_listener_new(const tokd_listen_spec *spec, unsigned mode, int *rc);

/* The listening descriptor of the i-th Unix socket (for MHD_OPTION_LISTEN_SOCKET), or -1. */
int tokd_listener_fd(const tokd_listener *l, unsigned i);

/* The first n sockets are given to libmicrohttpd (MHD_OPTION_LISTEN_SOCKET): from now on
 * it closes them, never the listener — also when libmicrohttpd fails to start, so a
 * descriptor is never closed twice. */
void tokd_listener_hand_over(tokd_listener *l, unsigned n);

/* Starts the thread that accepts on the Unix sockets not handed over and gives each
 * connection to daemon (a struct MHD_Daemon *). false if it cannot start. */
bool tokd_listener_start(tokd_listener *l, void *daemon);

/* Stops accepting (the thread, then the listening sockets not given to libmicrohttpd) and
 * removes the socket files this process made (each only if it is still the same file), so
 * new clients find no socket. Idempotent. */
void tokd_listener_stop(tokd_listener *l);
/* Stops if needed and frees; NULL is ignored. */
void tokd_listener_free(tokd_listener *l);

#endif
