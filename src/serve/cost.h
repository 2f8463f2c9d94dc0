/*
 * cost.h — what serving costs: CPU seconds and energy per token and per request class.
 *
 * An operator replacing an interpreted tokenizer service sizes the fleet from these:
 * cores and replicas from CPU per request, and energy from the CPU it burns. One thread
 * samples once a second: the process's CPU time (/proc/self/stat), the tokens and
 * requests counted so far (metrics.h), and the energy.
 *
 * Energy is measured where the kernel's powercap interface is readable (Intel RAPL, and
 * AMD's RAPL through the same driver: /sys/class/powercap/intel-rapl:N/energy_uj for each
 * package): the packages' energy over each second, times tokd's share of the machine's
 * busy CPU time in that second (/proc/stat), so other processes' work is not counted as
 * tokd's. Where it is not readable (virtual machines, most containers), it is modelled:
 * --watts-per-core watts for each busy CPU second, and tokd_energy_measured says 0.
 * The default, 3.5 W per busy CPU (a hardware thread), is Cloud Carbon Footprint's
 * coefficient for AWS at full load; it counts marginal power only, not a server's idle
 * draw.
 *
 * The rolling figures cover the last 60 s (less just after start).
 */
#ifndef TOKD_COST_H
#define TOKD_COST_H

#include <stdbool.h>

#include "serve/metrics.h"
#include "serve/routes.h"

typedef struct tokd_cost_cfg {
  double watts_per_core;     /* the model's watts per busy CPU second */
  const char *powercap_dir;  /* NULL: /sys/class/powercap (tests point it at a fake) */
  tokd_metrics *metrics;
} tokd_cost_cfg;

typedef struct tokd_cost_figures {
  bool measured;             /* energy from RAPL (else the model) */
  double watts_per_core;
  double joules;             /* since start */
  double window_s;           /* what the window_* figures cover */
  double window_cpu;         /* process CPU seconds */
  double window_joules;
  unsigned long long window_tokens;
  unsigned long long window_requests[EP__COUNT];
  double window_request_cpu[EP__COUNT]; /* worker CPU seconds computing answers */
} tokd_cost_figures;

typedef struct tokd_cost tokd_cost;

/* A sampler for cfg (it finds the powercap packages now), not started. NULL when out of
 * memory. */
tokd_cost *tokd_cost_new(const tokd_cost_cfg *cfg);
/* Takes the first sample and starts the sampling thread. false if it cannot start. */
bool tokd_cost_start(tokd_cost *c);
void tokd_cost_stop(tokd_cost *c);
/* Frees a stopped sampler; NULL is ignored. */
void tokd_cost_free(tokd_cost *c);

/* The latest figures (thread-safe). */
void tokd_cost_read(tokd_cost *c, tokd_cost_figures *out);

/* This process's user and system CPU seconds. */
void tokd_process_cpu(double *user, double *system);

#endif
