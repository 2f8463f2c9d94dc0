/*
 * metrics.c — see metrics.h. Histogram buckets are fixed at compile time: tokenizing takes
 * microseconds to a few hundred milliseconds, so the buckets run from 50 µs to 2.5 s.
 */
#include "serve/metrics.h"

#include "serve/cost.h"
#include "common/util.h"

#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *const DROP_NAMES[DROP__COUNT] = {"headers", "body", "response", "idle"};

static const unsigned STATUSES[] = {200, 400, 404, 405, 413, 415, 422, 499, 500, 501, 503};
/* 499: the client went away before its answer (as nginx logs it) */
#define N_STATUS (sizeof STATUSES / sizeof STATUSES[0])
static const double BUCKETS[] = {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5};
#define N_BUCKETS (sizeof BUCKETS / sizeof BUCKETS[0])

typedef struct shard {
  atomic_ullong requests[EP__COUNT][N_STATUS + 1]; /* last column: any other status */
  atomic_ullong latency[EP__COUNT][N_BUCKETS + 1]; /* last: above the largest bucket */
  atomic_ullong latency_ns[EP__COUNT];
  atomic_ullong bytes_in[EP__COUNT];
  atomic_ullong tokens[EP__COUNT];
  atomic_ullong cpu_ns[EP__COUNT];
  char pad[64];
} shard;

struct tokd_metrics {
  atomic_ullong dropped[DROP__COUNT];
  atomic_ullong framing;
  unsigned n_shards;
  time_t start;
  shard *shards;
};

tokd_metrics *tokd_metrics_new(unsigned shards)
{
  tokd_metrics *m = calloc(1, sizeof *m);
  if (!m) return NULL;
  m->n_shards = shards ? shards : 1;
  m->shards = calloc(m->n_shards, sizeof *m->shards);
  if (!m->shards) {
    free(m);
    return NULL;
  }
  m->start = time(NULL);
  return m;
}

void tokd_metrics_free(tokd_metrics *m)
{
  if (!m) return;
  free(m->shards);
  free(m);
}

void tokd_metrics_record(tokd_metrics *m, tokd_endpoint ep, unsigned status, double seconds,
                         uint64_t bytes_in, uint64_t tokens, double cpu_seconds)
{
  /* the shard of the CPU this thread runs on: threads on different CPUs do not share
   * counters' cache lines, and the counters are atomic, so a thread moved between the
   * call and the add costs a shared line, never a lost count */
  int cpu = sched_getcpu();
  shard *s = &m->shards[(unsigned)(cpu < 0 ? 0 : cpu) % m->n_shards];
  size_t si = 0;
  while (si < N_STATUS && STATUSES[si] != status) si++;
  size_t bi = 0;
  while (bi < N_BUCKETS && seconds > BUCKETS[bi]) bi++;
  atomic_fetch_add_explicit(&s->requests[ep][si], 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&s->latency[ep][bi], 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&s->latency_ns[ep], (unsigned long long)(seconds * 1e9),
                            memory_order_relaxed);
  atomic_fetch_add_explicit(&s->bytes_in[ep], bytes_in, memory_order_relaxed);
  atomic_fetch_add_explicit(&s->tokens[ep], tokens, memory_order_relaxed);
  atomic_fetch_add_explicit(&s->cpu_ns[ep], (unsigned long long)(cpu_seconds * 1e9), memory_order_relaxed);
}

void tokd_metrics_drop(tokd_metrics *m, tokd_drop_reason why)
{
  atomic_fetch_add_explicit(&m->dropped[why], 1, memory_order_relaxed);
}

void tokd_metrics_framing(tokd_metrics *m)
{
  atomic_fetch_add_explicit(&m->framing, 1, memory_order_relaxed);
}

static unsigned long long sum(tokd_metrics *m, size_t field_offset, size_t index)
{
  unsigned long long total = 0;
  for (unsigned i = 0; i < m->n_shards; i++) {
    atomic_ullong *base = (atomic_ullong *)((char *)&m->shards[i] + field_offset);
    total += atomic_load_explicit(&base[index], memory_order_relaxed);
  }
  return total;
}

