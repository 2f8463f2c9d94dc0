/*
 * utf8.c — UTF-8 validation, lossy repair and "complete prefix" for streaming decode.
 *
 * Validity follows Unicode's Table 3-7 (no overlongs, no surrogates, nothing above
 * U+10FFFF). Repair replaces each *maximal subpart* of an ill-formed sequence by one
 * U+FFFD, the practice Unicode recommends and TextDecoder and Python both follow, so our
 * lossy output matches what clients of those produce byte for byte.
 */
#include <string.h>

#include "core/internal.h"

static const char REPLACEMENT[3] = {(char)0xEF, (char)0xBF, (char)0xBD};

/* Length (1-4) of the well-formed sequence at s[0], or 0 when there is none; then *bad is
 * the length of the maximal subpart to replace and *truncated says whether the input
 * merely ended inside a sequence that could still become valid. */
static size_t seq_len(const uint8_t *s, size_t avail, size_t *bad, int *truncated)
{
  uint8_t c = s[0], lo = 0x80, hi = 0xBF;
  size_t need;
  *truncated = 0;
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) need = 1;
  else if (c == 0xE0) need = 2, lo = 0xA0;
  else if (c >= 0xE1 && c <= 0xEC) need = 2;
  else if (c == 0xED) need = 2, hi = 0x9F;
  else if (c == 0xEE || c == 0xEF) need = 2;
  else if (c == 0xF0) need = 3, lo = 0x90;
  else if (c >= 0xF1 && c <= 0xF3) need = 3;
  else if (c == 0xF4) need = 3, hi = 0x8F;
  else {
    *bad = 1;
    return 0;
  }
  for (size_t i = 1; i <= need; i++) {
    if (i >= avail) {
      *bad = i;
      *truncated = 1;
      return 0;
    }
    if (s[i] < lo || s[i] > hi) {
      *bad = i;
      return 0;
    }
    lo = 0x80, hi = 0xBF;
  }
  return need + 1;
}

bool tok__utf8_valid_portable(const char *text, size_t len, size_t *bad_pos)
{
  const uint8_t *s = (const uint8_t *)text;
  size_t i = 0;
  while (i < len) {
    /* ASCII runs dominate most text: test 8 bytes at a time */
    while (i + 8 <= len) {
      uint64_t w;
      memcpy(&w, s + i, 8);
      if (w & 0x8080808080808080ull) break;
      i += 8;
    }
    /* then a character at a time, until an ASCII byte sends it back to the runs */
    while (i < len) {
      uint8_t c = s[i];
      if (c < 0x80) {
        i++;
        break;
      }
      /* the common two- and three-byte forms (Cyrillic, Greek, ...; CJK, ...) inline: any
       * lead C2-DF with a continuation byte; E1-EC or EE-EF with two (E0, ED need range
       * checks on the second byte: seq_len) */
      if (c >= 0xC2 && c <= 0xDF && i + 1 < len && (s[i + 1] & 0xC0) == 0x80) {
        i += 2;
        continue;
      }
      if (c >= 0xE1 && c <= 0xEF && c != 0xED && i + 2 < len && (s[i + 1] & 0xC0) == 0x80 &&
          (s[i + 2] & 0xC0) == 0x80) {
        i += 3;
        continue;
      }
      size_t bad;
      int truncated;
      size_t n = seq_len(s + i, len - i, &bad, &truncated);
      if (n == 0) {
        if (bad_pos) *bad_pos = i;
        return false;
      }
      i += n;
    }
  }
  return true;
}

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define HAVE_AVX2_PATH 1

/* Thirty-two bytes a step with AVX2: the method of Keiser and Lemire ("Validating UTF-8
 * in less than one instruction per byte", 2021). Each byte and the one before it are
 * looked up in three 16-entry tables — by the high and the low nibble of the byte before,
 * by the high nibble of the byte itself —, each entry the set of errors that nibble
 * allows; the AND of the three is the set of errors the pair commits. Two continuation
 * bytes in a row are an error (TWO_CONTS) except where the byte two or three back is a
 * lead of three or four bytes, which the XOR undoes. Only says whether the whole text is
 * valid: the portable loop finds the position when it is not. */
