/*
 * config.c — flags and TOKD_* environment variables into one tokd_config.
 *
 * One table lists every setting once: its flag, its variable, its default and its bounds,
 * so the help text, the environment and the flags can never disagree.
 */
#include "serve/config.h"
#include "common/cpu.h"
#include "common/util.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef enum { T_STR, T_UINT, T_SIZE, T_LOG, T_SOURCES, T_ONOFF, T_LISTEN, T_MODE, T_DOUBLE } setting_type;

typedef struct setting {
  const char *flag;
  const char *env;
  setting_type type;
  size_t offset;
  unsigned long long min, max;
  const char *help;
} setting;

#define OFF(field) offsetof(tokd_config, field)
static const setting SETTINGS[] = {
    {"host", "TOKD_HOST", T_STR, OFF(host), 0, 0, "address to listen on"},
    {"port", "TOKD_PORT", T_UINT, OFF(port), 0, 65535, "TCP port; 0 = any free port"},
    {"listen", "TOKD_LISTEN", T_LISTEN, OFF(listen), 0, 0,
     "comma list of HOST:PORT (at most one) and unix:PATH listeners; given, it replaces "
     "--host/--port (name both kinds for TCP and a Unix socket at once)"},
    {"socket-mode", "TOKD_SOCKET_MODE", T_MODE, OFF(socket_mode), 0, 0777,
     "file mode of the Unix sockets, octal"},
    {"threads", "TOKD_THREADS", T_UINT, OFF(threads), 1, 1024, "worker threads (default: the number of CPU cores)"},
    {"split-threads", "TOKD_SPLIT_THREADS", T_UINT, OFF(split_threads), 1, 64,
     "threads a text of 512 KiB or more is encoded on, cut between words (same result); at most this many - 1 helpers in all; 1 = off"},
    {"tokenizer", "TOKD_TOKENIZERS", T_SOURCES, OFF(tokenizers), 0, 0,
     "NAME=PATH: a Hugging Face tokenizer.json or model directory (repeat the flag; the "
     "variable takes a comma list)"},
    {"encodings", "TOKD_ENCODINGS", T_STR, OFF(encodings), 0, 0,
     "comma-separated tiktoken encodings to load, or none (none given: all)"},
    {"default-encoding", "TOKD_DEFAULT_ENCODING", T_STR, OFF(default_encoding), 0, 0,
     "encoding for requests that name none (none given: the first --tokenizer, else "
     "cl100k_base, else the first loaded)"},
    {"vocab-dir", "TOKD_VOCAB_DIR", T_STR, OFF(vocab_dir), 0, 0,
     "load DIR/*.manifest instead of the built-in vocabularies"},
    {"cache-dir", "TOKD_CACHE_DIR", T_STR, OFF(cache_dir), 0, 0,
     "where the fast encoder's tables of --tokenizer models are kept between runs (none "
     "given: $XDG_CACHE_HOME/tokd or ~/.cache/tokd; off: none)"},
    {"max-body-bytes", "TOKD_MAX_BODY_BYTES", T_SIZE, OFF(max_body_bytes), 1, 1ull << 32,
     "largest request body in bytes; larger is 413"},
    {"max-memory", "TOKD_MAX_MEMORY", T_SIZE, OFF(max_memory), 1u << 20, 1ull << 40,
     "bytes all requests in progress may hold (bodies, work, answers); beyond it new "
     "requests get 503 before their body is read"},
    {"prefix-cache-bytes", "TOKD_PREFIX_CACHE_BYTES", T_SIZE, OFF(prefix_cache_bytes), 0, 1ull << 40,
     "memory for the ids of texts that come again extended or whole (chat histories resent with a new "
     "turn: tokenized only from their last special token on); never changes an id; 0 = off"},
    {"max-tokens", "TOKD_MAX_TOKENS", T_SIZE, OFF(max_tokens), 1, 1ull << 32,
     "most token ids in one request or response"},
    {"max-batch", "TOKD_MAX_BATCH", T_SIZE, OFF(max_batch), 1, 1u << 20,
     "most texts or id lists in one batch"},
    {"max-connections", "TOKD_MAX_CONNECTIONS", T_UINT, OFF(max_connections), 1, 1000000,
     "open connections at most"},
    {"max-inflight", "TOKD_MAX_INFLIGHT", T_UINT, OFF(max_inflight), 1, 1000000,
     "requests processed at once; above it answers 503"},
    {"timeout", "TOKD_TIMEOUT", T_UINT, OFF(conn_timeout_s), 1, 86400,
     "seconds a kept-alive connection may stay idle"},
    {"header-timeout", "TOKD_HEADER_TIMEOUT", T_UINT, OFF(header_timeout_s), 1, 86400,
     "seconds a client has to send a request's head"},
    {"min-rate", "TOKD_MIN_RATE", T_SIZE, OFF(min_rate), 1, 1ull << 30,
     "bytes/s a client must at least send a body and read an answer at (after 5 s)"},
    {"linger-seconds", "TOKD_LINGER_SECONDS", T_UINT, OFF(linger_s), 0, 60,
     "after answering before a body was read (413, 503), seconds to go on reading and "
     "dropping it so the client can read the answer; 0 = close at once"},
    {"linger-bytes", "TOKD_LINGER_BYTES", T_SIZE, OFF(linger_bytes), 0, 1ull << 40,
     "most bytes of such a body read and dropped (at most its Content-Length)"},
    {"drain-delay", "TOKD_DRAIN_DELAY", T_UINT, OFF(drain_delay_s), 0, 3600,
     "seconds after SIGTERM that tokd keeps listening with /ready answering 503"},
    {"drain-timeout", "TOKD_DRAIN_TIMEOUT", T_UINT, OFF(drain_timeout_s), 0, 86400,
     "seconds in-flight requests get after SIGTERM"},
    {"max-model-len", "TOKD_MAX_MODEL_LEN", T_UINT, OFF(max_model_len), 0, UINT_MAX,
     "every model's context length (/tokenize, /v1/models, the render API's limit); 0 = each "
     "model's own, from its directory as vLLM derives it"},
    {"model-max-len", "TOKD_MODEL_MAX_LEN", T_STR, OFF(model_max_len), 0, 0,
     "NAME=N,...: one model's context length, over --max-model-len and its directory"},
    {"watts-per-core", "TOKD_WATTS_PER_CORE", T_DOUBLE, OFF(watts_per_core), 0, 1000,
     "energy model where RAPL is not readable: watts per busy CPU (tokd_energy_* metrics)"},
    {"powercap-dir", "TOKD_POWERCAP_DIR", T_STR, OFF(powercap_dir), 0, 0,
     "where the RAPL energy counters are (intel-rapl:N/energy_uj)"},
    {"log-level", "TOKD_LOG_LEVEL", T_LOG, OFF(log_level), 0, 0,
     "info (a JSON line per request), warn (4xx/5xx only), error (5xx), off"},
    {"print-memory", "TOKD_PRINT_MEMORY", T_ONOFF, OFF(print_memory), 0, 0,
     "on: start as configured, print what memory each tokenizer and structure holds once ready, and exit"},
    {"max-render-ms", "TOKD_MAX_RENDER_MS", T_UINT, OFF(max_render_ms), 1, 3600000,
     "milliseconds a chat template render may take (wall clock); longer is 413"},
    {"allow-request-chat-template", "TOKD_ALLOW_REQUEST_CHAT_TEMPLATE", T_ONOFF,
     OFF(allow_request_chat_template), 0, 0,
     "on: a request may send its own \"chat_template\" (like vLLM's "
     "--trust-request-chat-template); off: 400"},
    {"ui", "TOKD_UI", T_ONOFF, OFF(ui), 0, 0,
     "on: the token playground page at / (and /ui); off: no HTML at all (sidecars)"},
};
#define N_SETTINGS (sizeof SETTINGS / sizeof SETTINGS[0])

