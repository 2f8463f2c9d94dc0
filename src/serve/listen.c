/*
 * listen.c — the TCP address and the Unix domain sockets `tokd serve` listens on; see
 * listen.h for the rules (stale sockets, modes, removal at exit).
 */
#include "serve/listen.h"

#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "serve/json.h"
#include "common/log.h"

#define PATH_CAP sizeof ((struct sockaddr_un *)0)->sun_path

typedef struct unix_sock {
  int fd;
  char path[PATH_CAP];
  dev_t dev;
  ino_t ino;
} unix_sock;

struct tokd_listener {
  unix_sock socks[TOKD_MAX_UNIX];
  unsigned n_socks, first_accepted;
  pthread_t accept_thread;
  bool accepting;
  int wake_fd;
  struct MHD_Daemon *target;
};

void tokd_listen_spec_free(tokd_listen_spec *spec)
{
  free(spec->buf);
  *spec = (tokd_listen_spec){0};
}

int tokd_listen_parse(const char *value, const char *source, tokd_listen_spec *spec)
{
  tokd_listen_spec s = {.buf = strdup(value)};
  if (!s.buf) return fprintf(stderr, "tokd: out of memory\n"), 1;
  for (char *p = s.buf, *next; p; p = next) {
    next = strchr(p, ',');
    if (next) *next++ = '\0';
    if (!strncmp(p, "unix:", 5)) {
      const char *path = p + 5;
      size_t len = strlen(path);
      if (!len || len >= PATH_CAP) {
        fprintf(stderr, "tokd: %s: a Unix socket path must have 1 to %zu bytes (got %zu)\n", source,
                PATH_CAP - 1, len);
        goto fail;
      }
      if (s.n_unix == TOKD_MAX_UNIX) {
        fprintf(stderr, "tokd: %s: at most %d Unix sockets\n", source, TOKD_MAX_UNIX);
        goto fail;
      }
      s.unix_paths[s.n_unix++] = path;
      continue;
    }
    /* HOST:PORT, [V6]:PORT or :PORT (all IPv4 interfaces) */
    char *host = p, *colon;
    if (*host == '[') {
      char *close = strchr(host, ']');
      colon = close && close[1] == ':' ? close + 1 : NULL;
      if (close) *close = '\0', host++;
    } else {
      colon = strrchr(host, ':');
    }
    char *end = NULL;
    unsigned long port = colon && colon[1] ? strtoul(colon + 1, &end, 10) : 0;
    if (!colon || !end || *end || port > 65535 || colon[1] == '-' || colon[1] == '+') {
      fprintf(stderr, "tokd: %s: \"%s\" is neither HOST:PORT nor unix:PATH\n", source, p);
      goto fail;
    }
    if (s.tcp) {
      fprintf(stderr, "tokd: %s: at most one HOST:PORT (Unix sockets may be added)\n", source);
      goto fail;
    }
    *colon = '\0';
    s.tcp = true;
    s.host = *host ? host : "0.0.0.0";
    s.port = (unsigned)port;
  }
  if (!s.tcp && !s.n_unix) {
    fprintf(stderr, "tokd: %s: no listener given\n", source);
    goto fail;
  }
  *spec = s;
  return 0;
fail:
  free(s.buf);
  return 2;
}

/* A socket file at path: is a server accepting on it? (a refused connect is a stale one).
 * The probe is non-blocking: a live server whose backlog is full answers EAGAIN at once
 * instead of holding start-up until it accepts. */
static bool socket_alive(const struct sockaddr_un *addr)
{
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return true; /* cannot tell: do not replace it */
  bool alive = connect(fd, (const struct sockaddr *)addr, sizeof *addr) == 0 ||
               (errno != ECONNREFUSED && errno != ENOENT);
  close(fd);
  return alive;
}

/* The socket's directory (created when missing): tokd's or root's, and writable by no other
 * user unless sticky. Else someone else could swap the socket for their own file or a
 * symlink between bind and listen, or at removal. 0, or 2 after printing why. */
