/*
 * http.c — `tokd serve`'s HTTP side, on libmicrohttpd (epoll thread pool); the server object
 * (server.h) is every callback's context.
 *
 * A request goes through these steps, each with its limit decided as early as it can be:
 *   1. the request line: a path with %00, control characters or invalid UTF-8 is marked
 *      (URI log callback) and refused once the headers are in;
 *   2. the headers (first call of the access handler): the route table gives the endpoint
 *      (404, 405 with Allow); the framing is checked strictly — both Content-Length and
 *      Transfer-Encoding, differing Content-Lengths, a transfer coding other than chunked,
 *      HTTP/1.1 without Host are refused and the connection closed (RFC 9112 §6.3, as h2o
 *      and HAProxy do); the content type (415) and the size (413) are checked; and the
 *      request reserves its share of the memory budget — if it does not fit, 503 with
 *      Retry-After before a byte of the body is read;
 *   3. the body arrives (the connection watchdog enforces a minimum rate);
 *   4. complete: GETs are answered here on the I/O thread; a POST takes an in-flight slot
 *      (503 when none is free), is suspended and handed to the worker pool;
 *   5. a worker parses and computes the answer and resumes the connection, which queues
 *      it; large answers are fed to libmicrohttpd piece by piece so the watchdog sees a
 *      slow reader;
 *   6. completion returns the slot and the reservation and logs one line.
 *
 * Shutdown: SIGTERM or SIGINT turns /ready to 503 while still listening for
 * --drain-delay seconds (so readiness probes see it), then stops accepting, lets
 * in-flight requests finish (up to --drain-timeout), and exits 0.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "serve/http.h"
#include "serve/json.h"
#include "serve/linger.h"
#include "serve/listen.h"
#include "common/log.h"
#include "serve/pool.h"
#include "serve/server.h"
#include "common/util.h"
#include "serve/watchdog.h"

/* A request's share of the memory budget: a fixed allowance plus a factor of its body
 * that bounds everything working on it allocates — the body, token ids (and offsets), the
 * merge arrays of a long piece (25 bytes per byte), the JSON answer. The factors are
 * measured peaks (tests/hardening_test.py prints them): encode or count of a 4 MB run of
 * one character 27x, encode with offsets of 4 MB of punctuation 47x, decode 5x. An encode
 * reserves the plain factor at its headers and tops up to the rich one once its parsed
 * options ask for offsets or token strings. */
#define RESERVE_BASE ((size_t)64 << 10)
#define FACTOR_ENCODE 28
#define FACTOR_RICH 48
#define FACTOR_DECODE 8
/* A chat render's allowance on top: a template's values and intermediate strings (the
 * Qwen3 template with tools peaks near 1 MB on a small conversation). */
#define RESERVE_CHAT ((size_t)4 << 20)
/* Bodies up to this size are "small" jobs for the pool's fairness. */
#define SMALL_BODY ((size_t)64 << 10)
/* Answers up to this size are handed to libmicrohttpd whole; larger ones piece by piece. */
#define WHOLE_ANSWER ((size_t)64 << 10)
typedef enum { BODY_JSON, BODY_TEXT, BODY_SNIFF } body_kind;
typedef enum { ST_NEW, ST_BODY, ST_QUEUED, ST_DONE, ST_ANSWERED } req_state;

typedef struct req_ctx {
  tokd_job job; /* first: the pool's link (a tokd_job * is a req_ctx *) */
  tokd_server *srv;
  struct MHD_Connection *conn;
  tokd_wd_conn *wd;
  tokd_endpoint ep;
  const char *method;
  double started;
  req_state state;
  const char *uri_problem; /* why the request line is refused, or NULL */
  body_kind kind;
  tok_buf body;
  size_t reserved;         /* bytes of the budget this request holds */
  bool chunked, overflow, no_memory, counted;
  size_t dropped;
  tokd_query *query;       /* copied at the headers */
  size_t n_query;
  /* the answer */
  unsigned status;
  char *answer;            /* malloc'd; handed to libmicrohttpd */
  size_t answer_len;
  bool close;              /* Connection: close */
  unsigned long long tokens;
  double cpu_s;           /* CPU time computing the answer */
  char request_id[72];
} req_ctx;

