/*
 * util.c — see util.h.
 */
#include "common/util.h"
#include "common/cpu.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

double tokd_now(void)
{
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

unsigned tokd_cpu_count(void)
{
  unsigned n = tok__cpu_count();
  return n > TOKD_MAX_THREADS ? TOKD_MAX_THREADS : n;
}

tok_err tokd_read_stream(FILE *f, tok_buf *out)
{
  for (;;) {
    tok_err rc = tok_buf_reserve(out, 1 << 16);
    if (rc != TOK_OK) return rc;
    size_t got = fread(out->data + out->len, 1, out->cap - out->len, f);
    out->len += got;
    if (got == 0) break;
  }
  return ferror(f) ? TOK_EIO : TOK_OK;
}

/* Four digits a step: every number below 10,000 spelled with its leading zeros, and the
 * length it has without them (50 KB, filled before main). An answer of ids is mostly
 * this: token ids have 3 to 6 digits, and a 30 KB chat history answers 6,000 of them on
 * every request (measured: 1.4 ns an id against 4.6 with two digits a step). */
static char QUAD[10000][4];
static uint8_t QUAD_LEN[10000];

__attribute__((constructor)) static void quad_init(void)
{
  for (unsigned i = 0; i < 10000; i++) {
    QUAD[i][0] = (char)('0' + i / 1000), QUAD[i][1] = (char)('0' + i / 100 % 10);
    QUAD[i][2] = (char)('0' + i / 10 % 10), QUAD[i][3] = (char)('0' + i % 10);
    QUAD_LEN[i] = i >= 1000 ? 4 : i >= 100 ? 3 : i >= 10 ? 2 : 1;
  }
}

size_t tokd_format_u32(char *p, uint32_t n)
{
  if (n < 10000) { /* four bytes written, the digits first */
    memcpy(p, QUAD[n] + 4 - QUAD_LEN[n], 4);
    return QUAD_LEN[n];
  }
  uint32_t hi = n / 10000, lo = n % 10000;
  if (hi < 10000) { /* up to 99,999,999: eight bytes written */
    size_t len = QUAD_LEN[hi];
    memcpy(p, QUAD[hi] + 4 - len, 4);
    memcpy(p + len, QUAD[lo], 4);
    return len + 4;
  }
  size_t len = n >= 1000000000u ? 10 : 9;
  char *o = p + len;
  memcpy(o - 4, QUAD[lo], 4);
  memcpy(o - 8, QUAD[hi % 10000], 4);
  hi /= 10000;
  if (len == 10) p[1] = (char)('0' + hi % 10), hi /= 10;
  p[0] = (char)('0' + hi);
  return len;
}

unsigned long long tokd_rss_bytes(void)
{
  unsigned long long pages = 0, rss = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (f) {
    if (fscanf(f, "%llu %llu", &pages, &rss) != 2) rss = 0;
    fclose(f);
  }
  return rss * (unsigned long long)sysconf(_SC_PAGESIZE);
}

void tokd_rss_split(unsigned long long *anon, unsigned long long *file)
{
  *anon = *file = 0;
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) return;
  char line[256];
  while (fgets(line, sizeof line, f)) {
    unsigned long long kb;
    if (sscanf(line, "RssAnon: %llu", &kb) == 1) *anon = kb << 10;
    else if (sscanf(line, "RssFile: %llu", &kb) == 1) *file += kb << 10;
    else if (sscanf(line, "RssShmem: %llu", &kb) == 1) *file += kb << 10;
  }
  fclose(f);
}

static bool id_separator(char c)
{
  return c == ' ' || c == ',' || c == '\n' || c == '\r' || c == '\t' || c == '[' || c == ']';
}

tok_err tokd_parse_id_text(const char *s, size_t len, size_t max_ids, uint32_t **ids, size_t *n,
                           size_t *bad_pos)
{
  size_t cap = *n;
  for (size_t i = 0; i < len;) {
    if (id_separator(s[i])) {
      i++;
      continue;
    }
    size_t start = i;
    uint64_t v = 0;
    while (i < len && s[i] >= '0' && s[i] <= '9' && v <= UINT32_MAX) v = v * 10 + (uint64_t)(s[i++] - '0');
    if (i == start || v > UINT32_MAX || (i < len && !id_separator(s[i]))) {
      *bad_pos = start;
      return TOK_EINVAL;
    }
    if (*n >= max_ids) {
      *bad_pos = start;
      return TOK_ELIMIT;
    }
    if (*n == cap) {
      cap = cap ? cap * 2 : 1024;
      uint32_t *grown = realloc(*ids, cap * sizeof *grown);
      if (!grown) return TOK_ENOMEM;
      *ids = grown;
    }
    (*ids)[(*n)++] = (uint32_t)v;
  }
  return TOK_OK;
}

const char *tokd_model_to_name(const char *model)
{
  const char *enc = tok_model_encoding(model, strlen(model));
  return enc ? enc : model;
}

const char *tokd_cache_dir(const char *given, char *buf, size_t cap)
{
  if (given && *given) {
    if (!strcmp(given, "off") || !strcmp(given, "none")) return NULL;
    snprintf(buf, cap, "%s", given);
    return buf;
  }
  const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
  int n = xdg && *xdg ? snprintf(buf, cap, "%s/tokd", xdg)
          : home && *home && strcmp(home, "/") ? snprintf(buf, cap, "%s/.cache/tokd", home)
                                               : -1;
  return n > 0 && (size_t)n < cap ? buf : NULL;
}

void tokd_sources_free(tok_tokenizer_source *list, size_t n)
{
  for (size_t i = 0; i < n; i++) free((char *)list[i].name); /* name and path share one block */
  free(list);
}

int tokd_sources_parse(const char *spec, const char *source, tok_tokenizer_source **list, size_t *n)
{
  for (const char *p = spec; *p;) {
    const char *comma = strchr(p, ',');
    size_t len = comma ? (size_t)(comma - p) : strlen(p);
    const char *eq = memchr(p, '=', len);
    if (!eq || eq == p || eq + 1 == p + len) {
      fprintf(stderr, "tokd: %s: expected NAME=PATH (a tokenizer.json or a model directory), got \"%.*s\"\n",
              source, (int)(len > 200 ? 200 : len), p);
      return 2;
    }
    tok_tokenizer_source *grown = realloc(*list, (*n + 1) * sizeof *grown);
    char *copy = malloc(len + 1);
    if (!grown || !copy) {
      free(copy);
      if (grown) *list = grown;
      fprintf(stderr, "tokd: out of memory\n");
      return 1;
    }
    *list = grown;
    memcpy(copy, p, len);
    copy[len] = '\0';
    copy[eq - p] = '\0';
    grown[(*n)++] = (tok_tokenizer_source){copy, copy + (eq - p) + 1};
    if (!comma) break;
    p = comma + 1;
  }
  return 0;
}
