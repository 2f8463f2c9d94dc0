/*
 * scan.c — see scan.h. Each scanner follows its regex's alternatives in order, with the
 * backtracking the regex would do written out where it matters (\s+(?!\S), \s*[\r\n]+,
 * o200k's [U]*[W]+).
 */
#include <string.h>

#include "core/scan.h"

#define BIT(c) (1u << (c))
#define M_L (BIT(TOK__UC_LU) | BIT(TOK__UC_LL) | BIT(TOK__UC_LMO))
#define M_N BIT(TOK__UC_N)
#define M_WS BIT(TOK__UC_WS)
/* [^\s\p{L}\p{N}] */
#define M_PUNCT (BIT(TOK__UC_OTHER) | BIT(TOK__UC_M) | BIT(TOK__UC_P) | BIT(TOK__UC_S))
/* o200k: [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}] and [\p{Ll}\p{Lm}\p{Lo}\p{M}] */
#define M_UP (BIT(TOK__UC_LU) | BIT(TOK__UC_LMO) | BIT(TOK__UC_M))
#define M_LOW (BIT(TOK__UC_LL) | BIT(TOK__UC_LMO) | BIT(TOK__UC_M))

/* The class of the character at s[i] (valid UTF-8), and its length in *n. */
static inline unsigned class_at(const uint8_t *s, size_t i, size_t *n)
{
  uint32_t b = s[i];
  if (b < 0x80) {
    *n = 1;
    return tok__uc_low[b];
  }
  if (b < 0xE0) {
    *n = 2;
    return tok__uc_low[(b & 0x1F) << 6 | (s[i + 1] & 0x3F)];
  }
  uint32_t c;
  if (b < 0xF0) {
    c = (b & 0x0F) << 12 | (uint32_t)(s[i + 1] & 0x3F) << 6 | (s[i + 2] & 0x3F);
    *n = 3;
  } else {
    c = (b & 0x07) << 18 | (uint32_t)(s[i + 1] & 0x3F) << 12 | (uint32_t)(s[i + 2] & 0x3F) << 6 |
        (s[i + 3] & 0x3F);
    *n = 4;
  }
  return tok__uc_class(c);
}

static inline bool is(unsigned cls, unsigned mask) { return (BIT(cls) & mask) != 0; }

/* The end of the run of characters in mask that starts at i. */
static inline size_t run(const uint8_t *s, size_t len, size_t i, unsigned mask)
{
  while (i < len) {
    size_t n;
    if (!is(class_at(s, i, &n), mask)) break;
    i += n;
  }
  return i;
}

/* The index of the first byte of w (eight bytes read from memory) whose high bit is set in
 * m, m != 0. */
static inline size_t first_byte(uint64_t m)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  return (size_t)__builtin_clzll(m) >> 3;
#else
  return (size_t)__builtin_ctzll(m) >> 3;
#endif
}

#define ONES 0x0101010101010101ull
#define HIGH 0x8080808080808080ull

/* The end of the run of ASCII bytes b with lo <= (b | fold) <= hi that starts at i, taken
 * eight a step (one well-predicted test per word instead of one per byte, whose exit the
 * branch predictor misses). */
static inline size_t ascii_span(const uint8_t *s, size_t len, size_t i, uint8_t fold, uint8_t lo, uint8_t hi)
{
  for (; i + 8 <= len; i += 8) {
    uint64_t w;
    memcpy(&w, s + i, 8);
    /* per byte, with the high bit cleared so that no sum carries into the next byte:
     * >= lo and <= hi as high bits, ASCII bytes only */
    uint64_t y = (w | fold * ONES) & ~HIGH;
    uint64_t in = (y + (0x80 - lo) * ONES) & ~(y + (0x7F - hi) * ONES) & ~w & HIGH;
    uint64_t stop = ~in & HIGH;
    if (stop) return i + first_byte(stop);
  }
  while (i < len && (uint8_t)((s[i] | fold) - lo) <= hi - lo) i++;
  return i;
}

