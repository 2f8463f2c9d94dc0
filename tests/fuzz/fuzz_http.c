/*
 * fuzz_http.c — fuzz target for the whole HTTP request path: the real daemon (daemon.c,
 * libmicrohttpd, the watchdog, the pool, the handlers) runs in this process on a loopback
 * port, and each input is sent as raw bytes on a fresh connection, which is then closed.
 *
 * Checked for every input: what the server answers at once starts with an HTTP/1.x
 * status line and is never a 500; the server closes the connection within 10 s (a
 * suspended request that is never resumed would hang here); and then its accounting is
 * back to zero — no connection open, no request active, no in-flight slot taken, no byte
 * of the memory budget reserved — so a path that forgets to give back a slot or a
 * reservation is found. Sanitizers see both sides. Replayed over tests/data/fuzz/http/ by
 * `make test`; the answers themselves are checked by tests/http_test.py and
 * tests/hardening_test.py.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "tok.h"
#include "util.h"
#include "watchdog.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

static unsigned PORT;

static void start(void)
{
  static char *argv[] = {
      "serve", "--host", "127.0.0.1", "--port", "0", "--log-level", "off", "--threads", "2",
      "--max-body-bytes", "65536", "--max-memory", "16777216", "--max-batch", "16", "--max-tokens", "100000",
      "--header-timeout", "5", "--drain-delay", "0", "--drain-timeout", "1",
      "--tokenizer", "tiny-sp=tests/data/hf/tiny/sp/tokenizer.json", "--encodings", "cl100k_base,o200k_base", NULL};
  tokd_config cfg;
  bool exit_now;
  signal(SIGPIPE, SIG_IGN);
  if (tokd_config_parse((int)(sizeof argv / sizeof argv[0]) - 1, argv, &cfg, &exit_now) != 0 || exit_now ||
      tokd_daemon_start(&cfg) != 0) {
    fprintf(stderr, "fuzz_http: the daemon does not start (run from the repository root)\n");
    abort();
  }
  PORT = tokd_daemon_port();
}

static void sleep_us(long us)
{
  struct timespec t = {0, us * 1000};
  nanosleep(&t, NULL);
}

/* Checks what the server said on one connection before it was closed (maybe a part). */
static void check_answer(const char *out, size_t n)
{
  if (n == 0) return;
  if (memcmp(out, "HTTP/1.", n < 7 ? n : 7) != 0) abort();
  for (const char *p = out; (p = memmem(p, (size_t)(out + n - p), "HTTP/1.1 500", 12)); p++) abort();
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
  if (!PORT) start();
  unsigned long long closed = tokd_watchdog_closed();
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) abort();
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)PORT)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  struct timeval tv = {10, 0};
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) abort();
  for (size_t off = 0; off < size;) {
    ssize_t w = send(fd, data + off, size - off, MSG_NOSIGNAL);
    if (w <= 0) break; /* the server answered early and closed */
    off += (size_t)w;
  }
  /* Whatever came back at once; then the connection is closed without waiting for more.
   * (Waiting would cost a timeout per input: an incomplete request is never answered, and
   * libmicrohttpd 0.9.75 does not treat a half-close as the end of a request.) The server
   * still processes what it was sent, meeting the close at some point of the request's
   * life: every abort path gets exercised. */
  static char out[1 << 16];
  ssize_t n = recv(fd, out, sizeof out, MSG_DONTWAIT);
  close(fd);
  check_answer(out, n > 0 ? (size_t)n : 0);
  /* the server closes its side, and its accounting comes back to zero */
  const tokd_server *s = tokd_daemon_server();
  double deadline = tokd_now() + 10;
  while (tokd_watchdog_closed() == closed || tokd_watchdog_count() || atomic_load(&s->active) ||
         atomic_load(&s->inflight) || atomic_load(&s->budget.used)) {
    if (tokd_now() > deadline) {
      fprintf(stderr, "fuzz_http: 10 s after the client closed: %u connections, %u active, %u in flight, "
              "%zu bytes reserved\n", tokd_watchdog_count(), atomic_load(&s->active), atomic_load(&s->inflight),
              (size_t)atomic_load(&s->budget.used));
      abort();
    }
    sleep_us(20);
  }
  return 0;
}
