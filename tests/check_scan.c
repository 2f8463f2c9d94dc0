/*
 * check_scan.c — the hand-written pre-tokenizer scanners (src/core/scan.c) against PCRE2
 * running the same patterns: identical pieces on the whole corpus and on random text
 * built from every kind of character the patterns distinguish. The two classify code
 * points by different Unicode versions (the scanners: 16.0, as the references; PCRE2
 * 10.42: 14.0), so the code points whose class differs between them are found first, by
 * asking PCRE2 about each of the 1,112,064, and kept out of the random text; everything
 * else must split identically.
 */

#include "core/internal.h"
#include "testutil.h"

static const tok__scan_kind KINDS[] = {TOK__SCAN_GPT2,      TOK__SCAN_CL100K, TOK__SCAN_QWEN,   TOK__SCAN_O200K,
                                       TOK__SCAN_DS_DIGITS, TOK__SCAN_DS_CJK, TOK__SCAN_DS_MAIN};
#define N_KINDS (sizeof KINDS / sizeof KINDS[0])

static size_t put_utf8(uint32_t c, uint8_t *o)
{
  if (c < 0x80) return o[0] = (uint8_t)c, 1;
  if (c < 0x800) return o[0] = (uint8_t)(0xC0 | c >> 6), o[1] = (uint8_t)(0x80 | (c & 0x3F)), 2;
  if (c < 0x10000)
    return o[0] = (uint8_t)(0xE0 | c >> 12), o[1] = (uint8_t)(0x80 | (c >> 6 & 0x3F)),
           o[2] = (uint8_t)(0x80 | (c & 0x3F)), 3;
  return o[0] = (uint8_t)(0xF0 | c >> 18), o[1] = (uint8_t)(0x80 | (c >> 12 & 0x3F)),
         o[2] = (uint8_t)(0x80 | (c >> 6 & 0x3F)), o[3] = (uint8_t)(0x80 | (c & 0x3F)), 4;
}

/* Code points PCRE2 classifies differently from the scanners' table (bitmap). */
static uint8_t *DIFFERS;
static size_t N_DIFFERS;

static void find_differences(void)
{
  if (DIFFERS) return;
  static const char *const sets[] = {"\\s", "\\p{L}", "\\p{N}", "[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]",
                                     "[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]", "\\p{P}", "\\p{S}", "\\p{M}"};
  static const unsigned masks[] = {1u << TOK__UC_WS, 1u << TOK__UC_LU | 1u << TOK__UC_LL | 1u << TOK__UC_LMO,
                                   1u << TOK__UC_N, 1u << TOK__UC_LU | 1u << TOK__UC_LMO | 1u << TOK__UC_M,
                                   1u << TOK__UC_LL | 1u << TOK__UC_LMO | 1u << TOK__UC_M, 1u << TOK__UC_P,
                                   1u << TOK__UC_S, 1u << TOK__UC_M};
  enum { N_SETS = sizeof sets / sizeof sets[0] };
  pcre2_code *re[N_SETS];
  pcre2_match_data *md = pcre2_match_data_create(1, NULL);
  for (int k = 0; k < N_SETS; k++) {
    bool jit;
    ck_assert_int_eq(tok__regex_compile(sets[k], strlen(sets[k]), false, &re[k], &jit, "test", NULL), TOK_OK);
  }
  DIFFERS = calloc(0x110000 / 8, 1);
  for (uint32_t c = 0; c < 0x110000; c++) {
    if (c >= 0xD800 && c <= 0xDFFF) continue;
    uint8_t b[4];
    size_t n = put_utf8(c, b);
    unsigned cls = tok__uc_class(c);
    for (int k = 0; k < N_SETS; k++) {
      bool pcre = pcre2_match(re[k], b, n, 0, PCRE2_ANCHORED, md, NULL) >= 0;
      if (pcre != ((1u << cls & masks[k]) != 0)) {
        DIFFERS[c >> 3] |= (uint8_t)(1 << (c & 7));
        N_DIFFERS++;
        break;
      }
    }
  }
  for (int k = 0; k < N_SETS; k++) pcre2_code_free(re[k]);
  pcre2_match_data_free(md);
}

static bool differs(uint32_t c) { return DIFFERS[c >> 3] >> (c & 7) & 1; }

/* Finds the matches in s with the scanner and with PCRE2 (none of these patterns matches
 * the empty string); the index of the first match that differs, or -1. */