const char TOKD_SERVE_USAGE[] =
    "usage: tokd serve [OPTIONS]\n"
    "\n"
    "Serves the HTTP API (POST /encode /count /decode /tokenize /detokenize /chat_tokenize\n"
    "/apply-template, GET /encodings /health /ready /metrics) and the token playground at /.\n"
    "Every option is also an environment variable; a flag beats a variable beats a default.\n"
    "The default is in [brackets] (- means none).\n"
    "\n";

/* The defaults, in one place: the help text prints them from here. */
static tokd_config defaults(void)
{
  long cores = tok__cpu_count();
  return (tokd_config){
    .host = "0.0.0.0",
    .port = 8080,
    .socket_mode = 0660,
    .threads = cores > 0 ? (unsigned)cores : 1,
    .split_threads = cores > 1 ? (cores < 64 ? (unsigned)cores : 64) : 1,
    .max_body_bytes = 4u << 20,
    .max_memory = (size_t)192 << 20,
    .prefix_cache_bytes = (size_t)32 << 20,
    .max_tokens = 4u << 20,
    .max_batch = 1024,
    .max_connections = 4096,
    .max_inflight = 512,
    .conn_timeout_s = 30,
    .header_timeout_s = 10,
    .min_rate = 4096,
    .linger_s = 5,
    .linger_bytes = (size_t)64 << 20,
    .drain_delay_s = 5,
    .drain_timeout_s = 25,
    .watts_per_core = 3.5,
    .powercap_dir = "/sys/class/powercap",
    .log_level = LOG_INFO,
    .ui = true,
    /* 2 s: real templates render the longest sessions we test (2,000 agent messages) in
     * tens of milliseconds, and the step budget stops CPU-bound templates in about half a
     * second; only a render starved of CPU (a loaded machine) gets here */
    .max_render_ms = 2000,
  };
}

