/*
 * config.c — flags and TOKD_* environment variables into one tokd_config.
 *
 * One table lists every setting once: its flag, its variable, its default and its bounds,
 * so the help text, the environment and the flags can never disagree (common/options.h
 * parses both from it, as for the other commands' table in cli/main.c).
 */
#include "serve/config.h"
#include "common/cpu.h"
#include "common/options.h"
#include "common/util.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const LOG_NAMES[] = {"off", "error", "warn", "info"};

static int parse_sources(void *settings, const char *value, const char *source)
{
  tokd_config *cfg = settings;
  /* flags add to each other; the first one replaces what the variable gave */
  if (source[0] == '-' && !cfg->tokenizers_from_flags) {
    tokd_sources_free(cfg->tokenizers, cfg->n_tokenizers);
    cfg->tokenizers = NULL;
    cfg->n_tokenizers = 0;
    cfg->tokenizers_from_flags = true;
  }
  return tokd_sources_parse(value, source, &cfg->tokenizers, &cfg->n_tokenizers);
}

static int parse_listen(void *settings, const char *value, const char *source)
{
  tokd_config *cfg = settings;
  tokd_listen_spec spec; /* the last one given wins */
  int rc = tokd_listen_parse(value, source, &spec);
  if (rc) return rc;
  tokd_listen_spec_free(&cfg->listen);
  cfg->listen = spec;
  return 0;
}

static int parse_log(void *settings, const char *value, const char *source)
{
  for (int l = 0; l < 4; l++)
    if (strcmp(value, LOG_NAMES[l]) == 0) {
      ((tokd_config *)settings)->log_level = (tokd_log_level)l;
      return 0;
    }
  fprintf(stderr, "tokd: %s: log level must be info, warn, error or off\n", source);
  return 2;
}