/* Where endpoint ep's counts by status start in a shard. */
static size_t request_row(int ep)
{
  return offsetof(shard, requests) + (size_t)ep * sizeof(atomic_ullong) * (N_STATUS + 1);
}

void tokd_metrics_totals_read(tokd_metrics *m, tokd_metrics_totals *t)
{
  for (int ep = 0; ep < EP__COUNT; ep++) {
    t->requests[ep] = 0;
    for (size_t si = 0; si <= N_STATUS; si++) t->requests[ep] += sum(m, request_row(ep), si);
    t->tokens[ep] = sum(m, offsetof(shard, tokens), (size_t)ep);
    t->cpu[ep] = (double)sum(m, offsetof(shard, cpu_ns), (size_t)ep) / 1e9;
  }
}

tok_memory_item *tokd_memory_items(const tok_registry *reg, size_t *n)
{
  tok_memory_item *items = NULL;
  /* a tokenizer has at most six structures, each anonymous or file-backed: room for all
   * in one walk (the walk reads /proc/self/pagemap), and more if ever asked */
  for (size_t cap = 12 * tok_registry_count(reg) + 1;;) {
    tok_memory_item *grown = realloc(items, cap * sizeof *items);
    if (!grown) {
      free(items);
      return NULL;
    }
    items = grown;
    *n = tok_registry_memory(reg, items, cap);
    if (*n <= cap) return items;
    cap = *n;
  }
}

/* ---------------------------------------------------------------------------------------
 * Rendering. Every fixed family is one row of METRIC_FAMILIES below: its name (written
 * once: the HELP and TYPE lines and its samples all take it from the row), its type, the
 * part of the server it belongs to (a part that is off writes no family at all), its help
 * text, and the expression that writes its samples. The renderer walks the rows in order;
 * the order is the exposition's (dashboards and tests read it).
 */
typedef enum { PART_ALWAYS, PART_COST, PART_MEMORY, PART_PREFIX } part;

/* What one render reads, gathered once before the walk. */
typedef struct render_ctx {
  tokd_metrics *m;
  const tokd_metrics_gauges *g;
  tok_buf *out;
  const char *name;            /* the family being written */
  char labels[224];            /* scratch for one sample's labels (labels()) */
  double user, sys;            /* the process's CPU time */
  tokd_metrics_totals t;       /* by endpoint, for the cost families */
  unsigned long long encoded, decoded; /* tokens, by direction */
} render_ctx;

static const char *labels(render_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static const char *labels(render_ctx *c, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->labels, sizeof c->labels, fmt, ap);
  va_end(ap);
  return c->labels;
}

/* One sample line: NAME[suffix][{labels}] value. TOK_ELIMIT for a line longer than line[]
 * (a label value that long is a bug, never input). */
static tok_err put_text(render_ctx *c, const char *suffix, const char *lbl, const char *value)
{
  char line[512];
  int n = snprintf(line, sizeof line, "%s%s%s%s%s %s\n", c->name, suffix, lbl ? "{" : "", lbl ? lbl : "",
                   lbl ? "}" : "", value);
  if (n < 0 || (size_t)n >= sizeof line) return TOK_ELIMIT;
  return tok_buf_append(c->out, line, (size_t)n);
}

static tok_err put_u(render_ctx *c, const char *lbl, unsigned long long v)
{
  char value[32];
  snprintf(value, sizeof value, "%llu", v);
  return put_text(c, "", lbl, value);
}

/* fmt: %.6f for seconds and joules, %g for a configured figure */
static tok_err put_f(render_ctx *c, const char *lbl, const char *fmt, double v)
{
  char value[64];
  snprintf(value, sizeof value, fmt, v);
  return put_text(c, "", lbl, value);
}

/* One sample of a ratio; none when there is nothing to divide by (no NaN: simple parsers
 * and dashboards then see no data rather than a value they must special-case). */
