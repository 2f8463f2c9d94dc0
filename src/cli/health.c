/*
 * health.c — `tokd health`: GET /ready on a local server; exit 0 when it answers 200. For
 * container HEALTHCHECKs and probes in images without a shell or curl.
 */
#include <netdb.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/options.h"

typedef struct health_opts {
  const char *host, *port, *path, *unix_path;
  unsigned timeout;
} health_opts;

/* The options, in one table (common/options.h): the help, getopt_long's array and
 * TOKD_PORT's read come from it. */
#define OFF(field) offsetof(health_opts, field)
static const tokd_option OPTIONS[] = {
    {"host", 0, "H", NULL, TOKD_OPT_STR, OFF(host), 0, 0, NULL, "the server's address (default 127.0.0.1)"},
    {"port", 0, "P", "TOKD_PORT", TOKD_OPT_STR, OFF(port), 0, 0, NULL, "its TCP port (default 8080)"},
    {"unix", 0, "SOCKET", NULL, TOKD_OPT_STR, OFF(unix_path), 0, 0, NULL, "its Unix socket, instead of TCP"},
    {"path", 0, "PATH", NULL, TOKD_OPT_STR, OFF(path), 0, 0, NULL, "what to GET (default /ready)"},
    {"timeout", 0, "S", NULL, TOKD_OPT_UINT, OFF(timeout), 0, 3600, NULL,
     "seconds to wait for the answer (default 2; 0 counts as 1)"},
    {"help", 'h', NULL, NULL, TOKD_OPT_HELP, 0, 0, 0, NULL, "this text"},
};
#undef OFF
#define N_OPTIONS (sizeof OPTIONS / sizeof OPTIONS[0])

int tokd_health_main(int argc, char **argv)
{
  health_opts o = {.timeout = 2};
  int rest, rc = tokd_options_env(OPTIONS, N_OPTIONS, &o, NULL);
  if (!rc) rc = tokd_options_flags(OPTIONS, N_OPTIONS, &o, argc, argv, NULL, &rest, "`tokd health --help`");
  if (!rc && rest < argc) {
    fprintf(stderr, "tokd health: unexpected argument \"%s\"; see `tokd health --help`\n", argv[rest]);
    rc = 2;
  }
  if (rc == -1) {
    fputs("usage: tokd health [OPTIONS]\n"
          "Exits 0 when GET /ready on a local server (TCP, or its Unix socket) answers 200, 1 when\n"
          "it does not, 2 on bad usage.\n\n",
          stdout);
    tokd_options_print(stdout, OPTIONS, N_OPTIONS);
    return 0;
  }
  if (rc) return rc;
  const char *host = o.host ? o.host : "127.0.0.1", *port = o.port ? o.port : "8080";
  const char *path = o.path ? o.path : "/ready", *unix_path = o.unix_path;
  unsigned timeout = o.timeout;
  struct timeval tv = {.tv_sec = timeout ? timeout : 1};
  struct sockaddr_un un = {.sun_family = AF_UNIX};
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
  const char *where = unix_path;
  char tcp_where[300];
  if (unix_path) {
    if (strlen(unix_path) >= sizeof un.sun_path) {
      fprintf(stderr, "tokd health: Unix socket path too long\n");
      return 2;
    }
    memcpy(un.sun_path, unix_path, strlen(unix_path) + 1);
  } else {
    if (getaddrinfo(host, port, &hints, &ai) != 0) {
      fprintf(stderr, "tokd health: cannot resolve %s:%s\n", host, port);
      return 1;
    }
    snprintf(tcp_where, sizeof tcp_where, "%s:%s", host, port);
    where = tcp_where;
  }
  int fd = socket(ai ? ai->ai_family : AF_UNIX, SOCK_STREAM, 0);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  int ok = fd >= 0 && (ai ? connect(fd, ai->ai_addr, ai->ai_addrlen)
                          : connect(fd, (struct sockaddr *)&un, sizeof un)) == 0;
  if (ai) freeaddrinfo(ai);
  char buf[256];
  if (ok) {
    int n = snprintf(buf, sizeof buf, "GET %.200s HTTP/1.0\r\nHost: %s\r\n\r\n", path, unix_path ? "localhost" : host);
    ok = write(fd, buf, (size_t)n) == n;
  }
  ssize_t got = ok ? read(fd, buf, sizeof buf - 1) : -1;
  if (fd >= 0) close(fd);
  if (got < 12) {
    fprintf(stderr, "tokd health: no answer from %s\n", where);
    return 1;
  }
  buf[got] = '\0';
  bool is_200 = !strncmp(buf + 9, "200", 3);
  if (!is_200) fprintf(stderr, "tokd health: %.*s\n", (int)strcspn(buf, "\r\n"), buf);
  return is_200 ? 0 : 1;
}
