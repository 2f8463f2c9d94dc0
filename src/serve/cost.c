/*
 * cost.c — see cost.h. One sampling thread; readers take the latest figures under a
 * mutex (a /metrics scrape a few times a minute: no contention worth avoiding).
 */
#include "serve/cost.h"

#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"

#define WINDOW 60  /* seconds the rolling figures cover */
#define MAX_PACKAGES 16

typedef struct sample {
  double t, cpu, joules;
  unsigned long long tokens;
  unsigned long long requests[EP__COUNT];
  double request_cpu[EP__COUNT];
} sample;

typedef struct package {
  char path[600];               /* .../energy_uj */
  unsigned long long max_uj;    /* the counter wraps at this */
  unsigned long long last_uj;
} package;

struct tokd_cost {
  tokd_cost_cfg cfg;
  pthread_t thread;
  pthread_mutex_t lock;
  pthread_cond_t wake;
  bool running, stop;
  package pkgs[MAX_PACKAGES];
  unsigned n_pkgs;
  unsigned long long machine_busy, machine_total; /* /proc/stat jiffies, last sample */
  double cpu_last, joules;
  sample ring[WINDOW + 1];
  unsigned head, filled;
};

void tokd_process_cpu(double *user, double *system)
{
  /* getrusage: microseconds (/proc/self/stat counts 10 ms ticks) */
  struct rusage ru;
  *user = *system = 0;
  if (getrusage(RUSAGE_SELF, &ru) != 0) return;
  *user = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6;
  *system = (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

static bool read_ull(const char *path, unsigned long long *v)
{
  FILE *f = fopen(path, "r");
  if (!f) return false;
  bool ok = fscanf(f, "%llu", v) == 1;
  fclose(f);
  return ok;
}

/* The machine's busy and total CPU jiffies (first line of /proc/stat). */
static void machine_cpu(unsigned long long *busy, unsigned long long *total)
{
  *busy = *total = 0;
  FILE *f = fopen("/proc/stat", "r");
  if (!f) return;
  unsigned long long v[8] = {0};
  if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
             &v[6], &v[7]) == 8) {
    for (int i = 0; i < 8; i++) *total += v[i];
    *busy = *total - v[3] - v[4]; /* idle and iowait */
  }
  fclose(f);
}

/* The package zones: top-level intel-rapl:N (not intel-rapl:N:M, its sub-zones), whose
 * energy counter is readable (root only on kernels since 5.10, CVE-2020-8694). */
static void find_packages(tokd_cost *C, const char *dir)
{
  DIR *d = opendir(dir);
  if (!d) return;
  for (struct dirent *e; (e = readdir(d)) && C->n_pkgs < MAX_PACKAGES;) {
    const char *colon = strchr(e->d_name, ':');
    if (strncmp(e->d_name, "intel-rapl:", 11) || !colon || strchr(colon + 1, ':')) continue;
    package *p = &C->pkgs[C->n_pkgs];
    char max_path[600];
    snprintf(p->path, sizeof p->path, "%s/%s/energy_uj", dir, e->d_name);
    snprintf(max_path, sizeof max_path, "%s/%s/max_energy_range_uj", dir, e->d_name);
    if (read_ull(p->path, &p->last_uj) && read_ull(max_path, &p->max_uj) && p->max_uj) C->n_pkgs++;
  }
  closedir(d);
}

