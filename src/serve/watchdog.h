/*
 * watchdog.h — deadlines for slow clients, which libmicrohttpd 0.9.75 does not have: its
 * only timeout restarts on every byte, so a client sending one header byte every few
 * seconds, or reading its response a byte at a time, holds a connection forever.
 *
 * Every connection is registered here while open, with the phase it is in:
 *   HEADERS   the request head must be complete within --header-timeout of the first byte
 *             of the connection (or of the previous response);
 *   BODY      the body must arrive at --min-rate bytes/s on average after a grace period;
 *   WORK      computing: no deadline (the work is bounded and the client is waiting);
 *   RESPONSE  the response must be taken at --min-rate bytes/s after the grace period;
 *   IDLE      a kept-alive connection between requests may wait --timeout seconds.
 * A thread checks every 100 ms and shuts down the socket of a connection past its deadline;
 * libmicrohttpd then sees the connection fail and closes it. It is safe against the socket
 * being reused: the close notification (tokd_watchdog_remove) takes the same lock, and
 * libmicrohttpd calls it before it closes the socket.
 * A connection waiting for its client (head, body, next request) is also checked, from
 * 0.2 s on, for a client that has closed its side: libmicrohttpd can miss that end of
 * input and would hold the connection to its deadline.
 * The same thread returns free heap pages to the system after many connections closed.
 */
#ifndef TOKD_WATCHDOG_H
#define TOKD_WATCHDOG_H

#include <stdbool.h>
#include <stdint.h>

#include "serve/metrics.h"

typedef enum { WD_HEADERS, WD_BODY, WD_WORK, WD_RESPONSE, WD_IDLE } tokd_wd_phase;

typedef struct tokd_wd_conn tokd_wd_conn;

typedef struct tokd_watchdog_cfg {
  double header_timeout; /* seconds */
  double idle_timeout;   /* seconds */
  double min_rate;       /* bytes per second */
  double grace;          /* seconds before the rate applies */
  tokd_metrics *metrics;
} tokd_watchdog_cfg;

typedef struct tokd_watchdog tokd_watchdog;

/* A watchdog for cfg, not started. NULL when out of memory. */
tokd_watchdog *tokd_watchdog_new(const tokd_watchdog_cfg *cfg);
/* Starts the checking thread. false when it cannot. */
bool tokd_watchdog_start(tokd_watchdog *wd);
void tokd_watchdog_stop(tokd_watchdog *wd);
/* Frees a stopped watchdog whose connections have all been removed; NULL is ignored. */
void tokd_watchdog_free(tokd_watchdog *wd);

/* The calls below are thread-safe (one lock per watchdog). */
/* A connection opened on socket fd; NULL when out of memory (it is then not watched). */
tokd_wd_conn *tokd_watchdog_add(tokd_watchdog *wd, int fd);
/* It closed. Returns the bytes it should linger for (tokd_watchdog_linger; linger.h), 0
 * for none or when the watchdog shut it. c may be NULL (returns 0). */
uint64_t tokd_watchdog_remove(tokd_wd_conn *c);
/* Its request was answered before the body was read: when it closes, up to bytes more of
 * the body should be read and dropped so that the client can read the answer. */
void tokd_watchdog_linger(tokd_wd_conn *c, uint64_t bytes);
/* It entered a phase (its clock and byte count restart). */
void tokd_watchdog_phase(tokd_wd_conn *c, tokd_wd_phase phase);
/* bytes more of the body arrived, or of the response were taken. */
void tokd_watchdog_progress(tokd_wd_conn *c, uint64_t bytes);
/* Connections open now. */
unsigned tokd_watchdog_count(tokd_watchdog *wd);

#endif
