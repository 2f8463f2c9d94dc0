/*
 * daemon.h — the HTTP server as a unit that can be started and stopped: `tokd serve`
 * (cli/serve.c) wraps it with signals and lifecycle logs; the HTTP fuzz target runs
 * it in-process.
 */
#ifndef TOKD_DAEMON_H
#define TOKD_DAEMON_H

#include "serve/config.h"
#include "serve/server.h"

/* Loads the tokenizers and starts the workers, the watchdog and the listener for cfg
 * (taken over: freed by tokd_daemon_stop). 0, or an exit status after a message on
 * stderr. One server per process. */
int tokd_daemon_start(const tokd_config *cfg);
/* The port it listens on (the bound one when --port 0). */
unsigned tokd_daemon_port(void);
/* What each open connection reserves of the memory budget. */
size_t tokd_daemon_conn_reserve(void);
/* Its state (counters, budget), read-only. */
const tokd_server *tokd_daemon_server(void);
/* Drains (--drain-delay, --drain-timeout) and stops; the requests left unfinished. */
unsigned tokd_daemon_stop(void);

#endif
