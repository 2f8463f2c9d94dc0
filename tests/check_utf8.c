/* check_utf8.c — UTF-8 validation, lossy repair and the streaming "complete prefix". */
#include "core/internal.h"
#include "testutil.h"

/* Protects: every class of ill-formed UTF-8 is refused, at the right offset. */
START_TEST(test_validate)
{
  static const struct {
    const char *s;
    size_t len;
    bool ok;
    size_t bad;
  } cases[] = {
      {"", 0, true, 0},
      {"plain ascii text, long enough for the 8-byte path", 49, true, 0},
      {"caf\xc3\xa9", 5, true, 0},
      {"\xe2\x82\xac \xf0\x9f\x8e\x89", 8, true, 0},
      {"\xf4\x8f\xbf\xbf", 4, true, 0},          /* U+10FFFF */
      {"ab\x80", 3, false, 2},                    /* stray continuation */
      {"\xc0\xaf", 2, false, 0},                  /* overlong '/' */
      {"\xc1\xbf", 2, false, 0},                  /* overlong */
      {"\xe0\x80\xaf", 3, false, 0},              /* overlong 3-byte */
      {"\xed\xa0\x80", 3, false, 0},              /* surrogate U+D800 */
      {"\xf4\x90\x80\x80", 4, false, 0},          /* above U+10FFFF */
      {"\xf5\x80\x80\x80", 4, false, 0},          /* invalid lead */
      {"0123456789\xe2\x82", 12, false, 10},      /* truncated at the end */
      {"abcdefgh\xffijkl", 13, false, 8},         /* 0xFF after an ASCII block */
      {"\xe4\xb8\xad\xe4\xb8", 5, false, 3},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    size_t bad = 999;
    bool ok = tok_utf8_valid(cases[i].s, cases[i].len, &bad);
    ck_assert_msg(ok == cases[i].ok, "case %zu", i);
    if (!ok) ck_assert_msg(bad == cases[i].bad, "case %zu: bad at %zu", i, bad);
  }
}
END_TEST

/* Where the first ill-formed sequence starts (len: none), straight from Unicode's Table
 * 3-7: an oracle written apart from the validator. */
static size_t table37_bad(const uint8_t *s, size_t len)
{
  for (size_t i = 0; i < len;) {
    uint8_t c = s[i], lo = 0x80, hi = 0xBF;
    size_t n;
    if (c < 0x80) {
      i++;
      continue;
    }
    if (c >= 0xC2 && c <= 0xDF) n = 2;
    else if (c >= 0xE0 && c <= 0xEF) n = 3, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    else if (c >= 0xF0 && c <= 0xF4) n = 4, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    else return i;
    if (i + n > len || s[i + 1] < lo || s[i + 1] > hi) return i;
    for (size_t k = 2; k < n; k++)
      if ((s[i + k] & 0xC0) != 0x80) return i;
    i += n;
  }
  return len;
}

/* Protects: the validator's inline paths for common lead bytes agree with Table 3-7 on
 * random strings made of every kind of lead, continuation and boundary byte (validity and
 * the offset), and a string is valid exactly when the lossy repair leaves it unchanged. */
START_TEST(test_validate_random)
{
  static const uint8_t bytes[] = {'a',  ' ',  0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0,
                                  0xC1, 0xC2, 0xDF, 0xE0, 0xE1, 0xEC, 0xED, 0xEE, 0xEF, 0xF0,
                                  0xF1, 0xF3, 0xF4, 0xF5, 0xFF, 0xD0, 0xE4, 0xB8};
  uint64_t seed = 12345;
  char text[48];
  for (int round = 0; round < 200000; round++) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    size_t len = (size_t)(seed >> 59) + (seed >> 58 & 1) * 16; /* 0-47 */
    for (size_t i = 0; i < len; i++) {
      seed = seed * 6364136223846793005ull + 1442695040888963407ull;
      text[i] = (char)bytes[(seed >> 33) % sizeof bytes];
    }
    tok_buf out = {0};
    ck_assert_int_eq(tok_utf8_append_lossy(&out, text, len), TOK_OK);
    bool same = out.len == len && (len == 0 || memcmp(out.data, text, len) == 0);
    size_t want = table37_bad((const uint8_t *)text, len), bad = 999;
    bool ok = tok_utf8_valid(text, len, &bad);
    ck_assert_msg(ok == (want == len), "round %d: valid %d, Table 3-7 %d", round, ok, want == len);
    ck_assert_msg(ok == same, "round %d: valid %d, repair unchanged %d", round, ok, same);
    if (!ok) ck_assert_msg(bad == want, "round %d: bad at %zu, Table 3-7 at %zu", round, bad, want);
    tok_buf_free(&out);
  }
}
END_TEST