/* run() for a mask whose ASCII characters are those of ascii_span(fold, lo, hi). */
static inline size_t span(const uint8_t *s, size_t len, size_t i, unsigned mask, uint8_t fold,
                          uint8_t lo, uint8_t hi)
{
  i = ascii_span(s, len, i, fold, lo, hi);
  return i == len || s[i] < 0x80 ? i : run(s, len, i, mask);
}

#define letters(s, len, i) span(s, len, i, M_L, 0x20, 'a', 'z')
#define uppers(s, len, i) span(s, len, i, M_UP, 0, 'A', 'Z')
#define lowers(s, len, i) span(s, len, i, M_LOW, 0, 'a', 'z')

/* 's 't 're 've 'm 'll 'd at p (s[p] == '\''), case-insensitive as Unicode simple case
 * folding has it (so 'ſ, U+017F, is 's too) or not; its end, or 0. */
static size_t contraction(const uint8_t *s, size_t len, size_t p, bool fold)
{
  if (p + 1 >= len) return 0;
  uint8_t a = s[p + 1], b = p + 2 < len ? s[p + 2] : 0;
  if (fold) {
    if (a == 0xC5 && b == 0xBF) return p + 3; /* ſ */
    a |= a >= 'A' && a <= 'Z' ? 0x20 : 0;
    b |= b >= 'A' && b <= 'Z' ? 0x20 : 0;
  }
  switch (a) {
  case 's': case 't': case 'm': case 'd':
    return p + 2;
  case 'r': case 'v':
    return b == 'e' ? p + 3 : 0;
  case 'l':
    return b == 'l' ? p + 3 : 0;
  default:
    return 0;
  }
}

/* \s+(?!\S)|\s+ at p, s[p] white space; with crlf, \s*[\r\n]+ is tried first. */
static size_t spaces(const uint8_t *s, size_t len, size_t p, bool crlf)
{
  size_t i = p, last_start = p, last_crlf = SIZE_MAX;
  while (i < len) {
    size_t n;
    uint64_t w;
    if (i + 8 <= len && (memcpy(&w, s + i, 8), w == ' ' * ONES)) { /* indentation, padding */
      last_start = i + 7;
      i += 8;
      continue;
    }
    if (class_at(s, i, &n) != TOK__UC_WS) break;
    if (s[i] == '\r' || s[i] == '\n') last_crlf = i;
    last_start = i;
    i += n;
  }
  /* \s*[\r\n]+: \s* gives back to the last CR or LF of the run */
  if (crlf && last_crlf != SIZE_MAX) return last_crlf + 1;
  /* \s+(?!\S): the whole run at the end of the piece, else all but its last character;
   * \s+ when that leaves nothing */
  if (i == len) return i;
  return last_start > p ? last_start : i;
}

enum { TAIL_NONE, TAIL_CRLF, TAIL_CRLF_SLASH };

/* ` ?[^\s\p{L}\p{N}]+` at p, then [\r\n]* (TAIL_CRLF) or [\r\n/]* (TAIL_CRLF_SLASH); its end,
 * or 0 when it does not match. */
static size_t punct(const uint8_t *s, size_t len, size_t p, unsigned c0, int tail)
{
  size_t q = p, n;
  if (s[p] == ' ' && p + 1 < len && is(class_at(s, p + 1, &n), M_PUNCT)) q = p + 1;
  else if (!is(c0, M_PUNCT)) return 0;
  q = run(s, len, q, M_PUNCT);
  if (tail != TAIL_NONE)
    while (q < len && (s[q] == '\r' || s[q] == '\n' || (tail == TAIL_CRLF_SLASH && s[q] == '/'))) q++;
  return q;
}

