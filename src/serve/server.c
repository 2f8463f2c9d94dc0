/*
 * server.c — `tokd serve`: the HTTP API on libmicrohttpd, and `tokd health`, its probe.
 *
 * Threads: libmicrohttpd runs an epoll thread pool (one event loop per worker thread).
 * Each worker owns a tok_scratch and an output buffer (thread_state, created on first use
 * and freed when the thread exits), so a request never takes a lock: it parses its body,
 * encodes with the shared read-only registry and writes its JSON into the thread's buffer,
 * which libmicrohttpd copies into the response.
 *
 * Limits are decided as early as possible: a Content-Length above the body cap is refused
 * (413) before any body byte is read; the in-flight cap (503) and the content type (415)
 * are checked at the headers; bodies without a length stop at the cap. Slow clients are
 * cut off by the connection timeout, which is what keeps them from holding a worker.
 *
 * Shutdown: SIGTERM or SIGINT turns /ready to 503, stops accepting connections, waits for
 * in-flight requests (up to --drain-timeout), then stops the daemon and exits 0.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <malloc.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "config.h"
#include "metrics.h"
#include "request.h"
#include "tok.h"

typedef struct server {
  tokd_config cfg;
  tok_registry *reg;
  const tok_encoding *default_enc;
  tokd_metrics *metrics;
  struct MHD_Daemon *daemon;
  atomic_int ready;
  atomic_int draining;
  tok_buf encodings_json; /* GET /encodings, built once at start-up */
  tok_limits limits;
  atomic_ullong request_seq;
  unsigned long long id_prefix;
} server;

static server S;

/* ---------------------------------------------------------------------------------------
 * Per-thread state
 */
typedef struct thread_state {
  tok_scratch *scratch;
  tok_buf out;   /* response body */
  tok_buf bytes; /* decode scratch */
  tok_buf text;  /* decode scratch */
} thread_state;

static pthread_key_t thread_key;

static void thread_state_free(void *p)
{
  thread_state *ts = p;
  tok_scratch_free(ts->scratch);
  tok_buf_free(&ts->out);
  tok_buf_free(&ts->bytes);
  tok_buf_free(&ts->text);
  free(ts);
}

static thread_state *thread_state_get(void)
{
  thread_state *ts = pthread_getspecific(thread_key);
  if (ts) return ts;
  ts = calloc(1, sizeof *ts);
  if (!ts) return NULL;
  if (!(ts->scratch = tok_scratch_new(&S.limits))) {
    free(ts);
    return NULL;
  }
  pthread_setspecific(thread_key, ts);
  return ts;
}

/* After an unusually large request, give its buffers back (libmicrohttpd has copied the
 * response), so that a sidecar's memory returns to its baseline. */
#define KEEP_BYTES ((size_t)4 << 20)
static void thread_state_trim(thread_state *ts)
{
  tok_buf *bufs[] = {&ts->out, &ts->bytes, &ts->text};
  for (size_t i = 0; i < 3; i++)
    if (bufs[i]->cap > KEEP_BYTES) tok_buf_free(bufs[i]);
  tok_scratch_trim(ts->scratch, KEEP_BYTES);
}

static double now_seconds(void)
{
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* ---------------------------------------------------------------------------------------
 * Logging: one JSON object per line on stdout, written with a single write(2) so lines
 * from different threads never interleave.
 */
/* `gate` is the least log level that shows the line; `level` is what the line says. */
static void log_line(tokd_log_level gate, tokd_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void log_line(tokd_log_level gate, tokd_log_level level, const char *fmt, ...)
{
  if (gate > S.cfg.log_level) return;
  static const char *names[] = {"off", "error", "warn", "info"};
  char line[2048];
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  struct tm tm;
  gmtime_r(&t.tv_sec, &tm);
  int n = snprintf(line, sizeof line, "{\"time\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",\"level\":\"%s\",",
                   tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                   t.tv_nsec / 1000000, names[level]);
  va_list ap;
  va_start(ap, fmt);
  n += vsnprintf(line + n, sizeof line - (size_t)n - 2, fmt, ap);
  va_end(ap);
  if (n > (int)sizeof line - 3) n = (int)sizeof line - 3;
  line[n++] = '}';
  line[n++] = '\n';
  ssize_t w = write(STDOUT_FILENO, line, (size_t)n);
  (void)w;
}

/* ---------------------------------------------------------------------------------------
 * Requests
 */
typedef enum { BODY_JSON, BODY_TEXT, BODY_SNIFF } body_kind;

typedef struct req_ctx {
  tokd_endpoint ep;
  bool post; /* the endpoint takes POST (else GET/HEAD) */
  const char *method;
  double started;
  body_kind kind;
  tok_buf body;
  bool answered; /* a response is queued */
  bool overflow; /* the body passed the cap */
  size_t dropped; /* bytes dropped after overflowing */
  bool counted;  /* holds a slot of the in-flight cap */
  unsigned status;
  unsigned long long tokens;
  char request_id[72];
} req_ctx;

static const struct {
  const char *path;
  tokd_endpoint ep;
  bool post;
} ROUTES[] = {
    {"/encode", EP_ENCODE, true},       {"/decode", EP_DECODE, true},
    {"/count", EP_COUNT, true},         {"/tokenize", EP_TOKENIZE, true},
    {"/detokenize", EP_DETOKENIZE, true}, {"/encodings", EP_ENCODINGS, false},
    {"/health", EP_HEALTH, false},      {"/healthz", EP_HEALTH, false},
    {"/ready", EP_READY, false},        {"/readyz", EP_READY, false},
    {"/metrics", EP_METRICS, false},    {"/v1/encode", EP_ENCODE, true},
    {"/v1/decode", EP_DECODE, true},    {"/v1/count", EP_COUNT, true},
};

static int route(const char *url, bool *post)
{
  for (size_t i = 0; i < sizeof ROUTES / sizeof ROUTES[0]; i++)
    if (strcmp(url, ROUTES[i].path) == 0) {
      *post = ROUTES[i].post;
      return (int)ROUTES[i].ep;
    }
  return -1;
}

static enum MHD_Result send_body(struct MHD_Connection *conn, req_ctx *ctx, unsigned status,
                                 const char *content_type, const char *data, size_t len)
{
  struct MHD_Response *resp =
      MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_MUST_COPY);
  if (!resp) return MHD_NO;
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
  MHD_add_response_header(resp, "X-Request-Id", ctx->request_id);
  if (status == 405)
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, ctx->post ? "POST" : "GET, HEAD");
  if (status == 503) MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
  if (atomic_load(&S.draining)) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
  enum MHD_Result r = MHD_queue_response(conn, status, resp);
  MHD_destroy_response(resp);
  ctx->status = status;
  ctx->answered = true;
  return r;
}

