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

static struct {
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
} L = {.lock = PTHREAD_MUTEX_INITIALIZER, .epfd = -1, .wakefd = -1};

/* The lock is held. */
static void end_slot(unsigned i, tokd_linger_end why)
{
  slot *s = &L.slots[i];
  epoll_ctl(L.epfd, EPOLL_CTL_DEL, s->fd, NULL);
  close(s->fd);
  s->fd = -1;
  s->next_free = L.free_head;
  L.free_head = i;
  L.count--;
  L.stats.ended[why]++;
  if (L.cfg.budget) tokd_budget_give(L.cfg.budget, L.cfg.reserve);
}

bool tokd_linger_add(int fd, uint64_t bytes)
{
  bool taken = false;
  pthread_mutex_lock(&L.lock);
  if (!L.running || atomic_load(&L.stop)) goto out;
  if (L.free_head == L.cfg.max) {
    L.stats.refused++;
    goto out;
  }
  int dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (dup_fd < 0) {
    L.stats.refused++;
    goto out;
  }
  unsigned i = L.free_head;
  slot *s = &L.slots[i];
  /* the answer is in the socket's send buffer: the FIN follows it, so the client sees the
   * answer end while its own sending may go on */
  shutdown(dup_fd, SHUT_WR);
  fcntl(dup_fd, F_SETFL, fcntl(dup_fd, F_GETFL) | O_NONBLOCK);
  struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u32 = i};
  if (epoll_ctl(L.epfd, EPOLL_CTL_ADD, dup_fd, &ev) != 0) {
    close(dup_fd);
    L.stats.refused++;
    goto out;
  }
  L.free_head = s->next_free;
  s->fd = dup_fd;
  s->deadline = tokd_now() + L.cfg.seconds;
  s->left = bytes;
  L.count++;
  taken = true;
out:
  pthread_mutex_unlock(&L.lock);
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
  (void)arg;
  enum { BUF = 64 << 10, EVENTS = 64 };
  static char buf[BUF]; /* only this thread uses it */
  struct epoll_event evs[EVENTS];
  double next_sweep = tokd_now() + TICK_MS / 1e3;
  while (!atomic_load(&L.stop)) {
    int n = epoll_wait(L.epfd, evs, EVENTS, TICK_MS);
    for (int k = 0; k < n; k++) {
      if (evs[k].data.u32 == L.cfg.max) continue; /* the wake-up */
      unsigned i = evs[k].data.u32;
      pthread_mutex_lock(&L.lock);
      slot copy = L.slots[i];
      pthread_mutex_unlock(&L.lock);
      if (copy.fd < 0) continue; /* ended earlier in this round */
      uint64_t dropped = 0;
      tokd_linger_end why = LINGER_DONE;
      bool more = drain(&copy, buf, sizeof buf, &dropped, &why);
      pthread_mutex_lock(&L.lock);
      L.slots[i].left = copy.left;
      L.stats.dropped_bytes += dropped;
      if (!more) end_slot(i, why);
      pthread_mutex_unlock(&L.lock);
    }
    double now = tokd_now();
    if (now < next_sweep) continue;
    next_sweep = now + TICK_MS / 1e3;
    pthread_mutex_lock(&L.lock);
    for (unsigned i = 0; i < L.cfg.max && L.count; i++)
      if (L.slots[i].fd >= 0 && now >= L.slots[i].deadline) end_slot(i, LINGER_TIMEOUT);
    pthread_mutex_unlock(&L.lock);
  }
  return NULL;
}

bool tokd_linger_start(const tokd_linger_cfg *cfg)
{
  L.cfg = *cfg;
  if (L.cfg.max == 0) return false;
  L.slots = calloc(L.cfg.max, sizeof *L.slots);
  L.epfd = epoll_create1(EPOLL_CLOEXEC);
  L.wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  struct epoll_event ev = {.events = EPOLLIN, .data.u32 = L.cfg.max};
  if (!L.slots || L.epfd < 0 || L.wakefd < 0 || epoll_ctl(L.epfd, EPOLL_CTL_ADD, L.wakefd, &ev) != 0)
    goto fail;
  for (unsigned i = 0; i < L.cfg.max; i++) L.slots[i] = (slot){.fd = -1, .next_free = i + 1};
  L.free_head = 0;
  L.count = 0;
  L.stats = (tokd_linger_stats){0};
  atomic_store(&L.stop, false);
  if (pthread_create(&L.thread, NULL, linger_main, NULL) != 0) goto fail;
  pthread_mutex_lock(&L.lock);
  L.running = true;
  pthread_mutex_unlock(&L.lock);
  return true;
fail:
  free(L.slots);
  L.slots = NULL;
  if (L.epfd >= 0) close(L.epfd);
  if (L.wakefd >= 0) close(L.wakefd);
  L.epfd = L.wakefd = -1;
  return false;
}

void tokd_linger_stop(void)
{
  pthread_mutex_lock(&L.lock);
  bool was = L.running;
  L.running = false;
  pthread_mutex_unlock(&L.lock);
  if (!was) return;
  atomic_store(&L.stop, true);
  uint64_t one = 1;
  if (write(L.wakefd, &one, sizeof one) < 0) {
    /* the thread still sees stop within a tick */
  }
  pthread_join(L.thread, NULL);
  pthread_mutex_lock(&L.lock);
  for (unsigned i = 0; i < L.cfg.max; i++)
    if (L.slots[i].fd >= 0) end_slot(i, LINGER_TIMEOUT);
  pthread_mutex_unlock(&L.lock);
  close(L.epfd);
  close(L.wakefd);
  L.epfd = L.wakefd = -1;
  free(L.slots);
  L.slots = NULL;
}

void tokd_linger_get_stats(tokd_linger_stats *out)
{
  pthread_mutex_lock(&L.lock);
  *out = L.stats;
  out->lingering = L.count;
  pthread_mutex_unlock(&L.lock);
}
