/*
 * watchdog.c — see watchdog.h.
 */
#include "serve/watchdog.h"

#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

#include "common/util.h"

/* Free heap pages go back to the system every TRIM_EVERY seconds when at least
 * TRIM_AFTER connections have closed since the last time. */
#define TRIM_EVERY 10.0
#define TRIM_AFTER 256
/* A connection waiting for its client is checked for a client that has gone once it has
 * waited PEEK_AFTER seconds in its phase, then every PEEK_EVERY seconds. */
#define PEEK_AFTER 0.2
#define PEEK_EVERY 0.5

struct tokd_wd_conn {
  tokd_watchdog *wd; /* the watchdog it is registered with */
  tokd_wd_conn *prev, *next;
  int fd;
  tokd_wd_phase phase;
  double since;   /* when the phase began */
  uint64_t bytes; /* moved in this phase */
  double peeked;  /* when it was last checked for a client that has gone */
  uint64_t linger; /* bytes to read and drop after it closes (tokd_watchdog_linger) */
  bool dropped;
};

struct tokd_watchdog {
  pthread_mutex_t lock;
  pthread_t thread;
  bool running, stop;
  tokd_watchdog_cfg cfg;
  tokd_wd_conn *head;
  unsigned count;
  unsigned long long closed;
};

tokd_watchdog *tokd_watchdog_new(const tokd_watchdog_cfg *cfg)
{
  tokd_watchdog *wd = calloc(1, sizeof *wd);
  if (!wd) return NULL;
  pthread_mutex_init(&wd->lock, NULL);
  wd->cfg = *cfg;
  return wd;
}

void tokd_watchdog_free(tokd_watchdog *wd)
{
  if (!wd) return;
  pthread_mutex_destroy(&wd->lock);
  free(wd);
}

tokd_wd_conn *tokd_watchdog_add(tokd_watchdog *wd, int fd)
{
  tokd_wd_conn *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->wd = wd;
  c->fd = fd;
  c->phase = WD_HEADERS;
  c->since = tokd_now();
  pthread_mutex_lock(&wd->lock);
  c->next = wd->head;
  if (wd->head) wd->head->prev = c;
  wd->head = c;
  wd->count++;
  pthread_mutex_unlock(&wd->lock);
  return c;
}

uint64_t tokd_watchdog_remove(tokd_wd_conn *c)
{
  if (!c) return 0;
  tokd_watchdog *wd = c->wd;
  pthread_mutex_lock(&wd->lock);
  /* a connection shut for a slow or vanished client gets no lingering */
  uint64_t linger = c->dropped ? 0 : c->linger;
  if (c->prev) c->prev->next = c->next;
  else wd->head = c->next;
  if (c->next) c->next->prev = c->prev;
  wd->count--;
  wd->closed++;
  pthread_mutex_unlock(&wd->lock);
  free(c);
  return linger;
}

void tokd_watchdog_linger(tokd_wd_conn *c, uint64_t bytes)
{
  if (!c) return;
  pthread_mutex_lock(&c->wd->lock);
  c->linger = bytes;
  pthread_mutex_unlock(&c->wd->lock);
}

void tokd_watchdog_phase(tokd_wd_conn *c, tokd_wd_phase phase)
{
  if (!c) return;
  pthread_mutex_lock(&c->wd->lock);
  c->phase = phase;
  c->since = tokd_now();
  c->bytes = 0;
  pthread_mutex_unlock(&c->wd->lock);
}

void tokd_watchdog_progress(tokd_wd_conn *c, uint64_t bytes)
{
  if (!c) return;
  pthread_mutex_lock(&c->wd->lock);
  c->bytes += bytes;
  pthread_mutex_unlock(&c->wd->lock);
}

unsigned tokd_watchdog_count(tokd_watchdog *wd)
{
  pthread_mutex_lock(&wd->lock);
  unsigned n = wd->count;
  pthread_mutex_unlock(&wd->lock);
  return n;
}