static size_t reserve_for(tokd_endpoint ep, size_t body_len, bool rich)
{
  size_t factor = ep == EP_DECODE || ep == EP_DETOKENIZE ? FACTOR_DECODE
                  : rich && ep != EP_COUNT                ? FACTOR_RICH
                                                          : FACTOR_ENCODE;
  return RESERVE_BASE + body_len * factor;
}

/* ---------------------------------------------------------------------------------------
 * Answers
 */
typedef struct piecewise {
  char *data;
  size_t len;
  tokd_wd_conn *wd;
} piecewise;

static ssize_t read_piece(void *cls, uint64_t pos, char *buf, size_t max)
{
  piecewise *p = cls;
  if (pos >= p->len) return MHD_CONTENT_READER_END_OF_STREAM;
  size_t n = p->len - pos < max ? p->len - (size_t)pos : max;
  memcpy(buf, p->data + pos, n);
  tokd_watchdog_progress(p->wd, n);
  return (ssize_t)n;
}

static void free_piecewise(void *cls)
{
  piecewise *p = cls;
  free(p->data);
  free(p);
}

/* Queues ctx's answer (ctx->answer, owned) with its status. */
static enum MHD_Result queue_answer(req_ctx *ctx, const char *content_type)
{
  tokd_server *srv = ctx->srv;
  struct MHD_Response *resp = NULL;
  size_t len = ctx->answer_len;
  if (len > WHOLE_ANSWER) {
    piecewise *p = malloc(sizeof *p);
    if (p) {
      *p = (piecewise){ctx->answer, len, ctx->wd};
      resp = MHD_create_response_from_callback(len, 64 << 10, read_piece, p, free_piecewise);
      if (!resp) free(p);
      else ctx->answer = NULL;
    }
  } else {
    resp = MHD_create_response_from_buffer(len, ctx->answer, MHD_RESPMEM_MUST_FREE);
    if (resp) ctx->answer = NULL;
  }
  if (!resp) return MHD_NO;
  tokd_watchdog_phase(ctx->wd, WD_RESPONSE);
  /* a whole answer goes to the socket buffer at once: count it as taken */
  if (len <= WHOLE_ANSWER) tokd_watchdog_progress(ctx->wd, len);
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
  MHD_add_response_header(resp, "X-Request-Id", ctx->request_id);
  MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
  if (tokd_is_ui(ctx->ep) && ctx->status == 200) {
    MHD_add_response_header(resp, "Content-Security-Policy", TOKD_UI_CSP);
    MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(resp, "Cache-Control", "no-cache");
  }
  if (ctx->status == 405)
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW,
                            TOKD_ROUTES[ctx->ep].method == TOKD_POST ? "POST" : "GET, HEAD");
  if (ctx->status == 503) MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
  if (ctx->close || atomic_load(&srv->draining))
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
  enum MHD_Result r = MHD_queue_response(ctx->conn, ctx->status, resp);
  MHD_destroy_response(resp);
  ctx->state = ST_ANSWERED;
  return r;
}

/* Writes e as the answer (falling back to a constant when out of memory). */
static void set_error(req_ctx *ctx, const tokd_http_error *e)
{
  static const char fallback[] = "{\"error\":{\"message\":\"out of memory\",\"type\":\"overloaded_error\","
                                 "\"param\":null,\"code\":\"out_of_memory\"}}\n";
  tok_buf out = {.limit = 1 << 16};
  free(ctx->answer);
  if (tokd_json_error(&out, e, tokd_route_error_shape(ctx->ep)) == TOK_OK) {
    ctx->status = e->status;
    ctx->answer = out.data;
    ctx->answer_len = out.len;
  } else {
    tok_buf_free(&out);
    ctx->status = 503;
    ctx->answer = strdup(fallback);
    ctx->answer_len = ctx->answer ? sizeof fallback - 1 : 0;
  }
}

static enum MHD_Result answer_error(req_ctx *ctx, const tokd_http_error *e, bool close)
{
  set_error(ctx, e);
  ctx->close = ctx->close || close;
  return ctx->answer ? queue_answer(ctx, "application/json") : MHD_NO;
}

/* ---------------------------------------------------------------------------------------
 * The request line and the headers
 */
