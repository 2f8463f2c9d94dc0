/*
 * config.h — the server's settings: defaults, then TOKD_* environment variables, then
 * command-line flags (a flag beats a variable beats a default). Immutable once parsed.
 */
#ifndef TOKD_CONFIG_H
#define TOKD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "common/log.h"
#include "serve/listen.h"
#include "tok.h"

typedef struct tokd_config {
  const char *host;             /* the TCP listener (from --listen if it names one) */
  unsigned port;
  tokd_listen_spec listen;      /* --listen, owned; after parsing .tcp says whether TCP is on */
  unsigned socket_mode;         /* file mode of the Unix sockets */
  unsigned threads;
  unsigned split_threads;       /* threads one long text may be encoded on (tok_split) */
  tok_tokenizer_source *tokenizers; /* --tokenizer NAME=PATH, owned */
  size_t n_tokenizers;
  bool tokenizers_from_flags;
  const char *encodings;       /* comma list of tiktoken encodings, NULL = all, "none" */
  const char *default_encoding;
  const char *vocab_dir;       /* NULL = built-in */
  const char *cache_dir;       /* the table cache (tokd_cache_dir); NULL = the default */
  size_t max_body_bytes;
  size_t max_memory;           /* the request memory budget in bytes */
  size_t prefix_cache_bytes;   /* the prefix cache's budget (tok_prefix_cache); 0 = off */
  size_t max_tokens;           /* most ids one request may produce */
  size_t max_batch;            /* most texts (or id lists) in one batch */
  unsigned max_connections;
  unsigned max_inflight;       /* requests being processed at once; above: 503 */
  unsigned conn_timeout_s;     /* a kept-alive connection may idle this long */
  unsigned header_timeout_s;   /* the request head must be in within this */
  size_t min_rate;             /* bodies sent and answers read at least this fast (bytes/s) */
  unsigned linger_s;           /* lingering close (linger.h): longest linger, 0 = off */
  size_t linger_bytes;         /* most body bytes read and dropped after an early answer */
  unsigned drain_delay_s;      /* SIGTERM: keep listening (and /ready 503) this long */
  unsigned drain_timeout_s;    /* SIGTERM: how long in-flight requests may take */
  unsigned max_model_len;      /* every model's max_model_len (0: each model's own) */
  const char *model_max_len;   /* NAME=N,...: one model's max_model_len */
  double watts_per_core;        /* the energy model (cost.h) */
  const char *powercap_dir;     /* where RAPL's zones are (cost.h) */
  tokd_log_level log_level;
  bool ui;                     /* serve the token playground at / */
  unsigned max_render_ms;      /* a chat template render's deadline */
  bool allow_request_chat_template; /* a request may bring its own chat_template */
  bool print_memory;           /* once ready, print the memory table and exit */
} tokd_config;

/* Parses argv (after the "serve" word) and the environment. Returns 0 on success, an exit
 * status otherwise (after printing why, or the help text: then *exit_now is set). */
int tokd_config_parse(int argc, char **argv, tokd_config *cfg, bool *exit_now);

/* The help text of `tokd serve`. */
extern const char TOKD_SERVE_USAGE[];

#endif
