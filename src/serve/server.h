/*
 * server.h — `tokd serve` as one object: the tokd_server owns the configuration, the
 * tokenizers, and its parts, each a handle with the same life (new, start, stop, free):
 * the memory budget (budget.h), the metrics (metrics.h), the prefix cache, the worker pool
 * (pool.h), the connection watchdog (watchdog.h), the lingering-close set (linger.h), the
 * cost sampler (cost.h), the Unix-socket listener (listen.h) and libmicrohttpd (http.h).
 * No file of src/serve keeps mutable state of its own: a second server in one process (a
 * test, the fuzz target) shares nothing with the first.
 *
 * Threads: libmicrohttpd's I/O threads read requests and write responses and answer the
 * cheap GET endpoints themselves; every POST becomes a job for the worker pool (pool.h),
 * whose threads each own a tokd_worker (scratch memory), so a long request never holds up
 * the I/O of others, and the request path takes no locks besides the job queue.
 *
 * Handlers see the server as const: what they change (the budget, the split gate, the
 * metrics, the prefix cache) is reached through pointers to thread-safe parts, and the
 * state below is atomic.
 */
#ifndef TOKD_SERVER_H
#define TOKD_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "serve/budget.h"
#include "serve/config.h"
#include "serve/metrics.h"
#include "serve/request.h"
#include "tok.h"

/* The helper threads lent to long texts (tok_split): at most --split-threads - 1 at a time
 * over the whole server, so that big requests cannot multiply the threads (handlers.c). */
typedef struct tokd_split_gate {
  atomic_uint busy;       /* lent now */
  atomic_ullong texts;    /* texts encoded with helpers, since start (/metrics) */
  atomic_ullong helpers;  /* helpers lent, since start */
} tokd_split_gate;

typedef struct tokd_server {
  /* settled by tokd_server_new, then read-only */
  tokd_config cfg;
  tok_registry *reg;
  const tok_encoding *default_enc;
  tok_buf encodings_json; /* GET /encodings, built once at start-up */
  tok_limits limits;
  unsigned n_workers;
  unsigned io_threads;    /* libmicrohttpd's */
  unsigned max_connections; /* libmicrohttpd's limit (--max-connections, or fewer descriptors) */
  double started;         /* tokd_now() when loading began */
  double load_ms;         /* loading the tokenizers took */
  unsigned long long id_prefix; /* of the request ids it makes (time and process) */
  /* each loaded tokenizer's chat template, parsed at start-up (by registry index); NULL
   * with chat_error[i] set when it has none or it cannot be used */
  struct tok_chat_template **chat;
  char **chat_error;
  uint64_t *model_len; /* --model-max-len by registry index (0: not given) */

  /* its parts */
  tokd_budget *budget;
  tokd_metrics *metrics;
  tok_prefix_cache *prefix_cache; /* NULL: off (--prefix-cache-bytes 0) */
  tokd_split_gate *split;
  struct tokd_pool *pool;
  struct tokd_watchdog *watchdog;
  struct tokd_linger *linger;     /* NULL: --linger 0, or no descriptors to spare */
  struct tokd_cost *cost;
  struct tokd_listener *listener; /* the Unix sockets */
  struct MHD_Daemon *http;        /* http.c */
  pthread_t warm_thread;          /* builds the backtracking tables after start-up */
  bool warming;                   /* warm_thread is to be joined */

  /* state */
  atomic_int ready;       /* tokenizers loaded and listening */
  atomic_int draining;    /* SIGTERM seen */
  atomic_int warm;        /* the backtracking encoder's tables are built (tok_registry_warm) */
  atomic_int cancel;      /* the drain timed out: queued jobs answer 503 */
  atomic_uint inflight;   /* requests whose body is complete, queued or computing */
  atomic_uint active;     /* requests begun and not yet completed (what a drain waits for) */
  atomic_ullong request_seq; /* of the request ids it makes */
} tokd_server;

/* Loads the tokenizers for cfg (taken over: freed by tokd_server_free) and makes the
 * server's parts, without starting a thread or listening. 0 and *out, or an exit status
 * after a message on stderr. A SIGTERM meanwhile is the caller's (cli/serve.c). */
int tokd_server_new(const tokd_config *cfg, tokd_server **out);
/* Starts the workers, the watchdog, the cost sampler and the lingering-close thread, then
 * listens (/health answers from here on; /ready once every tokenizer has its fast encoder).
 * 0, or an exit status after a message on stderr (then stop and free it). */
