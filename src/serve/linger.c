/*
 * linger.c — see linger.h.
 *
 * Slots: a fixed array of `max` entries allocated at start, a free list through them, and
 * an epoll set whose events carry the slot's index. tokd_linger_add (on libmicrohttpd's
 * I/O threads) fills a free slot and adds it to the set under the lock; only the linger
 * thread reads sockets and closes slots, so a slot's descriptor is stable while the thread
 * reads it without the lock.
 */
#include "serve/linger.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/util.h"

/* Bytes one socket may be read in one turn before the others get theirs (the set is
 * level-triggered, so the rest is read on the next turn). */
#define TURN_BYTES ((size_t)1 << 20)
/* How often deadlines are checked when no socket has anything to read, milliseconds. */
#define TICK_MS 100

typedef struct slot {
  int fd;            /* -1: free */
  unsigned next_free;
  double deadline;
  uint64_t left;     /* bytes it may still read */
} slot;

struct tokd_linger {
  pthread_mutex_t lock;
  pthread_t thread;
  bool running;
  atomic_bool stop;
  tokd_linger_cfg cfg;
  int epfd, wakefd;
  slot *slots;
  unsigned free_head; /* cfg.max: none free */
  unsigned count;
  tokd_linger_stats stats;
  char buf[64 << 10]; /* what clients send is read into this and dropped (the thread's) */
};

/* The lock is held. */
static void end_slot(tokd_linger *l, unsigned i, tokd_linger_end why)
{
  slot *s = &l->slots[i];
  epoll_ctl(l->epfd, EPOLL_CTL_DEL, s->fd, NULL);
  close(s->fd);
  s->fd = -1;
  s->next_free = l->free_head;
  l->free_head = i;
  l->count--;
  l->stats.ended[why]++;
  if (l->cfg.budget) tokd_budget_give(l->cfg.budget, l->cfg.reserve);
}

bool tokd_linger_add(tokd_linger *l, int fd, uint64_t bytes)
{
  bool taken = false;
  if (!l) return false;
  pthread_mutex_lock(&l->lock);
  if (!l->running || atomic_load(&l->stop)) goto out;
  if (l->free_head == l->cfg.max) {
    l->stats.refused++;
    goto out;
  }
  int dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (dup_fd < 0) {
    l->stats.refused++;
    goto out;
  }
  unsigned i = l->free_head;
  slot *s = &l->slots[i];
  /* the answer is in the socket's send buffer: the FIN follows it, so the client sees the
   * answer end while its own sending may go on */
  shutdown(dup_fd, SHUT_WR);
  fcntl(dup_fd, F_SETFL, fcntl(dup_fd, F_GETFL) | O_NONBLOCK);
  struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u32 = i};
  if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, dup_fd, &ev) != 0) {
    close(dup_fd);
    l->stats.refused++;
    goto out;
  }
  l->free_head = s->next_free;
  s->fd = dup_fd;
  s->deadline = tokd_now() + l->cfg.seconds;
  s->left = bytes;
  l->count++;
  taken = true;
out:
  pthread_mutex_unlock(&l->lock);
  return taken;
}

/* Reads and drops what slot i's client has sent. Returns false when the slot is done:
 * the client closed its side or failed (then *why is LINGER_DONE), or it sent its cap. */