static tok_err put_ratio(render_ctx *c, const char *lbl, double num, double den)
{
  return den > 0 ? put_f(c, lbl, "%.9g", num / den) : TOK_OK;
}

/* The samples of one family from a list of (label, value) pairs, stopping at the first
 * error: most labelled families have two or four fixed series. */
static tok_err put_pairs_u(render_ctx *c, const char *key, size_t n, const char *const *names,
                           const unsigned long long *values)
{
  tok_err rc = TOK_OK;
  for (size_t i = 0; i < n && rc == TOK_OK; i++) rc = put_u(c, labels(c, "%s=\"%s\"", key, names[i]), values[i]);
  return rc;
}

static tok_err put_requests(render_ctx *c)
{
  tok_err rc = TOK_OK;
  for (int ep = 0; ep < EP__COUNT; ep++)
    for (size_t si = 0; si <= N_STATUS && rc == TOK_OK; si++) {
      unsigned long long v = sum(c->m, request_row(ep), si);
      if (v == 0) continue;
      char status[16] = "other";
      if (si < N_STATUS) snprintf(status, sizeof status, "%u", STATUSES[si]);
      rc = put_u(c, labels(c, "endpoint=\"%s\",status=\"%s\"", TOKD_ROUTES[ep].label, status), v);
    }
  return rc;
}

static tok_err put_durations(render_ctx *c)
{
  tok_err rc = TOK_OK;
  char value[64];
  for (int ep = 0; ep < EP__COUNT && rc == TOK_OK; ep++) {
    const char *label = TOKD_ROUTES[ep].label;
    size_t base = offsetof(shard, latency) + (size_t)ep * sizeof(atomic_ullong) * (N_BUCKETS + 1);
    unsigned long long cumulative = 0, total = 0;
    for (size_t bi = 0; bi <= N_BUCKETS; bi++) total += sum(c->m, base, bi);
    if (total == 0) continue;
    for (size_t bi = 0; bi <= N_BUCKETS && rc == TOK_OK; bi++) {
      char le[32] = "+Inf";
      if (bi < N_BUCKETS) snprintf(le, sizeof le, "%g", BUCKETS[bi]);
      cumulative += sum(c->m, base, bi);
      snprintf(value, sizeof value, "%llu", cumulative);
      rc = put_text(c, "_bucket", labels(c, "endpoint=\"%s\",le=\"%s\"", label, le), value);
    }
    snprintf(value, sizeof value, "%.9f", (double)sum(c->m, offsetof(shard, latency_ns), (size_t)ep) / 1e9);
    if (rc == TOK_OK) rc = put_text(c, "_sum", labels(c, "endpoint=\"%s\"", label), value);
    snprintf(value, sizeof value, "%llu", total);
    if (rc == TOK_OK) rc = put_text(c, "_count", labels(c, "endpoint=\"%s\"", label), value);
  }
  return rc;
}

/* A per-endpoint counter of the shards (field_offset into shard); endpoints at 0 left out. */
static tok_err put_by_endpoint(render_ctx *c, size_t field_offset)
{
  tok_err rc = TOK_OK;
  for (int ep = 0; ep < EP__COUNT && rc == TOK_OK; ep++) {
    unsigned long long v = sum(c->m, field_offset, (size_t)ep);
    if (v) rc = put_u(c, labels(c, "endpoint=\"%s\"", TOKD_ROUTES[ep].label), v);
  }
  return rc;
}

static tok_err put_dropped(render_ctx *c)
{
  unsigned long long v[DROP__COUNT];
  for (int d = 0; d < DROP__COUNT; d++) v[d] = atomic_load_explicit(&c->m->dropped[d], memory_order_relaxed);
  return put_pairs_u(c, "phase", DROP__COUNT, DROP_NAMES, v);
}

