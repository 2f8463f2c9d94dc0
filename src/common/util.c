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

size_t tokd_format_u32(char *p, uint32_t n)
{
  /* two digits a step from a table: an answer of ids is mostly this (token ids have 3 to 6
   * digits) */
  static const char pairs[201] = "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
                                 "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
                                 "8081828384858687888990919293949596979899";
  size_t len = n >= 1000000000u ? 10 : n >= 100000000u ? 9 : n >= 10000000u ? 8 : n >= 1000000u ? 7
               : n >= 100000u    ? 6  : n >= 10000u    ? 5 : n >= 1000u     ? 4 : n >= 100u     ? 3
               : n >= 10u        ? 2  : 1;
  char *o = p + len;
  while (n >= 100) {
    uint32_t k = n % 100 * 2;
    n /= 100;
    *--o = pairs[k + 1], *--o = pairs[k];
  }
  if (n >= 10) *--o = pairs[n * 2 + 1], *--o = pairs[n * 2];
  else *--o = (char)('0' + n);
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