static int check_dir(const char *path)
{
  char dir[PATH_CAP];
  memcpy(dir, path, strlen(path) + 1);
  char *slash = strrchr(dir, '/');
  if (!slash) memcpy(dir, ".", 2);
  else if (slash == dir) dir[1] = '\0';
  else *slash = '\0';
  struct stat st;
  if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
    fprintf(stderr, "tokd: cannot listen on unix:%s: cannot create %s: %s\n", path, dir, strerror(errno));
    return 1;
  }
  if (stat(dir, &st) != 0) {
    fprintf(stderr, "tokd: cannot listen on unix:%s: %s: %s\n", path, dir, strerror(errno));
    return 1;
  }
  if (st.st_uid != geteuid() && st.st_uid != 0) {
    fprintf(stderr, "tokd: cannot listen on unix:%s: its directory %s belongs to another user (uid %u)\n", path,
            dir, (unsigned)st.st_uid);
    return 2;
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) && !(st.st_mode & S_ISVTX)) {
    fprintf(stderr,
            "tokd: cannot listen on unix:%s: other users can write its directory %s (mode %04o, no sticky bit); "
            "use a directory of tokd's own (a missing one is created)\n",
            path, dir, (unsigned)(st.st_mode & 07777));
    return 2;
  }
  return 0;
}

static int open_one(unix_sock *u, const char *path, unsigned mode)
{
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  memcpy(addr.sun_path, path, strlen(path) + 1);
  struct stat st;
  int rc = check_dir(path);
  if (rc) return rc;
  if (lstat(path, &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      fprintf(stderr, "tokd: cannot listen on unix:%s: a file that is not a socket is there; not replacing it\n", path);
      return 2;
    }
    if (socket_alive(&addr)) {
      fprintf(stderr, "tokd: cannot listen on unix:%s: another server is listening on it\n", path);
      return 1;
    }
    if (unlink(path) != 0 && errno != ENOENT) {
      fprintf(stderr, "tokd: cannot replace the stale socket unix:%s: %s\n", path, strerror(errno));
      return 1;
    }
    tok_buf quoted = {0};
    bool ok = tokd_json_string(&quoted, path, strlen(path)) == TOK_OK;
    tokd_log(LOG_WARN, LOG_WARN, "\"msg\":\"replaced a stale socket\",\"path\":%.*s", ok ? (int)quoted.len : 4,
             ok ? quoted.data : "null");
    tok_buf_free(&quoted);
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  /* bind makes the file with mode & ~umask: the mode is the file's from its first moment,
   * and no path is chmod'ed afterwards. The umask is the process's, so this runs before any
   * thread that creates files (the table cache is written after start-up). */
  mode_t old_mask = umask(~(mode_t)mode & 0777);
  bool bound = fd >= 0 && bind(fd, (struct sockaddr *)&addr, sizeof addr) == 0;
  int why = errno;
  umask(old_mask);
  if (!bound) {
    if (fd >= 0) close(fd);
    fprintf(stderr, "tokd: cannot listen on unix:%s: %s\n", path, strerror(why));
    return 1;
  }
  if (lstat(path, &st) != 0 || listen(fd, 1024) != 0) {
    why = errno;
    close(fd);
    unlink(path);
    fprintf(stderr, "tokd: cannot listen on unix:%s: %s\n", path, strerror(why));
    return 1;
  }
  u->fd = fd;
  memcpy(u->path, path, strlen(path) + 1);
  u->dev = st.st_dev;
  u->ino = st.st_ino;
  return 0;
}

tokd_listener *tokd_listener_new(const tokd_listen_spec *spec, unsigned mode, int *rc)
{
  tokd_listener *l = calloc(1, sizeof *l);
  if (!l) {
    fprintf(stderr, "tokd: out of memory\n");
    *rc = 1;
    return NULL;
  }
  l->wake_fd = -1;
  for (unsigned i = 0; i < spec->n_unix; i++) {
    if ((*rc = open_one(&l->socks[l->n_socks], spec->unix_paths[i], mode)) != 0) {
      tokd_listener_free(l);
      return NULL;
    }
    l->n_socks++;
  }
  *rc = 0;
  return l;
}

int tokd_listener_fd(const tokd_listener *l, unsigned i)
{
  return i < l->n_socks ? l->socks[i].fd : -1;
}

static void *accept_main(void *arg)
{
  tokd_listener *l = arg;
  pthread_setname_np(pthread_self(), "tokd-accept");
  struct pollfd pfd[TOKD_MAX_UNIX + 1];
  unsigned n = 0;
  for (unsigned i = l->first_accepted; i < l->n_socks; i++)
    pfd[n++] = (struct pollfd){.fd = l->socks[i].fd, .events = POLLIN};
  pfd[n] = (struct pollfd){.fd = l->wake_fd, .events = POLLIN};
  for (;;) {
    if (poll(pfd, n + 1, -1) < 0 && errno != EINTR) break;
    if (pfd[n].revents) break;
    for (unsigned i = 0; i < n; i++) {
      if (!pfd[i].revents) continue;
      /* a burst at a time; the listening socket is non-blocking */
      for (int k = 0; k < 64; k++) {
        struct sockaddr_un peer = {.sun_family = AF_UNIX};
        socklen_t len = sizeof peer;
        int fd = accept4(pfd[i].fd, (struct sockaddr *)&peer, &len, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) {
          /* out of descriptors or memory: the connection stays queued and poll would
           * report it at once, so back off instead of spinning; EAGAIN: poll again */
          if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) poll(NULL, 0, 10);
          break;
        }
        /* libmicrohttpd closes the socket itself when it refuses it (connection limit);
         * the peer address is unnamed for an ordinary client: pass the whole struct */
        MHD_add_connection(l->target, fd, (const struct sockaddr *)&peer, sizeof peer);
      }
    }
  }
  return NULL;
}

