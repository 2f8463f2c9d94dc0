/*
 * metrics.c — see metrics.h. Histogram buckets are fixed at compile time: tokenizing takes
 * microseconds to a few hundred milliseconds, so the buckets run from 50 µs to 2.5 s.
 */
#include "serve/metrics.h"

#include "serve/cost.h"
#include "common/util.h"

#include <sched.h>
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

#define APPEND(...)                                                                           \
  do {                                                                                        \
    char line[512];                                                                           \
    int n = snprintf(line, sizeof line, __VA_ARGS__);                                          \
    if (n < 0 || (size_t)n >= sizeof line) return TOK_ELIMIT; /* a line longer than line[] */ \
    if ((rc = tok_buf_append(out, line, (size_t)n)) != TOK_OK) return rc;                     \
  } while (0)

void tokd_metrics_totals_read(tokd_metrics *m, tokd_metrics_totals *t)
{
  for (int ep = 0; ep < EP__COUNT; ep++) {
    size_t row = offsetof(shard, requests) + (size_t)ep * sizeof(atomic_ullong) * (N_STATUS + 1);
    t->requests[ep] = 0;
    for (size_t si = 0; si <= N_STATUS; si++) t->requests[ep] += sum(m, row, si);
    t->tokens[ep] = sum(m, offsetof(shard, tokens), (size_t)ep);
    t->cpu[ep] = (double)sum(m, offsetof(shard, cpu_ns), (size_t)ep) / 1e9;
  }
}

/* One sample of a ratio; none when there is nothing to divide by (no NaN: simple parsers
 * and dashboards then see no data rather than a value they must special-case). */
static tok_err ratio_line(tok_buf *out, const char *series, double num, double den)
{
  if (!(den > 0)) return TOK_OK;
  char line[256];
  int n = snprintf(line, sizeof line, "%s %.9g\n", series, num / den);
  return tok_buf_append(out, line, (size_t)n);
}

static bool is_decode(int ep)
{
  return ep == EP_DECODE || ep == EP_DETOKENIZE;
}