static long compare(tok__scan_kind kind, pcre2_code *re, pcre2_match_data *md, const uint8_t *s, size_t len)
{
  size_t pos = 0, a, b;
  long piece = 0;
  for (;;) {
    bool found = tok__scan_find(kind, s, len, pos, &a, &b);
    int m = pos < len ? pcre2_match(re, s, len, pos, PCRE2_NO_UTF_CHECK, md, NULL) : PCRE2_ERROR_NOMATCH;
    if (!found || m < 0) return found == (m >= 0) ? -1 : piece;
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    if (ov[0] != a || ov[1] != b || b <= a) return piece;
    if (TOK__SCAN_GAPLESS(kind) && (a != pos || b != tok__scan_next(kind, s, len, a))) return piece;
    pos = b;
    piece++;
  }
}

static pcre2_code *compile(tok__scan_kind kind)
{
  const char *p = tok__scan_pattern(kind);
  pcre2_code *re;
  bool jit;
  ck_assert_int_eq(tok__regex_compile(p, strlen(p), false, &re, &jit, "test", NULL), TOK_OK);
  ck_assert_uint_eq(tok__scan_recognize(p, strlen(p)), kind);
  return re;
}

/* Protects: the recognizer takes exactly the known patterns. */
START_TEST(test_recognize)
{
  for (size_t k = 0; k < N_KINDS; k++) ck_assert_ptr_nonnull(tok__scan_pattern(KINDS[k]));
  const char *cl = tok__scan_pattern(TOK__SCAN_CL100K);
  ck_assert_uint_eq(tok__scan_recognize(cl, strlen(cl) - 1), TOK__SCAN_NONE);
  ck_assert_uint_eq(tok__scan_recognize("\\p{L}+", 6), TOK__SCAN_NONE);
  /* DeepSeek's patterns as its tokenizer.json writes them: raw CJK, CR and LF */
  ck_assert_uint_eq(tok__scan_recognize("\\p{N}{1,3}", 10), TOK__SCAN_DS_DIGITS);
  /* the built-in encodings run on scanners */
  static const char *const names[] = {"r50k_base", "p50k_base", "p50k_edit", "cl100k_base", "o200k_base"};
  static const tok__scan_kind want[] = {TOK__SCAN_GPT2, TOK__SCAN_GPT2, TOK__SCAN_GPT2, TOK__SCAN_CL100K, TOK__SCAN_O200K};
  for (int i = 0; i < 5; i++) ck_assert_uint_eq(tu_encoding(names[i])->pre.steps[0].scan, want[i]);
}
END_TEST

/* Replaces the code points whose class PCRE2 sees differently by '?'; returns the new
 * length. */
static size_t without_differences(char *text, size_t len)
{
  size_t o = 0;
  for (size_t i = 0; i < len;) {
    size_t start = i;
    uint32_t c = tok__utf8_next((const uint8_t *)text, len, &i);
    if (differs(c)) text[o++] = '?';
    else while (start < i) text[o++] = text[start++];
  }
  return o;
}

/* Protects: the scanners split the whole corpus (prose in ~50 languages, code, CJK, emoji,
 * whitespace mixtures, contractions, long runs) exactly as PCRE2 does (but for the code
 * points the two Unicode versions classify differently, made '?'). */
START_TEST(test_corpus)
{
  find_differences();
  pcre2_match_data *md = pcre2_match_data_create(1, NULL);
  size_t files = 0;
  for (const char *const *name = tu_corpus(); *name; name++) {
    char path[512];
    snprintf(path, sizeof path, "data/corpus/%s", *name);
    size_t len;
    char *text = tu_read_file(path, &len);
    len = without_differences(text, len);
    for (size_t k = 0; k < N_KINDS; k++) {
      pcre2_code *re = compile(KINDS[k]);
      long at = compare(KINDS[k], re, md, (const uint8_t *)text, len);
      ck_assert_msg(at < 0, "%s: scanner %d and PCRE2 differ at piece %ld", path, KINDS[k], at);
      pcre2_code_free(re);
    }
    free(text);
    files++;
  }
  ck_assert_uint_ge(files, 30);
  pcre2_match_data_free(md);
}
END_TEST

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint32_t next_rand(void)
{
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return (uint32_t)(rng >> 32);
}