#define TOO_SHORT (1 << 0)      /* a lead, then no continuation */
#define TOO_LONG (1 << 1)       /* ASCII, then a continuation */
#define OVERLONG_3 (1 << 2)     /* E0 80..9F */
#define TOO_LARGE (1 << 3)      /* F4 90..BF, F5.. */
#define SURROGATE (1 << 4)      /* ED A0..BF */
#define OVERLONG_2 (1 << 5)     /* C0, C1 */
#define TOO_LARGE_1000 (1 << 6) /* F5..FF 80..8F */
#define OVERLONG_4 (1 << 6)     /* F0 80..8F */
#define TWO_CONTS (1 << 7)      /* a continuation, then another */
#define CARRY (TOO_SHORT | TOO_LONG | TWO_CONTS)

#define TABLE16(a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p)                                     \
  _mm256_setr_epi8(a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p, a, b, c, d, e, f, g, h, i, j, k, l, \
                   m, n, o, p)

__attribute__((target("avx2"))) static inline __m256i prev_bytes(__m256i in, __m256i prev, int n)
{
  /* the 32 bytes that end n bytes before the end of in: alignr works per 16-byte lane */
  __m256i mid = _mm256_permute2x128_si256(prev, in, 0x21);
  switch (n) {
  case 1: return _mm256_alignr_epi8(in, mid, 15);
  case 2: return _mm256_alignr_epi8(in, mid, 14);
  default: return _mm256_alignr_epi8(in, mid, 13);
  }
}

__attribute__((target("avx2"))) static bool valid_avx2(const uint8_t *s, size_t len)
{
  const __m256i byte1_high = TABLE16(
      TOO_LONG, TOO_LONG, TOO_LONG, TOO_LONG, TOO_LONG, TOO_LONG, TOO_LONG, TOO_LONG, /* 0..7 */
      TWO_CONTS, TWO_CONTS, TWO_CONTS, TWO_CONTS,                                     /* 8..B */
      TOO_SHORT | OVERLONG_2, TOO_SHORT, TOO_SHORT | OVERLONG_3 | SURROGATE,           /* C, D, E */
      TOO_SHORT | TOO_LARGE | TOO_LARGE_1000 | OVERLONG_4);                           /* F */
  const __m256i byte1_low = TABLE16(
      CARRY | OVERLONG_3 | OVERLONG_2 | OVERLONG_4, CARRY | OVERLONG_2, CARRY, CARRY, /* 0..3 */
      CARRY | TOO_LARGE, CARRY | TOO_LARGE | TOO_LARGE_1000,                          /* 4, 5 */
      CARRY | TOO_LARGE | TOO_LARGE_1000, CARRY | TOO_LARGE | TOO_LARGE_1000,
      CARRY | TOO_LARGE | TOO_LARGE_1000, CARRY | TOO_LARGE | TOO_LARGE_1000,
      CARRY | TOO_LARGE | TOO_LARGE_1000, CARRY | TOO_LARGE | TOO_LARGE_1000,
      CARRY | TOO_LARGE | TOO_LARGE_1000, CARRY | TOO_LARGE | TOO_LARGE_1000 | SURROGATE, /* C, D */
      CARRY | TOO_LARGE | TOO_LARGE_1000, CARRY | TOO_LARGE | TOO_LARGE_1000);            /* E, F */
  const __m256i byte2_high = TABLE16(
      TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT, /* 0..7 */
      TOO_LONG | OVERLONG_2 | TWO_CONTS | OVERLONG_3 | TOO_LARGE_1000 | OVERLONG_4,         /* 8 */
      TOO_LONG | OVERLONG_2 | TWO_CONTS | OVERLONG_3 | TOO_LARGE,                           /* 9 */
      TOO_LONG | OVERLONG_2 | TWO_CONTS | SURROGATE | TOO_LARGE,                            /* A */
      TOO_LONG | OVERLONG_2 | TWO_CONTS | SURROGATE | TOO_LARGE,                            /* B */
      TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT);                                          /* C..F */
  /* a lead in the last three bytes that needs more bytes than are left */
  const __m256i last_max = _mm256_setr_epi8(-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                            -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, (char)0xEF,
                                            (char)0xDF, (char)0xBF);
  const __m256i nibble = _mm256_set1_epi8(0x0F), high = _mm256_set1_epi8((char)0x80);
  __m256i prev = _mm256_setzero_si256(), incomplete = prev, error = prev;
  uint8_t tail[32];
  for (size_t i = 0;; i += 32) {
    __m256i in;
    bool last = i + 32 > len; /* the rest, zero-padded (possibly nothing but the padding) */
    if (!last) {
      in = _mm256_loadu_si256((const __m256i *)(const void *)(s + i));
    } else {
      memset(tail, 0, sizeof tail);
      memcpy(tail, s + i, len - i);
      in = _mm256_loadu_si256((const __m256i *)(const void *)tail);
    }
    if (_mm256_movemask_epi8(in) == 0) { /* ASCII: only a lead left open before it is wrong */
      error = _mm256_or_si256(error, incomplete);
      incomplete = _mm256_setzero_si256();
    } else {
      __m256i p1 = prev_bytes(in, prev, 1);
      __m256i e = _mm256_and_si256(
          _mm256_and_si256(_mm256_shuffle_epi8(byte1_high, _mm256_and_si256(_mm256_srli_epi16(p1, 4), nibble)),
                           _mm256_shuffle_epi8(byte1_low, _mm256_and_si256(p1, nibble))),
          _mm256_shuffle_epi8(byte2_high, _mm256_and_si256(_mm256_srli_epi16(in, 4), nibble)));
      /* third bytes (E0.. two back) and fourth bytes (F0.. three back) must continue */
      __m256i must = _mm256_or_si256(_mm256_subs_epu8(prev_bytes(in, prev, 2), _mm256_set1_epi8(0xE0 - 0x80)),
                                     _mm256_subs_epu8(prev_bytes(in, prev, 3), _mm256_set1_epi8(0xF0 - 0x80)));
      error = _mm256_or_si256(error, _mm256_xor_si256(_mm256_and_si256(must, high), e));
      incomplete = _mm256_subs_epu8(in, last_max);
    }
    prev = in;
    if (last) break;
  }
  return _mm256_testz_si256(error, error);
}