static enum MHD_Result send_error(struct MHD_Connection *conn, req_ctx *ctx,
                                  const tokd_http_error *e)
{
  thread_state *ts = thread_state_get();
  static const char fallback[] = "{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\",\"param\":null,\"code\":\"out_of_memory\"}}\n";
  if (!ts) return send_body(conn, ctx, 503, "application/json", fallback, sizeof fallback - 1);
  ts->out.len = 0;
  if (tokd_json_error(&ts->out, e) != TOK_OK)
    return send_body(conn, ctx, 503, "application/json", fallback, sizeof fallback - 1);
  return send_body(conn, ctx, e->status, "application/json", ts->out.data, ts->out.len);
}

/* HTTP status of each core error, from the table in tok.h */
static const unsigned CORE_STATUS[] = {
#define X(e, name, msg, status) status,
    TOK_ERROR_TABLE(X)
#undef X
};

/* Maps a core error to a response. `what` names the input ("text", "text[3]"). */
static void core_error(tokd_http_error *e, const tok_error *te, const char *what)
{
  unsigned status = (unsigned)te->code < TOK_ERR__COUNT ? CORE_STATUS[te->code] : 500;
  if (te->code == TOK_ENOMEM)
    tokd_error_set(e, status, tok_err_name(te->code), NULL, "out of memory; retry later");
  else
    tokd_error_set(e, status, tok_err_name(te->code), what, "%s: %s", what, te->detail);
}

static bool resolve_encoding(const tokd_request *req, bool vllm, const tok_encoding **out,
                             tokd_http_error *e)
{
  const tok_encoding *by_name = NULL, *by_model = NULL;
  if (req->encoding) {
    by_name = tok_registry_find(S.reg, req->encoding, strlen(req->encoding));
    if (!by_name) {
      tokd_error_set(e, 404, "unknown_encoding", "encoding",
                     "encoding \"%.64s\" is not loaded; GET /encodings lists those that are",
                     req->encoding);
      return false;
    }
  }
  if (req->model) {
    const char *name = tok_model_encoding(req->model, strlen(req->model));
    if (!name) name = req->model; /* a model may be named by its encoding */
    by_model = tok_registry_find(S.reg, name, strlen(name));
    if (!by_model && !vllm) {
      tokd_error_set(e, 404, "unknown_model", "model",
                     "no loaded encoding for model \"%.64s\"; name an \"encoding\" instead",
                     req->model);
      return false;
    }
  }
  if (by_name && by_model && by_name != by_model) {
    tokd_error_set(e, 400, "conflicting_fields", "model",
                   "model \"%.64s\" uses %s, but \"encoding\" says %s", req->model,
                   tok_encoding_get_info(by_model)->name, tok_encoding_get_info(by_name)->name);
    return false;
  }
  *out = by_name ? by_name : by_model ? by_model : S.default_enc;
  return true;
}

static bool special_set(const tokd_request *req, const tok_encoding *enc, bool all,
                        tok_special_set *set, const tok_special_set **out, tokd_http_error *e)
{
  *out = NULL; /* the encoding's default */
  if (all || req->allowed_kind == SPECIAL_ALL) {
    tok_special_set_all(enc, set);
    *out = set;
  } else if (req->allowed_kind == SPECIAL_NONE) {
    tok_special_set_none(enc, set);
    *out = set;
  } else if (req->allowed_kind == SPECIAL_LIST) {
    tok_special_set_none(enc, set);
    for (size_t i = 0; i < req->n_allowed; i++) {
      tok_error te;
      if (tok_special_set_add(enc, set, req->allowed[i], req->allowed_lens[i], &te) != TOK_OK) {
        tokd_error_set(e, 400, "unknown_special_token", "allowed_special", "%s", te.detail);
        return false;
      }
    }
    *out = set;
  }
  return true;
}

#define TRY(expr)                                                                             \
  do {                                                                                        \
    if ((expr) != TOK_OK) goto nomem;                                                         \
  } while (0)

static void text_param(char *buf, size_t size, const char *field, const tokd_request *req, size_t i)
{
  if (req->batch) snprintf(buf, size, "%s[%zu]", field, i);
  else snprintf(buf, size, "%s", field);
}

