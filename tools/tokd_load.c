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
 *
 * Cost: the target's CPU comes from its /metrics (tokd), or from /proc for --pid (the
 * process and its children: any server) or a cgroup v2 directory (--cgroup: a container).
 * Tokens are counted here, by encoding each prepared text with the core library, so the
 * per-token figures mean the same for every server. Energy is the server's own figure
 * where it reports one (tokd_energy_joules_total, measured or modelled), else modelled
 * here from its CPU time (--watts-per-core); the report says which.
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
#include <sys/un.h>
#include <dirent.h>
#include <time.h>
#include <signal.h>
#include <sys/time.h>
#include <unistd.h>

#include "tok.h"
#include "common/cpu.h"
#include "common/util.h"

#define MAX_CONNS 4096
#define N_BODIES 256
#define RBUF 65536

typedef enum { EP_ENC, EP_CNT, EP_DEC, N_EP } ep_kind;
static const char *const EP_PATH[N_EP] = {"/encode", "/count", "/decode"};

typedef struct request_tpl {
  char *bytes; /* the whole HTTP request */
  size_t len;
  size_t tokens; /* the tokens its text has (or its ids are) */
} request_tpl;

/* Where the server listens: TCP or a Unix socket. */
typedef struct target {
  struct sockaddr_storage addr;
  socklen_t len;
} target;

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
  double tokens_per_s, cpu_us_per_ktok, joules_per_mtok, rss_bytes, rss_max_process;
  int processes;
  bool energy_measured, energy_from_server;
  unsigned long long ok, errors, late_starts;
} step_result;

/* What the target has spent so far (NAN: not known). */
typedef struct usage {
  double cpu, joules, rss, rss_max;
  int processes, energy_measured; /* -1: the server does not say */
} usage;

typedef struct load_opts {
  const char *host, *port, *unix_path, *corpus, *encoding, *cgroup, *svg;
  double rates[64];
  int n_rates;
  double duration, p99_target_ms, peak_rate, headroom, cpu_ceiling, median_bytes, sigma;
  double watts_per_core, replica_cores;
  int max_conns, pid;
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

static int open_conn(const target *tg, bool blocking)
{
  int fd = socket(tg->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC | (blocking ? 0 : SOCK_NONBLOCK), 0);
  if (fd < 0) return -1;
  int one = 1;
  if (tg->addr.ss_family != AF_UNIX) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(fd, (const struct sockaddr *)&tg->addr, tg->len) != 0 && errno != EINPROGRESS && errno != EAGAIN) {
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
    tok_encode_result r = {0};
    body.len = 0;
    tok_buf_append(&body, "{\"tokens\":[", 11);
    if (tok_encode(enc, scratch, corpus.data + start, end - start, NULL, &r, NULL) != TOK_OK) r.len = 0;
    for (size_t k = 0; k < r.len; k++) {
      char num[16];
      tok_buf_append(&body, num, (size_t)snprintf(num, sizeof num, k ? ",%u" : "%u", r.ids[k]));
    }
    tok_buf_append(&body, "]}", 2);
    make_request(&reqs[EP_DEC][i], o, EP_DEC, body.data, body.len);
    for (int ep = 0; ep < N_EP; ep++) reqs[ep][i].tokens = r.len;
    tok_buf_free(&body);
  }
  tok_scratch_free(scratch);
  tok_registry_free(reg);
  tok_buf_free(&corpus);
  return 0;
}

/* A figure from a /metrics text, NAN if absent. */
static double metric(const char *text, const char *name)
{
  size_t n = strlen(name);
  for (const char *p = text; (p = strstr(p, name)); p += n)
    if ((p == text || p[-1] == '\n') && p[n] == ' ') return strtod(p + n + 1, NULL);
  return NAN;
}

