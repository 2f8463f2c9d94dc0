/* check_golden.c — exact equality with the reference tokenizer (npm tiktoken) on every
 * corpus file and encoding, plus round trips. Vectors: tests/tools/gen_golden.sh. */

#include "testutil.h"

static int compare_file(const char *encoding, const char *file, bool allow_all)
{
  char path[512];
  size_t text_len, golden_len, want_n;
  snprintf(path, sizeof path, "data/corpus/%s", file);
  char *text = tu_read_file(path, &text_len);
  snprintf(path, sizeof path, "data/golden/%s/%s%s", encoding, file, allow_all ? ".all.ids" : ".ids");
  char *golden = tu_read_file(path, &golden_len);
  uint32_t *want = tu_parse_ids(golden, &want_n);

  const tok_encoding *enc = tu_encoding(encoding);
  tok_scratch *s = tok_scratch_new(NULL);
  tok_special_set all;
  tok_special_set_all(enc, &all);
  tok_encode_opts opts = {.allowed_special = allow_all ? &all : NULL};
  tok_encode_result r;
  tok_error err;
  ck_assert_msg(tok_encode(enc, s, text, text_len, &opts, &r, &err) == TOK_OK, "%s", err.detail);
  size_t first_diff = 0;
  while (first_diff < r.len && first_diff < want_n && r.ids[first_diff] == want[first_diff])
    first_diff++;
  ck_assert_msg(r.len == want_n && first_diff == want_n,
                "%s %s: %zu ids, reference %zu, first difference at index %zu", encoding, file,
                r.len, want_n, first_diff);

  /* round trip: decoding gives the text back byte for byte */
  tok_buf out = {0};
  ck_assert_int_eq(tok_decode_bytes(enc, s, r.ids, r.len, NULL, &out, &err), TOK_OK);
  ck_assert_msg(out.len == text_len && memcmp(out.data, text, text_len) == 0, "%s %s: round trip",
                encoding, file);
  tok_buf_free(&out);
  tok_scratch_free(s);
  free(want);
  free(golden);
  free(text);
  return 1;
}

/* Protects: token-for-token identity with tiktoken on prose, code, CJK, emoji, runs,
 * random text and special tokens, for all five encodings. */
START_TEST(test_golden)
{
  const char *encoding = TU_ENCODINGS[_i];
  int files = 0;
  for (const char *const *name = tu_corpus(); *name; name++) {
    files += compare_file(encoding, *name, false);
    if (strstr(*name, "special")) files += compare_file(encoding, *name, true);
  }
  ck_assert_int_ge(files, 30);
}
END_TEST

/* Protects: decode(encode(x)) == x on random valid UTF-8 from many scripts. */
START_TEST(test_random_round_trip)
{
  static const uint32_t ranges[][2] = {{0x20, 0x7e}, {0x9, 0xd}, {0xa0, 0x24f}, {0x300, 0x36f},
                                       {0x400, 0x4ff}, {0x600, 0x6ff}, {0x3040, 0x30ff},
                                       {0x4e00, 0x9fff}, {0xac00, 0xd7a3}, {0x1f300, 0x1faff},
                                       {0x10000, 0x10ffff}, {0xe000, 0xf8ff}};
  uint32_t x = 99991;
  const tok_encoding *enc = tu_encoding(TU_ENCODINGS[_i]);
  tok_scratch *s = tok_scratch_new(NULL);
  char text[4096];
  for (int iter = 0; iter < 300; iter++) {
    size_t len = 0;
    while (len < sizeof text - 4) {
      x ^= x << 13, x ^= x >> 17, x ^= x << 5;
      const uint32_t *r = ranges[x % 12];
      uint32_t c = r[0] + (x >> 8) % (r[1] - r[0] + 1);
      if (c >= 0xd800 && c <= 0xdfff) continue;
      len += tu_utf8_put(text + len, c);
      if ((x & 255) == 0) break;
    }
    tok_encode_result r;
    tok_error err;
    ck_assert_msg(tok_encode(enc, s, text, len, NULL, &r, &err) == TOK_OK, "%s", err.detail);
    tok_buf out = {0};
    ck_assert_int_eq(tok_decode_bytes(enc, s, r.ids, r.len, NULL, &out, &err), TOK_OK);
    ck_assert(out.len == len && memcmp(out.data, text, len) == 0);
    tok_buf_free(&out);
  }
  tok_scratch_free(s);
}
END_TEST

#define GOLDEN_TESTS(T, L) L(test_golden, 5) L(test_random_round_trip, 5)
TU_SUITE(golden, "core", 120, GOLDEN_TESTS)