/* POST /encode, /count, /tokenize */
static bool handle_encode(const tokd_request *req, tokd_endpoint ep, thread_state *ts,
                          unsigned long long *tokens, tokd_http_error *e)
{
  const tok_encoding *enc;
  tok_special_set set;
  tok_encode_opts opts = {.check_disallowed = req->check_disallowed,
                          .want_offsets = req->offsets,
                          .add_special_tokens = req->add_special_tokens};
  if (!resolve_encoding(req, ep == EP_TOKENIZE, &enc, e)) return false;
  if (!special_set(req, enc, ep == EP_TOKENIZE, &set, &opts.allowed_special, e)) return false;
  /* a limit stops counting early; stop_after 0 means "no limit", so limit 0 counts all */
  if (ep == EP_COUNT && req->limit > 0) opts.stop_after = (size_t)req->limit;
  tok_buf *out = &ts->out;
  const char *name = tok_encoding_get_info(enc)->name;
  const char *field = ep == EP_TOKENIZE ? "prompt" : "text";
  unsigned long long total = 0;

  if (ep == EP_TOKENIZE) {
    TRY(tokd_json_lit(out, "{"));
  } else {
    TRY(tokd_json_lit(out, "{\"encoding\":"));
    TRY(tokd_json_string(out, name, strlen(name)));
    TRY(tokd_json_lit(out, req->batch ? ",\"results\":[" : ","));
  }
  for (size_t i = 0; i < req->n_texts; i++) {
    char what[48];
    text_param(what, sizeof what, field, req, i);
    tok_error te;
    if (i) TRY(tokd_json_lit(out, ","));
    if (req->batch) TRY(tokd_json_lit(out, "{"));
    if (ep == EP_COUNT) {
      size_t n;
      bool stopped = false;
      tok_err rc = tok_count(enc, ts->scratch, req->texts[i], req->text_lens[i], &opts, &n,
                             &stopped, &te);
      if (rc != TOK_OK) {
        core_error(e, &te, what);
        return false;
      }
      total += n;
      TRY(tokd_json_lit(out, "\"count\":"));
      TRY(tokd_json_uint(out, n));
      if (req->limit >= 0) {
        TRY(tokd_json_lit(out, ",\"limit\":"));
        TRY(tokd_json_uint(out, (unsigned long long)req->limit));
        bool fits = !stopped && n <= (size_t)req->limit;
        TRY(tokd_json_lit(out, fits ? ",\"fits\":true" : ",\"fits\":false"));
        TRY(tokd_json_lit(out, stopped ? ",\"exact\":false" : ",\"exact\":true"));
      }
    } else {
      tok_encode_result r;
      if (tok_encode(enc, ts->scratch, req->texts[i], req->text_lens[i], &opts, &r, &te) != TOK_OK) {
        core_error(e, &te, what);
        return false;
      }
      const uint32_t *ids = r.ids, *offs = r.offsets;
      size_t n = r.len;
      bool truncated = false;
      if (req->max_tokens >= 0 && n > (size_t)req->max_tokens) {
        truncated = true;
        if (req->truncate_left) {
          ids += n - (size_t)req->max_tokens;
          if (offs) offs += n - (size_t)req->max_tokens;
        }
        n = (size_t)req->max_tokens;
      }
      total += n;
      TRY(tokd_json_lit(out, "\"count\":"));
      TRY(tokd_json_uint(out, n));
      if (ep == EP_TOKENIZE) {
        TRY(tokd_json_lit(out, ",\"max_model_len\":"));
        TRY(tokd_json_uint(out, S.cfg.max_model_len));
      }
      if (req->max_tokens >= 0) {
        TRY(tokd_json_lit(out, truncated ? ",\"truncated\":true" : ",\"truncated\":false"));
        TRY(tokd_json_lit(out, ",\"total_count\":"));
        TRY(tokd_json_uint(out, r.len));
      }
      TRY(tokd_json_lit(out, ",\"tokens\":"));
      TRY(tokd_json_ids(out, ids, n));
      if (req->token_strings) {
        /* the tokens as Hugging Face spells them (byte-level: "\u0120world") */
        TRY(tokd_json_lit(out, ep == EP_TOKENIZE ? ",\"token_strs\":[" : ",\"token_strings\":["));
        for (size_t k = 0; k < n; k++) {
          ts->text.len = 0;
          ts->text.limit = 0;
          TRY(tok_token_string(enc, ids[k], &ts->text));
          if (k) TRY(tokd_json_lit(out, ","));
          TRY(tokd_json_string(out, ts->text.data, ts->text.len));
        }
        TRY(tokd_json_lit(out, "]"));
      }
      if (offs) {
        /* [start, end) byte offsets of each token in the UTF-8 text */
        TRY(tokd_json_lit(out, ",\"offset_unit\":\"utf8_byte\",\"offsets\":["));
        for (size_t k = 0; k < n; k++) {
          if (k) TRY(tokd_json_lit(out, ","));
          TRY(tokd_json_ids(out, offs + 2 * k, 2));
        }
        TRY(tokd_json_lit(out, "]"));
      }
    }
    if (req->batch) TRY(tokd_json_lit(out, "}"));
  }
  if (req->batch) {
    TRY(tokd_json_lit(out, "],\"total\":"));
    TRY(tokd_json_uint(out, total));
  }
  TRY(tokd_json_lit(out, "}\n"));
  *tokens = total;
  return true;
nomem:
  tokd_error_set(e, 413, "response_too_large", NULL, "the response would exceed the server's limit");
  return false;
}

