/*
 * options.c — see options.h. The messages name the flag or the variable that was wrong
 * and what it must be, and the exit status of a bad value is 2 (bad usage).
 */
#include "common/options.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_OPTIONS 256

bool tokd_option_takes_arg(const tokd_option *o)
{
  return o->type != TOKD_OPT_FLAG && o->type != TOKD_OPT_HELP;
}

/* A whole number (base 10, or 8 for a mode) of value, all of it, not negative. */
static bool whole(const char *value, int base, unsigned long long *out)
{
  char *end;
  errno = 0;
  *out = strtoull(value, &end, base);
  return !errno && end != value && !*end && value[0] != '-';
}

int tokd_option_set(const tokd_option *o, void *settings, const char *value, const char *source)
{
  char *field = (char *)settings + o->offset;
  unsigned long long v;
  switch (o->type) {
  case TOKD_OPT_STR:
    *(const char **)field = *value ? value : NULL;
    return 0;
  case TOKD_OPT_FLAG:
    *(bool *)field = true;
    return 0;
  case TOKD_OPT_ONOFF: {
    bool on = !strcmp(value, "on") || !strcmp(value, "true") || !strcmp(value, "1");
    bool off = !strcmp(value, "off") || !strcmp(value, "false") || !strcmp(value, "0");
    if (on || off) {
      *(bool *)field = on;
      return 0;
    }
    fprintf(stderr, "tokd: %s: expected on or off, got \"%.40s\"\n", source, value);
    return 2;
  }
  case TOKD_OPT_UINT: case TOKD_OPT_SIZE:
    if (!whole(value, 10, &v) || v < o->min || v > o->max) {
      fprintf(stderr, "tokd: %s must be %llu to %llu (a whole number), not \"%.40s\"\n", source, o->min, o->max,
              value);
      return 2;
    }
    if (o->type == TOKD_OPT_UINT) *(unsigned *)field = (unsigned)v;
    else *(size_t *)field = (size_t)v;
    return 0;
  case TOKD_OPT_MODE:
    if (!whole(value, 8, &v) || v > o->max) {
      fprintf(stderr, "tokd: %s: \"%.40s\" is not an octal file mode (0000 to %04llo)\n", source, value, o->max);
      return 2;
    }
    *(unsigned *)field = (unsigned)v;
    return 0;
  case TOKD_OPT_DOUBLE: {
    char *end;
    errno = 0;
    double d = strtod(value, &end);
    if (errno || end == value || *end || !(d >= (double)o->min && d <= (double)o->max)) {
      fprintf(stderr, "tokd: %s: \"%.40s\" is not a number in [%llu, %llu]\n", source, value, o->min, o->max);
      return 2;
    }
    *(double *)field = d;
    return 0;
  }
  case TOKD_OPT_CUSTOM:
    return o->parse(settings, value, source);
  case TOKD_OPT_HELP:
    break;
  }
  return 0;
}

int tokd_options_env(const tokd_option *opts, size_t n, void *settings, const bool *skip)
{
  for (size_t i = 0; i < n; i++) {
    const char *v = opts[i].env && !(skip && skip[i]) ? getenv(opts[i].env) : NULL;
    int rc = v && *v ? tokd_option_set(&opts[i], settings, v, opts[i].env) : 0;
    if (rc) return rc;
  }
  return 0;
}

int tokd_options_flags(const tokd_option *opts, size_t n, void *settings, int argc, char **argv, bool *given,
                       int *rest, const char *see)
{
  /* long options answer 256 + their index; short ones their letter */
  struct option longs[MAX_OPTIONS + 1];
  char shorts[2 * MAX_OPTIONS + 1];
  size_t n_shorts = 0;
  if (n > MAX_OPTIONS) n = MAX_OPTIONS;
  for (size_t i = 0; i < n; i++) {
    bool takes = tokd_option_takes_arg(&opts[i]);
    longs[i] = (struct option){opts[i].name, takes ? required_argument : no_argument, NULL, (int)(256 + i)};
    if (opts[i].letter) {
      shorts[n_shorts++] = opts[i].letter;
      if (takes) shorts[n_shorts++] = ':';
    }
  }
  longs[n] = (struct option){NULL, 0, NULL, 0};
  shorts[n_shorts] = '\0';
  optind = 1;
  for (int c; (c = getopt_long(argc, argv, shorts, longs, NULL)) != -1;) {
    size_t i = 0;
    if (c >= 256 && c < 256 + (int)n) i = (size_t)c - 256;
    else
      while (i < n && (!opts[i].letter || opts[i].letter != c)) i++;
    if (i == n) {
      fprintf(stderr, "tokd: see %s\n", see);
      return 2;
    }
    if (opts[i].type == TOKD_OPT_HELP) return -1;
    char source[64];
    snprintf(source, sizeof source, "--%s", opts[i].name);
    if (given) given[i] = true;
    int rc = tokd_option_set(&opts[i], settings, optarg, source);
    if (rc) return rc;
  }
  *rest = optind;
  return 0;
}

/* Prints text from column `indent`, wrapped before column 92 at spaces. */
static void print_wrapped(FILE *out, const char *text, int indent)
{
  int col = indent;
  for (const char *p = text; *p;) {
    size_t word = strcspn(p, " ");
    if (col > indent && col + 1 + (int)word > 92) {
      fprintf(out, "\n%*s", indent, "");
      col = indent;
    } else if (col > indent) {
      fputc(' ', out);
      col++;
    }
    fwrite(p, 1, word, out);
    col += (int)word;
    p += word;
    while (*p == ' ') p++;
  }
  fputc('\n', out);
}

void tokd_options_print(FILE *out, const tokd_option *opts, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    const tokd_option *op = &opts[i];
    char left[64], help[512];
    int k = op->letter ? snprintf(left, sizeof left, "  -%c, --%s", op->letter, op->name)
                       : snprintf(left, sizeof left, "      --%s", op->name);
    if (op->arg) snprintf(left + k, sizeof left - (size_t)k, " %s", op->arg);
    snprintf(help, sizeof help, op->env ? "%s (env %s)" : "%s", op->help, op->env);
    if (strlen(left) + 1 < 24) fprintf(out, "%-24s", left);
    else fprintf(out, "%s\n%24s", left, "");
    print_wrapped(out, help, 24);
  }
}