static void take_sample(tokd_cost *C)
{
  double user, sys;
  tokd_process_cpu(&user, &sys);
  double cpu = user + sys, d_cpu = cpu - C->cpu_last;
  C->cpu_last = cpu;
  if (C->n_pkgs) {
    unsigned long long busy, total, d_uj = 0;
    machine_cpu(&busy, &total);
    for (unsigned i = 0; i < C->n_pkgs; i++) {
      unsigned long long now;
      if (!read_ull(C->pkgs[i].path, &now)) continue;
      d_uj += now >= C->pkgs[i].last_uj ? now - C->pkgs[i].last_uj : C->pkgs[i].max_uj - C->pkgs[i].last_uj + now;
      C->pkgs[i].last_uj = now;
    }
    /* tokd's share of the busy CPU time of the machine in this interval */
    double d_busy = (double)(busy - C->machine_busy) / (double)sysconf(_SC_CLK_TCK);
    double share = d_busy > 0 ? d_cpu / d_busy : 0;
    if (share > 1) share = 1;
    if (share < 0) share = 0;
    C->machine_busy = busy, C->machine_total = total;
    C->joules += (double)d_uj / 1e6 * share;
  } else {
    C->joules += d_cpu * C->cfg.watts_per_core;
  }
  tokd_metrics_totals t;
  tokd_metrics_totals_read(C->cfg.metrics, &t);
  sample *s = &C->ring[C->head];
  *s = (sample){.t = tokd_now(), .cpu = cpu, .joules = C->joules};
  for (int ep = 0; ep < EP__COUNT; ep++) {
    s->tokens += t.tokens[ep];
    s->requests[ep] = t.requests[ep];
    s->request_cpu[ep] = t.cpu[ep];
  }
  C->head = (C->head + 1) % (WINDOW + 1);
  if (C->filled < WINDOW + 1) C->filled++;
}

static void *sampler(void *arg)
{
  tokd_cost *C = arg;
  pthread_setname_np(pthread_self(), "tokd-cost");
  pthread_mutex_lock(&C->lock);
  while (!C->stop) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 1;
    pthread_cond_timedwait(&C->wake, &C->lock, &until);
    if (!C->stop) take_sample(C);
  }
  pthread_mutex_unlock(&C->lock);
  return NULL;
}

tokd_cost *tokd_cost_new(const tokd_cost_cfg *cfg)
{
  tokd_cost *C = calloc(1, sizeof *C);
  if (!C) return NULL;
  pthread_mutex_init(&C->lock, NULL);
  pthread_cond_init(&C->wake, NULL);
  C->cfg = *cfg;
  find_packages(C, cfg->powercap_dir ? cfg->powercap_dir : "/sys/class/powercap");
  return C;
}

bool tokd_cost_start(tokd_cost *C)
{
  machine_cpu(&C->machine_busy, &C->machine_total);
  double user, sys;
  tokd_process_cpu(&user, &sys);
  C->cpu_last = user + sys;
  pthread_mutex_lock(&C->lock);
  C->stop = false;
  take_sample(C); /* the window's first edge */
  pthread_mutex_unlock(&C->lock);
  C->running = pthread_create(&C->thread, NULL, sampler, C) == 0;
  return C->running;
}

void tokd_cost_stop(tokd_cost *C)
{
  if (!C || !C->running) return;
  pthread_mutex_lock(&C->lock);
  C->stop = true;
  pthread_cond_signal(&C->wake);
  pthread_mutex_unlock(&C->lock);
  pthread_join(C->thread, NULL);
  C->running = false;
}

void tokd_cost_free(tokd_cost *C)
{
  if (!C) return;
  pthread_mutex_destroy(&C->lock);
  pthread_cond_destroy(&C->wake);
  free(C);
}

void tokd_cost_read(tokd_cost *C, tokd_cost_figures *out)
{
  *out = (tokd_cost_figures){.watts_per_core = C->cfg.watts_per_core};
  pthread_mutex_lock(&C->lock);
  out->measured = C->n_pkgs > 0;
  out->joules = C->joules;
  if (C->filled >= 2) {
    const sample *last = &C->ring[(C->head + WINDOW) % (WINDOW + 1)];
    const sample *first = &C->ring[(C->head + WINDOW + 1 - C->filled) % (WINDOW + 1)];
    out->window_s = last->t - first->t;
    out->window_cpu = last->cpu - first->cpu;
    out->window_joules = last->joules - first->joules;
    out->window_tokens = last->tokens - first->tokens;
    for (int ep = 0; ep < EP__COUNT; ep++) {
      out->window_requests[ep] = last->requests[ep] - first->requests[ep];
      out->window_request_cpu[ep] = last->request_cpu[ep] - first->request_cpu[ep];
    }
  }
  pthread_mutex_unlock(&C->lock);
}