/* POST /decode, /detokenize */
static bool handle_decode(const tokd_request *req, tokd_endpoint ep, thread_state *ts,
                          unsigned long long *tokens, tokd_http_error *e)
{
  const tok_encoding *enc;
  if (!resolve_encoding(req, ep == EP_DETOKENIZE, &enc, e)) return false;
  bool stream = req->stream || req->tail;
  if (stream && req->batch) {
    tokd_error_set(e, 400, "invalid_request", "tail", "streaming decode takes one list of ids, not a batch");
    return false;
  }
  tok_buf *out = &ts->out;
  const char *name = tok_encoding_get_info(enc)->name;
  if (ep == EP_DECODE) {
    TRY(tokd_json_lit(out, "{\"encoding\":"));
    TRY(tokd_json_string(out, name, strlen(name)));
    TRY(tokd_json_lit(out, req->batch ? ",\"results\":[" : ","));
  } else {
    TRY(tokd_json_lit(out, "{"));
  }
  for (size_t li = 0; li < req->n_lists; li++) {
    const uint32_t *ids = req->ids + req->list_start[li];
    size_t n = req->list_start[li + 1] - req->list_start[li];
    ts->bytes.len = 0;
    ts->text.len = 0;
    ts->bytes.limit = ts->text.limit = S.cfg.max_body_bytes * 8 + (1 << 20);
    if (req->tail) {
      size_t tl = strlen(req->tail);
      if (tok_base64_decode(req->tail, tl, &ts->bytes) != TOK_OK || ts->bytes.len > 3) {
        tokd_error_set(e, 400, "invalid_tail", "tail",
                       "\"tail\" must be the base64 string a previous streaming call returned");
        return false;
      }
    }
    tok_error te;
    tok_decode_opts dopts = {.skip_special_tokens = req->skip_special_tokens,
                             .continuation = req->tail != NULL};
    /* the exact bytes when they are asked for or streamed; else the decoder's text */
    bool need_bytes = req->bytes_out || stream;
    tok_err rc = need_bytes ? tok_decode_bytes(enc, ts->scratch, ids, n, &dopts, &ts->bytes, &te)
                            : tok_decode_text(enc, ts->scratch, ids, n, &dopts, &ts->text, &te);
    if (rc != TOK_OK) {
      char param[48];
      if (req->batch) snprintf(param, sizeof param, "tokens[%zu][%zu]", li, te.index);
      else snprintf(param, sizeof param, "tokens[%zu]", te.index);
      if (te.code == TOK_EUNKNOWN_TOKEN)
        tokd_error_set(e, 400, "unknown_token", param, "%s: token id %u is not in %s", param,
                       ids[te.index], name);
      else if (te.code == TOK_ELIMIT)
        tokd_error_set(e, 413, "response_too_large", NULL, "the decoded text would exceed the server's limit");
      else core_error(e, &te, param);
      return false;
    }
    *tokens += n;
    size_t complete = stream ? tok_utf8_complete_len(ts->bytes.data, ts->bytes.len) : ts->bytes.len;
    if (need_bytes) {
      /* the text of exact bytes: Hugging Face decoders repair invalid UTF-8 their own way,
       * so for them a non-streamed text comes from the decoder */
      if (stream || tok_encoding_get_info(enc)->kind == TOK_KIND_TIKTOKEN)
        TRY(tok_utf8_append_lossy(&ts->text, ts->bytes.data, complete));
      else if (tok_decode_text(enc, ts->scratch, ids, n, &dopts, &ts->text, &te) != TOK_OK)
        goto nomem;
    }
    if (li) TRY(tokd_json_lit(out, ","));
    if (req->batch) TRY(tokd_json_lit(out, "{"));
    TRY(tokd_json_lit(out, ep == EP_DETOKENIZE ? "\"prompt\":" : "\"text\":"));
    TRY(tokd_json_string(out, ts->text.data, ts->text.len));
    if (req->bytes_out) {
      TRY(tokd_json_lit(out, ",\"bytes\":\""));
      TRY(tok_base64_encode(ts->bytes.data, ts->bytes.len, out));
      TRY(tokd_json_lit(out, "\""));
    }
    if (stream) {
      TRY(tokd_json_lit(out, ",\"tail\":\""));
      TRY(tok_base64_encode(ts->bytes.data + complete, ts->bytes.len - complete, out));
      TRY(tokd_json_lit(out, "\""));
    }
    if (req->batch) TRY(tokd_json_lit(out, "}"));
  }
  TRY(tokd_json_lit(out, req->batch ? "]}\n" : "}\n"));
  return true;
nomem:
  tokd_error_set(e, 413, "response_too_large", NULL, "the decoded text would exceed the server's limit");
  return false;
}

/* Options of a text/plain request come from the query string. */
static bool query_bool(struct MHD_Connection *c, const char *key)
{
  const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, key);
  if (!v) return false;
  return !strcmp(v, "") || !strcmp(v, "1") || !strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "all");
}

static bool query_count(struct MHD_Connection *c, const char *key, long long *out, tokd_http_error *e)
{
  const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, key);
  if (!v) return true;
  char *end;
  errno = 0;
  long long n = strtoll(v, &end, 10);
  if (errno || end == v || *end || n < 0) {
    tokd_error_set(e, 400, "invalid_value", key, "query parameter \"%s\" must be a whole number >= 0", key);
    return false;
  }
  *out = n;
  return true;
}

/* The texts (or ids) of a text/plain body, with options from the query string. */
static bool parse_text_request(struct MHD_Connection *c, tokd_endpoint ep, req_ctx *ctx,
                               tokd_request *req, tokd_http_error *e)
{
  memset(req, 0, sizeof *req);
  req->max_tokens = req->limit = -1;
  req->add_special_tokens = true;
  req->encoding = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "encoding");
  req->model = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "model");
  const char *allowed = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "allowed_special");
  if (allowed && !strcmp(allowed, "all")) req->allowed_kind = SPECIAL_ALL;
  else if (allowed && (!*allowed || !strcmp(allowed, "none"))) req->allowed_kind = SPECIAL_NONE;
  else if (allowed) {
    /* comma-separated texts; they point into the query value, which outlives the request */
    size_t n = 1;
    for (const char *p = allowed; *p; p++) n += *p == ',';
    req->allowed = calloc(n, sizeof *req->allowed);
    req->allowed_lens = calloc(n, sizeof *req->allowed_lens);
    if (!req->allowed || !req->allowed_lens) goto nomem;
    for (const char *p = allowed;;) {
      const char *comma = strchr(p, ',');
      req->allowed[req->n_allowed] = p;
      req->allowed_lens[req->n_allowed++] = comma ? (size_t)(comma - p) : strlen(p);
      if (!comma) break;
      p = comma + 1;
    }
    req->allowed_kind = SPECIAL_LIST;
  }
  req->check_disallowed = query_bool(c, "disallowed_special");
  req->offsets = query_bool(c, "offsets");
  req->bytes_out = query_bool(c, "bytes");
  req->skip_special_tokens = query_bool(c, "skip_special_tokens");
  req->token_strings = query_bool(c, "token_strings");
  const char *add = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "add_special_tokens");
  req->add_special_tokens = !add || query_bool(c, "add_special_tokens");
  const char *side = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "truncation_side");
  req->truncate_left = side && !strcmp(side, "left");
  if (!query_count(c, "max_tokens", &req->max_tokens, e) || !query_count(c, "limit", &req->limit, e))
    return false;

  if (ep == EP_DECODE || ep == EP_DETOKENIZE) {
    /* ids separated by spaces, commas or newlines, optionally inside [ ] */
    size_t cap = ctx->body.len / 2 + 1;
    req->ids = malloc(cap * sizeof *req->ids);
    req->list_start = malloc(2 * sizeof *req->list_start);
    if (!req->ids || !req->list_start) goto nomem;
    size_t n = 0;
    const char *p = ctx->body.data, *end = p + ctx->body.len;
    while (p < end) {
      if (strchr(" ,\n\r\t[]", *p)) {
        p++;
        continue;
      }
      unsigned long long v = 0;
      const char *start = p;
      while (p < end && *p >= '0' && *p <= '9' && v <= UINT32_MAX) v = v * 10 + (unsigned)(*p++ - '0');
      if (p == start || v > UINT32_MAX || (p < end && !strchr(" ,\n\r\t[]", *p))) {
        tokd_error_set(e, 400, "invalid_token", "tokens",
                       "body byte %zu: expected a token id (a whole number below 2^32)",
                       (size_t)(start - ctx->body.data));
        return false;
      }
      if (n >= S.cfg.max_tokens) {
        tokd_error_set(e, 413, "too_many_tokens", "tokens", "more than %zu token ids", S.cfg.max_tokens);
        return false;
      }
      req->ids[n++] = (uint32_t)v;
    }
    req->n_lists = 1;
    req->list_start[0] = 0;
    req->list_start[1] = n;
    return true;
  }
  req->n_texts = 1;
  req->texts = malloc(sizeof *req->texts);
  req->text_lens = malloc(sizeof *req->text_lens);
  if (!req->texts || !req->text_lens) goto nomem;
  req->texts[0] = ctx->body.data ? ctx->body.data : "";
  req->text_lens[0] = ctx->body.len;
  return true;