/* CPU and energy: the process's, per token, per request class (cost.h) */
static tok_err render_cost(tokd_metrics *m, tok_buf *out, const tokd_cost_figures *c)
{
  tok_err rc;
  double user, sys;
  tokd_process_cpu(&user, &sys);
  tokd_metrics_totals t;
  tokd_metrics_totals_read(m, &t);
  unsigned long long encoded = 0, decoded = 0;
  for (int ep = 0; ep < EP__COUNT; ep++) *(is_decode(ep) ? &decoded : &encoded) += t.tokens[ep];
  APPEND("# HELP tokd_cpu_seconds_total CPU time of the process, by mode.\n# TYPE tokd_cpu_seconds_total counter\n"
         "tokd_cpu_seconds_total{mode=\"user\"} %.6f\ntokd_cpu_seconds_total{mode=\"system\"} %.6f\n", user, sys);
  APPEND("# HELP tokd_tokens_processed_total Tokens encoded (encode, count, tokenize, chat) and decoded.\n"
         "# TYPE tokd_tokens_processed_total counter\n"
         "tokd_tokens_processed_total{direction=\"encoded\"} %llu\ntokd_tokens_processed_total{direction=\"decoded\"} %llu\n",
         encoded, decoded);
  APPEND("# HELP tokd_request_cpu_seconds_total CPU time spent computing answers (parse, tokenize, render), "
         "by endpoint; HTTP I/O is in tokd_cpu_seconds_total only.\n# TYPE tokd_request_cpu_seconds_total counter\n");
  for (int ep = 0; ep < EP__COUNT; ep++)
    if (t.requests[ep]) APPEND("tokd_request_cpu_seconds_total{endpoint=\"%s\"} %.6f\n", TOKD_ROUTES[ep].label, t.cpu[ep]);
  APPEND("# HELP tokd_request_cpu_seconds_per_request CPU time computing one answer, by endpoint: since start "
         "(window=total) and over the last minute (window=60s).\n# TYPE tokd_request_cpu_seconds_per_request gauge\n");
  char series[160];
  for (int ep = 0; ep < EP__COUNT; ep++) {
    snprintf(series, sizeof series, "tokd_request_cpu_seconds_per_request{endpoint=\"%s\",window=\"total\"}",
             TOKD_ROUTES[ep].label);
    if ((rc = ratio_line(out, series, t.cpu[ep], (double)t.requests[ep])) != TOK_OK) return rc;
    snprintf(series, sizeof series, "tokd_request_cpu_seconds_per_request{endpoint=\"%s\",window=\"60s\"}",
             TOKD_ROUTES[ep].label);
    if ((rc = ratio_line(out, series, c->window_request_cpu[ep], (double)c->window_requests[ep])) != TOK_OK) return rc;
  }
  double tokens = (double)(encoded + decoded);
  APPEND("# HELP tokd_cpu_seconds_per_token Process CPU time (HTTP included) per token processed, since start "
         "and over the last minute.\n# TYPE tokd_cpu_seconds_per_token gauge\n");
  if ((rc = ratio_line(out, "tokd_cpu_seconds_per_token{window=\"total\"}", user + sys, tokens)) != TOK_OK ||
      (rc = ratio_line(out, "tokd_cpu_seconds_per_token{window=\"60s\"}", c->window_cpu, (double)c->window_tokens)) != TOK_OK)
    return rc;
  APPEND("# HELP tokd_energy_measured 1: energy from RAPL (the packages' energy times tokd's share of busy CPU); "
         "0: modelled as busy CPU seconds times tokd_energy_model_watts_per_core.\n"
         "# TYPE tokd_energy_measured gauge\ntokd_energy_measured %d\n", c->measured);
  APPEND("# HELP tokd_energy_model_watts_per_core The model's watts per busy CPU (--watts-per-core).\n"
         "# TYPE tokd_energy_model_watts_per_core gauge\ntokd_energy_model_watts_per_core %g\n", c->watts_per_core);
  APPEND("# HELP tokd_energy_joules_total Energy spent by tokd since start (measured or modelled: tokd_energy_measured).\n"
         "# TYPE tokd_energy_joules_total counter\ntokd_energy_joules_total %.6f\n", c->joules);
  APPEND("# HELP tokd_energy_joules_per_million_tokens Energy per million tokens processed, since start and over "
         "the last minute.\n# TYPE tokd_energy_joules_per_million_tokens gauge\n");
  if ((rc = ratio_line(out, "tokd_energy_joules_per_million_tokens{window=\"total\"}", c->joules * 1e6, tokens)) != TOK_OK ||
      (rc = ratio_line(out, "tokd_energy_joules_per_million_tokens{window=\"60s\"}", c->window_joules * 1e6,
                       (double)c->window_tokens)) != TOK_OK)
    return rc;
  return TOK_OK;
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

/* The tokenizers' structures as tokd_tokenizer_memory_bytes series. */
static tok_err append_memory_items(tok_buf *out, const tok_memory_item *items, size_t n_items)
{
  tok_err rc;
  APPEND("# HELP tokd_tokenizer_memory_bytes What each tokenizer's structures hold: their size, and of it what is "
         "resident now (touched pages only), by backing (anon or file, as tokd_resident_memory_bytes).\n"
         "# TYPE tokd_tokenizer_memory_bytes gauge\n");
  for (size_t i = 0; i < n_items; i++) {
    const tok_memory_item *it = &items[i];
    char name[208]; /* the label value escaped as the text format asks (\\, \", \n) */
    size_t k = 0;
    for (const char *c = it->tokenizer; *c && k < sizeof name - 3; c++) {
      if (*c == '\\' || *c == '"' || *c == '\n') name[k++] = '\\';
      name[k++] = *c == '\n' ? 'n' : *c;
    }
    name[k] = '\0';
    for (int state = 0; state < 2; state++)
      APPEND("tokd_tokenizer_memory_bytes{tokenizer=\"%s\",structure=\"%s\",backing=\"%s\",state=\"%s\"} %zu\n",
             name, it->structure, it->file_backed ? "file" : "anon", state ? "resident" : "size",
             state ? it->resident : it->bytes);
  }
  return TOK_OK;
}

/* The process's resident memory split, and what the tokenizers hold by structure. */
static tok_err render_memory(tok_buf *out, const tok_registry *reg)
{
  tok_err rc;
  unsigned long long anon, file;
  tokd_rss_split(&anon, &file);
  APPEND("# HELP tokd_resident_memory_bytes Resident memory by backing: anon (this process's own: heap, stacks, "
         "tables built at start) and file (pages of the executable, libraries and mapped caches: shared with other "
         "processes, reclaimable).\n# TYPE tokd_resident_memory_bytes gauge\n"
         "tokd_resident_memory_bytes{backing=\"anon\"} %llu\ntokd_resident_memory_bytes{backing=\"file\"} %llu\n",
         anon, file);
  size_t n_items;
  tok_memory_item *items = tokd_memory_items(reg, &n_items);
  if (!items) return TOK_ENOMEM;
  rc = append_memory_items(out, items, n_items);
  free(items);
  return rc;
}

tok_err tokd_metrics_render(tokd_metrics *m, tok_buf *out, const tokd_metrics_gauges *g)
{
  tok_err rc;
  APPEND("# HELP tokd_requests_total HTTP requests answered, by endpoint and status.\n"
         "# TYPE tokd_requests_total counter\n");
  for (int ep = 0; ep < EP__COUNT; ep++)
    for (size_t si = 0; si <= N_STATUS; si++) {
      unsigned long long v = sum(m, offsetof(shard, requests) + (size_t)ep * sizeof(atomic_ullong) * (N_STATUS + 1), si);
      if (v == 0) continue;
      if (si < N_STATUS)
        APPEND("tokd_requests_total{endpoint=\"%s\",status=\"%u\"} %llu\n", TOKD_ROUTES[ep].label, STATUSES[si], v);
      else
        APPEND("tokd_requests_total{endpoint=\"%s\",status=\"other\"} %llu\n", TOKD_ROUTES[ep].label, v);
    }
  APPEND("# HELP tokd_request_duration_seconds Time from the first byte of a request to its response.\n"
         "# TYPE tokd_request_duration_seconds histogram\n");
  for (int ep = 0; ep < EP__COUNT; ep++) {
    size_t base = offsetof(shard, latency) + (size_t)ep * sizeof(atomic_ullong) * (N_BUCKETS + 1);
    unsigned long long cumulative = 0;
    unsigned long long total = 0;
    for (size_t bi = 0; bi <= N_BUCKETS; bi++) total += sum(m, base, bi);
    if (total == 0) continue;
    for (size_t bi = 0; bi < N_BUCKETS; bi++) {
      cumulative += sum(m, base, bi);
      APPEND("tokd_request_duration_seconds_bucket{endpoint=\"%s\",le=\"%g\"} %llu\n",
             TOKD_ROUTES[ep].label, BUCKETS[bi], cumulative);
    }
    APPEND("tokd_request_duration_seconds_bucket{endpoint=\"%s\",le=\"+Inf\"} %llu\n", TOKD_ROUTES[ep].label, total);
    APPEND("tokd_request_duration_seconds_sum{endpoint=\"%s\"} %.9f\n", TOKD_ROUTES[ep].label,
           (double)sum(m, offsetof(shard, latency_ns), (size_t)ep) / 1e9);
    APPEND("tokd_request_duration_seconds_count{endpoint=\"%s\"} %llu\n", TOKD_ROUTES[ep].label, total);
  }
  APPEND("# HELP tokd_input_bytes_total Request body bytes received.\n# TYPE tokd_input_bytes_total counter\n");
  for (int ep = 0; ep < EP__COUNT; ep++) {
    unsigned long long v = sum(m, offsetof(shard, bytes_in), (size_t)ep);
    if (v) APPEND("tokd_input_bytes_total{endpoint=\"%s\"} %llu\n", TOKD_ROUTES[ep].label, v);
  }
  APPEND("# HELP tokd_tokens_total Tokens produced (encode, count) or consumed (decode).\n# TYPE tokd_tokens_total counter\n");
  for (int ep = 0; ep < EP__COUNT; ep++) {
    unsigned long long v = sum(m, offsetof(shard, tokens), (size_t)ep);
    if (v) APPEND("tokd_tokens_total{endpoint=\"%s\"} %llu\n", TOKD_ROUTES[ep].label, v);
  }
  double user, sys;
  unsigned long long rss = tokd_rss_bytes();
  tokd_process_cpu(&user, &sys);
  APPEND("# HELP tokd_inflight_requests Requests whose body is complete, queued or computing.\n"
         "# TYPE tokd_inflight_requests gauge\ntokd_inflight_requests %u\n", g->inflight);
  APPEND("# HELP tokd_queued_requests Requests waiting for a worker.\n# TYPE tokd_queued_requests gauge\n"
         "tokd_queued_requests %u\n", g->queued);
  APPEND("# HELP tokd_open_connections Open client connections.\n# TYPE tokd_open_connections gauge\n"
         "tokd_open_connections %u\n", g->connections);
  APPEND("# HELP tokd_ready 1 when the server takes new work (loaded, not draining, a free slot and memory).\n"
         "# TYPE tokd_ready gauge\ntokd_ready %d\n", g->ready);
  APPEND("# HELP tokd_encodings_loaded Tokenizers loaded.\n# TYPE tokd_encodings_loaded gauge\ntokd_encodings_loaded %u\n", g->encodings);
  APPEND("# HELP tokd_memory_budget_bytes The request memory budget (--max-memory).\n"
         "# TYPE tokd_memory_budget_bytes gauge\ntokd_memory_budget_bytes %llu\n", g->budget_bytes);
  APPEND("# HELP tokd_memory_reserved_bytes Request memory reserved now.\n"
         "# TYPE tokd_memory_reserved_bytes gauge\ntokd_memory_reserved_bytes %llu\n", g->budget_used);
  APPEND("# HELP tokd_memory_reserved_peak_bytes The most request memory reserved at once.\n"
         "# TYPE tokd_memory_reserved_peak_bytes gauge\ntokd_memory_reserved_peak_bytes %llu\n", g->budget_peak);
  APPEND("# HELP tokd_memory_rejections_total Requests answered 503 because the budget was spent.\n"
         "# TYPE tokd_memory_rejections_total counter\ntokd_memory_rejections_total %llu\n", g->budget_rejected);
  APPEND("# HELP tokd_encoder_warm Whether every tokenizer has its backtracking encoder's tables (at once for "
         "the built-in ones; /ready waits for it).\n"
         "# TYPE tokd_encoder_warm gauge\ntokd_encoder_warm %d\n", g->warm);
  APPEND("# HELP tokd_split_texts_total Long texts encoded in parts on helper threads (--split-threads).\n"
         "# TYPE tokd_split_texts_total counter\ntokd_split_texts_total %llu\n", g->split_texts);
  APPEND("# HELP tokd_split_helper_threads_total Helper threads lent to long texts.\n"
         "# TYPE tokd_split_helper_threads_total counter\ntokd_split_helper_threads_total %llu\n", g->split_helpers);
  APPEND("# HELP tokd_connections_dropped_total Connections closed for being too slow, by phase.\n"
         "# TYPE tokd_connections_dropped_total counter\n");
  for (int d = 0; d < DROP__COUNT; d++)
    APPEND("tokd_connections_dropped_total{phase=\"%s\"} %llu\n", DROP_NAMES[d],
           atomic_load_explicit(&m->dropped[d], memory_order_relaxed));
  APPEND("# HELP tokd_lingering_connections Connections answered before their body was read, still reading and "
         "dropping it so the client can read the answer.\n"
         "# TYPE tokd_lingering_connections gauge\ntokd_lingering_connections %u\n", g->linger.lingering);
  static const char *const LINGER_NAMES[LINGER__COUNT] = {"client_done", "bytes", "timeout"};
  APPEND("# HELP tokd_lingering_closes_total Lingering connections closed: the client finished sending "
         "(client_done), sent --linger-bytes, or took --linger-seconds; refused: closed at once, all slots taken.\n"
         "# TYPE tokd_lingering_closes_total counter\n");
  for (int r = 0; r < LINGER__COUNT; r++)
    APPEND("tokd_lingering_closes_total{reason=\"%s\"} %llu\n", LINGER_NAMES[r], g->linger.ended[r]);
  APPEND("tokd_lingering_closes_total{reason=\"refused\"} %llu\n", g->linger.refused);
  APPEND("# HELP tokd_lingering_dropped_bytes_total Body bytes read and dropped by lingering connections.\n"
         "# TYPE tokd_lingering_dropped_bytes_total counter\ntokd_lingering_dropped_bytes_total %llu\n",
         g->linger.dropped_bytes);
  APPEND("# HELP tokd_framing_rejections_total Requests refused for their HTTP framing.\n"
         "# TYPE tokd_framing_rejections_total counter\ntokd_framing_rejections_total %llu\n",
         atomic_load_explicit(&m->framing, memory_order_relaxed));
  APPEND("# HELP process_cpu_seconds_total User and system CPU time spent.\n# TYPE process_cpu_seconds_total counter\n"
         "process_cpu_seconds_total %.6f\n", user + sys);
  APPEND("# HELP process_resident_memory_bytes Resident memory size.\n# TYPE process_resident_memory_bytes gauge\n"
         "process_resident_memory_bytes %llu\n", rss);
  APPEND("# HELP process_start_time_seconds Start time of the process since the Unix epoch.\n# TYPE process_start_time_seconds gauge\n"
         "process_start_time_seconds %lld\n", (long long)m->start);
  if (g->cost && (rc = render_cost(m, out, g->cost)) != TOK_OK) return rc;
  if (g->reg && (rc = render_memory(out, g->reg)) != TOK_OK) return rc;
  const tok_prefix_cache_stats *pc = g->prefix_cache;
  if (pc) {
    APPEND("# HELP tokd_prefix_cache_lookups_total Texts looked up in the prefix cache, by result: hit (a remembered "
           "prefix or the whole text reused), miss.\n# TYPE tokd_prefix_cache_lookups_total counter\n"
           "tokd_prefix_cache_lookups_total{result=\"hit\"} %llu\ntokd_prefix_cache_lookups_total{result=\"miss\"} "
           "%llu\n", (unsigned long long)pc->hits, (unsigned long long)pc->misses);
    APPEND("# HELP tokd_prefix_cache_exact_hits_total Hits that were a whole text seen before.\n"
           "# TYPE tokd_prefix_cache_exact_hits_total counter\ntokd_prefix_cache_exact_hits_total %llu\n",
           (unsigned long long)pc->exact_hits);
    APPEND("# HELP tokd_prefix_cache_saved_bytes_total Bytes of text whose ids came from the cache instead of being "
           "tokenized again.\n# TYPE tokd_prefix_cache_saved_bytes_total counter\ntokd_prefix_cache_saved_bytes_total "
           "%llu\n", (unsigned long long)pc->bytes_saved);
    APPEND("# HELP tokd_prefix_cache_evictions_total Entries evicted to stay within --prefix-cache-bytes.\n"
           "# TYPE tokd_prefix_cache_evictions_total counter\ntokd_prefix_cache_evictions_total %llu\n",
           (unsigned long long)pc->evictions);
    APPEND("# HELP tokd_prefix_cache_entries Texts remembered now.\n# TYPE tokd_prefix_cache_entries gauge\n"
           "tokd_prefix_cache_entries %zu\n", pc->entries);
    APPEND("# HELP tokd_prefix_cache_bytes Memory the prefix cache holds now, and its budget.\n"
           "# TYPE tokd_prefix_cache_bytes gauge\ntokd_prefix_cache_bytes{kind=\"used\"} %zu\n"
           "tokd_prefix_cache_bytes{kind=\"budget\"} %zu\n", pc->bytes, pc->budget);
  }
  APPEND("# HELP tokd_build_info Build information.\n# TYPE tokd_build_info gauge\n"
         "tokd_build_info{version=\"%s\"} 1\n", TOKD_VERSION);
  return TOK_OK;
}
