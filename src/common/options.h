/*
 * options.h — a command's options and their environment variables from one table.
 *
 * A command lists each option once: its flag, short letter, argument, variable, type, the
 * field it sets (an offset into the command's settings struct), bounds and help text.
 * getopt_long's array, the reads of the variables and the checks of every value are made
 * here from that table, so a flag and its variable can never be parsed two ways; each
 * command prints its help from the same table in its own layout. `tokd serve` has one
 * table (serve/config.c), the other commands share one (cli/main.c).
 */
#ifndef TOKD_OPTIONS_H
#define TOKD_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef enum {
  TOKD_OPT_STR,    /* const char *: the value as given; empty = unset (NULL) */
  TOKD_OPT_FLAG,   /* bool set to true; takes no argument */
  TOKD_OPT_ONOFF,  /* bool: on/true/1 or off/false/0 */
  TOKD_OPT_UINT,   /* unsigned, a whole number in [min, max] */
  TOKD_OPT_SIZE,   /* size_t, a whole number in [min, max] */
  TOKD_OPT_MODE,   /* unsigned, an octal file mode up to max */
  TOKD_OPT_DOUBLE, /* double in [min, max] */
  TOKD_OPT_CUSTOM, /* parsed by the option's parse */
  TOKD_OPT_HELP,   /* the help text; takes no argument */
} tokd_opt_type;

typedef struct tokd_option {
  const char *name;  /* the flag, without -- */
  char letter;       /* its short form; 0: none */
  const char *arg;   /* the argument's name in the help (NULL: the command's printer decides) */
  const char *env;   /* its variable; NULL: none */
  tokd_opt_type type;
  size_t offset;     /* of the field it sets in the settings struct */
  unsigned long long min, max;
  /* TOKD_OPT_CUSTOM: sets the option from value into settings (the whole struct: some
   * options set more than their field); NULL for the other types. Returns 0, or an exit
   * status after printing why; source is "--name" or the variable's name. */
  int (*parse)(void *settings, const char *value, const char *source);
  const char *help;
} tokd_option;

/* Whether the option takes an argument. */
bool tokd_option_takes_arg(const tokd_option *o);

/* Sets o in settings from value (source: "--name" or the variable, for messages). Returns
 * 0, or 2 after printing why on stderr. */
int tokd_option_set(const tokd_option *o, void *settings, const char *value, const char *source);

/* Reads the variables of opts[0..n) (set and not empty), skipping those marked in skip
 * (NULL: none). Returns 0 or an exit status, as tokd_option_set. */
int tokd_options_env(const tokd_option *opts, size_t n, void *settings, const bool *skip);

/* Parses the flags of argv (from argv[1], getopt_long; at most 256 options) into settings;
 * given[i] (NULL: not kept) is set for every option seen. Returns 0 with *rest the index
 * of the first argument that is not an option; -1 when the help option was given (nothing
 * printed); or an exit status after printing why (an unknown flag: "tokd: see" and see). */
int tokd_options_flags(const tokd_option *opts, size_t n, void *settings, int argc, char **argv, bool *given,
                       int *rest, const char *see);

/* Prints the options' help as the commands other than `serve` do: "  -e, --name ARG",
 * then the help (and "(env VAR)") wrapped at column 92 from column 24, beside the flag
 * when it fits, else on the next line. */
void tokd_options_print(FILE *out, const tokd_option *opts, size_t n);

#endif