nomem:
  tokd_error_set(e, 503, "out_of_memory", NULL, "out of memory; retry later");
  return false;
}

static enum MHD_Result handle_post(struct MHD_Connection *c, req_ctx *ctx)
{
  thread_state *ts = thread_state_get();
  tokd_http_error e;
  tokd_request req;
  if (!ts) {
    tokd_error_set(&e, 503, "out_of_memory", NULL, "out of memory; retry later");
    return send_error(c, ctx, &e);
  }
  body_kind kind = ctx->kind;
  if (kind == BODY_SNIFF) {
    size_t i = 0;
    while (i < ctx->body.len && strchr(" \t\r\n", ctx->body.data[i])) i++;
    kind = i < ctx->body.len && ctx->body.data[i] == '{' ? BODY_JSON : BODY_TEXT;
  }
  bool ok = kind == BODY_JSON
                ? tokd_request_parse_json(ctx->ep, ctx->body.data ? ctx->body.data : "", ctx->body.len,
                                          S.cfg.max_batch, S.cfg.max_tokens, &req, &e)
                : parse_text_request(c, ctx->ep, ctx, &req, &e);
  ts->out.len = 0;
  ts->out.limit = S.cfg.max_tokens * 12 + S.cfg.max_body_bytes * 8 + (1 << 20);
  if (ok) {
    if (ctx->ep == EP_DECODE || ctx->ep == EP_DETOKENIZE)
      ok = handle_decode(&req, ctx->ep, ts, &ctx->tokens, &e);
    else
      ok = handle_encode(&req, ctx->ep, ts, &ctx->tokens, &e);
  }
  tokd_request_free(&req);
  enum MHD_Result r = ok ? send_body(c, ctx, 200, "application/json", ts->out.data, ts->out.len)
                         : send_error(c, ctx, &e);
  thread_state_trim(ts);
  return r;
}

static enum MHD_Result handle_get(struct MHD_Connection *c, req_ctx *ctx)
{
  static const char health[] = "{\"status\":\"ok\"}\n";
  static const char ready[] = "{\"status\":\"ready\"}\n";
  static const char draining[] = "{\"status\":\"draining\"}\n";
  switch (ctx->ep) {
  case EP_HEALTH:
    return send_body(c, ctx, 200, "application/json", health, sizeof health - 1);
  case EP_READY:
    if (atomic_load(&S.ready) && !atomic_load(&S.draining))
      return send_body(c, ctx, 200, "application/json", ready, sizeof ready - 1);
    return send_body(c, ctx, 503, "application/json", draining, sizeof draining - 1);
  case EP_ENCODINGS:
    return send_body(c, ctx, 200, "application/json", S.encodings_json.data, S.encodings_json.len);
  case EP_METRICS: {
    thread_state *ts = thread_state_get();
    if (!ts) return MHD_NO;
    ts->out.len = 0;
    ts->out.limit = 0;
    int is_ready = atomic_load(&S.ready) && !atomic_load(&S.draining);
    if (tokd_metrics_render(S.metrics, &ts->out, is_ready, (unsigned)tok_registry_count(S.reg)) != TOK_OK)
      return MHD_NO;
    return send_body(c, ctx, 200, "text/plain; version=0.0.4; charset=utf-8", ts->out.data, ts->out.len);
  }
  default:
    return MHD_NO;
  }
}

static bool content_type_kind(struct MHD_Connection *c, body_kind *kind, tokd_http_error *e)
{
  const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
  if (!ct || !*ct || !strncasecmp(ct, "application/x-www-form-urlencoded", 33) ||
      !strncasecmp(ct, "application/octet-stream", 24)) {
    *kind = BODY_SNIFF; /* curl --data-binary sends form-urlencoded: look at the body */
    return true;
  }
  if (!strncasecmp(ct, "application/json", 16)) {
    *kind = BODY_JSON;
    return true;
  }
  if (!strncasecmp(ct, "text/plain", 10)) {
    const char *cs = strcasestr(ct, "charset=");
    if (cs && strncasecmp(cs + 8, "utf-8", 5) && strncasecmp(cs + 8, "\"utf-8\"", 7) &&
        strncasecmp(cs + 8, "us-ascii", 8)) {
      tokd_error_set(e, 415, "unsupported_charset", NULL, "text must be UTF-8 (got %.40s)", cs + 8);
      return false;
    }
    *kind = BODY_TEXT;
    return true;
  }
  tokd_error_set(e, 415, "unsupported_media_type", NULL,
                 "Content-Type %.60s is not supported: send application/json or text/plain", ct);
  return false;
}

