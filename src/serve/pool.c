/*
 * pool.c — see pool.h.
 */
#include "serve/pool.h"

#include <pthread.h>
#include <stdlib.h>

/* Buffers a worker keeps between requests; more is given back after a large request, so
 * resident memory returns near its baseline. */
#define KEEP_BYTES ((size_t)1 << 20)

struct tokd_pool {
  pthread_mutex_t lock;
  pthread_cond_t wake;
  tokd_job *head[2], *tail[2]; /* [0] small, [1] large */
  unsigned queued;
  unsigned n, running_large;
  unsigned started; /* threads running */
  bool stopping;
  const tokd_server *srv;
  pthread_t *threads;
};

static tokd_job *take(tokd_pool *p)
{
  /* small first; large only while another worker stays free for small ones */
  int q = p->head[0] ? 0
          : (p->head[1] && (p->n == 1 || p->running_large < p->n - 1 || p->stopping)) ? 1
                                                                                       : -1;
  if (q < 0) return NULL;
  tokd_job *j = p->head[q];
  p->head[q] = j->next;
  if (!p->head[q]) p->tail[q] = NULL;
  p->queued--;
  if (q) p->running_large++;
  return j;
}

static void *worker_main(void *arg)
{
  tokd_pool *p = arg;
  pthread_setname_np(pthread_self(), "tokd-worker"); /* top -H, perf, gdb */
  tokd_worker *w = tokd_worker_new(p->srv);
  pthread_mutex_lock(&p->lock);
  for (;;) {
    tokd_job *j;
    while (!(j = take(p)) && !p->stopping) pthread_cond_wait(&p->wake, &p->lock);
    if (!j) break;
    pthread_mutex_unlock(&p->lock);
    bool large = j->large;
    j->run(j, w); /* with w NULL (no memory) the job answers 503 */
    if (w) tokd_worker_trim(w, KEEP_BYTES);
    pthread_mutex_lock(&p->lock);
    if (large) {
      p->running_large--;
      pthread_cond_broadcast(&p->wake);
    }
  }
  pthread_mutex_unlock(&p->lock);
  tokd_worker_free(w);
  return NULL;
}

tokd_pool *tokd_pool_new(const tokd_server *srv, unsigned n)
{
  tokd_pool *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  p->srv = srv;
  p->n = n ? n : 1;
  if (!(p->threads = calloc(p->n, sizeof *p->threads))) {
    free(p);
    return NULL;
  }
  pthread_mutex_init(&p->lock, NULL);
  pthread_cond_init(&p->wake, NULL);
  return p;
}

bool tokd_pool_start(tokd_pool *p)
{
  for (p->started = 0; p->started < p->n; p->started++)
    if (pthread_create(&p->threads[p->started], NULL, worker_main, p) != 0) {
      tokd_pool_stop(p);
      return false;
    }
  return true;
}

void tokd_pool_submit(tokd_pool *p, tokd_job *job)
{
  int q = job->large ? 1 : 0;
  job->next = NULL;
  pthread_mutex_lock(&p->lock);
  if (p->tail[q]) p->tail[q]->next = job;
  else p->head[q] = job;
  p->tail[q] = job;
  p->queued++;
  pthread_cond_signal(&p->wake);
  pthread_mutex_unlock(&p->lock);
}

unsigned tokd_pool_queued(tokd_pool *p)
{
  pthread_mutex_lock(&p->lock);
  unsigned n = p->queued;
  pthread_mutex_unlock(&p->lock);
  return n;
}

void tokd_pool_stop(tokd_pool *p)
{
  if (!p) return;
  pthread_mutex_lock(&p->lock);
  p->stopping = true;
  pthread_cond_broadcast(&p->wake);
  pthread_mutex_unlock(&p->lock);
  for (unsigned i = 0; i < p->started; i++) pthread_join(p->threads[i], NULL);
  p->started = 0;
}

void tokd_pool_free(tokd_pool *p)
{
  if (!p) return;
  pthread_mutex_destroy(&p->lock);
  pthread_cond_destroy(&p->wake);
  free(p->threads);
  free(p);
}