/* Protects: on random text from every class the patterns tell apart — letters of each
 * case group, marks, digits of several kinds, every sort of white space (CR, LF, NBSP,
 * ideographic space, line separator), apostrophes and the letters of contractions in both
 * cases (and ſ, which folds to s), slashes, punctuation, symbols, emoji, controls, private
 * use, unassigned — and on random code points of every plane, scanner and PCRE2 agree
 * wherever their Unicode versions do. Half the texts are mostly ASCII letters of both
 * cases, so that words longer than the scanners' eight-byte steps end at every offset
 * before every kind of character (and at the end of the text); a quarter mostly spaces,
 * for the same reason (runs of eight spaces are taken a word at a time). */
START_TEST(test_random)
{
  static const uint32_t alphabet[] = {
      'a', 'b', 'z', 'A', 'Z', 's', 't', 'r', 'e', 'v', 'm', 'l', 'd', 'S', 'T', 'R', 'E', 'V', 'M', 'L', 'D',
      0xE9, 0xC9, 0x1C5, 0x2B0, 0x4E2D, 0x306D, 0x301, 0x903, 0x20DD, '0', '5', '9', 0x663, 0x216B, 0xBD,
      ' ', ' ', ' ', '\t', '\n', '\r', 0xA0, 0x3000, 0x2028, 0x0B, 0x85, '\'', '\'', 0x17F, 0x2019, '/', '.',
      ',', '!', '-', '(', '$', '+', 0x1F600, 0x200D, 0xAD, 0x01, 0xE000, 0x378, 0x10FFFF, 0x1F3FB, 0xFE0F};
  find_differences();
  pcre2_match_data *md = pcre2_match_data_create(1, NULL);
  pcre2_code *re[N_KINDS];
  for (size_t k = 0; k < N_KINDS; k++) re[k] = compile(KINDS[k]);
  uint8_t buf[64 * 4];
  for (int iter = 0; iter < 200000; iter++) {
    size_t n = 1 + next_rand() % 40, len = 0;
    bool words = iter % 2, blanks = iter % 4 == 2;
    for (size_t i = 0; i < n; i++) {
      uint32_t c;
      do {
        /* mostly the alphabet; one in eight anywhere in Unicode */
        c = next_rand() % 8 ? alphabet[next_rand() % (sizeof alphabet / sizeof alphabet[0])]
                            : next_rand() % 0x110000;
        if (words && next_rand() % 8) c = (next_rand() % 2 ? 'a' : 'A') + next_rand() % 26;
        if (blanks && next_rand() % 8) c = ' ';
      } while ((c >= 0xD800 && c <= 0xDFFF) || differs(c));
      len += put_utf8(c, buf + len);
    }
    for (size_t k = 0; k < N_KINDS; k++) {
      long at = compare(KINDS[k], re[k], md, buf, len);
      if (at >= 0) {
        char hex[64 * 4 * 3 + 1] = "";
        for (size_t i = 0; i < len; i++) sprintf(hex + 3 * i, "%02x ", buf[i]);
        ck_abort_msg("scanner %d and PCRE2 differ at piece %ld of: %s", KINDS[k], at, hex);
      }
    }
  }
  for (size_t k = 0; k < N_KINDS; k++) pcre2_code_free(re[k]);
  pcre2_match_data_free(md);
}
END_TEST

/* Protects: the versions differ only where Unicode assigned characters after 14.0 (and in
 * PCRE2's \s, which also takes U+180E): a bounded set, not a wrong table. */
START_TEST(test_version_difference)
{
  find_differences();
  ck_assert_uint_gt(N_DIFFERS, 0);
  ck_assert_uint_lt(N_DIFFERS, 12000);
  /* never in ASCII or Latin-1, nor in the common CJK block */
  for (uint32_t c = 0; c < 0x100; c++) ck_assert_msg(!differs(c), "U+%04X", c);
  for (uint32_t c = 0x4E00; c < 0x9FA6; c++) ck_assert_msg(!differs(c), "U+%04X", c);
  /* a Unicode 16 letter (Kirat Rai) is a letter to the scanners, unassigned to PCRE2 */
  ck_assert_uint_eq(tok__uc_class(0x16D4B), TOK__UC_LMO);
  ck_assert(differs(0x16D4B));
}
END_TEST

#define SCAN_TESTS(T, L) T(test_recognize) T(test_corpus) T(test_random) T(test_version_difference)
TU_SUITE(scan, "core", 120, SCAN_TESTS)