/* Checks both validators (the vector path where the machine has it, and the portable
 * loop) against Table 3-7 on text[0..len). */
static void check_both(const uint8_t *text, size_t len, const char *what, size_t a, size_t b)
{
  size_t want = table37_bad(text, len), bad = 999, bad2 = 999;
  bool ok = tok_utf8_valid((const char *)text, len, &bad);
  bool ok2 = tok__utf8_valid_portable((const char *)text, len, &bad2);
  /* (tested before asserting: each ck_assert is a message to the runner) */
  if (ok != (want == len) || ok2 != ok)
    ck_abort_msg("%s %zu/%zu: valid %d (portable %d), Table 3-7 %d", what, a, b, ok, ok2, want == len);
  if (!ok && (bad != want || bad2 != want))
    ck_abort_msg("%s %zu/%zu: bad at %zu / %zu, Table 3-7 at %zu", what, a, b, bad, bad2, want);
}

/* Protects: the 32-byte vector validator agrees with Table 3-7 (and the portable loop) on
 * every lead byte followed by every second byte and the third and fourth bytes at the
 * edges of their ranges, placed on each side of a 32-byte block boundary and at the end
 * of the text (cut short or not); and on long texts of valid characters of every length
 * with a stray byte here and there, so that errors sit deep in the text. */
START_TEST(test_validate_vector)
{
  static const uint8_t edges[] = {0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF,
                                  0xC0, 0xC2, 0xDF, 0xE0, 0xED, 0xF0, 0xF4, 0xF5, 0xFF};
  static const size_t at[] = {0, 29, 30, 31, 32, 62};
  uint8_t text[160];
  for (size_t o = 0; o < sizeof at / sizeof at[0]; o++)
    for (unsigned b0 = 0x80; b0 < 0x100; b0++)
      for (unsigned k1 = 0; k1 < (b0 >= 0xF0 ? sizeof edges : 256); k1++) /* every second byte but after F0.. */
        for (size_t k2 = 0; k2 < (b0 >= 0xE0 ? sizeof edges : 1); k2++)
          for (size_t k3 = 0; k3 < (b0 >= 0xF0 ? sizeof edges : 1); k3++) {
            memset(text, 'x', sizeof text);
            uint8_t seq[4] = {(uint8_t)b0, b0 >= 0xF0 ? edges[k1] : (uint8_t)k1, b0 >= 0xE0 ? edges[k2] : 'x',
                              b0 >= 0xF0 ? edges[k3] : 'x'};
            memcpy(text + at[o], seq, 4);
            size_t bytes = (size_t)seq[0] << 24 | (size_t)seq[1] << 16 | (size_t)seq[2] << 8 | seq[3];
            check_both(text, 96, "sequence at", at[o], bytes);
            for (size_t cut = 1; cut <= 4; cut++) check_both(text, at[o] + cut, "cut at", at[o], cut);
          }
  static const char *const chars[] = {"a", " ", "\n", "\xc3\xa9", "\xd0\xbf", "\xdf\xbf", "\xe4\xb8\xad",
                                      "\xe0\xa0\x80", "\xed\x9f\xbf", "\xef\xbf\xbd", "\xf0\x9f\x8e\x89",
                                      "\xf4\x8f\xbf\xbf", "\xf0\x90\x80\x80"};
  uint64_t seed = 777;
  for (int round = 0; round < 100000; round++) {
    size_t len = 0;
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    size_t want_len = 64 + (seed >> 33) % 90;
    while (len < want_len) {
      seed = seed * 6364136223846793005ull + 1442695040888963407ull;
      if ((seed >> 40) % 60 == 0) { /* a stray byte: often a continuation, a lead, or 0xFF */
        text[len++] = (uint8_t)(0x80 + (seed >> 20) % 0x80);
        continue;
      }
      const char *c = chars[(seed >> 33) % (sizeof chars / sizeof chars[0])];
      size_t n = strlen(c);
      memcpy(text + len, c, n), len += n;
    }
    check_both(text, len, "round", (size_t)round, len);
  }
}
END_TEST

