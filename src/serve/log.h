/*
 * log.h — one JSON object per line on stdout, each written with a single write(2) so
 * lines from different threads never interleave.
 */
#ifndef TOKD_LOG_H
#define TOKD_LOG_H

#include "serve/config.h"

/* Sets the level lines are shown at (the server's --log-level). */
void tokd_log_set_level(tokd_log_level level);
/* `gate` is the least log level that shows the line; `level` is what the line says. fmt
 * continues the object after "time" and "level" (without braces). */
void tokd_log(tokd_log_level gate, tokd_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
