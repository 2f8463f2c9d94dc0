/*
 * runner.c — runs every Check suite of libtok; exit status is the number of failures
 * (capped), so `make test` stops on any.
 */
#include <dirent.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

const char *const TU_ENCODINGS[5] = {"r50k_base", "p50k_base", "p50k_edit", "cl100k_base",
                                     "o200k_base"};

static tok_registry *registry;
static pthread_once_t registry_once = PTHREAD_ONCE_INIT;

static void load_registry(void)
{
  tok_error err;
  if (tok_registry_load(NULL, &registry, &err) != TOK_OK) {
    fprintf(stderr, "cannot load built-in encodings: %s\n", err.detail);
    abort();
  }
}

const tok_registry *tu_registry(void)
{
  pthread_once(&registry_once, load_registry);
  return registry;
}

const tok_encoding *tu_encoding(const char *name)
{
  const tok_encoding *enc = tok_registry_find(tu_registry(), name, strlen(name));
  ck_assert_msg(enc != NULL, "encoding %s not loaded", name);
  return enc;
}

char *tu_read_file(const char *path, size_t *len)
{
  FILE *f = fopen(path, "rb");
  ck_assert_msg(f != NULL, "cannot open %s", path);
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *data = malloc((size_t)size + 1);
  ck_assert(data != NULL);
  ck_assert_uint_eq(fread(data, 1, (size_t)size, f), (size_t)size);
  data[size] = '\0';
  fclose(f);
  *len = (size_t)size;
  return data;
}

uint32_t *tu_parse_ids(const char *text, size_t *n)
{
  size_t cap = 16, len = 0;
  uint32_t *ids = malloc(cap * sizeof *ids);
  for (const char *p = text; *p;) {
    char *end;
    unsigned long v = strtoul(p, &end, 10);
    if (end == p) {
      p++;
      continue;
    }
    if (len == cap) ids = realloc(ids, (cap *= 2) * sizeof *ids);
    ids[len++] = (uint32_t)v;
    p = end;
  }
  *n = len;
  return ids;
}

const char *tu_tempdir(void)
{
  static char dir[64];
  snprintf(dir, sizeof dir, "/tmp/tokd-test-XXXXXX");
  ck_assert(mkdtemp(dir) != NULL);
  return dir;
}

void tu_write(const char *dir, const char *name, const char *text)
{
  char path[512];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  ck_assert(f != NULL);
  fputs(text, f);
  fclose(f);
}

int main(void)
{
  tu_registry(); /* load once; forked tests inherit it */
  SRunner *sr = srunner_create(utf8_suite());
  srunner_add_suite(sr, phash_suite());
  srunner_add_suite(sr, vocab_suite());
  srunner_add_suite(sr, bpe_suite());
  srunner_add_suite(sr, encode_suite());
  srunner_add_suite(sr, golden_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  tok_registry_free(registry);
  return failed == 0 ? 0 : 1;
}