int tokd_server_start(tokd_server *srv);
/* Drains: not ready (still listening, so probes see it) for --drain-delay, then no new
 * connections, then in-flight requests finish (up to --drain-timeout); then every thread
 * stops. Returns the requests left unfinished. Also stops a server whose start failed. */
unsigned tokd_server_stop(tokd_server *srv);
/* Frees a stopped server (or one never started); NULL is ignored. */
void tokd_server_free(tokd_server *srv);

/* Parses the chat templates of the loaded tokenizers (a template that fails is logged and
 * reported on use, not fatal: the tokenizer still serves plain text). */
int tokd_chat_load(tokd_server *srv);
void tokd_chat_free(tokd_server *srv);

/* One worker thread's memory, reused request after request. */
typedef struct tokd_worker {
  tok_scratch *scratch;
  tok_scratch *helpers[64]; /* scratches of the threads that encode parts of a long text */
  unsigned n_helpers;       /* created so far (on first use) */
  tok_buf bytes; /* decode: exact bytes */
  tok_buf text;  /* decode: text; encode: token strings */
  tok_buf chat;  /* a rendered chat conversation */
} tokd_worker;

tokd_worker *tokd_worker_new(const tokd_server *srv);
void tokd_worker_free(tokd_worker *w);
/* Gives back buffers that grew past keep_bytes for one large request. */
void tokd_worker_trim(tokd_worker *w, size_t keep_bytes);

/* A handler writes its JSON answer into out (whose limit is the request's share of the
 * memory budget) or fills e. POST handlers run on a worker (w is its state); GET handlers
 * on an I/O thread (req and w NULL). *tokens counts what was produced or consumed. */
typedef bool (*tokd_handler)(const tokd_server *srv, tokd_worker *w, const tokd_request *req,
                             tok_buf *out, unsigned long long *tokens, tokd_http_error *e);

#define X(id, label, path, alias, method, handler, fields, lenient)                        \
  bool handler(const tokd_server *srv, tokd_worker *w, const tokd_request *req, tok_buf *out, \
               unsigned long long *tokens, tokd_http_error *e);
TOKD_ENDPOINTS(X)
#undef X

extern const tokd_handler TOKD_HANDLERS[EP__COUNT];

/* ui.c: the Content-Type of an endpoint's answer; whether it is the playground's; the
 * Content-Security-Policy the playground is sent with. */
const char *tokd_content_type(tokd_endpoint ep);
bool tokd_is_ui(tokd_endpoint ep);
extern const char TOKD_UI_CSP[];

/* Whether the server can take new work now: loaded, not draining, a free in-flight slot
 * and room in the memory budget (what /ready answers). */
bool tokd_server_ready(const tokd_server *srv);

/* handlers.c, shared with render.c: the tokenizer a request names (404 for an unknown
 * model on the render API); the request's conversation rendered into w->chat with the
 * model's template (share: the bytes the answer may use); a core error as an answer; the
 * 413 of an answer past its share. */
bool tokd_resolve_encoding(const tokd_server *srv, const tokd_request *req, const tok_encoding **out,
                           tokd_http_error *e);
bool tokd_render_chat(const tokd_server *srv, tokd_worker *w, const tokd_request *req,
                      const tok_encoding *enc, size_t share, tokd_http_error *e);
void tokd_core_error(tokd_http_error *e, const tok_error *te, const char *what);
bool tokd_too_large(tokd_http_error *e);

/* render.c: a model's max_model_len (--model-max-len, else --max-model-len, else what its
 * directory says; 0: unknown), and the per-model overrides read at start-up (0, or an exit
 * status after printing why). */
uint64_t tokd_max_model_len(const tokd_server *srv, const tok_encoding *enc);
/* vllm/renderers/params.py's length check: n prompt tokens and max_output requested output
 * tokens fit the model's context (or its length is unknown); else a 400 with vLLM's
 * message. */
bool tokd_render_fits(const tokd_server *srv, const tok_encoding *enc, size_t n, long long max_output,
                      tokd_http_error *e);
int tokd_model_lens_load(tokd_server *srv);

/* The /encodings document. */
tok_err tokd_encodings_json(const tokd_server *srv, tok_buf *out);

#endif