static const char *const LOG_NAMES[] = {"off", "error", "warn", "info"};

static void print_usage(FILE *out)
{
  tokd_config d = defaults();
  fputs(TOKD_SERVE_USAGE, out);
  for (size_t i = 0; i < N_SETTINGS; i++) {
    const setting *st = &SETTINGS[i];
    const char *field = (const char *)&d + st->offset;
    char value[64];
    if (st->type == T_STR) snprintf(value, sizeof value, "%s", *(const char *const *)field ? *(const char *const *)field : "-");
    else if (st->type == T_SOURCES || st->type == T_LISTEN) snprintf(value, sizeof value, "-");
    else if (st->type == T_DOUBLE) snprintf(value, sizeof value, "%g", *(const double *)field);
    else if (st->type == T_MODE) snprintf(value, sizeof value, "%04o", *(const unsigned *)field);
    else if (st->type == T_LOG) snprintf(value, sizeof value, "%s", LOG_NAMES[*(const tokd_log_level *)field]);
    else if (st->type == T_ONOFF) snprintf(value, sizeof value, "%s", *(const bool *)field ? "on" : "off");
    else if (st->type == T_UINT) snprintf(value, sizeof value, "%u", *(const unsigned *)field);
    else snprintf(value, sizeof value, "%zu", *(const size_t *)field);
    fprintf(out, "  --%-18s %-22s [%s] %s\n", st->flag, st->env, value, st->help);
  }
  fputs("  --help\n", out);
}

