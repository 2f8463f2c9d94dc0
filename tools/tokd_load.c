/*
 * tokd_load.c — `tokd-load`: an open-loop load generator and fleet-sizing report for any
 * running tokd. Its own binary: a load generator is a tool for the machine that drives the
 * test, not part of the sidecar image.
 *
 * Open loop: request i is due at t0 + i / rate whatever happened to earlier ones, and its
 * latency is measured from that due time, not from when a connection became free. A
 * closed-loop tool (wrk) waits for answers before sending more and so hides queueing —
 * "coordinated omission" — exactly when the server saturates; this one does not.
 *
 * One thread, epoll, keep-alive connections opened on demand up to --connections. Bodies
 * are prepared before the clock starts: texts cut from a corpus (or generated) with sizes
 * drawn from a log-normal distribution, and id lists for /decode made by encoding them
 * with the same core library. After the sweep it reports, per rate: throughput, p50, p99,
 * p99.9 latency, errors and the server's CPU (from its /metrics); then the capacity at the
 * p99 target, capacity per core, and replicas for a peak rate with headroom, with the
 * concurrency Little's law gives (L = rate x mean latency).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tok.h"
#include "util.h"

#define MAX_CONNS 4096
#define N_BODIES 256
#define RBUF 65536

typedef enum { EP_ENC, EP_CNT, EP_DEC, N_EP } ep_kind;
static const char *const EP_PATH[N_EP] = {"/encode", "/count", "/decode"};

typedef struct request_tpl {
  char *bytes; /* the whole HTTP request */
  size_t len;
} request_tpl;

typedef struct conn {
  int fd;
  bool busy, connecting;
  double due;  /* when the request in flight was due */
  const request_tpl *req;
  size_t sent;
  char rbuf[RBUF];
  size_t rlen;
} conn;

typedef struct step_result {
  double rate, achieved, p50, p99, p999, mean, cpu_per_req_us, server_cores;
  unsigned long long ok, errors, late_starts;
} step_result;

typedef struct load_opts {
  const char *host, *port, *corpus, *encoding;
  double rates[64];
  int n_rates;
  double duration, p99_target_ms, peak_rate, headroom, median_bytes, sigma;
  int max_conns;
  unsigned weights[N_EP];
  bool json;
} load_opts;

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static double rnd(void) /* [0, 1) */
{
  rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
  return (double)(rng_state >> 11) / 9007199254740992.0;
}

static int cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static int open_conn(const struct addrinfo *ai)
{
  int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
    close(fd);
    return -1;
  }
  return fd;
}

/* Appends text as a JSON string (the corpus is valid UTF-8: validated when loaded). */
static void json_text(tok_buf *b, const char *s, size_t n)
{
  tok_buf_append(b, "\"", 1);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    char esc[8];
    if (c == '"' || c == '\\') esc[0] = '\\', esc[1] = (char)c, tok_buf_append(b, esc, 2);
    else if (c < 0x20) tok_buf_append(b, esc, (size_t)snprintf(esc, sizeof esc, "\\u%04x", c));
    else tok_buf_append(b, s + i, 1);
  }
  tok_buf_append(b, "\"", 1);
}