static void make_request_id(struct MHD_Connection *c, req_ctx *ctx)
{
  const char *given = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Request-Id");
  size_t n = 0;
  if (given) {
    /* echo a client's id if it is printable and short; anything else is replaced */
    for (; given[n] && n < 64; n++)
      if (given[n] < 0x21 || given[n] > 0x7e || given[n] == '"' || given[n] == '\\') break;
    if (given[n] == '\0' && n > 0) {
      memcpy(ctx->request_id, given, n + 1);
      return;
    }
  }
  snprintf(ctx->request_id, sizeof ctx->request_id, "%012llx-%08llx", S.id_prefix,
           atomic_fetch_add_explicit(&S.request_seq, 1, memory_order_relaxed));
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *c, const char *url,
                                 const char *method, const char *version,
                                 const char *upload_data, size_t *upload_data_size,
                                 void **con_cls)
{
  (void)cls, (void)version;
  req_ctx *ctx = *con_cls;
  tokd_http_error e;
  if (!ctx) {
    if (!(ctx = calloc(1, sizeof *ctx))) return MHD_NO;
    *con_cls = ctx;
    ctx->started = now_seconds();
    /* logged as is, so only a known method name is kept */
    static const char *const methods[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"};
    ctx->method = "OTHER";
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
      if (!strcmp(method, methods[i])) ctx->method = methods[i];
    make_request_id(c, ctx);
    bool post = false;
    int ep = route(url, &post);
    ctx->ep = ep < 0 ? EP_OTHER : (tokd_endpoint)ep;
    ctx->post = post;
    if (ep < 0) {
      tokd_error_set(&e, 404, "unknown_route", NULL,
                     "no such endpoint: %.100s (try POST /encode, /decode, /count, /tokenize, "
                     "/detokenize or GET /encodings, /health, /ready, /metrics)", url);
      return send_error(c, ctx, &e);
    }
    bool is_get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    if (post ? strcmp(method, "POST") != 0 : !is_get) {
      tokd_error_set(&e, 405, "method_not_allowed", NULL, "%s takes %s, not %.16s", url,
                     post ? "POST" : "GET", method);
      return send_error(c, ctx, &e);
    }
    /* Answering in this first call would make libmicrohttpd close the connection (it
     * cannot know yet that no body follows), so even GETs are answered in the next call. */
    if (!post) return MHD_YES;
    ctx->counted = true;
    if (atomic_fetch_add(&tokd_inflight, 1) >= S.cfg.max_inflight) {
      tokd_error_set(&e, 503, "overloaded", NULL,
                     "more than %u requests in flight; retry after a moment", S.cfg.max_inflight);
      return send_error(c, ctx, &e);
    }
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl && strtoull(cl, NULL, 10) > S.cfg.max_body_bytes) {
      tokd_error_set(&e, 413, "body_too_large", NULL,
                     "request body of %.20s bytes exceeds the limit of %zu bytes", cl,
                     S.cfg.max_body_bytes);
      return send_error(c, ctx, &e);
    }
    if (!content_type_kind(c, &ctx->kind, &e)) return send_error(c, ctx, &e);
    ctx->body.limit = S.cfg.max_body_bytes;
    return MHD_YES;
  }
  if (*upload_data_size > 0) {
    size_t n = *upload_data_size;
    *upload_data_size = 0;
    if (ctx->answered) return MHD_YES; /* refused already: drop the rest */
    if (ctx->overflow) {
      /* libmicrohttpd cannot answer before the body is complete, so the excess of a body
       * without Content-Length is read and dropped; past twice the cap the connection is
       * cut instead, so a client cannot stream forever */
      ctx->dropped += n;
      return ctx->dropped > S.cfg.max_body_bytes ? MHD_NO : MHD_YES;
    }
    tok_err rc = tok_buf_append(&ctx->body, upload_data, n);
    if (rc == TOK_ELIMIT) ctx->overflow = true;
    else if (rc != TOK_OK) return MHD_NO; /* out of memory: drop the connection */
    return MHD_YES;
  }
  if (ctx->answered) return MHD_YES;
  if (ctx->overflow) {
    tokd_error_set(&e, 413, "body_too_large", NULL, "request body exceeds the limit of %zu bytes",
                   S.cfg.max_body_bytes);
    return send_error(c, ctx, &e);
  }
  return ctx->post ? handle_post(c, ctx) : handle_get(c, ctx);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
  (void)cls, (void)c;
  req_ctx *ctx = *con_cls;
  if (!ctx) return;
  double seconds = now_seconds() - ctx->started;
  unsigned status = ctx->status;
  if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && status == 0) status = 499; /* client went away */
  tokd_metrics_record(S.metrics, ctx->ep, status, seconds, ctx->body.len, ctx->tokens);
  tokd_log_level level = status >= 500 ? LOG_ERROR : status >= 400 ? LOG_WARN : LOG_INFO;
  log_line(level, level,
           "\"msg\":\"request\",\"method\":\"%s\",\"path\":\"%s\",\"status\":%u,\"duration_ms\":%.3f,"
           "\"bytes_in\":%zu,\"tokens\":%llu,\"request_id\":\"%s\"%s",
           ctx->method, TOKD_ENDPOINT_PATHS[ctx->ep], status, seconds * 1e3, ctx->body.len,
           ctx->tokens, ctx->request_id,
           toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED ? ",\"error\":\"timeout\"" : "");
  if (ctx->counted) atomic_fetch_sub(&tokd_inflight, 1);
  tok_buf_free(&ctx->body);
  free(ctx);
  *con_cls = NULL;
}

/* ---------------------------------------------------------------------------------------
 * Start-up
 */
