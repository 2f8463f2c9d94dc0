/*
 * log.c — see log.h.
 */
#include "common/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* atomic: the start-up signal thread (cli/serve.c) may log while the daemon sets it */
static _Atomic int shown = LOG_INFO;

void tokd_log_set_level(tokd_log_level level) { atomic_store_explicit(&shown, (int)level, memory_order_relaxed); }

void tokd_log(tokd_log_level gate, tokd_log_level level, const char *fmt, ...)
{
  if ((int)gate > atomic_load_explicit(&shown, memory_order_relaxed)) return;
  static const char *names[] = {"off", "error", "warn", "info"};
  char stack[2048], *line = stack;
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  struct tm tm;
  gmtime_r(&t.tv_sec, &tm);
  int head = snprintf(stack, sizeof stack, "{\"time\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",\"level\":\"%s\",",
                      tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                      t.tv_nsec / 1000000, names[level]);
  va_list ap, again;
  va_start(ap, fmt);
  va_copy(again, ap);
  int body = vsnprintf(stack + head, sizeof stack - (size_t)head - 2, fmt, ap);
  va_end(ap);
  if (body < 0) body = 0;
  size_t n = (size_t)head + (size_t)body;
  /* a line longer than the stack buffer (a listening line naming many tokenizers) is
   * printed whole from the heap: a cut line would not be JSON */
  if (n + 2 >= sizeof stack) {
    char *whole = malloc(n + 3);
    if (whole) {
      memcpy(whole, stack, (size_t)head);
      vsnprintf(whole + head, (size_t)body + 1, fmt, again);
      line = whole;
    } else {
      n = sizeof stack - 3; /* out of memory: cut it */
    }
  }
  va_end(again);
  line[n++] = '}';
  line[n++] = '\n';
  ssize_t w = write(STDOUT_FILENO, line, n);
  (void)w;
  if (line != stack) free(line);
}