static tok_err put_linger_closes(render_ctx *c)
{
  static const char *const NAMES[LINGER__COUNT + 1] = {"client_done", "bytes", "timeout", "refused"};
  unsigned long long v[LINGER__COUNT + 1];
  memcpy(v, c->g->linger.ended, sizeof c->g->linger.ended);
  v[LINGER__COUNT] = c->g->linger.refused;
  return put_pairs_u(c, "reason", LINGER__COUNT + 1, NAMES, v);
}

static tok_err put_cpu_modes(render_ctx *c)
{
  tok_err rc = put_f(c, "mode=\"user\"", "%.6f", c->user);
  return rc == TOK_OK ? put_f(c, "mode=\"system\"", "%.6f", c->sys) : rc;
}

static tok_err put_request_cpu(render_ctx *c)
{
  tok_err rc = TOK_OK;
  for (int ep = 0; ep < EP__COUNT && rc == TOK_OK; ep++)
    if (c->t.requests[ep]) rc = put_f(c, labels(c, "endpoint=\"%s\"", TOKD_ROUTES[ep].label), "%.6f", c->t.cpu[ep]);
  return rc;
}

static tok_err put_request_cpu_ratios(render_ctx *c)
{
  tok_err rc = TOK_OK;
  for (int ep = 0; ep < EP__COUNT && rc == TOK_OK; ep++) {
    const char *label = TOKD_ROUTES[ep].label;
    rc = put_ratio(c, labels(c, "endpoint=\"%s\",window=\"total\"", label), c->t.cpu[ep], (double)c->t.requests[ep]);
    if (rc == TOK_OK)
      rc = put_ratio(c, labels(c, "endpoint=\"%s\",window=\"60s\"", label), c->g->cost->window_request_cpu[ep],
                     (double)c->g->cost->window_requests[ep]);
  }
  return rc;
}

/* A figure since start and over the last minute, per token processed (scale: 1e6 for per
 * million). */
static tok_err put_windows(render_ctx *c, double total, double window, double scale)
{
  tok_err rc = put_ratio(c, "window=\"total\"", total * scale, (double)(c->encoded + c->decoded));
  return rc == TOK_OK ? put_ratio(c, "window=\"60s\"", window * scale, (double)c->g->cost->window_tokens) : rc;
}

static tok_err put_resident(render_ctx *c)
{
  static const char *const NAMES[2] = {"anon", "file"};
  unsigned long long v[2];
  tokd_rss_split(&v[0], &v[1]);
  return put_pairs_u(c, "backing", 2, NAMES, v);
}

/* The tokenizers' structures: size and resident bytes of each. */
static tok_err put_tokenizer_memory(render_ctx *c)
{
  size_t n_items;
  tok_memory_item *items = tokd_memory_items(c->g->reg, &n_items);
  if (!items) return TOK_ENOMEM;
  tok_err rc = TOK_OK;
  for (size_t i = 0; i < n_items && rc == TOK_OK; i++) {
    const tok_memory_item *it = &items[i];
    char name[208]; /* the label value escaped as the text format asks (\\, \", \n) */
    size_t k = 0;
    for (const char *p = it->tokenizer; *p && k < sizeof name - 3; p++) {
      if (*p == '\\' || *p == '"' || *p == '\n') name[k++] = '\\';
      name[k++] = *p == '\n' ? 'n' : *p;
    }
    name[k] = '\0';
    for (int state = 0; state < 2 && rc == TOK_OK; state++)
      rc = put_u(c, labels(c, "tokenizer=\"%s\",structure=\"%s\",backing=\"%s\",state=\"%s\"", name, it->structure,
                           it->file_backed ? "file" : "anon", state ? "resident" : "size"),
                 state ? it->resident : it->bytes);
  }
  free(items);
  return rc;
}

static tok_err put_prefix_lookups(render_ctx *c)
{
  static const char *const NAMES[2] = {"hit", "miss"};
  const unsigned long long v[2] = {c->g->prefix_cache->hits, c->g->prefix_cache->misses};
  return put_pairs_u(c, "result", 2, NAMES, v);
}