static tok_err build_encodings_json(tok_buf *out)
{
  tok_err rc;
#define W(x) if ((rc = (x)) != TOK_OK) return rc
  const char *def = tok_encoding_get_info(S.default_enc)->name;
  W(tokd_json_lit(out, "{\"default\":"));
  W(tokd_json_string(out, def, strlen(def)));
  W(tokd_json_lit(out, ",\"encodings\":["));
  for (size_t i = 0; i < tok_registry_count(S.reg); i++) {
    const tok_encoding_info *info = tok_encoding_get_info(tok_registry_at(S.reg, i));
    if (i) W(tokd_json_lit(out, ","));
    W(tokd_json_lit(out, "{\"name\":"));
    W(tokd_json_string(out, info->name, strlen(info->name)));
    W(tokd_json_lit(out, ",\"aliases\":["));
    for (size_t a = 0; info->aliases[a]; a++) {
      if (a) W(tokd_json_lit(out, ","));
      W(tokd_json_string(out, info->aliases[a], strlen(info->aliases[a])));
    }
    W(tokd_json_lit(out, "],\"n_vocab\":"));
    W(tokd_json_uint(out, info->n_vocab));
    W(tokd_json_lit(out, ",\"n_ranks\":"));
    W(tokd_json_uint(out, info->n_ranks));
    W(tokd_json_lit(out, ",\"special_tokens\":{"));
    for (size_t k = 0; k < info->n_special; k++) {
      if (k) W(tokd_json_lit(out, ","));
      W(tokd_json_string(out, info->special[k].text, info->special[k].text_len));
      W(tokd_json_lit(out, ":"));
      W(tokd_json_uint(out, info->special[k].id));
    }
    W(tokd_json_lit(out, "},\"n_added_tokens\":"));
    W(tokd_json_uint(out, info->n_added));
    bool tiktoken = info->kind == TOK_KIND_TIKTOKEN;
    W(tokd_json_lit(out, tiktoken ? ",\"kind\":\"tiktoken\"" : ",\"kind\":\"huggingface\""));
    W(tokd_json_lit(out, ",\"source\":"));
    W(tokd_json_string(out, info->source, strlen(info->source)));
    if (tiktoken) {
      W(tokd_json_lit(out, ",\"pattern\":"));
      W(tokd_json_string(out, info->pattern, strlen(info->pattern)));
      W(tokd_json_lit(out, ",\"sha256\":"));
      W(tokd_json_string(out, info->sha256, strlen(info->sha256)));
    }
    const char *names[] = {"normalizer", "pre_tokenizer", "model", "post_processor", "decoder"};
    const char *values[] = {info->normalizer, info->pre_tokenizer, info->model, info->post_processor, info->decoder};
    W(tokd_json_lit(out, ",\"components\":{"));
    for (int c = 0; c < 5; c++) {
      W(tokd_json_lit(out, c ? ",\"" : "\""));
      W(tokd_json_lit(out, names[c]));
      W(tokd_json_lit(out, "\":"));
      W(tokd_json_string(out, values[c], strlen(values[c])));
    }
    W(tokd_json_lit(out, "}"));
    if (info->bos_token) {
      W(tokd_json_lit(out, ",\"bos_token\":"));
      W(tokd_json_string(out, info->bos_token, strlen(info->bos_token)));
    }
    if (info->eos_token) {
      W(tokd_json_lit(out, ",\"eos_token\":"));
      W(tokd_json_string(out, info->eos_token, strlen(info->eos_token)));
    }
    W(tokd_json_lit(out, info->embedded ? ",\"embedded\":true}" : ",\"embedded\":false}"));
  }
  W(tokd_json_lit(out, "]}\n"));
#undef W
  return TOK_OK;
}

static unsigned long long rss_bytes(void)
{
  unsigned long long pages = 0, rss = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (f) {
    if (fscanf(f, "%llu %llu", &pages, &rss) != 2) rss = 0;
    fclose(f);
  }
  return rss * (unsigned long long)sysconf(_SC_PAGESIZE);
}

static int start_daemon(void)
{
  struct sockaddr_storage addr = {0};
  socklen_t addr_len;
  /* epoll thread pool; a single thread uses poll(2) instead: measured with `tokd load`, the
   * single-threaded epoll mode of libmicrohttpd 0.9.75 stopped accepting a burst of 256 new
   * connections (they sat in the accept queue until they timed out), poll did not */
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC |
                   (S.cfg.threads > 1 ? MHD_USE_EPOLL : MHD_USE_POLL);
  struct sockaddr_in *in4 = (struct sockaddr_in *)&addr;
  struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&addr;
  if (inet_pton(AF_INET, S.cfg.host, &in4->sin_addr) == 1) {
    in4->sin_family = AF_INET;
    in4->sin_port = htons((uint16_t)S.cfg.port);
    addr_len = sizeof *in4;
  } else if (inet_pton(AF_INET6, S.cfg.host, &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons((uint16_t)S.cfg.port);
    addr_len = sizeof *in6;
    flags |= MHD_USE_IPv6;
  } else {
    fprintf(stderr, "tokd: --host %s is not an IPv4 or IPv6 address\n", S.cfg.host);
    return 2;
  }
  (void)addr_len;
  S.daemon = MHD_start_daemon(
      flags, (uint16_t)S.cfg.port, NULL, NULL, on_access, NULL,
      MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
      MHD_OPTION_THREAD_POOL_SIZE, (unsigned)(S.cfg.threads > 1 ? S.cfg.threads : 0),
      MHD_OPTION_CONNECTION_LIMIT, (unsigned)S.cfg.max_connections,
      MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)S.cfg.conn_timeout_s,
      /* headers and our small reads fit easily; bodies are buffered by us, not here */
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)64 * 1024,
      MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)1024,
      MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
      MHD_OPTION_END);
  if (!S.daemon) {
    fprintf(stderr, "tokd: cannot listen on %s:%u: %s\n", S.cfg.host, S.cfg.port, strerror(errno));
    return 1;
  }
  return 0;
}

int tokd_serve_main(int argc, char **argv)
{
  bool exit_now;
  int rc = tokd_config_parse(argc, argv, &S.cfg, &exit_now);
  if (rc || exit_now) return rc;

  /* Signals are taken synchronously by the main thread (sigwait); every other thread,
   * including libmicrohttpd's, inherits this mask. */
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, NULL);
  signal(SIGPIPE, SIG_IGN);

  /* A fixed mmap threshold stops glibc from raising it after the loader frees its large
   * temporaries, which left later tables in the heap between freed holes: resident memory
   * after start-up varied from 13.6 to 17.5 MB between runs without it. */
  mallopt(M_MMAP_THRESHOLD, 256 * 1024);
  double t0 = now_seconds();
  tok_error err;
  tok_load_opts lo = {.vocab_dir = S.cfg.vocab_dir, .encodings = S.cfg.encodings,
                      .tokenizers = S.cfg.tokenizers, .n_tokenizers = S.cfg.n_tokenizers};
  if (tok_registry_load(&lo, &S.reg, &err) != TOK_OK) {
    fprintf(stderr, "tokd: %s\n", err.detail);
    return err.code == TOK_EUNKNOWN_ENCODING ? 2 : 1;
  }