static bool have_avx2(void)
{
  static int known; /* 0: not asked yet, 1: no, 2: yes (a race only asks twice) */
  int k = __atomic_load_n(&known, __ATOMIC_RELAXED);
  if (!k) {
    __builtin_cpu_init();
    k = __builtin_cpu_supports("avx2") ? 2 : 1;
    __atomic_store_n(&known, k, __ATOMIC_RELAXED);
  }
  return k == 2;
}
#endif

bool tok_utf8_valid(const char *text, size_t len, size_t *bad_pos)
{
#ifdef HAVE_AVX2_PATH
  /* long texts: the vector test, then the portable loop only for the offset of an error */
  if (len >= 64 && have_avx2() && valid_avx2((const uint8_t *)text, len)) return true;
#endif
  return tok__utf8_valid_portable(text, len, bad_pos);
}

tok_err tok_utf8_append_lossy(tok_buf *out, const char *text, size_t len)
{
  const uint8_t *s = (const uint8_t *)text;
  size_t run = 0, i = 0;
  tok_err rc;
  if (len == 0) return TOK_OK; /* text may be NULL then */
  while (i < len) {
    size_t bad;
    int truncated;
    size_t n = seq_len(s + i, len - i, &bad, &truncated);
    if (n > 0) {
      i += n;
      continue;
    }
    if ((rc = tok_buf_append(out, s + run, i - run)) != TOK_OK) return rc;
    if ((rc = tok_buf_append(out, REPLACEMENT, sizeof REPLACEMENT)) != TOK_OK) return rc;
    i += bad;
    run = i;
  }
  return tok_buf_append(out, s + run, len - run);
}

size_t tok_utf8_complete_len(const char *text, size_t len)
{
  const uint8_t *s = (const uint8_t *)text;
  for (size_t back = 1; back <= 3 && back <= len; back++) {
    uint8_t c = s[len - back];
    if (c < 0x80) return len;          /* ASCII ends any sequence */
    if (c < 0xC0) continue;            /* continuation byte: look further back */
    size_t bad;
    int truncated;
    size_t n = seq_len(s + len - back, back, &bad, &truncated);
    return (n == 0 && truncated) ? len - back : len;
  }
  return len;
}