static tok_err put_prefix_bytes(render_ctx *c)
{
  static const char *const NAMES[2] = {"used", "budget"};
  const unsigned long long v[2] = {c->g->prefix_cache->bytes, c->g->prefix_cache->budget};
  return put_pairs_u(c, "kind", 2, NAMES, v);
}

#define G (c->g)
#define PC (c->g->prefix_cache)
/* X(name, type, part, help, samples): samples is an expression of c (render_ctx *) giving
 * the tok_err of writing the family's samples. */
#define METRIC_FAMILIES(X)                                                                                       \
  X(tokd_requests_total, counter, PART_ALWAYS, "HTTP requests answered, by endpoint and status.",              \
    put_requests(c))                                                                                             \
  X(tokd_request_duration_seconds, histogram, PART_ALWAYS,                                                       \
    "Time from the first byte of a request to its response.", put_durations(c))                                  \
  X(tokd_input_bytes_total, counter, PART_ALWAYS, "Request body bytes received.",                                \
    put_by_endpoint(c, offsetof(shard, bytes_in)))                                                               \
  X(tokd_tokens_total, counter, PART_ALWAYS, "Tokens produced (encode, count) or consumed (decode).",            \
    put_by_endpoint(c, offsetof(shard, tokens)))                                                                 \
  X(tokd_inflight_requests, gauge, PART_ALWAYS, "Requests whose body is complete, queued or computing.",        \
    put_u(c, NULL, G->inflight))                                                                                 \
  X(tokd_queued_requests, gauge, PART_ALWAYS, "Requests waiting for a worker.", put_u(c, NULL, G->queued))      \
  X(tokd_open_connections, gauge, PART_ALWAYS, "Open client connections.", put_u(c, NULL, G->connections))      \
  X(tokd_ready, gauge, PART_ALWAYS,                                                                              \
    "1 when the server takes new work (loaded, not draining, a free slot and memory).",                         \
    put_u(c, NULL, (unsigned long long)G->ready))                                                                \
  X(tokd_encodings_loaded, gauge, PART_ALWAYS, "Tokenizers loaded.", put_u(c, NULL, G->encodings))              \
  X(tokd_memory_budget_bytes, gauge, PART_ALWAYS, "The request memory budget (--max-memory).",                  \
    put_u(c, NULL, G->budget_bytes))                                                                             \
  X(tokd_memory_reserved_bytes, gauge, PART_ALWAYS, "Request memory reserved now.",                             \
    put_u(c, NULL, G->budget_used))                                                                              \
  X(tokd_memory_reserved_peak_bytes, gauge, PART_ALWAYS, "The most request memory reserved at once.",           \
    put_u(c, NULL, G->budget_peak))                                                                              \
  X(tokd_memory_rejections_total, counter, PART_ALWAYS, "Requests answered 503 because the budget was spent.",  \
    put_u(c, NULL, G->budget_rejected))                                                                          \
  X(tokd_encoder_warm, gauge, PART_ALWAYS,                                                                       \
    "Whether every tokenizer has its backtracking encoder's tables (at once for the built-in ones; /ready "      \
    "waits for it).",                                                                                            \
    put_u(c, NULL, (unsigned long long)G->warm))                                                                 \
  X(tokd_split_texts_total, counter, PART_ALWAYS,                                                                \
    "Long texts encoded in parts on helper threads (--split-threads).", put_u(c, NULL, G->split_texts))         \
  X(tokd_split_helper_threads_total, counter, PART_ALWAYS, "Helper threads lent to long texts.",                \
    put_u(c, NULL, G->split_helpers))                                                                            \
  X(tokd_connections_dropped_total, counter, PART_ALWAYS, "Connections closed for being too slow, by phase.",   \
    put_dropped(c))                                                                                              \
  X(tokd_lingering_connections, gauge, PART_ALWAYS,                                                              \
    "Connections answered before their body was read, still reading and dropping it so the client can read "   \
    "the answer.",                                                                                               \
    put_u(c, NULL, G->linger.lingering))                                                                         \
  X(tokd_lingering_closes_total, counter, PART_ALWAYS,                                                           \
    "Lingering connections closed: the client finished sending (client_done), sent --linger-bytes, or took "    \
    "--linger-seconds; refused: closed at once, all slots taken.",                                              \
    put_linger_closes(c))                                                                                        \
  X(tokd_lingering_dropped_bytes_total, counter, PART_ALWAYS,                                                    \
    "Body bytes read and dropped by lingering connections.", put_u(c, NULL, G->linger.dropped_bytes))           \
  X(tokd_framing_rejections_total, counter, PART_ALWAYS, "Requests refused for their HTTP framing.",            \
    put_u(c, NULL, atomic_load_explicit(&c->m->framing, memory_order_relaxed)))                                  \
  X(process_cpu_seconds_total, counter, PART_ALWAYS, "User and system CPU time spent.",                         \
    put_f(c, NULL, "%.6f", c->user + c->sys))                                                                    \
  X(process_resident_memory_bytes, gauge, PART_ALWAYS, "Resident memory size.", put_u(c, NULL, tokd_rss_bytes())) \
  X(process_start_time_seconds, gauge, PART_ALWAYS, "Start time of the process since the Unix epoch.",          \
    put_u(c, NULL, (unsigned long long)c->m->start))                                                             \
  X(tokd_cpu_seconds_total, counter, PART_COST, "CPU time of the process, by mode.", put_cpu_modes(c))          \
  X(tokd_tokens_processed_total, counter, PART_COST,                                                             \
    "Tokens encoded (encode, count, tokenize, chat) and decoded.",                                               \
    put_pairs_u(c, "direction", 2, (const char *const[]){"encoded", "decoded"},                                  \
                (const unsigned long long[]){c->encoded, c->decoded}))                                           \
  X(tokd_request_cpu_seconds_total, counter, PART_COST,                                                          \
    "CPU time spent computing answers (parse, tokenize, render), by endpoint; HTTP I/O is in "                   \
    "tokd_cpu_seconds_total only.",                                                                              \
    put_request_cpu(c))                                                                                          \
  X(tokd_request_cpu_seconds_per_request, gauge, PART_COST,                                                      \
    "CPU time computing one answer, by endpoint: since start (window=total) and over the last minute "          \
    "(window=60s).",                                                                                             \
    put_request_cpu_ratios(c))                                                                                   \
  X(tokd_cpu_seconds_per_token, gauge, PART_COST,                                                                \
    "Process CPU time (HTTP included) per token processed, since start and over the last minute.",              \
    put_windows(c, c->user + c->sys, G->cost->window_cpu, 1))                                                    \
  X(tokd_energy_measured, gauge, PART_COST,                                                                      \
    "1: energy from RAPL (the packages' energy times tokd's share of busy CPU); 0: modelled as busy CPU "       \
    "seconds times tokd_energy_model_watts_per_core.",                                                           \
    put_u(c, NULL, G->cost->measured))                                                                           \
  X(tokd_energy_model_watts_per_core, gauge, PART_COST, "The model's watts per busy CPU (--watts-per-core).",   \
    put_f(c, NULL, "%g", G->cost->watts_per_core))                                                               \
  X(tokd_energy_joules_total, counter, PART_COST,                                                                \
    "Energy spent by tokd since start (measured or modelled: tokd_energy_measured).",                           \
    put_f(c, NULL, "%.6f", G->cost->joules))                                                                     \
  X(tokd_energy_joules_per_million_tokens, gauge, PART_COST,                                                     \
    "Energy per million tokens processed, since start and over the last minute.",                               \
    put_windows(c, G->cost->joules, G->cost->window_joules, 1e6))                                                \
  X(tokd_resident_memory_bytes, gauge, PART_MEMORY,                                                              \
    "Resident memory by backing: anon (this process's own: heap, stacks, tables built at start) and file "      \
    "(pages of the executable, libraries and mapped caches: shared with other processes, reclaimable).",       \
    put_resident(c))                                                                                             \
  X(tokd_tokenizer_memory_bytes, gauge, PART_MEMORY,                                                             \
    "What each tokenizer's structures hold: their size, and of it what is resident now (touched pages only), " \
    "by backing (anon or file, as tokd_resident_memory_bytes).",                                                 \
    put_tokenizer_memory(c))                                                                                     \
  X(tokd_prefix_cache_lookups_total, counter, PART_PREFIX,                                                       \
    "Texts looked up in the prefix cache, by result: hit (a remembered prefix or the whole text reused), miss.", \
    put_prefix_lookups(c))                                                                                       \
  X(tokd_prefix_cache_exact_hits_total, counter, PART_PREFIX, "Hits that were a whole text seen before.",       \
    put_u(c, NULL, PC->exact_hits))                                                                              \
  X(tokd_prefix_cache_saved_bytes_total, counter, PART_PREFIX,                                                   \
    "Bytes of text whose ids came from the cache instead of being tokenized again.",                            \
    put_u(c, NULL, PC->bytes_saved))                                                                             \
  X(tokd_prefix_cache_evictions_total, counter, PART_PREFIX,                                                     \
    "Entries evicted to stay within --prefix-cache-bytes.", put_u(c, NULL, PC->evictions))                      \
  X(tokd_prefix_cache_entries, gauge, PART_PREFIX, "Texts remembered now.", put_u(c, NULL, PC->entries))        \
  X(tokd_prefix_cache_bytes, gauge, PART_PREFIX, "Memory the prefix cache holds now, and its budget.",          \
    put_prefix_bytes(c))                                                                                         \
  X(tokd_build_info, gauge, PART_ALWAYS, "Build information.", put_u(c, "version=\"" TOKD_VERSION "\"", 1))