static bool drain(slot *s, char *buf, size_t cap, uint64_t *dropped, tokd_linger_end *why)
{
  size_t turn = 0;
  while (turn < TURN_BYTES) {
    size_t want = s->left < cap ? (size_t)s->left : cap;
    if (want == 0) {
      /* its cap read: a client that has sent just that much is done (closing now resets
       * nothing); one still sending is cut */
      char b;
      *why = recv(s->fd, &b, 1, MSG_DONTWAIT | MSG_PEEK) > 0 ? LINGER_BYTES : LINGER_DONE;
      return false;
    }
    ssize_t n = recv(s->fd, buf, want, MSG_DONTWAIT);
    if (n > 0) {
      s->left -= (uint64_t)n;
      *dropped += (uint64_t)n;
      turn += (size_t)n;
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return true;
    *why = LINGER_DONE; /* end of input, or the connection failed */
    return false;
  }
  return true;
}

static void *linger_main(void *arg)
{
  tokd_linger *l = arg;
  pthread_setname_np(pthread_self(), "tokd-linger");
  enum { EVENTS = 64 };
  struct epoll_event evs[EVENTS];
  double next_sweep = tokd_now() + TICK_MS / 1e3;
  while (!atomic_load(&l->stop)) {
    int n = epoll_wait(l->epfd, evs, EVENTS, TICK_MS);
    for (int k = 0; k < n; k++) {
      if (evs[k].data.u32 == l->cfg.max) continue; /* the wake-up */
      unsigned i = evs[k].data.u32;
      pthread_mutex_lock(&l->lock);
      slot copy = l->slots[i];
      pthread_mutex_unlock(&l->lock);
      if (copy.fd < 0) continue; /* ended earlier in this round */
      uint64_t dropped = 0;
      tokd_linger_end why = LINGER_DONE;
      bool more = drain(&copy, l->buf, sizeof l->buf, &dropped, &why);
      pthread_mutex_lock(&l->lock);
      l->slots[i].left = copy.left;
      l->stats.dropped_bytes += dropped;
      if (!more) end_slot(l, i, why);
      pthread_mutex_unlock(&l->lock);
    }
    double now = tokd_now();
    if (now < next_sweep) continue;
    next_sweep = now + TICK_MS / 1e3;
    pthread_mutex_lock(&l->lock);
    for (unsigned i = 0; i < l->cfg.max && l->count; i++)
      if (l->slots[i].fd >= 0 && now >= l->slots[i].deadline) end_slot(l, i, LINGER_TIMEOUT);
    pthread_mutex_unlock(&l->lock);
  }
  return NULL;
}

tokd_linger *tokd_linger_new(const tokd_linger_cfg *cfg)
{
  if (cfg->max == 0) return NULL;
  tokd_linger *l = calloc(1, sizeof *l);
  if (!l) return NULL;
  pthread_mutex_init(&l->lock, NULL);
  l->cfg = *cfg;
  l->slots = calloc(cfg->max, sizeof *l->slots);
  l->epfd = epoll_create1(EPOLL_CLOEXEC);
  l->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  struct epoll_event ev = {.events = EPOLLIN, .data.u32 = cfg->max};
  if (!l->slots || l->epfd < 0 || l->wakefd < 0 || epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->wakefd, &ev) != 0) {
    tokd_linger_free(l);
    return NULL;
  }
  for (unsigned i = 0; i < cfg->max; i++) l->slots[i] = (slot){.fd = -1, .next_free = i + 1};
  return l;
}

bool tokd_linger_start(tokd_linger *l)
{
  atomic_store(&l->stop, false);
  if (pthread_create(&l->thread, NULL, linger_main, l) != 0) return false;
  pthread_mutex_lock(&l->lock);
  l->running = true;
  pthread_mutex_unlock(&l->lock);
  return true;
}

void tokd_linger_stop(tokd_linger *l)
{
  if (!l) return;
  pthread_mutex_lock(&l->lock);
  bool was = l->running;
  l->running = false;
  pthread_mutex_unlock(&l->lock);
  if (!was) return;
  atomic_store(&l->stop, true);
  uint64_t one = 1;
  if (write(l->wakefd, &one, sizeof one) < 0) {
    /* the thread still sees stop within a tick */
  }
  pthread_join(l->thread, NULL);
  pthread_mutex_lock(&l->lock);
  for (unsigned i = 0; i < l->cfg.max; i++)
    if (l->slots[i].fd >= 0) end_slot(l, i, LINGER_TIMEOUT);
  pthread_mutex_unlock(&l->lock);
}

void tokd_linger_free(tokd_linger *l)
{
  if (!l) return;
  if (l->epfd >= 0) close(l->epfd);
  if (l->wakefd >= 0) close(l->wakefd);
  pthread_mutex_destroy(&l->lock);
  free(l->slots);
  free(l);
}

void tokd_linger_get_stats(tokd_linger *l, tokd_linger_stats *out)
{
  *out = (tokd_linger_stats){0};
  if (!l) return;
  pthread_mutex_lock(&l->lock);
  *out = l->stats;
  out->lingering = l->count;
  pthread_mutex_unlock(&l->lock);
}