#define OFF(field) offsetof(tokd_config, field)
static const tokd_option SETTINGS[] = {
    {"host", 0, NULL, "TOKD_HOST", TOKD_OPT_STR, OFF(host), 0, 0, NULL, "address to listen on"},
    {"port", 0, NULL, "TOKD_PORT", TOKD_OPT_UINT, OFF(port), 0, 65535, NULL, "TCP port; 0 = any free port"},
    {"listen", 0, NULL, "TOKD_LISTEN", TOKD_OPT_CUSTOM, OFF(listen), 0, 0, parse_listen,
     "comma list of HOST:PORT (at most one) and unix:PATH listeners; given, it replaces "
     "--host/--port (name both kinds for TCP and a Unix socket at once)"},
    {"socket-mode", 0, NULL, "TOKD_SOCKET_MODE", TOKD_OPT_MODE, OFF(socket_mode), 0, 0777, NULL,
     "file mode of the Unix sockets, octal"},
    {"threads", 0, NULL, "TOKD_THREADS", TOKD_OPT_UINT, OFF(threads), 1, 1024, NULL, "worker threads (default: the number of CPU cores)"},
    {"split-threads", 0, NULL, "TOKD_SPLIT_THREADS", TOKD_OPT_UINT, OFF(split_threads), 1, 64, NULL,
     "threads a text of 512 KiB or more is encoded on, cut between words (same result); at most this many - 1 helpers in all; 1 = off"},
    {"tokenizer", 0, NULL, "TOKD_TOKENIZERS", TOKD_OPT_CUSTOM, OFF(tokenizers), 0, 0, parse_sources,
     "NAME=PATH: a Hugging Face tokenizer.json or model directory (repeat the flag; the "
     "variable takes a comma list)"},
    {"encodings", 0, NULL, "TOKD_ENCODINGS", TOKD_OPT_STR, OFF(encodings), 0, 0, NULL,
     "comma-separated tiktoken encodings to load, or none (none given: all)"},
    {"default-encoding", 0, NULL, "TOKD_DEFAULT_ENCODING", TOKD_OPT_STR, OFF(default_encoding), 0, 0, NULL,
     "encoding for requests that name none (none given: the first --tokenizer, else "
     "cl100k_base, else the first loaded)"},
    {"vocab-dir", 0, NULL, "TOKD_VOCAB_DIR", TOKD_OPT_STR, OFF(vocab_dir), 0, 0, NULL,
     "load DIR/*.manifest instead of the built-in vocabularies"},
    {"cache-dir", 0, NULL, "TOKD_CACHE_DIR", TOKD_OPT_STR, OFF(cache_dir), 0, 0, NULL,
     "where the fast encoder's tables of --tokenizer models are kept between runs (none "
     "given: $XDG_CACHE_HOME/tokd or ~/.cache/tokd; off: none)"},
    {"max-body-bytes", 0, NULL, "TOKD_MAX_BODY_BYTES", TOKD_OPT_SIZE, OFF(max_body_bytes), 1, 1ull << 32, NULL,
     "largest request body in bytes; larger is 413"},
    {"max-memory", 0, NULL, "TOKD_MAX_MEMORY", TOKD_OPT_SIZE, OFF(max_memory), 1u << 20, 1ull << 40, NULL,
     "bytes all requests in progress may hold (bodies, work, answers); beyond it new "
     "requests get 503 before their body is read"},
    {"prefix-cache-bytes", 0, NULL, "TOKD_PREFIX_CACHE_BYTES", TOKD_OPT_SIZE, OFF(prefix_cache_bytes), 0, 1ull << 40, NULL,
     "memory for the ids of texts that come again extended or whole (chat histories resent with a new "
     "turn: tokenized only from their last special token on); never changes an id; 0 = off"},
    {"max-tokens", 0, NULL, "TOKD_MAX_TOKENS", TOKD_OPT_SIZE, OFF(max_tokens), 1, 1ull << 32, NULL,
     "most token ids in one request or response"},
    {"max-batch", 0, NULL, "TOKD_MAX_BATCH", TOKD_OPT_SIZE, OFF(max_batch), 1, 1u << 20, NULL,
     "most texts or id lists in one batch"},
    {"max-connections", 0, NULL, "TOKD_MAX_CONNECTIONS", TOKD_OPT_UINT, OFF(max_connections), 1, 1000000, NULL,
     "open connections at most"},
    {"max-inflight", 0, NULL, "TOKD_MAX_INFLIGHT", TOKD_OPT_UINT, OFF(max_inflight), 1, 1000000, NULL,
     "requests processed at once; above it answers 503"},
    {"timeout", 0, NULL, "TOKD_TIMEOUT", TOKD_OPT_UINT, OFF(conn_timeout_s), 1, 86400, NULL,
     "seconds a kept-alive connection may stay idle"},
    {"header-timeout", 0, NULL, "TOKD_HEADER_TIMEOUT", TOKD_OPT_UINT, OFF(header_timeout_s), 1, 86400, NULL,
     "seconds a client has to send a request's head"},
    {"min-rate", 0, NULL, "TOKD_MIN_RATE", TOKD_OPT_SIZE, OFF(min_rate), 1, 1ull << 30, NULL,
     "bytes/s a client must at least send a body and read an answer at (after 5 s)"},
    {"linger-seconds", 0, NULL, "TOKD_LINGER_SECONDS", TOKD_OPT_UINT, OFF(linger_s), 0, 60, NULL,
     "after answering before a body was read (413, 503), seconds to go on reading and "
     "dropping it so the client can read the answer; 0 = close at once"},
    {"linger-bytes", 0, NULL, "TOKD_LINGER_BYTES", TOKD_OPT_SIZE, OFF(linger_bytes), 0, 1ull << 40, NULL,
     "most bytes of such a body read and dropped (at most its Content-Length)"},
    {"drain-delay", 0, NULL, "TOKD_DRAIN_DELAY", TOKD_OPT_UINT, OFF(drain_delay_s), 0, 3600, NULL,
     "seconds after SIGTERM that tokd keeps listening with /ready answering 503"},
    {"drain-timeout", 0, NULL, "TOKD_DRAIN_TIMEOUT", TOKD_OPT_UINT, OFF(drain_timeout_s), 0, 86400, NULL,
     "seconds in-flight requests get after SIGTERM"},
    {"max-model-len", 0, NULL, "TOKD_MAX_MODEL_LEN", TOKD_OPT_UINT, OFF(max_model_len), 0, UINT_MAX, NULL,
     "every model's context length (/tokenize, /v1/models, the render API's limit); 0 = each "
     "model's own, from its directory as vLLM derives it"},
    {"model-max-len", 0, NULL, "TOKD_MODEL_MAX_LEN", TOKD_OPT_STR, OFF(model_max_len), 0, 0, NULL,
     "NAME=N,...: one model's context length, over --max-model-len and its directory"},
    {"watts-per-core", 0, NULL, "TOKD_WATTS_PER_CORE", TOKD_OPT_DOUBLE, OFF(watts_per_core), 0, 1000, NULL,
     "energy model where RAPL is not readable: watts per busy CPU (tokd_energy_* metrics)"},
    {"powercap-dir", 0, NULL, "TOKD_POWERCAP_DIR", TOKD_OPT_STR, OFF(powercap_dir), 0, 0, NULL,
     "where the RAPL energy counters are (intel-rapl:N/energy_uj)"},
    {"log-level", 0, NULL, "TOKD_LOG_LEVEL", TOKD_OPT_CUSTOM, OFF(log_level), 0, 0, parse_log,
     "info (a JSON line per request), warn (4xx/5xx only), error (5xx), off"},
    {"print-memory", 0, NULL, "TOKD_PRINT_MEMORY", TOKD_OPT_ONOFF, OFF(print_memory), 0, 0, NULL,
     "on: start as configured, print what memory each tokenizer and structure holds once ready, and exit"},
    {"max-render-ms", 0, NULL, "TOKD_MAX_RENDER_MS", TOKD_OPT_UINT, OFF(max_render_ms), 1, 3600000, NULL,
     "milliseconds a chat template render may take (wall clock); longer is 413"},
    {"allow-request-chat-template", 0, NULL, "TOKD_ALLOW_REQUEST_CHAT_TEMPLATE", TOKD_OPT_ONOFF,
     OFF(allow_request_chat_template), 0, 0, NULL,
     "on: a request may send its own \"chat_template\" (like vLLM's "
     "--trust-request-chat-template); off: 400"},
    {"ui", 0, NULL, "TOKD_UI", TOKD_OPT_ONOFF, OFF(ui), 0, 0, NULL,
     "on: the token playground page at / (and /ui); off: no HTML at all (sidecars)"},
    {"help", 'h', NULL, NULL, TOKD_OPT_HELP, 0, 0, 0, NULL, NULL},
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

static void print_usage(FILE *out)
{
  tokd_config d = defaults();
  fputs(TOKD_SERVE_USAGE, out);
  for (size_t i = 0; i < N_SETTINGS; i++) {
    const tokd_option *st = &SETTINGS[i];
    const char *field = (const char *)&d + st->offset;
    char value[64];
    if (st->type == TOKD_OPT_HELP) continue;
    if (st->type == TOKD_OPT_STR) snprintf(value, sizeof value, "%s", *(const char *const *)field ? *(const char *const *)field : "-");
    else if (st->parse == parse_log) snprintf(value, sizeof value, "%s", LOG_NAMES[d.log_level]);
    else if (st->type == TOKD_OPT_CUSTOM) snprintf(value, sizeof value, "-");
    else if (st->type == TOKD_OPT_DOUBLE) snprintf(value, sizeof value, "%g", *(const double *)field);
    else if (st->type == TOKD_OPT_MODE) snprintf(value, sizeof value, "%04o", *(const unsigned *)field);
    else if (st->type == TOKD_OPT_ONOFF) snprintf(value, sizeof value, "%s", *(const bool *)field ? "on" : "off");
    else if (st->type == TOKD_OPT_UINT) snprintf(value, sizeof value, "%u", *(const unsigned *)field);
    else snprintf(value, sizeof value, "%zu", *(const size_t *)field);
    fprintf(out, "  --%-18s %-22s [%s] %s\n", st->name, st->env, value, st->help);
  }
  fputs("  --help\n", out);
}

int tokd_config_parse(int argc, char **argv, tokd_config *cfg, bool *exit_now)
{
  *exit_now = false;
  *cfg = defaults();
  /* the variables first: a flag then beats its variable */
  int rest, rc = tokd_options_env(SETTINGS, N_SETTINGS, cfg, NULL);
  if (!rc) rc = tokd_options_flags(SETTINGS, N_SETTINGS, cfg, argc, argv, NULL, &rest, "`tokd serve --help`");
  if (rc == -1) {
    print_usage(stdout);
    *exit_now = true;
    return 0;
  }
  if (rc) return rc;
  if (rest < argc) {
    fprintf(stderr, "tokd: unexpected argument \"%s\"; see `tokd serve --help`\n", argv[rest]);
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