enum {
#define X(name, type, part, help, samples) FAM_##name,
  METRIC_FAMILIES(X)
#undef X
  FAM__COUNT
};

typedef struct family {
  const char *name, *type, *help;
  part where;
} family;

static const family FAMILIES[FAM__COUNT] = {
#define X(name, type, part, help, samples) {#name, #type, help, part},
    METRIC_FAMILIES(X)
#undef X
};

static tok_err put_samples(render_ctx *c, int which)
{
  switch (which) {
#define X(name, type, part, help, samples) \
  case FAM_##name:                          \
    return samples;
    METRIC_FAMILIES(X)
#undef X
  }
  return TOK_OK;
}
#undef G
#undef PC

static bool part_on(part p, const tokd_metrics_gauges *g)
{
  switch (p) {
  case PART_COST: return g->cost != NULL;
  case PART_MEMORY: return g->reg != NULL;
  case PART_PREFIX: return g->prefix_cache != NULL;
  default: return true;
  }
}

static bool is_decode(int ep)
{
  return ep == EP_DECODE || ep == EP_DETOKENIZE;
}

tok_err tokd_metrics_render(tokd_metrics *m, tok_buf *out, const tokd_metrics_gauges *g)
{
  render_ctx c = {.m = m, .g = g, .out = out};
  tokd_process_cpu(&c.user, &c.sys);
  if (g->cost) {
    tokd_metrics_totals_read(m, &c.t);
    for (int ep = 0; ep < EP__COUNT; ep++) *(is_decode(ep) ? &c.decoded : &c.encoded) += c.t.tokens[ep];
  }
  tok_err rc = TOK_OK;
  for (int i = 0; i < FAM__COUNT && rc == TOK_OK; i++) {
    const family *f = &FAMILIES[i];
    if (!part_on(f->where, g)) continue;
    char head[640];
    int n = snprintf(head, sizeof head, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name, f->type);
    if (n < 0 || (size_t)n >= sizeof head) return TOK_ELIMIT;
    if ((rc = tok_buf_append(out, head, (size_t)n)) != TOK_OK) return rc;
    c.name = f->name;
    rc = put_samples(&c, i);
  }
  return rc;
}