static int set_value(tokd_config *cfg, const setting *s, const char *value, const char *source)
{
  char *field = (char *)cfg + s->offset;
  if (s->type == T_SOURCES) {
    /* flags add to each other; the first one replaces what the variable gave */
    if (source[0] == '-' && !cfg->tokenizers_from_flags) {
      tokd_sources_free(cfg->tokenizers, cfg->n_tokenizers);
      cfg->tokenizers = NULL;
      cfg->n_tokenizers = 0;
      cfg->tokenizers_from_flags = true;
    }
    return tokd_sources_parse(value, source, &cfg->tokenizers, &cfg->n_tokenizers);
  }
  if (s->type == T_STR) {
    *(const char **)field = *value ? value : NULL;
    return 0;
  }
  if (s->type == T_LISTEN) { /* the last one given wins */
    tokd_listen_spec spec;
    int rc = tokd_listen_parse(value, source, &spec);
    if (rc) return rc;
    tokd_listen_spec_free(&cfg->listen);
    cfg->listen = spec;
    return 0;
  }
  if (s->type == T_ONOFF) {
    bool on = !strcmp(value, "on") || !strcmp(value, "true") || !strcmp(value, "1");
    bool off = !strcmp(value, "off") || !strcmp(value, "false") || !strcmp(value, "0");
    if (!on && !off) {
      fprintf(stderr, "tokd: %s: expected on or off, got \"%.40s\"\n", source, value);
      return 2;
    }
    *(bool *)field = on;
    return 0;
  }
  if (s->type == T_LOG) {
    for (int l = 0; l < 4; l++)
      if (strcmp(value, LOG_NAMES[l]) == 0) {
        *(tokd_log_level *)field = (tokd_log_level)l;
        return 0;
      }
    fprintf(stderr, "tokd: %s: log level must be info, warn, error or off\n", source);
    return 2;
  }
  char *end;
  errno = 0;
  if (s->type == T_DOUBLE) {
    double d = strtod(value, &end);
    if (errno || end == value || *end || !(d >= (double)s->min && d <= (double)s->max)) {
      fprintf(stderr, "tokd: %s: \"%s\" is not a number in [%llu, %llu]\n", source, value, s->min, s->max);
      return 2;
    }
    *(double *)field = d;
    return 0;
  }
  unsigned long long v = strtoull(value, &end, s->type == T_MODE ? 8 : 10);
  if (s->type == T_MODE && (errno || end == value || *end || value[0] == '-' || v > s->max)) {
    fprintf(stderr, "tokd: %s: \"%s\" is not an octal file mode (0000 to 0777)\n", source, value);
    return 2;
  }
  if (errno || end == value || *end || value[0] == '-' || v < s->min || v > s->max) {
    fprintf(stderr, "tokd: %s: \"%s\" is not a whole number in [%llu, %llu]\n", source, value,
            s->min, s->max);
    return 2;
  }
  if (s->type == T_UINT || s->type == T_MODE) *(unsigned *)field = (unsigned)v;
  else *(size_t *)field = (size_t)v;
  return 0;
}

int tokd_config_parse(int argc, char **argv, tokd_config *cfg, bool *exit_now)
{
  *exit_now = false;
  *cfg = defaults();
  for (size_t i = 0; i < N_SETTINGS; i++) {
    const char *v = getenv(SETTINGS[i].env);
    if (v && *v) {
      int rc = set_value(cfg, &SETTINGS[i], v, SETTINGS[i].env);
      if (rc) return rc;
    }
  }
  struct option longs[N_SETTINGS + 2];
  for (size_t i = 0; i < N_SETTINGS; i++)
    longs[i] = (struct option){SETTINGS[i].flag, required_argument, NULL, (int)(256 + i)};
  longs[N_SETTINGS] = (struct option){"help", no_argument, NULL, 'h'};
  longs[N_SETTINGS + 1] = (struct option){NULL, 0, NULL, 0};
  optind = 1;
  int c;
  while ((c = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
    if (c == 'h') {
      print_usage(stdout);
      *exit_now = true;
      return 0;
    }
    if (c < 256 || c >= 256 + (int)N_SETTINGS) {
      fputs("tokd: see `tokd serve --help`\n", stderr);
      return 2;
    }
    char source[64];
    snprintf(source, sizeof source, "--%s", SETTINGS[c - 256].flag);
    int rc = set_value(cfg, &SETTINGS[c - 256], optarg, source);
    if (rc) return rc;
  }
  if (optind < argc) {
    fprintf(stderr, "tokd: unexpected argument \"%s\"; see `tokd serve --help`\n", argv[optind]);
    return 2;
  }
  if (!cfg->listen.tcp && !cfg->listen.n_unix) { /* no --listen: --host:--port */
    cfg->listen.tcp = true;
  } else if (cfg->listen.tcp) {
    cfg->host = cfg->listen.host;
    cfg->port = cfg->listen.port;
  }
  return 0;
}
