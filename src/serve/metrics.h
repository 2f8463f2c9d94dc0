/*
 * metrics.h — request counters and latency histograms, exposed in Prometheus text format.
 *
 * Each CPU has its own shard (relaxed atomics, no locks, no shared cache
 * lines in the common case); /metrics adds the shards up. Names use base units (seconds,
 * bytes) and counters end in _total, as Prometheus conventions ask.
 */
#ifndef TOKD_METRICS_H
#define TOKD_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

#include "serve/linger.h"
#include "serve/routes.h"
#include "tok.h"

/* Why the connection watchdog closed a connection (watchdog.h). */
typedef enum { DROP_HEADERS, DROP_BODY, DROP_RESPONSE, DROP_IDLE, DROP__COUNT } tokd_drop_reason;

typedef struct tokd_metrics tokd_metrics;

/* Counters in `shards` shards (one per CPU is best). NULL when out of memory. */
tokd_metrics *tokd_metrics_new(unsigned shards);
void tokd_metrics_free(tokd_metrics *m);

/* Records one finished request: cpu_seconds is the CPU time its answer took to compute
 * (on a worker, or the I/O thread for a GET). Thread-safe, lock-free. */
void tokd_metrics_record(tokd_metrics *m, tokd_endpoint ep, unsigned status, double seconds,
                         uint64_t bytes_in, uint64_t tokens, double cpu_seconds);

/* Totals by endpoint, summed over the shards (for cost.h). */
typedef struct tokd_metrics_totals {
  unsigned long long requests[EP__COUNT], tokens[EP__COUNT];
  double cpu[EP__COUNT];
} tokd_metrics_totals;
void tokd_metrics_totals_read(tokd_metrics *m, tokd_metrics_totals *t);

/* A connection the watchdog closed; a request refused for its HTTP framing. */
void tokd_metrics_drop(tokd_metrics *m, tokd_drop_reason why);
void tokd_metrics_framing(tokd_metrics *m);

/* The gauges the server reports, read at render time. */
typedef struct tokd_metrics_gauges {
  int ready;
  unsigned encodings;
  unsigned inflight;       /* bodies complete, queued or computing */
  unsigned queued;         /* waiting for a worker */
  unsigned connections;    /* open */
  unsigned long long budget_bytes, budget_used, budget_peak, budget_rejected;
  int warm;                /* the backtracking tables are built */
  unsigned long long split_texts, split_helpers; /* texts given helper threads; threads lent */
  tokd_linger_stats linger; /* lingering closes (linger.h) */
  const struct tokd_cost_figures *cost; /* CPU and energy (cost.h) */
  const tok_registry *reg;      /* the tokenizers, for their memory (tok_registry_memory) */
  const tok_prefix_cache_stats *prefix_cache; /* NULL: off */
} tokd_metrics_gauges;

/* Every memory item of the tokenizers (tok_registry_memory, with the room it asks for):
 * malloc'd, *n of them; NULL if out of memory. */
tok_memory_item *tokd_memory_items(const tok_registry *reg, size_t *n);

/* Appends the exposition text. */
tok_err tokd_metrics_render(tokd_metrics *m, tok_buf *out, const tokd_metrics_gauges *g);

#endif