#ifdef __GLIBC__
  /* Loading leaves megabytes of freed temporaries in the heap; a sidecar is judged by its
   * resident memory, so hand them back now (measured: 12.6 -> 8.2 MB for cl100k+o200k). */
  malloc_trim(0);
#endif
  double load_ms = (now_seconds() - t0) * 1e3;
  const char *def = S.cfg.default_encoding  ? S.cfg.default_encoding
                    : S.cfg.n_tokenizers ? S.cfg.tokenizers[0].name
                                         : "cl100k_base";
  S.default_enc = tok_registry_find(S.reg, def, strlen(def));
  if (!S.default_enc && S.cfg.default_encoding) {
    fprintf(stderr, "tokd: --default-encoding %s is not loaded\n", def);
    tok_registry_free(S.reg);
    return 2;
  }
  if (!S.default_enc) S.default_enc = tok_registry_at(S.reg, 0);
  S.limits = (tok_limits){.max_tokens_out = S.cfg.max_tokens};
  S.id_prefix = ((unsigned long long)time(NULL) << 16 ^ (unsigned long long)getpid()) & 0xffffffffffffull;
  pthread_key_create(&thread_key, thread_state_free);
  if (!(S.metrics = tokd_metrics_new(S.cfg.threads + 2)) || build_encodings_json(&S.encodings_json) != TOK_OK) {
    fprintf(stderr, "tokd: out of memory\n");
    return 1;
  }
  if ((rc = start_daemon()) != 0) return rc;
  const union MHD_DaemonInfo *info = MHD_get_daemon_info(S.daemon, MHD_DAEMON_INFO_BIND_PORT);
  unsigned port = info ? info->port : S.cfg.port;
  atomic_store(&S.ready, 1);
  char names[512] = "";
  for (size_t i = 0; i < tok_registry_count(S.reg); i++) {
    size_t n = strlen(names);
    snprintf(names + n, sizeof names - n, "%s\"%s\"", i ? "," : "",
             tok_encoding_get_info(tok_registry_at(S.reg, i))->name);
  }
  /* lifecycle lines show unless logs are off: operators and tests read them */
  log_line(LOG_ERROR, LOG_INFO,
           "\"msg\":\"listening\",\"host\":\"%s\",\"port\":%u,\"threads\":%u,\"encodings\":[%s],"
           "\"default_encoding\":\"%s\",\"load_ms\":%.1f,\"rss_bytes\":%llu,\"version\":\"%s\"",
           S.cfg.host, port, S.cfg.threads, names, tok_encoding_get_info(S.default_enc)->name,
           load_ms, rss_bytes(), TOKD_VERSION);

  int sig = 0;
  while (sigwait(&sigs, &sig) != 0) {
  }
  /* drain: not ready, no new connections, let in-flight requests finish */
  atomic_store(&S.draining, 1);
  double deadline = now_seconds() + S.cfg.drain_timeout_s;
  log_line(LOG_ERROR, LOG_INFO, "\"msg\":\"draining\",\"signal\":\"%s\",\"inflight\":%u",
           sig == SIGTERM ? "SIGTERM" : "SIGINT", atomic_load(&tokd_inflight));
  MHD_socket listen_fd = MHD_quiesce_daemon(S.daemon);
  if (listen_fd != MHD_INVALID_SOCKET) close(listen_fd);
  while (atomic_load(&tokd_inflight) > 0 && now_seconds() < deadline) {
    struct timespec pause = {0, 5 * 1000 * 1000};
    nanosleep(&pause, NULL);
  }
  unsigned left = atomic_load(&tokd_inflight);
  MHD_stop_daemon(S.daemon);
  log_line(LOG_ERROR, LOG_INFO, "\"msg\":\"stopped\",\"unfinished\":%u", left);
  tokd_metrics_free(S.metrics);
  tok_buf_free(&S.encodings_json);
  thread_state *ts = pthread_getspecific(thread_key);
  if (ts) thread_state_free(ts);
  tok_registry_free(S.reg);
  tokd_sources_free(S.cfg.tokenizers, S.cfg.n_tokenizers);
  return 0;
}

/* ---------------------------------------------------------------------------------------
 * `tokd health`: GET /ready on a local server; exit 0 when it answers 200. For container
 * HEALTHCHECKs and probes in images without a shell or curl.
 */
int tokd_health_main(int argc, char **argv)
{
  const char *host = "127.0.0.1", *port = getenv("TOKD_PORT"), *path = "/ready";
  unsigned timeout = 2;
  if (!port || !*port) port = "8080";
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--port") && i + 1 < argc) port = argv[++i];
    else if (!strcmp(argv[i], "--host") && i + 1 < argc) host = argv[++i];
    else if (!strcmp(argv[i], "--path") && i + 1 < argc) path = argv[++i];
    else if (!strcmp(argv[i], "--timeout") && i + 1 < argc) timeout = (unsigned)atoi(argv[++i]);
    else {
      fprintf(stderr, "usage: tokd health [--host H] [--port P] [--path /ready] [--timeout S]\n"
                      "exit 0 when http://H:P/ready answers 200 (env TOKD_PORT sets the port)\n");
      return strcmp(argv[i], "--help") ? 2 : 0;
    }
  }
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
  if (getaddrinfo(host, port, &hints, &ai) != 0) {
    fprintf(stderr, "tokd health: cannot resolve %s:%s\n", host, port);
    return 1;
  }
  int fd = socket(ai->ai_family, SOCK_STREAM, 0);
  struct timeval tv = {.tv_sec = timeout ? timeout : 1};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  int ok = fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) == 0;
  freeaddrinfo(ai);
  char buf[256];
  if (ok) {
    int n = snprintf(buf, sizeof buf, "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", path, host);
    ok = write(fd, buf, (size_t)n) == n;
  }
  ssize_t got = ok ? read(fd, buf, sizeof buf - 1) : -1;
  if (fd >= 0) close(fd);
  if (got < 12) {
    fprintf(stderr, "tokd health: no answer from %s:%s\n", host, port);
    return 1;
  }
  buf[got] = '\0';
  bool is_200 = !strncmp(buf + 9, "200", 3);
  if (!is_200) fprintf(stderr, "tokd health: %.*s\n", (int)strcspn(buf, "\r\n"), buf);
  return is_200 ? 0 : 1;
}
