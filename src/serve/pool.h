/*
 * pool.h — the worker threads that compute responses, fed by a queue.
 *
 * libmicrohttpd's I/O threads only move bytes: a request whose body is complete is
 * suspended and handed here as a job, and resumed when its answer is ready. So a request
 * that takes a second to encode holds a worker, never the I/O of other connections, and
 * probes and metrics are answered meanwhile.
 *
 * Fairness: jobs come in two classes by body size. Workers take small jobs first, and
 * when there are several workers, at most all but one run large jobs at once, so a stream
 * of megabyte requests cannot keep kilobyte ones (the common case) waiting behind them.
 * Each worker owns a tokd_worker (its scratch memory).
 */
#ifndef TOKD_POOL_H
#define TOKD_POOL_H

#include <stdbool.h>
#include <stddef.h>

#include "serve/server.h"

typedef struct tokd_job tokd_job;
struct tokd_job {
  tokd_job *next;
  bool large;
  /* runs on a worker; may resume the job's connection (after which the job may be freed) */
  void (*run)(tokd_job *job, tokd_worker *w);
};

typedef struct tokd_pool tokd_pool;

/* A pool of n workers (each will have a tokd_worker for srv), not started. NULL when out
 * of memory. */
tokd_pool *tokd_pool_new(const tokd_server *srv, unsigned n);
/* Starts the worker threads. false when one cannot start (those started are stopped). */
bool tokd_pool_start(tokd_pool *p);
/* Queues a job (never blocks, never fails: the queue is the jobs' own links). Thread-safe. */
void tokd_pool_submit(tokd_pool *p, tokd_job *job);
unsigned tokd_pool_queued(tokd_pool *p);
/* Stops the workers after the jobs already queued have run. */
void tokd_pool_stop(tokd_pool *p);
/* Frees a stopped (or never started) pool; NULL is ignored. */
void tokd_pool_free(tokd_pool *p);

#endif