void tokd_listener_hand_over(tokd_listener *l, unsigned n)
{
  l->first_accepted = n < l->n_socks ? n : l->n_socks;
}

bool tokd_listener_start(tokd_listener *l, void *daemon)
{
  l->target = daemon;
  if (l->first_accepted >= l->n_socks) return true;
  if ((l->wake_fd = eventfd(0, EFD_CLOEXEC)) < 0) return false;
  if (pthread_create(&l->accept_thread, NULL, accept_main, l) != 0) {
    close(l->wake_fd);
    l->wake_fd = -1;
    return false;
  }
  l->accepting = true;
  return true;
}

void tokd_listener_stop(tokd_listener *l)
{
  if (!l) return;
  if (l->accepting) {
    uint64_t one = 1;
    if (write(l->wake_fd, &one, sizeof one) != sizeof one) {
      /* an eventfd write fails only on overflow; the thread is woken either way */
    }
    pthread_join(l->accept_thread, NULL);
    l->accepting = false;
  }
  if (l->wake_fd >= 0) close(l->wake_fd), l->wake_fd = -1;
  /* the sockets before first_accepted are libmicrohttpd's: it (or whoever quiesced it)
   * closes them */
  for (unsigned i = l->first_accepted; i < l->n_socks; i++)
    if (l->socks[i].fd >= 0) close(l->socks[i].fd), l->socks[i].fd = -1;
  for (unsigned i = 0; i < l->n_socks; i++) {
    struct stat st;
    /* a socket that another process has since put at the path is not ours to remove */
    if (lstat(l->socks[i].path, &st) == 0 && st.st_dev == l->socks[i].dev && st.st_ino == l->socks[i].ino)
      unlink(l->socks[i].path);
  }
  l->n_socks = l->first_accepted = 0;
  l->target = NULL;
}

void tokd_listener_free(tokd_listener *l)
{
  tokd_listener_stop(l);
  free(l);
}