static size_t scan_gpt2(const uint8_t *s, size_t len, size_t p)
{
  size_t n0, n1, e;
  unsigned c0 = class_at(s, p, &n0);
  if (s[p] == '\'' && (e = contraction(s, len, p, false))) return e;
  /* ` ?\p{L}+`, ` ?\p{N}+` */
  unsigned want = c0;
  size_t q = p;
  if (s[p] == ' ' && p + 1 < len) {
    unsigned c1 = class_at(s, p + 1, &n1);
    if (is(c1, M_L | M_N)) want = c1, q = p + 1;
  }
  if (is(want, M_L)) return letters(s, len, q);
  if (is(want, M_N)) return run(s, len, q, M_N);
  if ((e = punct(s, len, p, c0, TAIL_NONE))) return e;
  return c0 == TOK__UC_WS ? spaces(s, len, p, false) : p + n0;
}

/* CL100K and QWEN (max_digits 3 or 1) */
static size_t scan_cl100k(const uint8_t *s, size_t len, size_t p, unsigned max_digits)
{
  size_t n0, n1, e;
  unsigned c0 = class_at(s, p, &n0);
  if (s[p] == '\'' && (e = contraction(s, len, p, true))) return e;
  /* [^\r\n\p{L}\p{N}]?\p{L}+ */
  if (is(c0, M_L)) return letters(s, len, p + n0);
  if (c0 != TOK__UC_N && s[p] != '\r' && s[p] != '\n' && p + n0 < len &&
      is(class_at(s, p + n0, &n1), M_L))
    return letters(s, len, p + n0 + n1);
  /* \p{N}{1,3} */
  if (c0 == TOK__UC_N) {
    size_t i = p + n0;
    for (unsigned k = 1; k < max_digits && i < len && class_at(s, i, &n1) == TOK__UC_N; k++) i += n1;
    return i;
  }
  if ((e = punct(s, len, p, c0, TAIL_CRLF))) return e;
  return c0 == TOK__UC_WS ? spaces(s, len, p, true) : p + n0;
}

/* o200k: [U]*[W]+ at q (U = upper run class, W = lower); its end, or 0. */
static size_t up_low(const uint8_t *s, size_t len, size_t q)
{
  /* no ASCII upper-case letter is in W */
  size_t i = ascii_span(s, len, q, 0, 'A', 'Z'), last_low = SIZE_MAX, last_low_end = 0, n;
  unsigned c;
  while (i < len && is(c = class_at(s, i, &n), M_UP)) {
    if (is(c, M_LOW)) last_low = i, last_low_end = i + n;
    i += n;
  }
  if (i < len && is(class_at(s, i, &n), M_LOW)) return lowers(s, len, i);
  /* W+ needs a character: U* gives back to the last one that is also in W */
  return last_low != SIZE_MAX ? last_low_end : 0;
}

/* o200k: [U]+[W]* at q; its end, or 0. */
static size_t up_then_low(const uint8_t *s, size_t len, size_t q)
{
  size_t i = uppers(s, len, q);
  return i == q ? 0 : lowers(s, len, i);
}

