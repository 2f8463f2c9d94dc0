/*
 * fuzz_encode.c — fuzz target for the core: whatever the bytes, encode and decode return
 * an answer or an error, never crash, and valid text always round-trips.
 *
 * Input: byte 0 picks the encoding and options, the rest is the text (and, read as
 * little-endian 32-bit numbers, a list of ids to decode). Built as a libFuzzer target by
 * `make fuzz`, and replayed over tests/data/fuzz/encode/ by `make test` (replay.c).
 */
#include <stdlib.h>
#include <string.h>

#include "tok.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

static const char *const NAMES[] = {"r50k_base", "p50k_base", "p50k_edit", "cl100k_base", "o200k_base"};

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
  static tok_registry *reg;
  static tok_scratch *scratch;
  if (!reg) {
    if (tok_registry_load(NULL, &reg, NULL) != TOK_OK) abort();
    tok_limits lim = {.max_tokens_out = 1 << 20};
    if (!(scratch = tok_scratch_new(&lim))) abort();
  }
  if (size == 0) return 0;
  unsigned mode = data[0];
  const char *text = (const char *)data + 1;
  size_t len = size - 1;
  const tok_encoding *enc = tok_registry_find(reg, NAMES[mode % 5], strlen(NAMES[mode % 5]));
  tok_special_set all;
  tok_special_set_all(enc, &all);
  tok_encode_opts opts = {.allowed_special = (mode & 8) ? &all : NULL,
                          .check_disallowed = (mode & 16) != 0,
                          .want_offsets = (mode & 32) != 0,
                          .stop_after = (mode & 64) ? len / 4 : 0};
  tok_encode_result r;
  tok_error err;
  size_t bad;
  bool valid = tok_utf8_valid(text, len, &bad);
  tok_err rc = tok_encode(enc, scratch, text, len, &opts, &r, &err);
  if (!valid && (rc != TOK_EUTF8 || err.pos != bad)) abort();
  if (valid && rc == TOK_OK && !r.stopped) {
    tok_buf out = {0};
    if (tok_decode_bytes(enc, scratch, r.ids, r.len, NULL, &out, &err) != TOK_OK) abort();
    if (out.len != len || (len && memcmp(out.data, text, len) != 0)) abort(); /* round trip */
    if (r.offsets)
      for (size_t i = 0; i < r.len; i++) {
        size_t tl;
        const char *tb = tok_token_bytes(enc, r.ids[i], &tl);
        if (!tb || r.offsets[2 * i] + tl != r.offsets[2 * i + 1] || r.offsets[2 * i + 1] > len ||
            memcmp(text + r.offsets[2 * i], tb, tl) != 0)
          abort();
      }
    tok_buf_free(&out);
  } else if (valid && rc != TOK_OK && rc != TOK_EDISALLOWED_SPECIAL && rc != TOK_ELIMIT) {
    abort();
  }
  /* the same bytes as ids: decoded or refused with the index of the first unknown id */
  size_t n_ids = len / 4;
  uint32_t *ids = malloc(n_ids * sizeof *ids + 1);
  memcpy(ids, text, n_ids * 4);
  tok_buf out = {.limit = 1 << 24};
  rc = tok_decode_bytes(enc, scratch, ids, n_ids, NULL, &out, &err);
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
