/* check_normalize.c — the normalizer's shortcuts against utf8proc itself. */
#include <utf8proc.h>

#include "core/internal.h"
#include "testutil.h"

/* The four forms, and the utf8proc options that compute each on a whole text. */
static const tok__norm_kind kinds[] = {TOK__NORM_NFC, TOK__NORM_NFD, TOK__NORM_NFKC, TOK__NORM_NFKD};
static const utf8proc_option_t opts[] = {
    UTF8PROC_STABLE | UTF8PROC_COMPOSE, UTF8PROC_STABLE | UTF8PROC_DECOMPOSE,
    UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT,
    UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT};

static size_t put(uint32_t c, uint8_t *out) { return (size_t)utf8proc_encode_char((utf8proc_int32_t)c, out); }

/* Protects: the characters the fast path copies instead of normalizing are exactly safe:
 * no form changes them, and none is the second character of any canonical composition in
 * utf8proc's data (which is what makes cutting the text before them exact). */
START_TEST(test_stable_characters)
{
  /* every second character of a canonical composition that NFC performs */
  static uint8_t is_second[0x110000 / 8];
  for (uint32_t p = 0; p < 0x110000; p++) {
    if (p >= 0xD800 && p <= 0xDFFF) continue;
    utf8proc_int32_t d[8];
    utf8proc_ssize_t n = utf8proc_decompose_char((utf8proc_int32_t)p, d, 8, UTF8PROC_DECOMPOSE, NULL);
    if (n < 2) continue;
    utf8proc_int32_t pair[2] = {d[0], d[1]};
    /* a pair NFC recomposes into something shorter: its second character composes */
    uint8_t buf[16], *out;
    size_t len = put((uint32_t)pair[0], buf);
    len += put((uint32_t)pair[1], buf + len);
    utf8proc_map(buf, (utf8proc_ssize_t)len, &out, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    if (strlen((char *)out) < len) is_second[d[1] >> 3] |= (uint8_t)(1 << (d[1] & 7));
    free(out);
  }
  for (uint32_t c = 1; c < 0x110000; c++) { /* U+0000 is ASCII; strlen cannot see it */
    if (c >= 0xD800 && c <= 0xDFFF) continue;
    for (int k = 0; k < 4; k++) {
      if (!tok__nf_stable(c, kinds[k])) continue;
      uint8_t buf[8], *out;
      size_t len = put(c, buf);
      utf8proc_map(buf, (utf8proc_ssize_t)len, &out, opts[k]);
      ck_assert_msg(strlen((char *)out) == len && memcmp(out, buf, len) == 0,
                    "U+%04X is not stable under form %d", c, k);
      free(out);
      if (k == 0 || k == 2) {
        /* neither it nor the first character it decomposes into (é: e) composes with what
         * precedes it */
        utf8proc_int32_t d[8];
        utf8proc_ssize_t nd = utf8proc_decompose_char((utf8proc_int32_t)c, d, 8, UTF8PROC_DECOMPOSE, NULL);
        ck_assert(nd >= 1);
        ck_assert_msg(!(is_second[c >> 3] >> (c & 7) & 1) && !(is_second[d[0] >> 3] >> (d[0] & 7) & 1),
                      "U+%04X composes with what precedes it", c);
      }
    }
  }
}
END_TEST

/* Protects: the normalizer's shortcuts (ASCII skipped eight bytes at a time, stable runs
 * copied, only the stretches around other characters given to utf8proc, unchanged text
 * handed back as it is) give what utf8proc gives for the whole text, in all four forms,
 * on text that mixes long ASCII runs with characters that compose with what precedes
 * them at every offset. */
START_TEST(test_forms_match_utf8proc)
{
  /* ASCII, combining marks, precomposed letters, a composing starter (U+0BBE after
   * U+0BC6), Hangul jamo and syllables, a compatibility character, Cyrillic, CJK, kana with
   * and without the voiced mark, alone (U+3099) and precomposed (ga), a composition
   * exclusion (U+0958) */
  static const char *const units[] = {"a", "e", " ", "\n", "x", "\xcc\x81", "\xcc\xa3", "\xc3\xa9",
                                      "\xe0\xaf\x86", "\xe0\xae\xbe", "\xe1\x84\x80", "\xe1\x85\xa1",
                                      "\xea\xb0\x80", "\xef\xac\x81", "\xd0\xb9", "\xe4\xb8\xad",
                                      "\xe3\x81\x8b", "\xe3\x81\x8c", "\xe3\x82\x99", "\xe0\xa5\x98"};
  uint64_t seed = 0x9E3779B97F4A7C15ull;
  char text[512];
  for (int round = 0; round < 4000; round++) {
    size_t len = 0;
    while (len < 300) {
      seed = seed * 6364136223846793005ull + 1442695040888963407ull;
      unsigned r = (unsigned)(seed >> 33);
      /* mostly ASCII runs of 0-40 bytes, then one other unit */
      for (unsigned k = r % 41; k > 0 && len < 300; k--) text[len++] = (char)('a' + (r >> 8) % 26);
      const char *u = units[(r >> 16) % (sizeof units / sizeof units[0])];
      memcpy(text + len, u, strlen(u));
      len += strlen(u);
    }
    text[len] = '\0';
    int k = round % 4;
    tok__norm_step step = {.kind = kinds[k]};
    tok__normalizer n = {&step, 1};
    char *got;
    size_t got_len;
    tok_error err;
    ck_assert_int_eq(tok__normalize_alloc(&n, text, len, &got, &got_len, &err), TOK_OK);
    uint8_t *want;
    utf8proc_ssize_t want_len = utf8proc_map((const uint8_t *)text, (utf8proc_ssize_t)len, &want, opts[k]);
    ck_assert_int_ge(want_len, 0);
    ck_assert_msg((size_t)want_len == got_len && memcmp(want, got, got_len) == 0,
                  "form %d differs from utf8proc on round %d", k, round);
    free(want);
    free(got);
  }
}
END_TEST

#define NORMALIZE_TESTS(T, L) T(test_stable_characters) T(test_forms_match_utf8proc)
TU_SUITE(normalize, "core", 120, NORMALIZE_TESTS)