/* Whether the client of c has closed its side while c waits for it to send (a partial
 * request head or body, or the next request). libmicrohttpd 0.9.75 can miss that end of
 * input when it arrived together with the last data (it stops reading after a short
 * read), and would then hold the connection until its deadline. A peek does not take
 * data from libmicrohttpd: 0 means end of input and nothing left to read. */
static bool client_gone(tokd_wd_conn *c, double now)
{
  if (c->phase != WD_HEADERS && c->phase != WD_BODY && c->phase != WD_IDLE) return false;
  if (now - c->since < PEEK_AFTER || now - c->peeked < PEEK_EVERY) return false;
  c->peeked = now;
  char b;
  return recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

/* Whether c is past its deadline at time now, and why. */
static bool overdue(const tokd_watchdog_cfg *cfg, const tokd_wd_conn *c, double now, tokd_drop_reason *why)
{
  double elapsed = now - c->since;
  switch (c->phase) {
  case WD_HEADERS:
    *why = DROP_HEADERS;
    return elapsed > cfg->header_timeout;
  case WD_IDLE:
    *why = DROP_IDLE;
    return elapsed > cfg->idle_timeout;
  case WD_BODY:
  case WD_RESPONSE:
    *why = c->phase == WD_BODY ? DROP_BODY : DROP_RESPONSE;
    return elapsed > cfg->grace && (double)c->bytes < (elapsed - cfg->grace) * cfg->min_rate;
  default:
    return false;
  }
}

static void *watch(void *arg)
{
  tokd_watchdog *wd = arg;
  pthread_setname_np(pthread_self(), "tokd-watchdog");
  struct timespec tick = {0, 100 * 1000 * 1000};
  unsigned long long trimmed_at = 0;
  double last_trim = tokd_now();
  pthread_mutex_lock(&wd->lock);
  while (!wd->stop) {
    pthread_mutex_unlock(&wd->lock);
    nanosleep(&tick, NULL);
    double now = tokd_now();
    if (now - last_trim > TRIM_EVERY) {
      /* connection buffers are small heap blocks; after many connections have gone they
       * leave the heap fragmented (measured: 34 MB resident after 2,000 connections with
       * full request heads closed), so hand the free pages back */
      pthread_mutex_lock(&wd->lock);
      unsigned long long closed = wd->closed;
      pthread_mutex_unlock(&wd->lock);
      if (closed - trimmed_at >= TRIM_AFTER) {
        malloc_trim(0);
        trimmed_at = closed;
      }
      last_trim = now;
    }
    pthread_mutex_lock(&wd->lock);
    for (tokd_wd_conn *c = wd->head; c; c = c->next) {
      tokd_drop_reason why;
      if (c->dropped) continue;
      if (client_gone(c, now)) {
        shutdown(c->fd, SHUT_RDWR); /* libmicrohttpd then sees it and closes */
        c->dropped = true;
        continue;
      }
      if (!overdue(&wd->cfg, c, now, &why)) continue;
      /* the socket stays open (libmicrohttpd closes it after it tells us, under this lock)
       * so this cannot hit a reused descriptor */
      shutdown(c->fd, SHUT_RDWR);
      c->dropped = true;
      if (wd->cfg.metrics) tokd_metrics_drop(wd->cfg.metrics, why);
    }
  }
  pthread_mutex_unlock(&wd->lock);
  return NULL;
}

bool tokd_watchdog_start(tokd_watchdog *wd)
{
  wd->stop = false;
  wd->running = pthread_create(&wd->thread, NULL, watch, wd) == 0;
  return wd->running;
}

void tokd_watchdog_stop(tokd_watchdog *wd)
{
  if (!wd || !wd->running) return;
  pthread_mutex_lock(&wd->lock);
  wd->stop = true;
  pthread_mutex_unlock(&wd->lock);
  pthread_join(wd->thread, NULL);
  wd->running = false;
}
