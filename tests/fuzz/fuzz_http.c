/*
 * fuzz_http.c — fuzz target for the whole HTTP request path: the real server (server.c, http.c,
 * libmicrohttpd, the watchdog, the pool, the handlers) runs in this process on a loopback
 * port, and each input is sent as raw bytes on a fresh connection, which is then closed.
 *
 * Checked for every input: what the server answers at once starts with an HTTP/1.x
 * status line and is never a 500; and within 10 s the server settles — no request active,
 * no in-flight slot taken, and the memory budget holding exactly the open connections'
 * shares — so a request that hangs (say, suspended and never resumed) or forgets to give
 * back a slot or a reservation is found. Sanitizers see both sides. Replayed over tests/data/fuzz/http/ by
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

#include "serve/http.h"
#include "serve/server.h"
#include "tok.h"
#include "common/util.h"
#include "serve/watchdog.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

static unsigned PORT;
static tokd_server *SRV; /* lives as long as the process */

static void start(void)
{
  static char *argv[] = {
      "serve", "--host", "127.0.0.1", "--port", "0", "--log-level", "off", "--threads", "2",
      "--max-body-bytes", "65536", "--max-memory", "268435456", "--max-batch", "16", "--max-tokens", "100000",
      "--header-timeout", "2", "--drain-delay", "0", "--drain-timeout", "1",
      "--tokenizer", "tiny-sp=tests/data/hf/tiny/sp/tokenizer.json", "--encodings", "cl100k_base,o200k_base", NULL};
  tokd_config cfg;
  bool exit_now;
  signal(SIGPIPE, SIG_IGN);
  if (tokd_config_parse((int)(sizeof argv / sizeof argv[0]) - 1, argv, &cfg, &exit_now) != 0 || exit_now ||
      tokd_server_new(&cfg, &SRV) != 0 || tokd_server_start(SRV) != 0) {
    fprintf(stderr, "fuzz_http: the daemon does not start (run from the repository root)\n");
    abort();
  }
  PORT = tokd_http_port(SRV);
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
  /* status lines start the output or follow a newline (JSON bodies escape theirs) */
  if (n >= 12 && !memcmp(out, "HTTP/1.1 500", 12)) abort();
  if (memmem(out, n, "\nHTTP/1.1 500", 13)) abort();
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
  if (!PORT) start();
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
  /* Once nothing is in progress, the budget holds exactly the open connections' shares:
   * a request that ended without giving back its reservation or its slot shows here. (The
   * server may not have read this input yet; then a leak shows at a later input.) Waiting
   * can take up to half a second (a connection whose client left unnoticed waits for the
   * watchdog), so a long fuzzing run checks every TOKD_FUZZ_SETTLE_EVERY inputs; replays
   * check every input (`make fuzz` sets 1024). */
  static unsigned long every, n_inputs;
  if (!every) {
    const char *e = getenv("TOKD_FUZZ_SETTLE_EVERY");
    every = e && atol(e) > 0 ? (unsigned long)atol(e) : 1;
  }
  if (++n_inputs % every) return 0;
  const tokd_server *s = SRV;
  double deadline = tokd_now() + 10;
  for (;;) {
    unsigned conns = tokd_watchdog_count(s->watchdog), active = atomic_load(&s->active), inflight = atomic_load(&s->inflight);
    size_t used = atomic_load(&s->budget->used);
    if (!active && !inflight && used == (size_t)conns * TOKD_CONN_RESERVE) break;
    if (tokd_now() > deadline) {
      fprintf(stderr, "fuzz_http: not settled after 10 s: %u connections, %u active, %u in flight, %zu bytes reserved\n",
              conns, active, inflight, used);
      abort();
    }
    sleep_us(20);
  }
  return 0;
}
