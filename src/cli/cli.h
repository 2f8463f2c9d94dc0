/*
 * cli.h — the subcommands that live outside main.c.
 */
#ifndef TOKD_CLI_H
#define TOKD_CLI_H

/* `tokd serve ...` (server.c); argv[0] is "serve". Returns the exit status. */
int tokd_serve_main(int argc, char **argv);
/* `tokd health ...` (server.c): exit 0 when the local server is ready. */
int tokd_health_main(int argc, char **argv);

/* `tokd load ...` (load.c): open-loop load against a running server and a sizing report. */
int tokd_load_main(int argc, char **argv);

#endif