static int hexval(char c)
{
  return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Why a raw request target is refused, or NULL: a percent-encoded NUL (libmicrohttpd
 * would cut the path or value there), control characters, or bytes that do not decode
 * to UTF-8. */
static const char *uri_problem(const char *uri)
{
  size_t n = strlen(uri);
  char *decoded = malloc(n + 1);
  const char *why = NULL;
  if (!decoded) return NULL;
  size_t o = 0;
  for (size_t i = 0; i < n && !why; i++) {
    unsigned char c = (unsigned char)uri[i];
    if (c < 0x20 || c == 0x7F) why = "a control character in the request target";
    else if (c == '%' && i + 2 < n + 1 && hexval(uri[i + 1]) >= 0 && hexval(uri[i + 2]) >= 0) {
      char d = (char)(hexval(uri[i + 1]) << 4 | hexval(uri[i + 2]));
      if (d == 0) why = "%00 in the request target";
      decoded[o++] = d;
      i += 2;
    } else {
      decoded[o++] = (char)c;
    }
  }
  if (!why && !tok_utf8_valid(decoded, o, NULL)) why = "the request target is not UTF-8 once decoded";
  free(decoded);
  return why;
}

/* The URI log callback runs once per request, when its request line is in: the request
 * context starts here. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
  tokd_server *srv = cls;
  req_ctx *ctx = calloc(1, sizeof *ctx);
  if (!ctx) return NULL;
  ctx->srv = srv;
  ctx->conn = conn;
  ctx->started = tokd_now();
  atomic_fetch_add(&srv->active, 1);
  ctx->uri_problem = uri_problem(uri);
  const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  ctx->wd = ci ? ci->socket_context : NULL;
  tokd_watchdog_phase(ctx->wd, WD_HEADERS);
  return ctx;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
  tokd_server *srv = cls;
  const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
  if (code == MHD_CONNECTION_NOTIFY_STARTED) {
    /* a connection is watched iff it holds its reservation; one that cannot have either
     * is shut at once (libmicrohttpd then closes it) */
    *socket_context = NULL;
    if (!ci) return;
    if (tokd_budget_take(srv->budget, TOKD_CONN_RESERVE)) {
      if ((*socket_context = tokd_watchdog_add(srv->watchdog, ci->connect_fd))) return;
      tokd_budget_give(srv->budget, TOKD_CONN_RESERVE);
    }
    shutdown(ci->connect_fd, SHUT_RDWR);
  } else if (*socket_context) {
    /* libmicrohttpd closes the socket right after this: one answered before its body was
     * read lingers instead (linger.h), holding its reservation until it closes there */
    uint64_t linger = tokd_watchdog_remove(*socket_context);
    *socket_context = NULL;
    if (!(linger && ci && tokd_linger_add(srv->linger, ci->connect_fd, linger))) tokd_budget_give(srv->budget, TOKD_CONN_RESERVE);
  }
}

typedef struct framing {
  unsigned content_lengths, transfer_encodings;
  bool lengths_differ, length_bad, host;
  unsigned long long length;
  const char *first_length, *te, *request_id;
} framing;

static enum MHD_Result scan_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
  (void)kind;
  framing *f = cls;
  if (!value) value = "";
  if (!strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH)) {
    if (f->content_lengths++ && strcmp(value, f->first_length) != 0) f->lengths_differ = true;
    if (!f->first_length) f->first_length = value;
    /* digits only, at most 18 of them: anything else is malformed (no sign, no overflow) */
    size_t n = strlen(value);
    bool ok = n > 0 && n <= 18;
    unsigned long long v = 0;
    for (size_t i = 0; ok && i < n; i++) {
      ok = value[i] >= '0' && value[i] <= '9';
      v = v * 10 + (unsigned long long)(value[i] - '0');
    }
    if (!ok) f->length_bad = true;
    else f->length = v;
  } else if (!strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING)) {
    f->transfer_encodings++;
    f->te = value;
  } else if (!strcasecmp(key, MHD_HTTP_HEADER_HOST)) {
    f->host = true;
  } else if (!strcasecmp(key, "X-Request-Id")) {
    f->request_id = value;
  }
  return MHD_YES;
}

