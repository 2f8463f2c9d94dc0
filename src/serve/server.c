/*
 * server.c — the server object's life (server.h): new loads the tokenizers and makes the
 * parts; start runs their threads and listens; stop drains; free frees.
 *
 * Order matters in two places. The parts that hold threads start before the listener, so
 * the first connection finds the pool, the watchdog and the lingering-close set running;
 * and the Unix sockets are bound before any thread that creates files (the table cache is
 * written by the warm-up thread), since binding sets the process's umask for a moment
 * (listen.c). Stopping runs the other way: no new connections, in-flight requests finish
 * (or, past --drain-timeout, queued jobs answer 503), then libmicrohttpd, then the threads
 * that served it.
 */
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "serve/cost.h"
#include "serve/http.h"
#include "serve/json.h"
#include "serve/linger.h"
#include "serve/listen.h"
#include "common/log.h"
#include "serve/pool.h"
#include "serve/server.h"
#include "serve/watchdog.h"

/* Rate-limit grace before --min-rate applies, seconds. */
#define RATE_GRACE 5.0

/* Builds the backtracking tables the image did not bring (Hugging Face models); the
 * server is ready once they are, so no request meets the slower heap merger for want of
 * them. */
static void *warm_main(void *arg)
{
  tokd_server *srv = arg;
  pthread_setname_np(pthread_self(), "tokd-warm");
  tok_registry_warm(srv->reg);
  atomic_store(&srv->warm, 1);
  atomic_store(&srv->ready, 1);
  tokd_log(LOG_ERROR, LOG_INFO, "\"msg\":\"ready\",\"ready_ms\":%.1f,\"rss_bytes\":%llu",
           (tokd_now() - srv->started) * 1e3, tokd_rss_bytes());
  return NULL;
}

/* Raises the soft descriptor limit to the hard one; returns how many descriptors of want
 * are available for connections and lingering sockets. */
static unsigned raise_fd_limit(unsigned want)
{
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return want;
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
  }
  /* descriptors for the listener, the event loops, the log and the loaders */
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (rlim_t)want + 64)
    return rl.rlim_cur > 128 ? (unsigned)rl.rlim_cur - 64 : 64;
  return want;
}

/* The tokenizers, the default one, and what is derived from them. 0, or an exit status
 * after a message. */
static int load(tokd_server *srv)
{
  tok_error err;
  char cache[4096];
  tok_load_opts lo = {.vocab_dir = srv->cfg.vocab_dir, .encodings = srv->cfg.encodings,
                      .tokenizers = srv->cfg.tokenizers, .n_tokenizers = srv->cfg.n_tokenizers,
                      .cache_dir = tokd_cache_dir(srv->cfg.cache_dir, cache, sizeof cache)};
  if (tok_registry_load(&lo, &srv->reg, &err) != TOK_OK) {
    fprintf(stderr, "tokd: %s\n", err.detail);
    return err.code == TOK_EUNKNOWN_ENCODING ? 2 : 1;
  }
  const char *refused = tok_registry_cache_refused(srv->reg);
  if (refused) {
    tok_buf quoted = {0};
    bool ok = tokd_json_string(&quoted, refused, strlen(refused)) == TOK_OK;
    tokd_log(LOG_WARN, LOG_WARN, "\"msg\":\"table cache off\",\"reason\":%.*s", ok ? (int)quoted.len : 4,
             ok ? quoted.data : "null");
    tok_buf_free(&quoted);
  }
  /* Loading leaves megabytes of freed temporaries in the heap; a sidecar is judged by its
   * resident memory, so hand them back now (measured: 12.6 -> 8.2 MB for cl100k+o200k). */
  malloc_trim(0);
  srv->load_ms = (tokd_now() - srv->started) * 1e3;
  const char *def = srv->cfg.default_encoding ? srv->cfg.default_encoding
                    : srv->cfg.n_tokenizers   ? srv->cfg.tokenizers[0].name
                                              : "cl100k_base";
  srv->default_enc = tok_registry_find(srv->reg, def, strlen(def));
  if (!srv->default_enc && srv->cfg.default_encoding) {
    fprintf(stderr, "tokd: --default-encoding %s is not loaded\n", def);
    return 2;
  }
  if (!srv->default_enc) srv->default_enc = tok_registry_at(srv->reg, 0);
  int rc = tokd_model_lens_load(srv);
  if (rc) return rc;
  if (tokd_chat_load(srv) != 0 || tokd_encodings_json(srv, &srv->encodings_json) != TOK_OK) {
    fprintf(stderr, "tokd: out of memory\n");
    return 1;
  }
  return 0;
}