static size_t scan_o200k(const uint8_t *s, size_t len, size_t p)
{
  size_t n0, e;
  unsigned c0 = class_at(s, p, &n0);
  bool prefix = !is(c0, M_L | M_N) && s[p] != '\r' && s[p] != '\n' && p + n0 < len;
  if (s[p] < 0x80) {
    /* ASCII words: [A-Z]*[a-z]* after the optional prefix character, settled here when
     * the byte after them is ASCII too (no ASCII letter is in both U and W, so neither
     * alternative gives back; without letters neither matches) */
    size_t q = p + prefix, i = ascii_span(s, len, q, 0, 'A', 'Z'), j = ascii_span(s, len, i, 0, 'a', 'z');
    if (j == len || s[j] < 0x80) {
      if (j == q) goto not_word;
      size_t c = j < len && s[j] == '\'' ? contraction(s, len, j, true) : 0;
      return c ? c : j;
    }
  }
  /* [^\r\n\p{L}\p{N}]?[U]*[W]+(?i:'s|...)? then the same with [U]+[W]*: with the optional
   * prefix character first, then without */
  for (int alt = 0; alt < 2; alt++) {
    for (int with = prefix ? 1 : 0; with >= 0; with--) {
      size_t q = p + (with ? n0 : 0);
      e = alt == 0 ? up_low(s, len, q) : up_then_low(s, len, q);
      if (e) {
        size_t c = e < len && s[e] == '\'' ? contraction(s, len, e, true) : 0;
        return c ? c : e;
      }
    }
  }
not_word:
  if (c0 == TOK__UC_N) {
    size_t i = p + n0, n1;
    for (unsigned k = 1; k < 3 && i < len && class_at(s, i, &n1) == TOK__UC_N; k++) i += n1;
    return i;
  }
  if ((e = punct(s, len, p, c0, TAIL_CRLF_SLASH))) return e;
  return c0 == TOK__UC_WS ? spaces(s, len, p, true) : p + n0;
}

/* DeepSeek-V3: `[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+|
 * ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+` at p: its end, or 0 (no match here). */
#define M_LM (M_L | BIT(TOK__UC_M))
#define M_PS (BIT(TOK__UC_P) | BIT(TOK__UC_S))
static size_t scan_ds_main(const uint8_t *s, size_t len, size_t p)
{
  size_t n0, n1;
  uint8_t b0 = s[p];
  unsigned c0 = class_at(s, p, &n0);
  bool ascii_letter1 = p + 1 < len && ((s[p + 1] | 0x20) >= 'a' && (s[p + 1] | 0x20) <= 'z');
  if (b0 < 0x80 && b0 > 0x20 && b0 != 0x7F && !((b0 | 0x20) >= 'a' && (b0 | 0x20) <= 'z') &&
      !(b0 >= '0' && b0 <= '9') && ascii_letter1) {
    size_t i = p + 1;
    while (i < len && (s[i] | 0x20) >= 'a' && (s[i] | 0x20) <= 'z') i++;
    return i;
  }
  /* [^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+: a run from c0 when it is a letter or mark (a
   * mark as the optional character ends where the run from it would), else c0 as the
   * optional character before a run */
  if (is(c0, M_LM)) return run(s, len, p + n0, M_LM);
  if (!is(c0, M_L | M_PS) && b0 != '\r' && b0 != '\n' && p + n0 < len && is(class_at(s, p + n0, &n1), M_LM))
    return run(s, len, p + n0 + n1, M_LM);
  /* ` ?[\p{P}\p{S}]+[\r\n]*` */
  size_t q = p;
  if (b0 == ' ' && p + 1 < len && is(class_at(s, p + 1, &n1), M_PS)) q = p + 1;
  else if (!is(c0, M_PS)) q = SIZE_MAX;
  if (q != SIZE_MAX) {
    q = run(s, len, q, M_PS);
    while (q < len && (s[q] == '\r' || s[q] == '\n')) q++;
    return q;
  }
  return c0 == TOK__UC_WS ? spaces(s, len, p, true) : 0;
}

/* DeepSeek-V3's CJK ranges: U+4E00..9FA5, U+3040..309F, U+30A0..30FF. */
static inline bool ds_cjk(const uint8_t *s, size_t i)
{
  if (s[i] < 0xE3 || s[i] > 0xE9) return false;
  uint32_t c = (s[i] & 0x0F) << 12 | (uint32_t)(s[i + 1] & 0x3F) << 6 | (s[i + 2] & 0x3F);
  return (c >= 0x4E00 && c <= 0x9FA5) || (c >= 0x3040 && c <= 0x309F) || (c >= 0x30A0 && c <= 0x30FF);
}

static size_t char_len(uint8_t lead) { return lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4; }

