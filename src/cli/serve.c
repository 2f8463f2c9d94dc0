/*
 * serve.c — the `tokd serve` command: the server object (serve/server.h) wrapped with
 * signals and lifecycle log lines; `--print-memory`.
 *
 * Signals are taken synchronously: SIGTERM and SIGINT are blocked in every thread and the
 * main thread waits for them with sigwait, then drains (tokd_server_stop). While the
 * tokenizers load (tokd_server_new) a thread of its own takes them (startup_watch below),
 * since nothing is serving yet.
 */
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "serve/http.h"
#include "serve/server.h"
#include "serve/json.h"
#include "common/log.h"
#include "serve/metrics.h"
#include "common/util.h"

/* --print-memory: the tokenizers' structures, then the process's resident memory and the
 * part no structure accounts for. */
static void print_memory(const tokd_server *srv)
{
  size_t n;
  tok_memory_item *items = tokd_memory_items(srv->reg, &n);
  if (!items) n = 0;
  unsigned long long anon, file, tok_anon = 0, tok_file = 0;
  int width = 28; /* the longest name, whole (names are at most 128 bytes) */
  for (size_t i = 0; i < n; i++)
    if ((int)strlen(items[i].tokenizer) > width) width = (int)strlen(items[i].tokenizer);
  printf("%-*s %-12s %-5s %10s %12s\n", width, "tokenizer", "structure", "pages", "size MB", "resident MB");
  for (size_t i = 0; i < n; i++) {
    printf("%-*s %-12s %-5s %10.3f %12.3f\n", width, items[i].tokenizer, items[i].structure,
           items[i].file_backed ? "file" : "anon", items[i].bytes / 1e6, items[i].resident / 1e6);
    *(items[i].file_backed ? &tok_file : &tok_anon) += items[i].resident;
  }
  tokd_rss_split(&anon, &file);
  printf("tokenizers resident: %.3f MB anonymous, %.3f MB file-backed\n", tok_anon / 1e6, tok_file / 1e6);
  printf("process resident: %.3f MB = %.3f MB anonymous + %.3f MB file-backed\n", (anon + file) / 1e6, anon / 1e6,
         file / 1e6);
  printf("not in the table: %.3f MB anonymous (heap, stacks, scratches, libraries' data), %.3f MB file-backed "
         "(the executable's code and the libraries)\n",
         (double)(anon > tok_anon ? anon - tok_anon : 0) / 1e6, (double)(file > tok_file ? file - tok_file : 0) / 1e6);
  free(items);
}

/* Appends s to a JSON list being built (without its brackets). */
static void json_list_add(tok_buf *list, const char *s)
{
  if (list->len) tok_buf_append(list, ",", 1);
  tokd_json_string(list, s, strlen(s));
}

/* Loading the tokenizers (building tables, reading caches) is not interruptible by the
 * drain below, so a thread of its own takes SIGTERM and SIGINT meanwhile and ends the
 * process at once, as the signal's default action would (exit status 128 + signal):
 * nothing is listening yet, so there is nothing to drain. SIGUSR2, sent to this thread
 * only, says loading is over; a stop signal that comes after that stays pending until the
 * main loop's sigwait, which drains. */
static void *startup_watch_main(void *arg)
{
  (void)arg;
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGUSR2);
  int sig = 0;
  while (sigwait(&sigs, &sig) != 0) {
  }
  if (sig == SIGUSR2) return NULL;
  tokd_log(LOG_ERROR, LOG_INFO, "\"msg\":\"stopped during start-up\",\"signal\":\"%s\"",
           sig == SIGTERM ? "SIGTERM" : "SIGINT");
  _exit(128 + sig);
}

int tokd_serve_main(int argc, char **argv)
{
  bool exit_now;
  tokd_config cfg;
  int rc = tokd_config_parse(argc, argv, &cfg, &exit_now);
  if (rc || exit_now) return rc;
  if (cfg.print_memory) cfg.drain_delay_s = 0; /* it stops as soon as it has printed */

  /* Signals are taken synchronously by the main thread (sigwait); every other thread,
   * including libmicrohttpd's, inherits this mask. */
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGUSR2);
  pthread_sigmask(SIG_BLOCK, &sigs, NULL);
  sigdelset(&sigs, SIGUSR2);
  signal(SIGPIPE, SIG_IGN);
  pthread_t watch;
  bool watching = pthread_create(&watch, NULL, startup_watch_main, NULL) == 0;
  tokd_server *srv = NULL;
  rc = tokd_server_new(&cfg, &srv);
  if (watching) {
    pthread_kill(watch, SIGUSR2);
    pthread_join(watch, NULL);
  }
  if (rc != 0) return rc;
  if ((rc = tokd_server_start(srv)) != 0) {
    tokd_server_stop(srv);
    tokd_server_free(srv);
    return rc;
  }
  if (srv->cfg.print_memory) {
    /* as a server is when it turns ready: warmed, idle */
    while (!atomic_load(&srv->warm)) nanosleep(&(struct timespec){0, 5000000}, NULL);
    malloc_trim(0);
    print_memory(srv);
    fflush(stdout);
    tokd_server_stop(srv); /* --print-memory starts with no drain delay (above) */
    tokd_server_free(srv);
    return 0;
  }

  tok_buf names = {0}, unix_paths = {0}; /* JSON lists, as long as they need to be */
  for (size_t i = 0; i < tok_registry_count(srv->reg); i++)
    json_list_add(&names, tok_encoding_get_info(tok_registry_at(srv->reg, i))->name);
  for (unsigned i = 0; i < srv->cfg.listen.n_unix; i++) json_list_add(&unix_paths, srv->cfg.listen.unix_paths[i]);
  /* lifecycle lines show unless logs are off: operators and tests read them */
  tokd_log(LOG_ERROR, LOG_INFO,
           "\"msg\":\"listening\",\"host\":%s%s%s,\"port\":%u,\"unix\":[%.*s],\"threads\":%u,\"io_threads\":%u,"
           "\"encodings\":[%.*s],\"default_encoding\":\"%s\",\"load_ms\":%.1f,\"rss_bytes\":%llu,"
           "\"max_memory\":%zu,\"version\":\"%s\"",
           srv->cfg.listen.tcp ? "\"" : "", srv->cfg.listen.tcp ? srv->cfg.host : "null", srv->cfg.listen.tcp ? "\"" : "",
           tokd_http_port(srv), (int)unix_paths.len, unix_paths.data ? unix_paths.data : "", srv->cfg.threads, srv->io_threads,
           (int)names.len, names.data ? names.data : "",
           tok_encoding_get_info(srv->default_enc)->name, srv->load_ms, tokd_rss_bytes(), srv->cfg.max_memory,
           TOKD_VERSION);
  tok_buf_free(&unix_paths);
  tok_buf_free(&names);

  int sig = 0;
  while (sigwait(&sigs, &sig) != 0) {
  }
  tokd_log(LOG_ERROR, LOG_INFO, "\"msg\":\"draining\",\"signal\":\"%s\",\"inflight\":%u,\"drain_delay_s\":%u",
           sig == SIGTERM ? "SIGTERM" : "SIGINT", atomic_load(&srv->active), srv->cfg.drain_delay_s);
  unsigned left = tokd_server_stop(srv);
  tokd_server_free(srv);
  tokd_log(LOG_ERROR, LOG_INFO, "\"msg\":\"stopped\",\"unfinished\":%u", left);
  return 0;
}
