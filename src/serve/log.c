/*
 * log.c — see log.h.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static tokd_log_level shown = LOG_INFO;

void tokd_log_set_level(tokd_log_level level) { shown = level; }

void tokd_log(tokd_log_level gate, tokd_log_level level, const char *fmt, ...)
{
  if (gate > shown) return;
  static const char *names[] = {"off", "error", "warn", "info"};
  char line[2048];
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  struct tm tm;
  gmtime_r(&t.tv_sec, &tm);
  int n = snprintf(line, sizeof line, "{\"time\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",\"level\":\"%s\",",
                   tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                   t.tv_nsec / 1000000, names[level]);
  va_list ap;
  va_start(ap, fmt);
  n += vsnprintf(line + n, sizeof line - (size_t)n - 2, fmt, ap);
  va_end(ap);
  if (n > (int)sizeof line - 3) n = (int)sizeof line - 3;
  line[n++] = '}';
  line[n++] = '\n';
  ssize_t w = write(STDOUT_FILENO, line, (size_t)n);
  (void)w;
}
