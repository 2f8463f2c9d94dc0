/*
 * linger.h — lingering close (RFC 9112 §9.6) for connections answered before their body
 * was read.
 *
 * tokd refuses an oversized body (413), or one the memory budget cannot hold (503),
 * as soon as its headers are in, without reading it. If it then closed the socket while
 * the client was still sending, the kernel would answer the unread bytes with a reset,
 * and a reset throws away the answer still on its way: a client that reads only after it
 * has sent its whole body (Python's http.client and urllib, requests, many others) sees
 * "broken pipe" or "connection reset" instead of the refusal. curl hides this, since it
 * sends Expect: 100-continue for large bodies and reads while it sends.
 *
 * So such a socket is handed here when libmicrohttpd is done with it (its answer written
 * to the socket): a duplicate of the descriptor keeps the socket open when libmicrohttpd
 * closes its own, the write side is shut (the client sees the answer end), and whatever
 * the client still sends is read and dropped until it closes its side — then the socket
 * closes cleanly — or until the byte cap or the deadline, whichever comes first, as
 * nginx's lingering_close does.
 *
 * Bounds: at most `max` sockets linger at once (past that a socket is closed at once, as
 * it would have been); each for at most `seconds` after the hand-over and at most its
 * `bytes`; the dropped bytes pass through one buffer of this module's thread, so a
 * lingering socket costs no memory per byte. A socket keeps its connection's share of the
 * memory budget (`reserve`) while it lingers, so the budget bounds lingering sockets as
 * it bounds open connections. One thread serves them all with epoll.
 */
#ifndef TOKD_LINGER_H
#define TOKD_LINGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "serve/budget.h"

typedef struct tokd_linger_cfg {
  unsigned max;         /* sockets lingering at once */
  double seconds;       /* longest linger of one socket */
  tokd_budget *budget;  /* given `reserve` back as each lingering socket closes */
  size_t reserve;
} tokd_linger_cfg;

/* Why a lingering socket was closed. */
typedef enum { LINGER_DONE, LINGER_BYTES, LINGER_TIMEOUT, LINGER__COUNT } tokd_linger_end;

typedef struct tokd_linger_stats {
  unsigned lingering;                     /* now */
  unsigned long long ended[LINGER__COUNT]; /* closed since start, by reason */
  unsigned long long refused;             /* closed at once: `max` were lingering */
  unsigned long long dropped_bytes;       /* read and thrown away */
} tokd_linger_stats;

typedef struct tokd_linger tokd_linger;

/* A lingering-close set for cfg (cfg->max > 0), not started. NULL when out of memory or
 * descriptors. */
tokd_linger *tokd_linger_new(const tokd_linger_cfg *cfg);
/* Starts the thread. false when it cannot (then tokd_linger_add refuses). */
bool tokd_linger_start(tokd_linger *l);
/* Closes every lingering socket and stops the thread. */
void tokd_linger_stop(tokd_linger *l);
/* Frees a stopped set; NULL is ignored. */
void tokd_linger_free(tokd_linger *l);

/* Lingers on socket fd (which the caller goes on to close): reads and drops up to bytes
 * more. true when it took it — the connection's budget share is then given back here when
 * the socket closes; false when l is NULL, full, stopped or out of descriptors (the caller
 * gives the share back and closes as before). Thread-safe. */
bool tokd_linger_add(tokd_linger *l, int fd, uint64_t bytes);

/* Its counters (all zero for NULL). Thread-safe. */
void tokd_linger_get_stats(tokd_linger *l, tokd_linger_stats *out);

#endif
