/*
 * fuzz_cache.c — fuzz target for the table cache's reader (backtrack.c, tok__bt_cache_load):
 * whatever bytes stand in a cache file, a load uses them only after its checks and never
 * crashes, reads out of bounds or loops — neither while checking nor while encoding with
 * tables it accepted.
 *
 * Random bytes would almost never pass the checksum, so the input edits a valid cache file
 * of the committed tiny byte-level tokenizer instead (structure-aware): byte 0 holds flags
 * (bit 0: recompute the checksum after the edits, so they reach the checks behind it; bit
 * 1: cut the file to the length in bytes 1-4), then edits of 6-byte heads — a little-endian
 * 32-bit offset (modulo the file's length), a length and a fill mode — followed by their
 * bytes. An accepted file's tables then encode a fixed text (no check of the ids: a
 * resealed file is a forgery that only its own user could plant; the checks promise
 * memory safety, not exactness, for those). Replayed over tests/data/fuzz/cache/ by
 * `make test`; `make fuzz` grows the corpus.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/internal.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

static const char TOKENIZER[] = "tests/data/hf/tiny/bl/tokenizer.json";
/* short pieces, and a run long enough for the backtracker */
static char TEXT[600] = "Hello w\xc3\xb6rld! 12345 ... \xe4\xb8\xad\xe6\x96\x87 \t\n x ";

static char DIR_PATH[64], FILE_PATH[4200];
static uint8_t *VALID;
static size_t VALID_LEN;

static tok_registry *load(const char *cache_dir)
{
  tok_tokenizer_source src = {"tiny", TOKENIZER};
  tok_load_opts lo = {.encodings = "none", .tokenizers = &src, .n_tokenizers = 1, .cache_dir = cache_dir};
  tok_registry *reg = NULL;
  tok_error err;
  if (tok_registry_load(&lo, &reg, &err) != TOK_OK) {
    fprintf(stderr, "fuzz_cache: %s\n", err.detail);
    abort();
  }
  return reg;
}

/* Once: a cache directory, the name of the tiny model's file in it, and its valid bytes. */
static void setup(void)
{
  snprintf(DIR_PATH, sizeof DIR_PATH, "/tmp/tokd-fuzz-cache-%ld", (long)getpid());
  tok_registry *reg = load(DIR_PATH);
  tok_registry_warm(reg);
  tok_registry_free(reg);
  DIR *d = opendir(DIR_PATH);
  struct dirent *e;
  while (d && (e = readdir(d)))
    if (strstr(e->d_name, ".tokdbt")) snprintf(FILE_PATH, sizeof FILE_PATH, "%s/%s", DIR_PATH, e->d_name);
  if (d) closedir(d);
  FILE *f = FILE_PATH[0] ? fopen(FILE_PATH, "rb") : NULL;
  if (!f) abort();
  fseek(f, 0, SEEK_END);
  VALID_LEN = (size_t)ftell(f);
  fseek(f, 0, SEEK_SET);
  VALID = malloc(VALID_LEN);
  if (!VALID || fread(VALID, 1, VALID_LEN, f) != VALID_LEN) abort();
  fclose(f);
  size_t used = strlen(TEXT);
  memset(TEXT + used, 'a', sizeof TEXT - 1 - used);
}

static void cleanup(void)
{
  unlink(FILE_PATH);
  rmdir(DIR_PATH);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
  if (!VALID) {
    setup();
    atexit(cleanup);
  }
  uint8_t *blob = malloc(VALID_LEN);
  if (!blob) abort();
  memcpy(blob, VALID, VALID_LEN);
  size_t len = VALID_LEN, at = 0;
  uint8_t flags = size ? data[at++] : 0;
  if (flags & 2 && size >= at + 4) {
    uint32_t cut;
    memcpy(&cut, data + at, 4);
    at += 4;
    len = cut % (VALID_LEN + 1);
  }
  while (size >= at + 6 && len) {
    uint32_t off;
    memcpy(&off, data + at, 4);
    size_t n = data[at + 4], mode = data[at + 5];
    at += 6;
    off %= (uint32_t)len;
    if (n > len - off) n = len - off;
    if (mode & 1) { /* fill with one byte */
      uint8_t v = size > at ? data[at++] : 0;
      memset(blob + off, v, n);
    } else { /* copy the input's bytes */
      if (n > size - at) n = size - at;
      memcpy(blob + off, data + at, n);
      at += n;
    }
  }
  if (flags & 1) tok__bt_cache_seal(blob, len);
  FILE *f = fopen(FILE_PATH, "wb");
  if (!f || fwrite(blob, 1, len, f) != len) abort();
  fclose(f);
  free(blob);

  tok_registry *reg = load(DIR_PATH);
  const tok_encoding *enc = tok_registry_at(reg, 0);
  if (tok__bt_from_image(enc->model)) {
    /* accepted: the tables answer (pieces long enough to take the backtracker) */
    tok_scratch *s = tok_scratch_new(NULL);
    tok_encode_result r;
    tok_error err;
    if (!s) abort();
    for (int i = 0; i < 3; i++) (void)tok_encode(enc, s, TEXT, strlen(TEXT), NULL, &r, &err);
    tok_scratch_free(s);
  }
  tok_registry_free(reg);
  return 0;
}