/* The server's own figures from its /metrics (blocking; between steps only). */
static void scrape(const target *tg, const char *host, usage *u)
{
  int fd = open_conn(tg, true);
  if (fd < 0) return;
  struct timeval tv = {2, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char req[256];
  int n = snprintf(req, sizeof req, "GET /metrics HTTP/1.0\r\nHost: %s\r\n\r\n", host);
  if (write(fd, req, (size_t)n) == n) {
    tok_buf b = {.limit = 1 << 22};
    ssize_t got;
    while (tok_buf_reserve(&b, 8192) == TOK_OK && (got = read(fd, b.data + b.len, 8192)) > 0)
      b.len += (size_t)got;
    if (tok_buf_append(&b, "", 1) == TOK_OK && !strncmp(b.data, "HTTP/1.", 7) && !strncmp(b.data + 9, "200", 3)) {
      u->cpu = metric(b.data, "process_cpu_seconds_total");
      u->rss = u->rss_max = metric(b.data, "process_resident_memory_bytes");
      if (isfinite(u->rss)) u->processes = 1;
      u->joules = metric(b.data, "tokd_energy_joules_total");
      double measured = metric(b.data, "tokd_energy_measured");
      u->energy_measured = isfinite(measured) ? measured > 0 : -1;
    }
    tok_buf_free(&b);
  }
  close(fd);
}

/* The sum of a process's threads' time on a CPU (/proc/PID/task/TID/schedstat), ns. */
static double threads_run_ns(int pid)
{
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/task", pid);
  DIR *d = opendir(path);
  if (!d) return 0;
  double ns = 0;
  for (struct dirent *e; (e = readdir(d));) {
    if (e->d_name[0] == '.') continue;
    char stat_path[96];
    snprintf(stat_path, sizeof stat_path, "/proc/%d/task/%.16s/schedstat", pid, e->d_name);
    FILE *f = fopen(stat_path, "r");
    unsigned long long run;
    if (f && fscanf(f, "%llu", &run) == 1) ns += (double)run;
    if (f) fclose(f);
  }
  closedir(d);
  return ns;
}

/* CPU seconds and resident bytes of pid and its descendants, from /proc. */
static void proc_tree(int pid, usage *u)
{
  enum { MAX_PROCS = 4096 };
  static int pids[MAX_PROCS], parents[MAX_PROCS];
  static double cpu[MAX_PROCS], rss[MAX_PROCS];
  static bool in[MAX_PROCS];
  int n = 0;
  double tick = (double)sysconf(_SC_CLK_TCK), page = (double)sysconf(_SC_PAGESIZE);
  DIR *d = opendir("/proc");
  if (!d) return;
  for (struct dirent *e; (e = readdir(d)) && n < MAX_PROCS;) {
    int p = atoi(e->d_name);
    if (p <= 0) continue;
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", p);
    FILE *f = fopen(path, "r");
    if (!f) continue;
    size_t got = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[got] = '\0';
    const char *fields = strrchr(buf, ')'); /* the command name may hold anything */
    int ppid;
    unsigned long ut, st;
    long rss_pages;
    if (fields && sscanf(fields + 2, "%*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d %*d %*d "
                         "%*u %*u %ld", &ppid, &ut, &st, &rss_pages) == 4) {
      pids[n] = p, parents[n] = ppid, in[n] = p == pid;
      cpu[n] = (double)(ut + st) / tick, rss[n] = (double)rss_pages * page;
      /* the ticks count 10 ms each, too coarse for a few seconds at a low rate: the
       * threads' run time in nanoseconds instead, where the kernel keeps it (it misses
       * threads that have ended: servers here keep theirs) */
      double ns = threads_run_ns(p);
      if (ns > 0) cpu[n] = ns / 1e9;
      n++;
    }
  }
  closedir(d);
  /* the tree: pid, then whoever has a member of it as parent, until nothing is added */
  for (bool grew = true; grew;) {
    grew = false;
    for (int i = 0; i < n; i++)
      for (int j = 0; j < n && !in[i]; j++)
        if (in[j] && parents[i] == pids[j]) in[i] = grew = true;
  }
  u->cpu = u->rss = u->rss_max = 0;
  u->processes = 0;
  for (int i = 0; i < n; i++) {
    if (!in[i]) continue;
    u->cpu += cpu[i];
    u->rss += rss[i];
    if (rss[i] > u->rss_max) u->rss_max = rss[i];
    u->processes++;
  }
}

/* CPU seconds and memory of a cgroup v2 (a container's). */
static void cgroup_usage(const char *dir, usage *u)
{
  char path[1024], line[256];
  snprintf(path, sizeof path, "%s/cpu.stat", dir);
  FILE *f = fopen(path, "r");
  if (f) {
    while (fgets(line, sizeof line, f))
      if (!strncmp(line, "usage_usec ", 11)) u->cpu = strtod(line + 11, NULL) / 1e6;
    fclose(f);
  }
  snprintf(path, sizeof path, "%s/memory.current", dir);
  if ((f = fopen(path, "r"))) {
    double v;
    if (fscanf(f, "%lf", &v) == 1) u->rss = u->rss_max = v;
    fclose(f);
  }
}

static void target_usage(const load_opts *o, const target *tg, usage *u)
{
  *u = (usage){NAN, NAN, NAN, NAN, 0, -1};
  scrape(tg, o->host, u); /* energy from the server even when CPU comes from elsewhere */
  if (o->pid > 0) proc_tree(o->pid, u);
  else if (o->cgroup) cgroup_usage(o->cgroup, u);
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

static void run_step(const load_opts *o, const target *tg, request_tpl reqs[N_EP][N_BODIES],
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
  usage u0, u1;
  double tokens = 0;
  target_usage(o, tg, &u0);
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
        if ((c->fd = open_conn(tg, false)) < 0) {
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
          if (status >= 200 && status < 300) res->ok++, lat[n_lat++] = t_ev - c->due, tokens += (double)c->req->tokens;
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
  target_usage(o, tg, &u1);
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
  double cpu = u1.cpu - u0.cpu; /* NAN when not known */
  res->tokens_per_s = tokens / elapsed;
  res->cpu_per_req_us = res->server_cores = res->cpu_us_per_ktok = res->joules_per_mtok = NAN;
  if (cpu >= 0 && res->ok) {
    res->cpu_per_req_us = cpu / (double)res->ok * 1e6;
    res->server_cores = cpu / elapsed;
    if (tokens > 0) res->cpu_us_per_ktok = cpu / tokens * 1e9;
  }
  double joules = u1.joules - u0.joules;
  res->energy_from_server = joules >= 0;
  res->energy_measured = res->energy_from_server && u1.energy_measured == 1;
  if (!res->energy_from_server) joules = cpu * o->watts_per_core;
  if (joules >= 0 && tokens > 0) res->joules_per_mtok = joules / tokens * 1e6;
  res->rss_bytes = u1.rss;
  res->rss_max_process = u1.rss_max;
  res->processes = u1.processes;
  free(conns);
  free(lat);
  free(queue);
}

static const char LOAD_USAGE[] =
    "usage: tokd-load [OPTIONS]\n"
    "Open-loop (constant arrival rate) load against a running server, then its cost and a sizing.\n"
    "  --url URL                  http://HOST:PORT or unix:/PATH (default http://127.0.0.1:8080)\n"
    "  --rates R1,R2,...          requests/s to sweep (default 500,1000,2000,5000,10000,20000)\n"
    "  --sweep LO:HI:N            N rates from LO to HI, evenly on a log scale (instead of --rates)\n"
    "  --duration S               seconds per rate (default 10)\n"
    "  --connections N            most connections (default 256)\n"
    "  --mix E,C,D                weights of /encode, /count, /decode (default 8,1,1)\n"
    "  --corpus FILE              UTF-8 text to cut request texts from (default: generated)\n"
    "  --median-bytes B --sigma S request text sizes: log-normal (default 1024, 0.8)\n"
    "  --encoding NAME            encoding tokens are counted with (and /decode bodies made; default cl100k_base)\n"
    "  --pid PID                  the server's CPU and memory from /proc (PID and its children), for any server\n"
    "  --cgroup DIR               ... or from a cgroup v2 directory (cpu.stat, memory.current)\n"
    "                             (neither: from the server's /metrics, as tokd has)\n"
    "  --watts-per-core W         energy model when the server reports none (default 3.5)\n"
    "  --size-for RATE            requests/s the fleet must carry, e.g. 50000rps or 50k (default 100000)\n"
    "  --p99 MS                   latency objective, e.g. 10ms (default 50)\n"
    "  --cpu PCT                  CPU ceiling of a replica's cores, e.g. 70%% (default 70%%)\n"
    "  --replica-cores N          cores one replica has (default: this machine's, %ld)\n"
    "  --svg FILE                 plot latency and CPU against the offered rate\n"
    "  --json                     one JSON document on stdout instead of text\n"
    "  (--p99-target-ms, --peak-rate and --headroom F = --cpu (1-F) are older names)\n";

static void print_json_number(double v, int decimals)
{
  if (isfinite(v)) printf("%.*f", decimals, v);
  else printf("null");
}

/* "50000rps", "50k", "1.5M", "2000" */
static bool parse_rate(const char *s, double *out)
{
  char *end;
  double v = strtod(s, &end);
  if (*end == 'k' || *end == 'K') v *= 1e3, end++;
  else if (*end == 'M') v *= 1e6, end++;
  if (!strcmp(end, "rps") || !strcmp(end, "/s")) end += strlen(end);
  *out = v;
  return end != s && !*end && v > 0;
}

/* "10ms", "0.5s", "10" (milliseconds) */
static bool parse_ms(const char *s, double *out)
{
  char *end;
  double v = strtod(s, &end);
  if (!strcmp(end, "s")) v *= 1e3, end++;
  else if (!strcmp(end, "us")) v /= 1e3, end += 2;
  else if (!strcmp(end, "ms")) end += 2;
  *out = v;
  return end != s && !*end && v > 0;
}

/* "70%", "70" (percent) or "0.7" (a fraction) */
static bool parse_pct(const char *s, double *out)
{
  char *end;
  double v = strtod(s, &end);
  bool pct = *end == '%';
  if (pct) end++;
  if (pct || v > 1) v /= 100;
  *out = v;
  return end != s && !*end && v > 0 && v <= 1;
}

/* Latency (p50, p99, target) and CPU against the offered rate, as two panels. */
static void write_svg(const char *path, const load_opts *o, const step_result *res, int n)
{
  FILE *f = fopen(path, "w");
  if (!f) {
    fprintf(stderr, "tokd-load: %s: %s\n", path, strerror(errno));
    return;
  }
  const double W = 420, H = 260, L = 60, T = 40, PW = 320, PH = 170;
  double xmax = 0, lmin = INFINITY, lmax = 0, cmax = 0;
  for (int i = 0; i < n; i++) {
    if (res[i].rate > xmax) xmax = res[i].rate;
    if (isfinite(res[i].p50) && res[i].p50 > 0 && res[i].p50 < lmin) lmin = res[i].p50;
    if (isfinite(res[i].p99) && res[i].p99 > lmax) lmax = res[i].p99;
    if (isfinite(res[i].server_cores) && res[i].server_cores > cmax) cmax = res[i].server_cores;
  }
  if (o->p99_target_ms > lmax) lmax = o->p99_target_ms;
  if (!isfinite(lmin) || lmin >= lmax) lmin = lmax / 100;
  double lo = floor(log10(lmin)), hi = ceil(log10(lmax));
  if (hi <= lo) hi = lo + 1;
  if (cmax <= 0) cmax = 1;
  cmax = ceil(cmax * 1.1 * 4) / 4;
  fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" font-family=\"sans-serif\" "
             "font-size=\"11\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n", 2 * W, H + 20);
  fprintf(f, "<text x=\"%.0f\" y=\"16\" font-size=\"13\" text-anchor=\"middle\">tokd-load: %s, open loop, %g s per "
             "rate, %.0f-byte median texts</text>\n", W, o->unix_path ? o->unix_path : o->host, o->duration,
          o->median_bytes);
  for (int panel = 0; panel < 2; panel++) {
    double x0 = L + panel * W, y0 = T;
    fprintf(f, "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" stroke=\"#888\"/>\n", x0,
            y0, PW, PH);
    fprintf(f, "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">offered requests/s</text>\n", x0 + PW / 2,
            y0 + PH + 32);
    for (int k = 0; k <= 4; k++) {
      double x = x0 + PW * k / 4;
      fprintf(f, "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\">%.0f</text>\n", x, y0 + PH + 14, xmax * k / 4);
    }
    if (panel == 0) {
      fprintf(f, "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">latency, ms (log)</text>\n", x0 + PW / 2, y0 - 6);
      for (double e = lo; e <= hi; e++) {
        double y = y0 + PH - PH * (e - lo) / (hi - lo);
        fprintf(f, "<line x1=\"%.0f\" x2=\"%.0f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/><text x=\"%.0f\" y=\"%.1f\" "
                   "text-anchor=\"end\">%g</text>\n", x0, x0 + PW, y, y, x0 - 4, y + 4, pow(10, e));
      }
      double ty = y0 + PH - PH * (log10(o->p99_target_ms) - lo) / (hi - lo);
      fprintf(f, "<line x1=\"%.0f\" x2=\"%.0f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#c33\" stroke-dasharray=\"4 3\"/>"
                 "<text x=\"%.0f\" y=\"%.1f\" fill=\"#c33\" text-anchor=\"end\">p99 objective</text>\n",
              x0, x0 + PW, ty, ty, x0 + PW - 4, ty - 4);
    } else {
      fprintf(f, "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">server CPU, cores busy</text>\n", x0 + PW / 2, y0 - 6);
      for (int k = 0; k <= 4; k++) {
        double y = y0 + PH - PH * k / 4;
        fprintf(f, "<line x1=\"%.0f\" x2=\"%.0f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/><text x=\"%.0f\" y=\"%.1f\" "
                   "text-anchor=\"end\">%.2f</text>\n", x0, x0 + PW, y, y, x0 - 4, y + 4, cmax * k / 4);
      }
    }
    static const char *const COLORS[] = {"#1f77b4", "#ff7f0e"};
    for (int series = 0; series < (panel == 0 ? 2 : 1); series++) {
      fprintf(f, "<polyline fill=\"none\" stroke-width=\"2\" stroke=\"%s\" points=\"", COLORS[series]);
      for (int i = 0; i < n; i++) {
        double v = panel ? res[i].server_cores : series ? res[i].p99 : res[i].p50;
        if (!isfinite(v) || v <= 0) continue;
        double x = x0 + PW * res[i].rate / xmax;
        double y = panel ? y0 + PH - PH * v / cmax : y0 + PH - PH * (log10(v) - lo) / (hi - lo);
        if (y < y0) y = y0; /* off the top: pinned to the frame */
        fprintf(f, "%.1f,%.1f ", x, y);
      }
      fprintf(f, "\"/>\n");
      if (panel == 0)
        fprintf(f, "<text x=\"%.0f\" y=\"%.0f\" fill=\"%s\">%s</text>\n", x0 + 8, y0 + 14 + 13 * series,
                COLORS[series], series ? "p99" : "p50");
    }
  }
  fprintf(f, "</svg>\n");
  fclose(f);
}

int main(int argc, char **argv)
{
  long cores_here = tok__cpu_count();
  load_opts o = {.host = "127.0.0.1", .port = "8080", .encoding = "cl100k_base", .duration = 10,
                 .p99_target_ms = 50, .peak_rate = 100000, .cpu_ceiling = 0.7, .median_bytes = 1024,
                 .sigma = 0.8, .max_conns = 256, .weights = {8, 1, 1}, .watts_per_core = 3.5,
                 .replica_cores = cores_here > 0 ? (double)cores_here : 1};
  static const double default_rates[] = {500, 1000, 2000, 5000, 10000, 20000};
  memcpy(o.rates, default_rates, sizeof default_rates);
  o.n_rates = 6;
  static char hostbuf[256], portbuf[16];
  static const struct option longs[] = {
      {"url", 1, 0, 'u'}, {"rates", 1, 0, 'r'}, {"duration", 1, 0, 'd'}, {"connections", 1, 0, 'c'},
      {"mix", 1, 0, 'm'}, {"corpus", 1, 0, 'f'}, {"median-bytes", 1, 0, 'b'}, {"sigma", 1, 0, 's'},
      {"encoding", 1, 0, 'e'}, {"p99-target-ms", 1, 0, 't'}, {"p99", 1, 0, 't'}, {"peak-rate", 1, 0, 'p'},
      {"size-for", 1, 0, 'p'}, {"headroom", 1, 0, 'H'}, {"cpu", 1, 0, 'C'}, {"replica-cores", 1, 0, 'R'},
      {"pid", 1, 0, 'P'}, {"cgroup", 1, 0, 'G'}, {"watts-per-core", 1, 0, 'W'}, {"sweep", 1, 0, 'S'},
      {"svg", 1, 0, 'V'}, {"json", 0, 0, 'j'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
  int ch;
  while ((ch = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
    switch (ch) {
    case 'u':
      if (!strncmp(optarg, "unix:", 5)) {
        o.unix_path = optarg + 5;
        if (!*o.unix_path || strlen(o.unix_path) >= sizeof ((struct sockaddr_un *)0)->sun_path)
          return fprintf(stderr, "tokd-load: --url unix:PATH needs a path of 1 to 107 bytes\n"), 2;
        o.host = "localhost";
        break;
      }
      if (sscanf(optarg, "http://%255[^:/]:%15[0-9]", hostbuf, portbuf) < 1)
        return fprintf(stderr, "tokd-load: --url must look like http://HOST:PORT or unix:/PATH\n"), 2;
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
    case 'S': {
      double lo, hi;
      int n;
      if (sscanf(optarg, "%lf:%lf:%d", &lo, &hi, &n) != 3 || !(lo > 0) || !(hi >= lo) || n < 1 || n > 64)
        return fprintf(stderr, "tokd-load: --sweep takes LO:HI:N, e.g. 1000:20000:6 (N at most 64)\n"), 2;
      o.n_rates = n;
      for (int i = 0; i < n; i++) o.rates[i] = n == 1 ? lo : round(lo * pow(hi / lo, (double)i / (n - 1)));
      break;
    }
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
    case 't':
      if (!parse_ms(optarg, &o.p99_target_ms)) return fprintf(stderr, "tokd-load: --p99 takes e.g. 10ms\n"), 2;
      break;
    case 'p':
      if (!parse_rate(optarg, &o.peak_rate)) return fprintf(stderr, "tokd-load: --size-for takes e.g. 50000rps\n"), 2;
      break;
    case 'H':
      o.headroom = atof(optarg);
      if (!(o.headroom >= 0 && o.headroom < 1)) return fprintf(stderr, "tokd-load: --headroom is in [0, 1)\n"), 2;
      o.cpu_ceiling = 1 - o.headroom;
      break;
    case 'C':
      if (!parse_pct(optarg, &o.cpu_ceiling)) return fprintf(stderr, "tokd-load: --cpu takes e.g. 70%%\n"), 2;
      break;
    case 'R': o.replica_cores = atof(optarg); break;
    case 'P': o.pid = atoi(optarg); break;
    case 'G': o.cgroup = optarg; break;
    case 'W': o.watts_per_core = atof(optarg); break;
    case 'V': o.svg = optarg; break;
    case 'j': o.json = true; break;
    case 'h': printf(LOAD_USAGE, cores_here); return 0;
    default: fprintf(stderr, LOAD_USAGE, cores_here); return 2;
    }
  }
  if (!(o.duration > 0) || o.max_conns < 1 || o.max_conns > MAX_CONNS || !(o.median_bytes >= 1) ||
      !(o.replica_cores > 0) || !(o.watts_per_core >= 0) || o.pid < 0)
    return fprintf(stderr, "tokd-load: out-of-range option; see --help\n"), 2;
  if (o.pid > 0 && kill(o.pid, 0) != 0 && errno == ESRCH)
    return fprintf(stderr, "tokd-load: --pid %d: no such process\n", o.pid), 2;
  target tg = {0};
  if (o.unix_path) {
    struct sockaddr_un *un = (struct sockaddr_un *)&tg.addr;
    un->sun_family = AF_UNIX;
    memcpy(un->sun_path, o.unix_path, strlen(o.unix_path) + 1);
    tg.len = sizeof *un;
  } else {
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
    if (getaddrinfo(o.host, o.port, &hints, &ai) != 0)
      return fprintf(stderr, "tokd-load: cannot resolve %s\n", o.host), 2;
    memcpy(&tg.addr, ai->ai_addr, ai->ai_addrlen);
    tg.len = ai->ai_addrlen;
    freeaddrinfo(ai);
  }
  static request_tpl reqs[N_EP][N_BODIES];
  int rc = prepare(&o, reqs);
  if (rc) return rc;

  step_result res[64];
  if (!o.json)
    printf("%9s %9s %8s %8s %8s %6s %9s %8s %6s %6s %8s %9s %8s\n", "rate/s", "done/s", "p50 ms", "p99 ms",
           "p99.9 ms", "errors", "tokens/s", "us/req", "cores", "cpu%", "us/ktok", "J/Mtok", "RSS MB");
  for (int i = 0; i < o.n_rates; i++) {
    run_step(&o, &tg, reqs, o.rates[i], &res[i]);
    if (!o.json) {
      printf("%9.0f %9.0f %8.3f %8.3f %8.3f %6llu %9.0f %8.1f %6.2f %5.0f%% %8.1f %8.2f%s %8.1f\n", res[i].rate,
             res[i].achieved, res[i].p50, res[i].p99, res[i].p999, res[i].errors, res[i].tokens_per_s,
             res[i].cpu_per_req_us, res[i].server_cores, res[i].server_cores / o.replica_cores * 100,
             res[i].cpu_us_per_ktok, res[i].joules_per_mtok, res[i].energy_measured ? " " : "*",
             res[i].rss_bytes / 1e6);
      fflush(stdout);
    }
  }
  if (o.svg) write_svg(o.svg, &o, res, o.n_rates);
  /* capacity: the highest rate that met the p99 target, without errors, and was kept up */
  int best = -1;
  for (int i = 0; i < o.n_rates; i++)
    if (res[i].p99 <= o.p99_target_ms && res[i].errors == 0 && res[i].achieved >= 0.95 * res[i].rate &&
        (best < 0 || res[i].rate > res[best].rate))
      best = i;
  double capacity = best >= 0 ? res[best].achieved : 0;
  double cores = best >= 0 ? res[best].server_cores : NAN;
  double per_core = best >= 0 && cores > 0 ? capacity / cores : NAN;
  /* a replica carries at most what met the latency objective, and at most what its cores
   * do at the CPU ceiling (from the CPU a request took there); when even the highest rate
   * tried met the objective, that rate is no limit, and the CPU ceiling decides alone
   * (extrapolated: the report says so). Without CPU figures, the ceiling is applied to
   * the measured capacity. */
  double cpu_us = best >= 0 ? res[best].cpu_per_req_us : NAN;
  double cpu_limit = cpu_us > 0 ? o.cpu_ceiling * o.replica_cores * 1e6 / cpu_us : NAN;
  bool all_met = best >= 0;
  for (int i = 0; i < o.n_rates; i++)
    if (best >= 0 && res[i].rate > res[best].rate) all_met = false;
  bool cpu_bound = isfinite(cpu_limit) && (cpu_limit < capacity || all_met);
  bool extrapolated = cpu_bound && cpu_limit > capacity;
  double usable = isfinite(cpu_limit) ? (cpu_bound ? cpu_limit : capacity) : capacity * o.cpu_ceiling;
  double replicas = usable > 0 ? ceil(o.peak_rate / usable) : NAN;
  double little = best >= 0 ? res[best].rate * res[best].mean / 1e3 : NAN;
  const char *energy = best < 0 ? "unknown" : res[best].energy_measured ? "measured" : "modelled";
  if (o.json) {
    if (o.unix_path) printf("{\"url\":\"unix:%s\"", o.unix_path);
    else printf("{\"url\":\"http://%s:%s\"", o.host, o.port);
    printf(",\"duration_s\":%g,\"p99_target_ms\":%g,\"steps\":[", o.duration, o.p99_target_ms);
    for (int i = 0; i < o.n_rates; i++) {
      const step_result *r = &res[i];
      printf("%s{\"rate\":%g,\"achieved\":%.1f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"p999_ms\":%.3f,\"mean_ms\":%.3f,"
             "\"ok\":%llu,\"errors\":%llu,\"tokens_per_s\":%.0f,\"cpu_us_per_request\":", i ? "," : "", r->rate,
             r->achieved, r->p50, r->p99, r->p999, r->mean, r->ok, r->errors, r->tokens_per_s);
      print_json_number(r->cpu_per_req_us, 2);
      printf(",\"server_cores\":");
      print_json_number(r->server_cores, 3);
      printf(",\"cpu_pct_per_core\":");
      print_json_number(r->server_cores / o.replica_cores * 100, 1);
      printf(",\"cpu_us_per_1k_tokens\":");
      print_json_number(r->cpu_us_per_ktok, 2);
      printf(",\"joules_per_million_tokens\":");
      print_json_number(r->joules_per_mtok, 3);
      printf(",\"energy\":\"%s\",\"rss_bytes\":", r->energy_measured ? "measured" : "modelled");
      print_json_number(r->rss_bytes, 0);
      printf(",\"processes\":%d,\"rss_max_process_bytes\":", r->processes);
      print_json_number(r->rss_max_process, 0);
      printf("}");
    }
    /* figures that do not exist (no rate met the objective) are null */
    printf("],\"capacity_rps\":%.1f,\"server_cores_at_capacity\":", capacity);
    print_json_number(cores, 3);
    printf(",\"capacity_per_core_rps\":");
    print_json_number(per_core, 1);
    printf(",\"size_for_rps\":%g,\"cpu_ceiling\":%g,\"replica_cores\":%g,\"per_replica_rps\":", o.peak_rate,
           o.cpu_ceiling, o.replica_cores);
    print_json_number(best >= 0 ? usable : NAN, 1);
    printf(",\"limited_by\":\"%s\",\"extrapolated\":%s,\"replicas\":", best < 0 ? "none" : cpu_bound ? "cpu" : "latency",
           extrapolated ? "true" : "false");
    print_json_number(replicas, 0);
    printf(",\"concurrency_at_capacity\":");
    print_json_number(little, 2);
    printf(",\"energy\":\"%s\"}\n", energy);
  } else if (best < 0) {
    printf("\nno rate met p99 <= %g ms without errors: lower --rates or raise --p99\n", o.p99_target_ms);
  } else {
    printf("(* energy modelled at %g W per busy core; without *: measured by the server)\n", o.watts_per_core);
    printf("\ncapacity at p99 <= %g ms: %.0f requests/s using %.2f server cores -> %.0f requests/s per core\n",
           o.p99_target_ms, capacity, cores, per_core);
    printf("cost there: %.1f CPU-us per request, %.1f CPU-us per 1,000 tokens, %.2f J per million tokens (%s)\n",
           cpu_us, res[best].cpu_us_per_ktok, res[best].joules_per_mtok, energy);
    printf("Little's law at that rate: %.1f requests in flight on average (rate x mean latency)\n", little);
    printf("one replica (%g cores, CPU at most %.0f%%) carries %.0f requests/s (%s)\n", o.replica_cores,
           o.cpu_ceiling * 100, usable,
           extrapolated ? "CPU-bound, extrapolated: every rate tried met the objective; sweep higher to confirm"
           : cpu_bound  ? "CPU-bound"
                        : "latency-bound");
    printf("for %.0f requests/s at p99 <= %g ms: %.0f replicas\n", o.peak_rate, o.p99_target_ms, replicas);
  }
  for (int e = 0; e < N_EP; e++)
    for (int i = 0; i < N_BODIES; i++) free(reqs[e][i].bytes);
  return best >= 0 ? 0 : 1;
}