static enum MHD_Result copy_query(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
  (void)kind;
  req_ctx *ctx = cls;
  if (ctx->n_query >= 64) return MHD_NO;
  tokd_query *grown = realloc(ctx->query, (ctx->n_query + 1) * sizeof *grown);
  if (!grown) return MHD_NO;
  ctx->query = grown;
  size_t kl = strlen(key), vl = value ? strlen(value) : 0;
  char *copy = malloc(kl + vl + 2);
  if (!copy) return MHD_NO;
  memcpy(copy, key, kl + 1);
  memcpy(copy + kl + 1, value ? value : "", vl + 1);
  ctx->query[ctx->n_query++] = (tokd_query){copy, copy + kl + 1};
  return MHD_YES;
}

static void make_request_id(req_ctx *ctx, const char *given)
{
  tokd_server *srv = ctx->srv;
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
  snprintf(ctx->request_id, sizeof ctx->request_id, "%012llx-%08llx", srv->id_prefix,
           atomic_fetch_add_explicit(&srv->request_seq, 1, memory_order_relaxed));
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

/* Answers e in the first call, before any of the body is read. If a body follows, the
 * connection closes after the answer and lingers (linger.h): up to the body's length (at
 * most --linger-bytes) is read and dropped, so a client that sends its whole body before
 * it reads gets the answer instead of a reset. */
static enum MHD_Result refuse_early(req_ctx *ctx, const tokd_http_error *e, const framing *f, bool close)
{
  tokd_server *srv = ctx->srv;
  bool body = f->transfer_encodings || (f->content_lengths && (f->length_bad || f->length > 0));
  if (body) {
    uint64_t cap = srv->cfg.linger_bytes;
    if (!f->transfer_encodings && !f->length_bad && f->length < cap) cap = f->length;
    tokd_watchdog_linger(ctx->wd, cap);
  }
  return answer_error(ctx, e, close || body);
}

/* The headers are in: route, framing, admission. */
static enum MHD_Result begin(req_ctx *ctx, const char *url, const char *method, const char *version)
{
  tokd_server *srv = ctx->srv;
  tokd_http_error e;
  static const char *const methods[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"};
  ctx->method = "OTHER"; /* logged as is, so only a known method name is kept */
  for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
    if (!strcmp(method, methods[i])) ctx->method = methods[i];
  framing f = {0};
  MHD_get_connection_values(ctx->conn, MHD_HEADER_KIND, scan_header, &f);
  make_request_id(ctx, f.request_id);
  ctx->ep = tokd_route_find(url);
  if (!srv->cfg.ui && tokd_is_ui(ctx->ep)) ctx->ep = EP_OTHER; /* --ui off: not found */
  ctx->state = ST_BODY;

  /* (a Content-Length that is not a number never gets here: libmicrohttpd answers it
   * itself; see the README's known limits) */
  const char *framing_error =
      f.transfer_encodings && f.content_lengths ? "both Transfer-Encoding and Content-Length"
      : f.lengths_differ                      ? "Content-Length given twice with different values"
      : f.transfer_encodings > 1              ? "Transfer-Encoding given twice"
      : !f.host && !strcmp(version, MHD_HTTP_VERSION_1_1) ? "an HTTP/1.1 request without Host"
      : ctx->uri_problem;
  if (framing_error) {
    tokd_metrics_framing(srv->metrics);
    tokd_error_set(&e, 400, "bad_request", NULL, "refused: %s", framing_error);
    return refuse_early(ctx, &e, &f, true);
  }
  if (f.transfer_encodings && strcasecmp(f.te, "chunked") != 0) {
    tokd_metrics_framing(srv->metrics);
    tokd_error_set(&e, 501, "unsupported_transfer_encoding", NULL,
                   "Transfer-Encoding \"%.40s\" is not supported; send Content-Length or chunked", f.te);
    return refuse_early(ctx, &e, &f, true);
  }
  if (ctx->ep == EP_OTHER) {
    char routes[1024];
    tokd_error_set(&e, 404, "unknown_route", NULL, "no such endpoint: %.100s (try %s)", url,
                   tokd_route_list(routes, sizeof routes));
    return refuse_early(ctx, &e, &f, false);
  }
  const tokd_route *route = &TOKD_ROUTES[ctx->ep];
  bool is_get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
  if (route->method == TOKD_POST ? strcmp(method, "POST") != 0 : !is_get) {
    tokd_error_set(&e, 405, "method_not_allowed", NULL, "%s takes %s, not %.16s", route->path,
                   route->method == TOKD_POST ? "POST" : "GET", method);
    return refuse_early(ctx, &e, &f, false);
  }
  if (route->method == TOKD_GET) {
    /* Answering in this first call would make libmicrohttpd close the connection (it
     * cannot know yet that no body follows), so GETs are answered in the next call. */
    return MHD_YES;
  }
  if (!content_type_kind(ctx->conn, &ctx->kind, &e)) return refuse_early(ctx, &e, &f, true);
  ctx->chunked = f.transfer_encodings > 0;
  if (!ctx->chunked && (f.length_bad || f.length > srv->cfg.max_body_bytes)) {
    tokd_error_set(&e, 413, "body_too_large", NULL,
                   "request body of %.20s bytes exceeds the limit of %zu bytes (--max-body-bytes)",
                   f.first_length, srv->cfg.max_body_bytes);
    return refuse_early(ctx, &e, &f, true);
  }
  /* the memory this request may use, reserved before its body is read; a chunked body
   * reserves as it grows */
  size_t want = reserve_for(ctx->ep, ctx->chunked ? 0 : f.length, false);
  if (want > srv->budget->limit) {
    tokd_error_set(&e, 413, "body_too_large", NULL,
                   "a body of %llu bytes needs more memory than --max-memory allows one request", f.length);
    return refuse_early(ctx, &e, &f, true);
  }
  if (!tokd_budget_take(srv->budget, want)) {
    tokd_error_set(&e, 503, "overloaded", NULL,
                   "the server's memory budget is spent by requests in progress; retry after a moment");
    return refuse_early(ctx, &e, &f, true);
  }
  ctx->reserved = want;
  MHD_get_connection_values(ctx->conn, MHD_GET_ARGUMENT_KIND, copy_query, ctx);
  ctx->body.limit = srv->cfg.max_body_bytes;
  if (!ctx->chunked && f.length > 0 && tok_buf_reserve(&ctx->body, (size_t)f.length) != TOK_OK)
    ctx->no_memory = true;
  tokd_watchdog_phase(ctx->wd, WD_BODY);
  return MHD_YES;
}

/* Part of the body arrived. */
static enum MHD_Result body_data(req_ctx *ctx, const char *data, size_t n)
{
  tokd_server *srv = ctx->srv;
  tokd_watchdog_progress(ctx->wd, n);
  if (ctx->state != ST_BODY) return MHD_YES; /* answered already: drop the rest */
  if (ctx->overflow || ctx->no_memory) {
    /* libmicrohttpd cannot answer in the middle of a body, so the excess of a chunked
     * body is read and dropped (as a lingering close would), up to --linger-bytes, and
     * answered at its end; past that the connection is cut, so a client cannot stream
     * forever (and the watchdog's --min-rate holds meanwhile) */
    ctx->dropped += n;
    return ctx->dropped > srv->cfg.linger_bytes ? MHD_NO : MHD_YES;
  }
  if (ctx->chunked && reserve_for(ctx->ep, ctx->body.len + n, false) > ctx->reserved) {
    /* grow the reservation in steps of 64 KiB of body */
    size_t want = reserve_for(ctx->ep, ctx->body.len + n + (64 << 10), false);
    if (!tokd_budget_take(srv->budget, want - ctx->reserved)) {
      ctx->no_memory = true;
      return MHD_YES;
    }
    ctx->reserved = want;
  }
  tok_err rc = tok_buf_append(&ctx->body, data, n);
  if (rc == TOK_ELIMIT) ctx->overflow = true;
  else if (rc != TOK_OK) ctx->no_memory = true;
  return MHD_YES;
}

/* ---------------------------------------------------------------------------------------
 * Work: on a pool thread
 */
/* This thread's CPU seconds. */
static double thread_cpu(void)
{
  struct timespec ts;
  return clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) == 0 ? (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9 : 0;
}

static void run_job(tokd_job *job, tokd_worker *w)
{
  req_ctx *ctx = (req_ctx *)job;
  tokd_server *srv = ctx->srv;
  double cpu0 = thread_cpu();
  tokd_http_error e;
  tokd_request req;
  tokd_request_init(&req, ctx->ep);
  /* the answer may use what the reservation holds beyond the body */
  tok_buf out = {.limit = ctx->reserved - ctx->body.len};
  bool ok;
  if (atomic_load(&srv->cancel) || !w) {
    tokd_error_set(&e, 503, "overloaded", NULL, w ? "the server is shutting down" : "out of memory; retry later");
    ok = false;
  } else {
    body_kind kind = ctx->kind;
    if (kind == BODY_SNIFF) {
      /* JSON when it starts with '{' (after whitespace and a byte order mark) */
      size_t i = ctx->body.len >= 3 && !memcmp(ctx->body.data, "\xEF\xBB\xBF", 3) ? 3 : 0;
      while (i < ctx->body.len && strchr(" \t\r\n", ctx->body.data[i])) i++;
      kind = i < ctx->body.len && ctx->body.data[i] == '{' ? BODY_JSON : BODY_TEXT;
    }
    tokd_parse_limits lim = {srv->cfg.max_batch, srv->cfg.max_tokens};
    /* an empty body has no buffer: the parsers get an empty string, not NULL (pointer
     * arithmetic on NULL, even + 0, is undefined; clang's UBSan in fuzz_http found it) */
    char no_body[1] = "";
    char *body = ctx->body.data ? ctx->body.data : no_body;
    ok = kind == BODY_JSON
             ? tokd_request_parse_json(&req, body, ctx->body.len, &lim, &e)
             : tokd_request_parse_text(&req, body, ctx->body.len, ctx->query, ctx->n_query, &lim, &e);
    bool chat = req.messages.s || (ctx->ep == EP_RESPONSES_COUNT && req.raw[TOKD_F_INPUT].s);
    if (ok && (req.offsets || req.token_strings || chat)) {
      /* a richer answer, or a chat render: top the reservation up */
      size_t want = reserve_for(ctx->ep, ctx->body.len, true) + (chat ? RESERVE_CHAT : 0);
      if (want > srv->budget->limit) {
        tokd_error_set(&e, 413, "body_too_large", NULL,
                       "offsets, token strings or a chat render for a body of %zu bytes need more memory than "
                       "--max-memory allows one request", ctx->body.len);
        ok = false;
      } else if (want > ctx->reserved && !tokd_budget_take(srv->budget, want - ctx->reserved)) {
        tokd_error_set(&e, 503, "overloaded",
                       NULL, "the server's memory budget is spent by requests in progress; retry after a moment");
        ok = false;
      } else if (want > ctx->reserved) {
        ctx->reserved = want;
      }
      out.limit = ctx->reserved - ctx->body.len;
    }
    if (ok) ok = TOKD_HANDLERS[ctx->ep](srv, w, &req, &out, &ctx->tokens, &e);
  }
  tokd_request_free(&req);
  if (ok) {
    ctx->status = 200;
    ctx->answer = out.data;
    ctx->answer_len = out.len;
  } else {
    tok_buf_free(&out);
    set_error(ctx, &e);
  }
  /* the body is spent; while the answer is sent the request holds only the answer */
  size_t keep = RESERVE_BASE + ctx->answer_len;
  if (ctx->reserved > keep) {
    tokd_budget_give(srv->budget, ctx->reserved - keep);
    ctx->reserved = keep;
  }
  free(ctx->body.data);
  ctx->body.data = NULL;
  ctx->body.cap = 0;
  ctx->state = ST_DONE;
  ctx->cpu_s = thread_cpu() - cpu0;
  /* the in-flight slot is free once the work is done: a client slow to read its answer
   * holds only the answer's memory (and the watchdog limits how long) */
  ctx->counted = false;
  /* resumed before the slot is given back: a drain waits for in-flight to reach 0 and then
   * stops libmicrohttpd, which must find no connection still suspended (the review of the
   * server refactor found the old order could let it). From the resume on ctx belongs to the
   * I/O thread again, so srv is read first. */
  MHD_resume_connection(ctx->conn);
  atomic_fetch_sub(&srv->inflight, 1);
}

/* The body is complete. */
static enum MHD_Result complete(req_ctx *ctx)
{
  tokd_server *srv = ctx->srv;
  tokd_http_error e;
  const tokd_route *route = &TOKD_ROUTES[ctx->ep];
  if (route->method == TOKD_GET) {
    tok_buf out = {.limit = 1 << 24};
    double cpu0 = thread_cpu();
    bool ok = TOKD_HANDLERS[ctx->ep](srv, NULL, NULL, &out, &ctx->tokens, &e);
    ctx->cpu_s = thread_cpu() - cpu0;
    if (!ok) {
      tok_buf_free(&out);
      return answer_error(ctx, &e, false);
    }
    ctx->status = 200;
    ctx->answer = out.data ? out.data : strdup("");
    ctx->answer_len = out.len;
    return queue_answer(ctx, tokd_content_type(ctx->ep));
  }
  if (ctx->overflow) {
    tokd_error_set(&e, 413, "body_too_large", NULL, "request body exceeds the limit of %zu bytes (--max-body-bytes)",
                   srv->cfg.max_body_bytes);
    return answer_error(ctx, &e, false);
  }
  if (ctx->no_memory) {
    tokd_error_set(&e, 503, "overloaded", NULL, "the server's memory budget is spent; retry after a moment");
    return answer_error(ctx, &e, false);
  }
  /* an in-flight slot: taken by requests whose body is complete, so slow uploads cannot
   * hold them */
  if (atomic_fetch_add(&srv->inflight, 1) >= srv->cfg.max_inflight) {
    atomic_fetch_sub(&srv->inflight, 1);
    tokd_error_set(&e, 503, "overloaded", NULL,
                   "more than %u requests in flight; retry after a moment", srv->cfg.max_inflight);
    return answer_error(ctx, &e, false);
  }
  ctx->counted = true;
  ctx->state = ST_QUEUED;
  /* a request's own chat template can run up to the render's step and time bounds whatever
   * its size, so it queues with the large jobs (a "chat_template" key anywhere is enough:
   * in a JSON string the quotes would be escaped, and a false positive only queues it) */
  ctx->job.large = ctx->body.len > SMALL_BODY ||
                   (ctx->body.data && memmem(ctx->body.data, ctx->body.len, "\"chat_template\"", 15));
  ctx->job.run = run_job;
  tokd_watchdog_phase(ctx->wd, WD_WORK);
  MHD_suspend_connection(ctx->conn);
  tokd_pool_submit(srv->pool, &ctx->job);
  return MHD_YES;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *c, const char *url,
                                 const char *method, const char *version,
                                 const char *upload_data, size_t *upload_data_size,
                                 void **con_cls)
{
  (void)cls;
  req_ctx *ctx = *con_cls;
  if (!ctx) return MHD_NO; /* out of memory at the request line */
  if (ctx->state == ST_NEW) return begin(ctx, url, method, version);
  if (*upload_data_size > 0) {
    size_t n = *upload_data_size;
    *upload_data_size = 0;
    return body_data(ctx, upload_data, n);
  }
  (void)c;
  switch (ctx->state) {
  case ST_BODY: return complete(ctx);
  case ST_DONE: return queue_answer(ctx, "application/json");
  default: return MHD_YES; /* answered, or still with the pool */
  }
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
  tokd_server *srv = cls;
  (void)c;
  req_ctx *ctx = *con_cls;
  if (!ctx) return;
  double seconds = tokd_now() - ctx->started;
  unsigned status = ctx->status;
  if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && ctx->state != ST_ANSWERED) status = 499; /* client went away */
  tokd_metrics_record(srv->metrics, ctx->ep, status, seconds, ctx->body.len, ctx->tokens, ctx->cpu_s);
  tokd_log_level level = status >= 500 ? LOG_ERROR : status >= 400 ? LOG_WARN : LOG_INFO;
  tokd_log(level, level,
           "\"msg\":\"request\",\"method\":\"%s\",\"path\":\"%s\",\"status\":%u,\"duration_ms\":%.3f,"
           "\"bytes_in\":%zu,\"tokens\":%llu,\"request_id\":\"%s\"%s",
           ctx->method ? ctx->method : "OTHER", ctx->ep == EP_OTHER ? "other" : TOKD_ROUTES[ctx->ep].path,
           status, seconds * 1e3, ctx->body.len, ctx->tokens, ctx->request_id,
           toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED ? ",\"error\":\"timeout\"" : "");
  if (ctx->counted) atomic_fetch_sub(&srv->inflight, 1);
  atomic_fetch_sub(&srv->active, 1);
  if (ctx->reserved) tokd_budget_give(srv->budget, ctx->reserved);
  tokd_watchdog_phase(ctx->wd, WD_IDLE);
  for (size_t i = 0; i < ctx->n_query; i++) free((char *)ctx->query[i].key);
  free(ctx->query);
  free(ctx->answer);
  tok_buf_free(&ctx->body);
  free(ctx);
  *con_cls = NULL;
}

/* ---------------------------------------------------------------------------------------
 * Start and stop (server.c calls these)
 */
int tokd_http_start(tokd_server *srv)
{
  struct sockaddr_storage addr = {0};
  /* epoll thread pool; a single thread uses poll(2) instead: measured with tokd-load, the
   * single-threaded epoll mode of libmicrohttpd 0.9.75 stopped accepting a burst of 256 new
   * connections (they sat in the accept queue until they timed out), poll did not */
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC | MHD_ALLOW_SUSPEND_RESUME |
                   (srv->io_threads > 1 ? MHD_USE_EPOLL : MHD_USE_POLL);
  const tokd_listen_spec *ls = &srv->cfg.listen;
  /* libmicrohttpd's own listener: the TCP address, else the first Unix socket (listen.h) */
  struct MHD_OptionItem where[] = {{MHD_OPTION_END, 0, NULL}, {MHD_OPTION_END, 0, NULL}};
  if (ls->tcp) {
    struct sockaddr_in *in4 = (struct sockaddr_in *)&addr;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&addr;
    if (inet_pton(AF_INET, srv->cfg.host, &in4->sin_addr) == 1) {
      in4->sin_family = AF_INET;
      in4->sin_port = htons((uint16_t)srv->cfg.port);
    } else if (inet_pton(AF_INET6, srv->cfg.host, &in6->sin6_addr) == 1) {
      in6->sin6_family = AF_INET6;
      in6->sin6_port = htons((uint16_t)srv->cfg.port);
      flags |= MHD_USE_IPv6;
    } else {
      fprintf(stderr, "tokd: --host %s is not an IPv4 or IPv6 address\n", srv->cfg.host);
      return 2;
    }
    where[0] = (struct MHD_OptionItem){MHD_OPTION_SOCK_ADDR, 0, &addr};
  } else {
    where[0] = (struct MHD_OptionItem){MHD_OPTION_LISTEN_SOCKET, tokd_listener_fd(srv->listener, 0), NULL};
    tokd_listener_hand_over(srv->listener, 1);
  }
  srv->http = MHD_start_daemon(
      flags, (uint16_t)srv->cfg.port, NULL, NULL, on_access, srv,
      MHD_OPTION_ARRAY, where,
      MHD_OPTION_THREAD_POOL_SIZE, srv->io_threads > 1 ? srv->io_threads : 0u,
      MHD_OPTION_CONNECTION_LIMIT, srv->max_connections,
      MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)srv->cfg.conn_timeout_s,
      /* the request head (at most about 15 KiB: 431 beyond), one read buffer and our small
       * writes; bodies are buffered by us (in the request's reservation), not here */
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, TOKD_CONN_POOL,
      MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u,
      MHD_OPTION_URI_LOG_CALLBACK, on_uri, srv,
      MHD_OPTION_NOTIFY_CONNECTION, on_connection, srv,
      MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
      MHD_OPTION_END);
  if (!srv->http || !tokd_listener_start(srv->listener, srv->http)) {
    int why = errno;
    if (srv->http) MHD_stop_daemon(srv->http), srv->http = NULL;
    if (ls->tcp) fprintf(stderr, "tokd: cannot listen on %s:%u: %s\n", srv->cfg.host, srv->cfg.port, strerror(why));
    else fprintf(stderr, "tokd: cannot listen on unix:%s: %s\n", ls->unix_paths[0], strerror(why));
    return 1;
  }
  return 0;
}

void tokd_http_quiesce(tokd_server *srv)
{
  MHD_socket listen_fd = MHD_quiesce_daemon(srv->http);
  if (listen_fd != MHD_INVALID_SOCKET) close(listen_fd);
}

void tokd_http_stop(tokd_server *srv)
{
  MHD_stop_daemon(srv->http);
  srv->http = NULL;
}

unsigned tokd_http_port(const tokd_server *srv)
{
  if (!srv->cfg.listen.tcp) return 0;
  const union MHD_DaemonInfo *info = srv->http ? MHD_get_daemon_info(srv->http, MHD_DAEMON_INFO_BIND_PORT) : NULL;
  return info ? info->port : srv->cfg.port;
}
