/*
 * metrics.h — request counters and latency histograms, exposed in Prometheus text format.
 *
 * Each worker thread writes its own shard (relaxed atomics, no locks, no shared cache
 * lines in the common case); /metrics adds the shards up. Names use base units (seconds,
 * bytes) and counters end in _total, as Prometheus conventions ask.
 */
#ifndef TOKD_METRICS_H
#define TOKD_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

#include "tok.h"

typedef enum {
  EP_ENCODE, EP_DECODE, EP_COUNT, EP_TOKENIZE, EP_DETOKENIZE, EP_ENCODINGS,
  EP_HEALTH, EP_READY, EP_METRICS, EP_OTHER, EP__COUNT
} tokd_endpoint;

extern const char *const TOKD_ENDPOINT_PATHS[EP__COUNT];

typedef struct tokd_metrics tokd_metrics;

tokd_metrics *tokd_metrics_new(unsigned shards);
void tokd_metrics_free(tokd_metrics *m);

/* Records one finished request. Thread-safe, lock-free. */
void tokd_metrics_record(tokd_metrics *m, tokd_endpoint ep, unsigned status, double seconds,
                         uint64_t bytes_in, uint64_t tokens);

/* Requests being processed right now (the /metrics gauge and the admission limit). */
extern atomic_uint tokd_inflight;

/* Appends the exposition text. `ready` and the encodings count become gauges. */
tok_err tokd_metrics_render(tokd_metrics *m, tok_buf *out, int ready, unsigned encodings);

#endif
