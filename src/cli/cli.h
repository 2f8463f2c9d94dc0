/*
 * cli.h — the subcommands that live outside main.c.
 */
#ifndef TOKD_CLI_H
#define TOKD_CLI_H

/* `tokd serve ...` (serve.c); argv[0] is "serve". Returns the exit status. */
int tokd_serve_main(int argc, char **argv);
/* `tokd health ...` (health.c): exit 0 when the local server is ready. */
int tokd_health_main(int argc, char **argv);

#endif
