/*
 * health.c — `tokd health`: GET /ready on a local server; exit 0 when it answers 200. For
 * container HEALTHCHECKs and probes in images without a shell or curl.
 */
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli/cli.h"

int tokd_health_main(int argc, char **argv)
{
  const char *host = "127.0.0.1", *port = getenv("TOKD_PORT"), *path = "/ready", *unix_path = NULL;
  unsigned timeout = 2;
  if (!port || !*port) port = "8080";
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--port") && i + 1 < argc) port = argv[++i];
    else if (!strcmp(argv[i], "--host") && i + 1 < argc) host = argv[++i];
    else if (!strcmp(argv[i], "--path") && i + 1 < argc) path = argv[++i];
    else if (!strcmp(argv[i], "--unix") && i + 1 < argc) unix_path = argv[++i];
    else if (!strcmp(argv[i], "--timeout") && i + 1 < argc) timeout = (unsigned)atoi(argv[++i]);
    else {
      fprintf(stderr, "usage: tokd health [--host H] [--port P | --unix SOCKET] [--path /ready] [--timeout S]\n"
                      "exit 0 when http://H:P/ready (or /ready on the Unix socket) answers 200\n"
                      "(env TOKD_PORT sets the port)\n");
      return strcmp(argv[i], "--help") ? 2 : 0;
    }
  }
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