bool tok__scan_find(tok__scan_kind kind, const uint8_t *s, size_t len, size_t pos, size_t *a, size_t *b)
{
  if (TOK__SCAN_GAPLESS(kind)) {
    if (pos >= len) return false;
    *a = pos, *b = tok__scan_next(kind, s, len, pos);
    return true;
  }
  for (size_t i = pos, n; i < len; i += char_len(s[i])) {
    size_t e = 0;
    switch (kind) {
    case TOK__SCAN_DS_DIGITS:
      if (class_at(s, i, &n) == TOK__UC_N) {
        e = i + n;
        for (int k = 1; k < 3 && e < len && class_at(s, e, &n) == TOK__UC_N; k++) e += n;
      }
      break;
    case TOK__SCAN_DS_CJK:
      for (e = i; e < len && ds_cjk(s, e);) e += 3;
      if (e == i) e = 0;
      break;
    case TOK__SCAN_DS_MAIN:
      e = scan_ds_main(s, len, i);
      break;
    default:
      return false;
    }
    if (e) {
      *a = i, *b = e;
      return true;
    }
  }
  return false;
}

size_t tok__scan_next(tok__scan_kind kind, const uint8_t *s, size_t len, size_t pos)
{
  switch (kind) {
  case TOK__SCAN_GPT2: return scan_gpt2(s, len, pos);
  case TOK__SCAN_CL100K: return scan_cl100k(s, len, pos, 3);
  case TOK__SCAN_QWEN: return scan_cl100k(s, len, pos, 1);
  case TOK__SCAN_O200K: return scan_o200k(s, len, pos);
  default: return len;
  }
}

size_t tok__scan_batch(tok__scan_kind kind, const uint8_t *s, size_t len, size_t pos, size_t *ends,
                       size_t max)
{
  size_t k = 0;
  /* the switch outside the loop, so each scanner is inlined in its own loop */
#define BATCH(call)                                                                            \
  for (; k < max && pos < len; k++) ends[k] = pos = (call);                                    \
  break
  switch (kind) {
  case TOK__SCAN_GPT2: BATCH(scan_gpt2(s, len, pos));
  case TOK__SCAN_CL100K: BATCH(scan_cl100k(s, len, pos, 3));
  case TOK__SCAN_QWEN: BATCH(scan_cl100k(s, len, pos, 1));
  case TOK__SCAN_O200K: BATCH(scan_o200k(s, len, pos));
  default: break;
  }
#undef BATCH
  return k;
}

static const struct {
  tok__scan_kind kind;
  const char *pattern;
} KNOWN[] = {
    {TOK__SCAN_GPT2, "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"},
    {TOK__SCAN_CL100K, "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
                       "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
    {TOK__SCAN_QWEN, "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
                     "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
    {TOK__SCAN_O200K, "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+"
                      "(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+"
                      "[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\\p{N}{1,3}| "
                      "?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
    /* DeepSeek-V3 (as its tokenizer.json has them: raw CJK characters, raw CR and LF) */
    {TOK__SCAN_DS_DIGITS, "\\p{N}{1,3}"},
    {TOK__SCAN_DS_CJK, "[\xE4\xB8\x80-\xE9\xBE\xA5\xE3\x81\x80-\xE3\x82\x9F\xE3\x82\xA0-\xE3\x83\xBF]+"},
    {TOK__SCAN_DS_MAIN, "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?"
                        "[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"},
};

const char *tok__scan_pattern(tok__scan_kind kind)
{
  for (size_t i = 0; i < sizeof KNOWN / sizeof KNOWN[0]; i++)
    if (KNOWN[i].kind == kind) return KNOWN[i].pattern;
  return NULL;
}

tok__scan_kind tok__scan_recognize(const char *pattern, size_t len)
{
  for (size_t i = 0; i < sizeof KNOWN / sizeof KNOWN[0]; i++)
    if (strlen(KNOWN[i].pattern) == len && memcmp(KNOWN[i].pattern, pattern, len) == 0) return KNOWN[i].kind;
  return TOK__SCAN_NONE;
}