static char *lossy(const char *s, size_t len)
{
  tok_buf out = {0};
  ck_assert_int_eq(tok_utf8_append_lossy(&out, s, len), TOK_OK);
  ck_assert_int_eq(tok_buf_append(&out, "", 1), TOK_OK);
  return out.data;
}

/* Protects: replacement follows "maximal subparts" (what TextDecoder and Python produce). */
START_TEST(test_lossy)
{
#define FFFD "\xef\xbf\xbd"
  static const struct {
    const char *in;
    size_t len;
    const char *want;
  } cases[] = {
      {"ok", 2, "ok"},
      {"a\x80z", 3, "a" FFFD "z"},
      {"\xe2\x82z", 3, FFFD "z"},                 /* truncated 3-byte: one U+FFFD */
      {"\xf0\x9f\x8e", 3, FFFD},                  /* truncated 4-byte at the end */
      {"\xc0\xaf", 2, FFFD FFFD},                 /* C0 is never valid: two */
      {"\xed\xa0\x80", 3, FFFD FFFD FFFD},        /* surrogate: three */
      {"\xf4\x90\x80\x80", 4, FFFD FFFD FFFD FFFD},
      {"\xe0\x80\xaf", 3, FFFD FFFD FFFD},
      {"\xf1\x80\x80\xe1\x80\xc2", 6, FFFD FFFD FFFD}, /* Unicode 3-7 example */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *got = lossy(cases[i].in, cases[i].len);
    ck_assert_msg(strcmp(got, cases[i].want) == 0, "case %zu", i);
    free(got);
  }
}
END_TEST

/* Protects: streaming decode holds back only a tail that could still become a character. */
START_TEST(test_complete_len)
{
  ck_assert_uint_eq(tok_utf8_complete_len("abc", 3), 3);
  ck_assert_uint_eq(tok_utf8_complete_len("ab\xe2\x82", 4), 2);
  ck_assert_uint_eq(tok_utf8_complete_len("ab\xe2", 3), 2);
  ck_assert_uint_eq(tok_utf8_complete_len("ab\xe2\x82\xac", 5), 5);
  ck_assert_uint_eq(tok_utf8_complete_len("\xf0\x9f\x8e", 3), 0);
  ck_assert_uint_eq(tok_utf8_complete_len("\xf0\x9f\x8e\x89", 4), 4);
  ck_assert_uint_eq(tok_utf8_complete_len("a\x80", 2), 2);      /* invalid: not held back */
  ck_assert_uint_eq(tok_utf8_complete_len("a\xe0\x80", 3), 3);  /* can never be valid */
  ck_assert_uint_eq(tok_utf8_complete_len("", 0), 0);
}
END_TEST

/* Protects: the buffer cap is enforced (a server turns TOK_ELIMIT into 413). */
START_TEST(test_buf_limit)
{
  tok_buf b = {.limit = 10};
  ck_assert_int_eq(tok_buf_append(&b, "0123456789", 10), TOK_OK);
  ck_assert_int_eq(tok_buf_append(&b, "x", 1), TOK_ELIMIT);
  ck_assert_uint_eq(b.len, 10);
  tok_buf_free(&b);
}
END_TEST

#define UTF8_TESTS(T, L) T(test_validate) T(test_validate_random) T(test_validate_vector) \
  T(test_lossy) T(test_complete_len) T(test_buf_limit)
TU_SUITE(utf8, "core", 120, UTF8_TESTS) /* the vector test's million texts, under the sanitizers */
