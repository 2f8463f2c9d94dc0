/*
 * log.h — one JSON object per line on stdout, each written with a single write(2) so
 * lines from different threads never interleave. The level is the process's, as stdout
 * is (set once by `tokd serve` from --log-level; atomic, since the start-up signal thread
 * may log meanwhile).
 */
#ifndef TOKD_LOG_H
#define TOKD_LOG_H

/* Levels, least verbose first: a line shows when its gate is at most the level set. */
typedef enum { LOG_OFF = 0, LOG_ERROR = 1, LOG_WARN = 2, LOG_INFO = 3 } tokd_log_level;

/* Sets the level lines are shown at (the server's --log-level). */
void tokd_log_set_level(tokd_log_level level);
/* `gate` is the least log level that shows the line; `level` is what the line says. fmt
 * continues the object after "time" and "level" (without braces). */
void tokd_log(tokd_log_level gate, tokd_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