int tokd_server_new(const tokd_config *cfg, tokd_server **out)
{
  tokd_server *srv = calloc(1, sizeof *srv);
  if (!srv) {
    fprintf(stderr, "tokd: out of memory\n");
    return 1;
  }
  srv->cfg = *cfg;
  tokd_log_set_level(srv->cfg.log_level);
  /* A fixed mmap threshold stops glibc from raising it after the loader frees its large
   * temporaries, which left later tables in the heap between freed holes: resident memory
   * after start-up varied from 13.6 to 17.5 MB between runs without it. It also makes
   * large request buffers (bodies, answers) mmap'd, so freeing one gives it back. */
  mallopt(M_MMAP_THRESHOLD, 256 * 1024);
  srv->started = tokd_now();
  srv->id_prefix = ((unsigned long long)time(NULL) << 16 ^ (unsigned long long)getpid()) & 0xffffffffffffull;
  srv->limits = (tok_limits){.max_tokens_out = srv->cfg.max_tokens};
  /* at least two workers: large jobs may take all but one, so small ones always find one */
  srv->n_workers = srv->cfg.threads > 1 ? srv->cfg.threads : 2;
  srv->io_threads = srv->cfg.threads > 1 ? (srv->cfg.threads < 4 ? srv->cfg.threads : 4) : 1;
  int rc = load(srv);
  if (rc) {
    tokd_server_free(srv);
    return rc;
  }

  /* descriptors for the connections first, then as many again for lingering sockets
   * (linger.h), which are no longer libmicrohttpd's and so not in its limit */
  unsigned fds = raise_fd_limit(2 * srv->cfg.max_connections);
  srv->max_connections = fds < srv->cfg.max_connections ? fds : srv->cfg.max_connections;
  if (srv->max_connections < srv->cfg.max_connections || fds - srv->max_connections < srv->cfg.max_connections)
    tokd_log(LOG_WARN, LOG_WARN, "\"msg\":\"file descriptor limit\",\"max_connections\":%u,\"max_lingering\":%u",
             srv->max_connections, fds - srv->max_connections);

  bool ok = (srv->budget = tokd_budget_new(srv->cfg.max_memory)) &&
            (srv->metrics = tokd_metrics_new(tokd_cpu_count())) &&
            (srv->split = calloc(1, sizeof *srv->split)) &&
            (!srv->cfg.prefix_cache_bytes || (srv->prefix_cache = tok_prefix_cache_new(srv->cfg.prefix_cache_bytes))) &&
            (srv->pool = tokd_pool_new(srv, srv->n_workers));
  tokd_watchdog_cfg wc = {.header_timeout = srv->cfg.header_timeout_s, .idle_timeout = srv->cfg.conn_timeout_s,
                          .min_rate = (double)srv->cfg.min_rate, .grace = RATE_GRACE, .metrics = srv->metrics};
  tokd_cost_cfg cc = {.watts_per_core = srv->cfg.watts_per_core, .powercap_dir = srv->cfg.powercap_dir,
                      .metrics = srv->metrics};
  tokd_linger_cfg lc = {.max = fds - srv->max_connections, .seconds = srv->cfg.linger_s, .budget = srv->budget,
                        .reserve = TOKD_CONN_RESERVE};
  ok = ok && (srv->watchdog = tokd_watchdog_new(&wc)) && (srv->cost = tokd_cost_new(&cc));
  if (ok && srv->cfg.linger_s && lc.max && !(srv->linger = tokd_linger_new(&lc))) {
    fprintf(stderr, "tokd: cannot set up lingering close\n");
    tokd_server_free(srv);
    return 1;
  }
  if (!ok) {
    fprintf(stderr, "tokd: out of memory\n");
    tokd_server_free(srv);
    return 1;
  }
  *out = srv;
  return 0;
}

int tokd_server_start(tokd_server *srv)
{
  if (!tokd_pool_start(srv->pool) || !tokd_watchdog_start(srv->watchdog) || !tokd_cost_start(srv->cost)) {
    fprintf(stderr, "tokd: cannot start worker threads\n");
    return 1;
  }
  if (srv->linger && !tokd_linger_start(srv->linger)) {
    fprintf(stderr, "tokd: cannot start the lingering-close thread\n");
    return 1;
  }
  int rc;
  if (!(srv->listener = tokd_listener_new(&srv->cfg.listen, srv->cfg.socket_mode, &rc))) return rc;
  if ((rc = tokd_http_start(srv)) != 0) return rc;
  /* /health answers from here on; /ready once every tokenizer has its fast encoder (the
   * built-in ones have it from the image, a Hugging Face model's tables take 25-175 ms) */
  srv->warming = pthread_create(&srv->warm_thread, NULL, warm_main, srv) == 0;
  if (!srv->warming) warm_main(srv);
  return 0;
}

static void sleep_seconds(double s)
{
  struct timespec t = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
  nanosleep(&t, NULL);
}

unsigned tokd_server_stop(tokd_server *srv)
{
  unsigned left = 0;
  atomic_store(&srv->draining, 1);
  if (srv->http) {
    sleep_seconds(srv->cfg.drain_delay_s);
    tokd_http_quiesce(srv);
    tokd_listener_stop(srv->listener); /* new clients now find no socket file */
    double deadline = tokd_now() + srv->cfg.drain_timeout_s;
    while (atomic_load(&srv->active) > 0 && tokd_now() < deadline) sleep_seconds(0.005);
    left = atomic_load(&srv->active);
    /* past the deadline, queued jobs answer 503 at once; running ones finish (their work is
     * bounded), and no connection may stay suspended when libmicrohttpd stops */
    atomic_store(&srv->cancel, 1);
    while (atomic_load(&srv->inflight) > 0) sleep_seconds(0.005);
    tokd_http_stop(srv);
  }
  tokd_listener_stop(srv->listener);
  tokd_linger_stop(srv->linger);
  tokd_pool_stop(srv->pool);
  tokd_watchdog_stop(srv->watchdog);
  tokd_cost_stop(srv->cost);
  if (srv->warming) pthread_join(srv->warm_thread, NULL);
  srv->warming = false;
  return left;
}

void tokd_server_free(tokd_server *srv)
{
  if (!srv) return;
  tokd_listener_free(srv->listener);
  tokd_linger_free(srv->linger);
  tokd_pool_free(srv->pool);
  tokd_watchdog_free(srv->watchdog);
  tokd_cost_free(srv->cost);
  free(srv->split);
  tok_prefix_cache_free(srv->prefix_cache);
  tokd_metrics_free(srv->metrics);
  tokd_budget_free(srv->budget);
  tok_buf_free(&srv->encodings_json);
  tokd_chat_free(srv);
  free(srv->model_len);
  tok_registry_free(srv->reg);
  tokd_sources_free(srv->cfg.tokenizers, srv->cfg.n_tokenizers);
  tokd_listen_spec_free(&srv->cfg.listen);
  free(srv);
}