static void make_request(request_tpl *r, const load_opts *o, ep_kind ep, const char *body, size_t len)
{
  tok_buf b = {0};
  char head[256];
  int n = snprintf(head, sizeof head,
                   "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                   "Content-Length: %zu\r\n\r\n", EP_PATH[ep], o->host, len);
  tok_buf_append(&b, head, (size_t)n);
  tok_buf_append(&b, body, len);
  r->bytes = b.data;
  r->len = b.len;
}

/* Builds N_BODIES requests per endpoint from the corpus (or a generated text). */
static int prepare(const load_opts *o, request_tpl reqs[N_EP][N_BODIES])
{
  tok_buf corpus = {.limit = (size_t)1 << 30};
  if (o->corpus) {
    FILE *f = fopen(o->corpus, "rb");
    if (!f) return fprintf(stderr, "tokd-load: %s: %s\n", o->corpus, strerror(errno)), 2;
    for (;;) {
      if (tok_buf_reserve(&corpus, 1 << 16) != TOK_OK) break;
      size_t got = fread(corpus.data + corpus.len, 1, corpus.cap - corpus.len, f);
      corpus.len += got;
      if (!got) break;
    }
    fclose(f);
    size_t bad;
    if (!tok_utf8_valid(corpus.data, corpus.len, &bad))
      return fprintf(stderr, "tokd-load: %s: invalid UTF-8 at byte %zu\n", o->corpus, bad), 2;
  } else {
    static const char *words[] = {"the", "service", "encodes", "text", "into", "tokens", "quickly",
                                  "and", "exactly,", "while", "sidecars", "scale", "out.", "Résumé",
                                  "naïve", "数据", "модель", "42", "\n"};
    while (corpus.len < 1 << 20) {
      const char *w = words[(size_t)(rnd() * 19)];
      tok_buf_append(&corpus, w, strlen(w));
      tok_buf_append(&corpus, " ", 1);
    }
  }
  if (corpus.len < 64) return fprintf(stderr, "tokd-load: corpus too small\n"), 2;
  tok_registry *reg;
  tok_error err;
  tok_load_opts lo = {.encodings = o->encoding};
  if (tok_registry_load(&lo, &reg, &err) != TOK_OK)
    return fprintf(stderr, "tokd-load: %s\n", err.detail), 2;
  const tok_encoding *enc = tok_registry_at(reg, 0);
  tok_scratch *scratch = tok_scratch_new(NULL);
  for (int i = 0; i < N_BODIES; i++) {
    /* log-normal sizes around the median, cut at character boundaries */
    double z = sqrt(-2 * log(1 - rnd())) * cos(6.283185307179586 * rnd());
    size_t want = (size_t)(o->median_bytes * exp(o->sigma * z));
    if (want < 1) want = 1;
    if (want > corpus.len / 2) want = corpus.len / 2;
    size_t start = (size_t)(rnd() * (double)(corpus.len - want));
    while (start > 0 && (corpus.data[start] & 0xC0) == 0x80) start--;
    size_t end = start + want;
    while (end < corpus.len && (corpus.data[end] & 0xC0) == 0x80) end++;
    tok_buf body = {0};
    for (int ep = 0; ep < 2; ep++) {
      body.len = 0;
      tok_buf_append(&body, "{\"text\":", 8);
      json_text(&body, corpus.data + start, end - start);
      tok_buf_append(&body, "}", 1);
      make_request(&reqs[ep][i], o, (ep_kind)ep, body.data, body.len);
    }
    tok_encode_result r;
    body.len = 0;
    tok_buf_append(&body, "{\"tokens\":[", 11);
    if (tok_encode(enc, scratch, corpus.data + start, end - start, NULL, &r, NULL) == TOK_OK)
      for (size_t k = 0; k < r.len; k++) {
        char num[16];
        tok_buf_append(&body, num, (size_t)snprintf(num, sizeof num, k ? ",%u" : "%u", r.ids[k]));
      }
    tok_buf_append(&body, "]}", 2);
    make_request(&reqs[EP_DEC][i], o, EP_DEC, body.data, body.len);
    tok_buf_free(&body);
  }
  tok_scratch_free(scratch);
  tok_registry_free(reg);
  tok_buf_free(&corpus);
  return 0;
}

/* The server's process_cpu_seconds_total from /metrics (blocking; between steps only). */
static double server_cpu(const struct addrinfo *ai, const char *host)
{
  int fd = socket(ai->ai_family, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  struct timeval tv = {2, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  double cpu = -1;
  if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
    char req[256];
    int n = snprintf(req, sizeof req, "GET /metrics HTTP/1.0\r\nHost: %s\r\n\r\n", host);
    if (write(fd, req, (size_t)n) == n) {
      tok_buf b = {.limit = 1 << 22};
      ssize_t got;
      while (tok_buf_reserve(&b, 8192) == TOK_OK && (got = read(fd, b.data + b.len, 8192)) > 0)
        b.len += (size_t)got;
      if (tok_buf_append(&b, "", 1) == TOK_OK) {
        const char *p = strstr(b.data, "\nprocess_cpu_seconds_total ");
        if (p) cpu = strtod(p + 27, NULL);
      }
      tok_buf_free(&b);
    }
  }
  close(fd);
  return cpu;
}

/* Parses a complete response at the start of c->rbuf; returns its length, 0 if incomplete.
 * *status and *close_after are set. */
static size_t parse_response(conn *c, int *status, bool *close_after)
{
  char *end = memmem(c->rbuf, c->rlen, "\r\n\r\n", 4);
  if (!end) return 0;
  size_t head = (size_t)(end - c->rbuf) + 4;
  *status = c->rlen > 12 ? atoi(c->rbuf + 9) : 0;
  size_t body = 0;
  *close_after = false;
  for (char *p = c->rbuf; p < end;) {
    char *eol = memmem(p, (size_t)(end - p) + 2, "\r\n", 2);
    if (!eol) break;
    if (!strncasecmp(p, "Content-Length:", 15)) body = strtoull(p + 15, NULL, 10);
    if (!strncasecmp(p, "Connection:", 11) && strcasestr(p, "close") && strcasestr(p, "close") < eol)
      *close_after = true;
    p = eol + 2;
  }
  return c->rlen >= head + body ? head + body : 0;
}

static void run_step(const load_opts *o, const struct addrinfo *ai, request_tpl reqs[N_EP][N_BODIES],
                     double rate, step_result *res)
{
  conn *conns = calloc((size_t)o->max_conns, sizeof *conns);
  size_t total = (size_t)(rate * o->duration);
  double *lat = malloc((total + 1) * sizeof *lat);
  size_t *queue = malloc((total + 1) * sizeof *queue); /* due indices waiting for a conn */
  size_t q_head = 0, q_tail = 0, n_lat = 0, next = 0, done = 0;
  int n_open = 0, ep = epoll_create1(EPOLL_CLOEXEC);
  unsigned wsum = o->weights[0] + o->weights[1] + o->weights[2];
  memset(res, 0, sizeof *res);
  res->rate = rate;
  double cpu0 = server_cpu(ai, o->host);
  double t0 = tokd_now() + 0.01, last_progress = t0, deadline = t0 + o->duration + 5;
  for (int i = 0; i < o->max_conns; i++) conns[i].fd = -1;

  while (done < total && tokd_now() < deadline) {
    double t = tokd_now();
    while (next < total && t0 + (double)next / rate <= t) queue[q_tail++] = next++;
    /* hand waiting requests to idle connections, opening new ones if needed */
    for (int i = 0; i < o->max_conns && q_head < q_tail; i++) {
      conn *c = &conns[i];
      if (c->busy) continue;
      if (c->fd < 0) {
        if ((c->fd = open_conn(ai)) < 0) {
          res->errors++, q_head++, done++;
          continue;
        }
        n_open++;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
      }
      size_t idx = queue[q_head++];
      double pick = rnd() * wsum;
      ep_kind k = pick < o->weights[0] ? EP_ENC : pick < o->weights[0] + o->weights[1] ? EP_CNT : EP_DEC;
      c->req = &reqs[k][(size_t)(rnd() * N_BODIES)];
      c->due = t0 + (double)idx / rate;
      c->busy = true;
      c->sent = 0;
      c->rlen = 0;
      if (t - c->due > 0.001) res->late_starts++;
      ssize_t w = send(c->fd, c->req->bytes, c->req->len, MSG_NOSIGNAL);
      if (w > 0) c->sent = (size_t)w;
    }
    double wait_ms = next < total ? (t0 + (double)next / rate - tokd_now()) * 1e3 : 50;
    struct epoll_event evs[256];
    int n = epoll_wait(ep, evs, 256, wait_ms < 0 ? 0 : (int)wait_ms);
    double t_ev = tokd_now();
    for (int e = 0; e < n; e++) {
      conn *c = &conns[evs[e].data.u32];
      if (!c->busy) { /* an idle keep-alive connection only hears the server closing it */
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
        n_open--;
        continue;
      }
      bool failed = (evs[e].events & EPOLLERR) != 0, drop = false;
      if (!failed && c->sent < c->req->len) {
        ssize_t w = send(c->fd, c->req->bytes + c->sent, c->req->len - c->sent, MSG_NOSIGNAL);
        if (w > 0) c->sent += (size_t)w;
        else if (w < 0 && errno != EAGAIN) failed = true;
      }
      while (!failed) {
        ssize_t r = recv(c->fd, c->rbuf + c->rlen, RBUF - c->rlen - 1, 0);
        if (r > 0) c->rlen += (size_t)r;
        else if (r == 0 || errno != EAGAIN) failed = true;
        int status;
        bool close_after;
        size_t len = parse_response(c, &status, &close_after);
        if (len) { /* answered: a non-2xx status counts as an error */
          if (status >= 200 && status < 300) res->ok++, lat[n_lat++] = t_ev - c->due;
          else res->errors++;
          done++;
          c->busy = false;
          drop = close_after;
          break;
        }
        if (c->rlen >= RBUF - 1) failed = true; /* larger than we read: count as an error */
        if (r <= 0) break;
      }
      if (failed && c->busy) { /* the request in flight is lost */
        res->errors++;
        done++;
        c->busy = false;
      }
      if (failed || drop) {
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
        n_open--;
      }
    }
    if (t_ev - last_progress >= 1 && !o->json) {
      fprintf(stderr, "\r  rate %8.0f/s  t=%4.1fs  sent %zu  done %zu  waiting %zu  conns %d   ",
              rate, t_ev - t0, next, done, q_tail - q_head, n_open);
      last_progress = t_ev;
    }
  }
  double elapsed = tokd_now() - t0;
  res->errors += total - done; /* never answered before the deadline */
  for (int i = 0; i < o->max_conns; i++)
    if (conns[i].fd >= 0) close(conns[i].fd);
  close(ep);
  double cpu1 = server_cpu(ai, o->host);
  if (!o->json) fprintf(stderr, "\r%100s\r", "");
  qsort(lat, n_lat, sizeof *lat, cmp_double);
  double sum = 0;
  for (size_t i = 0; i < n_lat; i++) sum += lat[i];
#define PCT(p) (n_lat ? lat[(size_t)((p) * (double)(n_lat - 1))] * 1e3 : NAN)
  res->p50 = PCT(0.5);
  res->p99 = PCT(0.99);
  res->p999 = PCT(0.999);
  res->mean = n_lat ? sum / (double)n_lat * 1e3 : NAN;
  res->achieved = (double)res->ok / (elapsed < o->duration ? o->duration : elapsed);
  if (cpu0 >= 0 && cpu1 >= cpu0 && res->ok) {
    res->cpu_per_req_us = (cpu1 - cpu0) / (double)res->ok * 1e6;
    res->server_cores = (cpu1 - cpu0) / elapsed;
  } else {
    res->cpu_per_req_us = res->server_cores = NAN;
  }
  free(conns);
  free(lat);
  free(queue);
}

static const char LOAD_USAGE[] =
    "usage: tokd-load [OPTIONS]\n"
    "Open-loop (constant arrival rate) load against a running tokd, then a sizing report.\n"
    "  --url http://HOST:PORT     server (default http://127.0.0.1:8080)\n"
    "  --rates R1,R2,...          requests/s to sweep (default 500,1000,2000,5000,10000,20000)\n"
    "  --duration S               seconds per rate (default 10)\n"
    "  --connections N            most connections (default 256)\n"
    "  --mix E,C,D                weights of /encode, /count, /decode (default 8,1,1)\n"
    "  --corpus FILE              UTF-8 text to cut request texts from (default: generated)\n"
    "  --median-bytes B --sigma S request text sizes: log-normal (default 1024, 0.8)\n"
    "  --encoding NAME            encoding for /decode bodies (default cl100k_base)\n"
    "  --p99-target-ms MS         latency objective (default 50)\n"
    "  --peak-rate R              peak requests/s the fleet must carry (default 100000)\n"
    "  --headroom F               spare fraction kept on each replica (default 0.3)\n"
    "  --json                     one JSON document on stdout instead of text\n";

static void print_json_number(double v, int decimals)
{
  if (isfinite(v)) printf("%.*f", decimals, v);
  else printf("null");
}

int main(int argc, char **argv)
{
  load_opts o = {.host = "127.0.0.1", .port = "8080", .encoding = "cl100k_base", .duration = 10,
                 .p99_target_ms = 50, .peak_rate = 100000, .headroom = 0.3, .median_bytes = 1024,
                 .sigma = 0.8, .max_conns = 256, .weights = {8, 1, 1}};
  static const double default_rates[] = {500, 1000, 2000, 5000, 10000, 20000};
  memcpy(o.rates, default_rates, sizeof default_rates);
  o.n_rates = 6;
  static char hostbuf[256], portbuf[16];
  static const struct option longs[] = {
      {"url", 1, 0, 'u'}, {"rates", 1, 0, 'r'}, {"duration", 1, 0, 'd'}, {"connections", 1, 0, 'c'},
      {"mix", 1, 0, 'm'}, {"corpus", 1, 0, 'f'}, {"median-bytes", 1, 0, 'b'}, {"sigma", 1, 0, 's'},
      {"encoding", 1, 0, 'e'}, {"p99-target-ms", 1, 0, 't'}, {"peak-rate", 1, 0, 'p'},
      {"headroom", 1, 0, 'H'}, {"json", 0, 0, 'j'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
  int ch;
  while ((ch = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
    switch (ch) {
    case 'u':
      if (sscanf(optarg, "http://%255[^:/]:%15[0-9]", hostbuf, portbuf) < 1)
        return fprintf(stderr, "tokd-load: --url must look like http://HOST:PORT\n"), 2;
      o.host = hostbuf;
      if (portbuf[0]) o.port = portbuf;
      break;
    case 'r':
      o.n_rates = 0;
      for (char *p = optarg; *p && o.n_rates < 64;) {
        double r = strtod(p, &p);
        if (!(r > 0)) return fprintf(stderr, "tokd-load: --rates takes positive numbers\n"), 2;
        o.rates[o.n_rates++] = r;
        if (*p == ',') p++;
      }
      break;
    case 'd': o.duration = atof(optarg); break;
    case 'c': o.max_conns = atoi(optarg); break;
    case 'm':
      if (sscanf(optarg, "%u,%u,%u", &o.weights[0], &o.weights[1], &o.weights[2]) != 3 ||
          o.weights[0] + o.weights[1] + o.weights[2] == 0)
        return fprintf(stderr, "tokd-load: --mix takes three weights, e.g. 8,1,1\n"), 2;
      break;
    case 'f': o.corpus = optarg; break;
    case 'b': o.median_bytes = atof(optarg); break;
    case 's': o.sigma = atof(optarg); break;
    case 'e': o.encoding = optarg; break;
    case 't': o.p99_target_ms = atof(optarg); break;
    case 'p': o.peak_rate = atof(optarg); break;
    case 'H': o.headroom = atof(optarg); break;
    case 'j': o.json = true; break;
    case 'h': fputs(LOAD_USAGE, stdout); return 0;
    default: fputs(LOAD_USAGE, stderr); return 2;
    }
  }
  if (!(o.duration > 0) || o.max_conns < 1 || o.max_conns > MAX_CONNS || !(o.median_bytes >= 1) ||
      !(o.headroom >= 0 && o.headroom < 1))
    return fprintf(stderr, "tokd-load: out-of-range option; see --help\n"), 2;
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
  if (getaddrinfo(o.host, o.port, &hints, &ai) != 0)
    return fprintf(stderr, "tokd-load: cannot resolve %s\n", o.host), 2;
  static request_tpl reqs[N_EP][N_BODIES];
  int rc = prepare(&o, reqs);
  if (rc) return rc;

  step_result res[64];
  if (!o.json)
    printf("%10s %10s %9s %9s %9s %9s %8s %10s %7s\n", "rate/s", "done/s", "p50 ms", "p99 ms",
           "p99.9 ms", "mean ms", "errors", "cpu us/req", "cores");
  for (int i = 0; i < o.n_rates; i++) {
    run_step(&o, ai, reqs, o.rates[i], &res[i]);
    if (!o.json) {
      printf("%10.0f %10.0f %9.3f %9.3f %9.3f %9.3f %8llu %10.1f %7.2f\n", res[i].rate,
             res[i].achieved, res[i].p50, res[i].p99, res[i].p999, res[i].mean, res[i].errors,
             res[i].cpu_per_req_us, res[i].server_cores);
      fflush(stdout);
    }
  }
  /* capacity: the highest rate that met the p99 target, without errors, and was kept up */
  int best = -1;
  for (int i = 0; i < o.n_rates; i++)
    if (res[i].p99 <= o.p99_target_ms && res[i].errors == 0 && res[i].achieved >= 0.95 * res[i].rate &&
        (best < 0 || res[i].rate > res[best].rate))
      best = i;
  double capacity = best >= 0 ? res[best].achieved : 0;
  double cores = best >= 0 ? res[best].server_cores : NAN;
  double per_core = best >= 0 && cores > 0 ? capacity / cores : NAN;
  double usable = capacity * (1 - o.headroom);
  double replicas = usable > 0 ? ceil(o.peak_rate / usable) : NAN;
  double little = best >= 0 ? res[best].rate * res[best].mean / 1e3 : NAN;
  if (o.json) {
    printf("{\"url\":\"http://%s:%s\",\"duration_s\":%g,\"p99_target_ms\":%g,\"steps\":[", o.host,
           o.port, o.duration, o.p99_target_ms);
    for (int i = 0; i < o.n_rates; i++)
      printf("%s{\"rate\":%g,\"achieved\":%.1f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"p999_ms\":%.3f,"
             "\"mean_ms\":%.3f,\"ok\":%llu,\"errors\":%llu,\"cpu_us_per_request\":%.1f,\"server_cores\":%.3f}",
             i ? "," : "", res[i].rate, res[i].achieved, res[i].p50, res[i].p99, res[i].p999,
             res[i].mean, res[i].ok, res[i].errors, res[i].cpu_per_req_us, res[i].server_cores);
    /* figures that do not exist (no rate met the objective) are null */
    printf("],\"capacity_rps\":%.1f,\"server_cores_at_capacity\":", capacity);
    print_json_number(cores, 3);
    printf(",\"capacity_per_core_rps\":");
    print_json_number(per_core, 1);
    printf(",\"peak_rate\":%g,\"headroom\":%g,\"replicas\":", o.peak_rate, o.headroom);
    print_json_number(replicas, 0);
    printf(",\"concurrency_at_capacity\":");
    print_json_number(little, 2);
    printf("}\n");
  } else if (best < 0) {
    printf("\nno rate met p99 <= %g ms without errors: lower --rates or raise --p99-target-ms\n",
           o.p99_target_ms);
  } else {
    printf("\ncapacity at p99 <= %g ms: %.0f requests/s using %.2f server cores -> %.0f requests/s per core\n",
           o.p99_target_ms, capacity, cores, per_core);
    printf("Little's law at that rate: %.1f requests in flight on average (rate x mean latency)\n", little);
    printf("peak %.0f requests/s with %.0f%% headroom: %.0f replicas like this one (each at most %.0f requests/s)\n",
           o.peak_rate, o.headroom * 100, replicas, usable);
  }
  freeaddrinfo(ai);
  for (int e = 0; e < N_EP; e++)
    for (int i = 0; i < N_BODIES; i++) free(reqs[e][i].bytes);
  return best >= 0 ? 0 : 1;
}
